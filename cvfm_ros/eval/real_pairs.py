"""Matcher evaluation on real labelled ground/aerial pairs (`cvfm-ros eval --real PAIRS.json`).

Manifest (a JSON list; the format of `../shared/data/real/pairs.json`), one entry per pair:

| key | meaning |
| --- | --- |
| `name` | unique name |
| `ground`, `aerial` | image paths, relative to the manifest's folder (or absolute) |
| `camera` | `model: equirectangular` (panorama, centre column along `base_link` +x) or `model: pinhole` with `K` (9 numbers, row-major), `width`, `height`, optional `D` (plumb_bob) and `pitch_deg` (down, default 0), looking along `base_link` +x; `height_m` above the ground for both |
| `aerial_mpp` | metres per aerial pixel (north-up aerial image of any size) |
| `camera_uv` | the camera's position in the aerial image, OpenCV pixels |
| `yaw_deg` | yaw of `base_link`, CCW from east |
| `max_prior_offset_m` | radius of the prior disc (the aerial image still covers the matcher's patch) |

Protocol (the manifest folder's README): for each pair, `priors` (8) draws from a fixed seed: the
prior position uniform in the disc of `max_prior_offset_m` around the truth, the prior yaw
uniform within ±10° of it. The matcher's aerial input is cut around the prior from the aerial
image, resampled to the matcher's `aerial_mpp` (outside the image stays black: nothing invented);
the ground image is resized to the matcher's input and its camera scaled with it. Reported:
position and yaw errors (summaries, recall), `better_than_prior` (share of draws whose error is
below the prior's own) and, over the fixes the localizer would publish (the matcher's validity gate,
or the second look of runtime/second_look.py at a crop 8 m off), their count, median and largest
error. Per-draw rows are kept, with the second look's disagreement where it ran.

Convention: docs/CONVENTIONS.md; the patch frame is centred on the prior (x east, y north).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..geometry import MountedCamera, PinholeCamera, wrap_angle
from ..maps.aerial_image import aerial_crop
from ..model.matcher import gate_kind, validity_gate
from ..runtime.second_look import SecondLook, SecondLookSettings
from ..runtime.second_look import second_look as run_second_look
from .metrics import nees, position_error_m, recall, summarize, yaw_error_deg

PRIOR_YAW_DEG = 10.0
PRIORS_PER_PAIR = 8


@dataclass(frozen=True)
class RealPair:
    """One manifest entry, validated; images are read on use."""

    name: str
    ground: Path
    aerial: Path
    camera: dict
    aerial_mpp: float
    camera_uv: tuple[float, float]
    yaw_deg: float
    max_prior_offset_m: float

    def mounted_camera(self, width: int, height: int) -> MountedCamera:
        """The camera of the ground image as read (width x height), mounted on base_link."""
        c = self.camera
        if c["model"] == "equirectangular":
            return MountedCamera.panorama(width, height, c["height_m"])
        k = c["K"]
        cam = PinholeCamera(k[0], k[4], k[2], k[5], int(c["width"]), int(c["height"]), tuple(c.get("D", (0.0,) * 5)))
        return MountedCamera.forward_pinhole(cam, c["height_m"], math.radians(float(c.get("pitch_deg", 0.0))))


def _number(entry: dict, key: str, where: str, positive: bool = False) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{where}.{key}: expected a positive number, got {value!r}")
    return float(value)


def load_manifest(path: str | Path) -> list[RealPair]:
    """Read and validate a real-pair manifest; ValueError names the file, entry and key."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--real: manifest {path} not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"--real: {path} is not JSON ({exc})") from exc
    if not isinstance(data, list) or not data:
        raise ValueError(f"--real: {path} must hold a non-empty JSON list of pairs")
    pairs, names = [], set()
    for i, entry in enumerate(data):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise ValueError(f"{where}.name: expected a unique non-empty string, got {name!r}")
        names.add(name)
        files = {}
        for key in ("ground", "aerial"):
            value = entry.get(key)
            if not isinstance(value, str):
                raise ValueError(f"{where}.{key}: expected an image path, got {value!r}")
            files[key] = (path.parent / value) if not Path(value).is_absolute() else Path(value)
            if not files[key].is_file():
                raise ValueError(f"{where}.{key}: {files[key]} not found")
        camera = entry.get("camera")
        if not isinstance(camera, dict) or camera.get("model") not in ("equirectangular", "pinhole"):
            raise ValueError(f"{where}.camera.model: expected 'equirectangular' or 'pinhole', got "
                             f"{camera.get('model') if isinstance(camera, dict) else camera!r}")
        camera = dict(camera)
        camera["height_m"] = _number(camera, "height_m", f"{where}.camera", positive=True)
        if camera["model"] == "pinhole":
            k = camera.get("K")
            if not isinstance(k, list) or len(k) != 9 or not all(isinstance(v, (int, float)) for v in k):
                raise ValueError(f"{where}.camera.K: expected 9 numbers (row-major 3x3), got {k!r}")
            for key in ("width", "height"):
                _number(camera, key, f"{where}.camera", positive=True)
        uv = entry.get("camera_uv")
        if not isinstance(uv, list) or len(uv) != 2 or not all(isinstance(v, (int, float)) for v in uv):
            raise ValueError(f"{where}.camera_uv: expected [u, v] aerial pixels, got {uv!r}")
        pairs.append(RealPair(name, files["ground"], files["aerial"], camera,
                              _number(entry, "aerial_mpp", where, positive=True), (float(uv[0]), float(uv[1])),
                              _number(entry, "yaw_deg", where), _number(entry, "max_prior_offset_m", where, positive=True)))
    return pairs


