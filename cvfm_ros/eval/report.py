"""Replay report: plots (matplotlib, Agg) and a self-contained report.html with embedded images."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from ..config import atomic_write_bytes, atomic_write_text  # noqa: E402
from ..geometry.planar import covariance_ellipse  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_trajectories(trajectories: dict[str, np.ndarray], mosaic: np.ndarray | None = None,
                      mosaic_extent: tuple[float, float, float, float] | None = None,
                      fixes: np.ndarray | None = None, fix_covariances: np.ndarray | None = None,
                      ellipse_every: int = 10) -> bytes:
    """Trajectories (name -> (N, 2+) map xy) over an aerial mosaic (extent: xmin, xmax, ymin, ymax),
    with 2-sigma covariance ellipses of every `ellipse_every`-th fix. Returns PNG bytes."""
    fig, ax = plt.subplots(figsize=(8, 8))
    if mosaic is not None and mosaic_extent is not None:
        ax.imshow(mosaic, extent=mosaic_extent, origin="upper", interpolation="bilinear")
    styles = {"ground truth": ("w", "-", 2.5), "odometry": ("tab:red", "--", 1.5), "fused": ("tab:green", "-", 1.8),
              "raw fixes": ("tab:cyan", "", 0)}
    for name, traj in trajectories.items():
        traj = np.asarray(traj)
        if len(traj) == 0:
            continue
        color, ls, lw = styles.get(name, (None, "-", 1.5))
        if ls:
            ax.plot(traj[:, 0], traj[:, 1], ls, color=color, lw=lw, label=name)
        else:
            ax.plot(traj[:, 0], traj[:, 1], ".", color=color, ms=3, label=name)
    if fixes is not None and fix_covariances is not None:
        for pose, cov in list(zip(fixes, fix_covariances))[::max(1, ellipse_every)]:
            major, minor, angle = covariance_ellipse(cov, sigma=2.0)
            ax.add_patch(Ellipse(pose[:2], 2 * major, 2 * minor, angle=np.degrees(angle), fill=False,
                                 color="yellow", lw=1))
    ax.set_xlabel("x east (m)")
    ax.set_ylabel("y north (m)")
    ax.set_aspect("equal")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("Trajectories in map (2-sigma fix ellipses)")
    return _png(fig)


def plot_errors(series: dict[str, tuple[np.ndarray, np.ndarray]], threshold_m: float = 5.0) -> bytes:
    """Position error over time: name -> (stamps, errors). Returns PNG bytes."""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for name, (t, e) in series.items():
        if len(t):
            ax.plot(np.asarray(t) - min(np.min(s[0]) for s in series.values() if len(s[0])), e,
                    "." if name == "raw fixes" else "-", ms=3, label=name)
    ax.axhline(threshold_m, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("position error (m)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def write_report(out_dir: Path, title: str, summary_rows: list[tuple[str, str]], metrics: dict,
                 images: dict[str, bytes], notes: list[str]) -> Path:
    """Write every image as PNG next to a self-contained report.html (images embedded as data URIs)."""
    out_dir = Path(out_dir)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
             "th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}"
             "pre{background:#f7f7f7;padding:1em;overflow:auto}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><table>"]
    parts += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in summary_rows]
    parts.append("</table>")
    if notes:
        parts.append("<h2>Input problems and notes</h2><ul>")
        parts += [f"<li>{html.escape(n)}</li>" for n in notes]
        parts.append("</ul>")
    for name, png in images.items():
        atomic_write_bytes(out_dir / f"{name}.png", png)
        data = base64.b64encode(png).decode()
        parts.append(f"<h2>{html.escape(name.replace('_', ' '))}</h2><img src='data:image/png;base64,{data}'>")
    parts.append(f"<h2>metrics.json</h2><pre>{html.escape(json.dumps(metrics, indent=2))}</pre></body></html>")
    path = out_dir / "report.html"
    atomic_write_text(path, "".join(parts))
    return path