def _read_rgb(path: Path, what: str) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{what}: {path} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def prior_draws(pair_index: int, radius_m: float, count: int, seed: int) -> np.ndarray:
    """(count, 3) prior offsets (dx, dy metres, dyaw radians) from the truth: uniform in the disc
    of `radius_m` (area-uniform) and within ±10°; a fixed function of (seed, pair_index)."""
    rng = np.random.default_rng([seed, pair_index])
    r = radius_m * np.sqrt(rng.random(count))
    angle = rng.uniform(0, 2 * math.pi, count)
    dyaw = np.radians(rng.uniform(-PRIOR_YAW_DEG, PRIOR_YAW_DEG, count))
    return np.stack([r * np.cos(angle), r * np.sin(angle), dyaw], 1)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None] / 255


def ground_input(pair: RealPair, ground: np.ndarray, ground_hw: tuple[int, int]) -> tuple[torch.Tensor, MountedCamera]:
    """The pair's ground image as the matcher's input (1, 3, Hg, Wg), undistorted and resized once
    per pair, and its camera scaled with it. `ground`: the image as read (RGB uint8)."""
    hg, wg = ground_hw
    mounted = pair.mounted_camera(ground.shape[1], ground.shape[0])
    if isinstance(mounted.camera, PinholeCamera):
        ground, camera = mounted.camera.undistort_image(ground)
        mounted = MountedCamera(camera, mounted.base_from_camera)
    return _to_tensor(cv2.resize(ground, (wg, hg), interpolation=cv2.INTER_AREA)), mounted.resized(wg, hg)


def draw_inputs(pair: RealPair, ground: torch.Tensor, aerial: np.ndarray, aerial_px: int, mpp: float,
                offset: np.ndarray) -> tuple[dict, np.ndarray]:
    """The matcher's batch for one prior draw and the true pose (3,) in the patch frame.

    `ground`: from `ground_input`; `aerial`: the pair's aerial image as read (RGB uint8);
    `offset`: (dx, dy, dyaw) prior - truth."""
    u, v = pair.camera_uv
    # Prior position in aerial pixels: x east = +u, y north = -v.
    centre = (u + offset[0] / pair.aerial_mpp, v - offset[1] / pair.aerial_mpp)
    patch, _ = aerial_crop(aerial, pair.aerial_mpp, centre, aerial_px * mpp, aerial_px, border=cv2.BORDER_CONSTANT)
    yaw = math.radians(pair.yaw_deg)
    prior_yaw = wrap_angle(yaw + float(offset[2]))
    batch = {"ground": ground, "aerial": _to_tensor(patch), "aerial_mpp": mpp,
             "prior_yaw": torch.tensor([prior_yaw], dtype=torch.float32)}
    truth = np.array([-offset[0], -offset[1], wrap_angle(yaw)])
    return batch, truth


def evaluate_real(matcher: torch.nn.Module, pairs: list[RealPair], mpp: float, priors: int = PRIORS_PER_PAIR,
                  seed: int = 0, progress: bool = True, yaw_step_deg: float = 0.0,
                  second_look: SecondLookSettings | None = SecondLookSettings()) -> dict:
    """Run `matcher` on every prior draw of every pair (module docstring); summary + per-draw rows.
    A draw is valid as the localizer would publish it: the matcher's validity gate, or the second
    look (`second_look`, the localizer's default settings; None: the gate alone)."""
    from tqdm import tqdm

    from ..model.yaw_search import search_yaw, yaw_hypotheses

    if priors <= 0:
        raise ValueError(f"--priors: expected a positive number, got {priors}")
    ground_hw, aerial_px = tuple(matcher.config.ground_hw), int(matcher.config.aerial_hw[0])
    search = yaw_step_deg > 0 and getattr(matcher, "yaw_search", True)
    rows = []
    for index, pair in enumerate(tqdm(pairs, disable=not progress, desc="real pairs", unit="pair")):
        ground, camera = ground_input(pair, _read_rgb(pair.ground, f"{pair.name}.ground"), ground_hw)
        aerial = _read_rgb(pair.aerial, f"{pair.name}.aerial")
        for draw, offset in enumerate(prior_draws(index, pair.max_prior_offset_m, priors, seed)):
            batch, truth = draw_inputs(pair, ground, aerial, aerial_px, mpp, offset)
            batch["camera"] = camera
            yaws = (yaw_hypotheses(float(batch["prior_yaw"][0]), math.radians(PRIOR_YAW_DEG) / 3,
                                   math.radians(yaw_step_deg)) if search else batch["prior_yaw"].numpy())
            started = time.perf_counter()
            with torch.inference_mode():
                out, picked = (matcher(batch), 0) if len(yaws) == 1 else search_yaw(matcher, batch, yaws)
            elapsed = (time.perf_counter() - started) * 1e3
            pose = out["pose"][0].double().numpy()
            valid, covariance, second = bool(out["valid"][0]), out["covariance"][0], None
            if not valid and second_look is not None:  # what the localizer would do
                second = _second_look(matcher, out, pair, ground, aerial, offset, float(yaws[picked]), camera, mpp,
                                      second_look)
                if second is not None and second.accepted:
                    valid, covariance = True, second.first["covariance"][0]
            rows.append({"pair": pair.name, "draw": draw, "prior_error_m": float(np.hypot(offset[0], offset[1])),
                         "position_error_m": float(position_error_m(pose[:2], truth[:2])),
                         "yaw_error_deg": float(yaw_error_deg(pose[2], truth[2])),
                         "prior_yaw_error_deg": float(abs(math.degrees(offset[2]))),
                         "valid": valid, "ms": elapsed,
                         "effective_inliers": float(out["effective_inliers"][0]) if "effective_inliers" in out else None,
                         "second_look": None if second is None else {
                             "accepted": second.accepted, "disagreement_m": second.disagreement_m,
                             "disagreement_deg": second.disagreement_deg},
                         "nees": _published_nees(matcher, camera, pose, truth, covariance) if valid else None})
    return summarize_real(rows)


def _second_look(matcher: torch.nn.Module, out: dict, pair: RealPair, ground: torch.Tensor, aerial: np.ndarray,
                 offset: np.ndarray, yaw: float, camera: MountedCamera, mpp: float,
                 settings: SecondLookSettings) -> SecondLook | None:
    """The localizer's second look (runtime/second_look.py) at a draw the validity gate refused."""
    gate = validity_gate(matcher, camera, False)
    if gate is None:
        return None

    def match_shifted(shift: np.ndarray) -> dict:
        batch, _ = draw_inputs(pair, ground, aerial, int(matcher.config.aerial_hw[0]), mpp,
                               offset + np.array([shift[0], shift[1], 0.0]))
        batch.update(camera=camera, prior_yaw=torch.tensor([yaw], dtype=torch.float32))
        with torch.inference_mode():
            return matcher(batch)

    return run_second_look(matcher, out, mpp, gate[1], settings, match_shifted)


def _published_nees(matcher: torch.nn.Module, camera: MountedCamera, pose: np.ndarray, truth: np.ndarray,
                    covariance: torch.Tensor) -> float:
    """NEES over (x, y, yaw) of a fix with the covariance the localizer would publish for it
    (the checkpoint's covariance scale for the camera kind and floor, as runtime/localizer.py
    applies them)."""
    from ..runtime.localizer import published_covariance

    meta = getattr(matcher, "runtime_metadata", {}) or {}
    cov = published_covariance(meta, gate_kind(camera, False), covariance.double().numpy())
    error = np.array([pose[0] - truth[0], pose[1] - truth[1], wrap_angle(pose[2] - truth[2])])
    return float(nees(error[None], cov[None])[0])


def summarize_real(rows: list[dict]) -> dict:
    """The eval JSON of per-draw rows: the synthetic eval's keys plus `better_than_prior` and `valid`."""
    pos = np.array([r["position_error_m"] for r in rows])
    yaw = np.array([r["yaw_error_deg"] for r in rows])
    prior = np.array([r["prior_error_m"] for r in rows])
    valid = np.array([r["valid"] for r in rows], bool)
    r = recall(pos, (1, 3, 5)) + recall(yaw, (1, 3, 5))
    valid_err = pos[valid]
    return {
        "position_error_m": summarize(pos), "yaw_error_deg": summarize(yaw),
        "recall": dict(zip(["1m", "3m", "5m", "1deg", "3deg", "5deg"], r)),
        "better_than_prior": float((pos < prior).mean()) if len(rows) else math.nan,
        "prior_error_m": summarize(prior),
        "valid": {"count": int(valid.sum()), "share": float(valid.mean()) if len(rows) else math.nan,
                  "max_error_m": float(valid_err.max()) if valid_err.size else None,
                  "median_error_m": float(np.median(valid_err)) if valid_err.size else None,
                  # 3-DoF NEES of the published covariance over valid fixes (calibrated: median 2.37)
                  "nees_median": (float(np.median([r["nees"] for r in rows if r["valid"] and r.get("nees") is not None]))
                                  if any(r["valid"] and r.get("nees") is not None for r in rows) else None)},
        "ms_per_pair": float(np.median([r["ms"] for r in rows])) if rows else math.nan,
        "count": len(rows), "pairs": len({r["pair"] for r in rows}),
        "per_pair": {name: {"median_error_m": float(np.median([r["position_error_m"] for r in rows if r["pair"] == name])),
                            "valid": int(sum(r["valid"] for r in rows if r["pair"] == name))}
                     for name in dict.fromkeys(r["pair"] for r in rows)},
        "per_sample": rows,
    }
