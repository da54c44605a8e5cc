"""A CVFM-style dataset on disk (format "cvfm_ros-pairs", version 1; see docs/DATASET.md).

    root/index.json                 written last: format, version, settings, splits, checksums
    root/pairs/<id>/ground.png      RGB ground image (panorama or pinhole)
    root/pairs/<id>/aerial.png      RGB north-up aerial patch
    root/pairs/<id>/meta.json       pose, camera, aerial georeference, style, world seed, split
    root/pairs/<id>/corr.npz        ground_uv (K,2) f4, aerial_uv (K,2) f4, visible (K,) bool,
                                    ground_class (K,) u1, bev_height (R,C) f4

Each pair is written into a temporary folder and renamed into place when complete; the index is
written atomically at the end and lists a SHA-256 per file, so an interrupted run leaves nothing
the reader accepts, and a corrupted file is reported by name.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch

from ...config import atomic_write_text
from .pairs import make_pair
from .styles import SEEN_STYLES, UNSEEN_STYLES, get_style
from .world import generate_world

FORMAT, VERSION = "cvfm_ros-pairs", 1
SPLITS = ("train", "val", "test_same", "test_cross")
# Disjoint world-seed ranges per split: same-area tests use seen styles in unseen places.
_SEED_BASE = {"train": 0, "val": 1_000_000, "test_same": 2_000_000, "test_cross": 3_000_000}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_dataset(out_dir: str | Path, count: int, seed: int = 0, styles: list[str] | None = None,
                  camera: str = "pano", ground_size: tuple[int, int] | None = None, aerial_size: int = 256,
                  mpp: float = 0.2, correspondences: int = 4096, pairs_per_world: int = 16,
                  world_size_m: float = 192.0, progress: bool = True, bev_size_m: float = 40.0,
                  bev_cell_m: float = 1.0, prior_yaw_noise_deg: float = 0.0) -> Path:
    """Write `count` pairs split 70/10/10/10 into train/val/test_same (seen styles) and test_cross
    (unseen styles). Returns the index path.

    bev_size_m, bev_cell_m: the grid of the stored true surface heights (training uses them as the
    Surface Model's target when the grid is the matcher's: 64 m of 2 m cells by default).
    prior_yaw_noise_deg: the stored prior yaw is the truth plus a uniform error within this."""
    from tqdm import tqdm

    if count < len(SPLITS):
        raise ValueError(f"--count: expected at least {len(SPLITS)} pairs (one per split), got {count}")
    for flag, value in (("--mpp", mpp), ("--bev-size", bev_size_m), ("--bev-cell", bev_cell_m)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag}: expected a positive number of metres, got {value}")
    if bev_cell_m > bev_size_m:
        raise ValueError(f"--bev-cell: {bev_cell_m} m is larger than --bev-size {bev_size_m} m")
    seen = list(styles) if styles else list(SEEN_STYLES)
    for s in seen:
        get_style(s)
    cross = [s for s in UNSEEN_STYLES if s not in seen] or list(UNSEEN_STYLES)
    out = Path(out_dir)
    try:
        (out / "pairs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out: cannot create {out} ({exc})") from exc
    if (out / "index.json").exists():
        raise ValueError(f"--out: {out} already holds a dataset (index.json); choose another folder")
    sizes = {"test_cross": max(1, count // 10), "test_same": max(1, count // 10), "val": max(1, count // 10)}
    sizes["train"] = count - sum(sizes.values())
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    checksums: dict[str, dict[str, str]] = {}
    bar = tqdm(total=count, disable=not progress, desc="pairs", unit="pair")
    for split in SPLITS:
        split_styles = cross if split == "test_cross" else seen
        world = None
        for k in range(sizes[split]):
            world_index = k // pairs_per_world
            if world is None or k % pairs_per_world == 0:
                world = generate_world(split_styles[world_index % len(split_styles)],
                                       _SEED_BASE[split] + seed * 10_000 + world_index, size_m=world_size_m)
            rng = np.random.default_rng([seed, _SEED_BASE[split], k])
            sample = make_pair(world, rng, camera=camera, ground_size=ground_size, aerial_size=aerial_size, mpp=mpp,
                               bev_size_m=bev_size_m, bev_cell_m=bev_cell_m, prior_yaw_noise_deg=prior_yaw_noise_deg)
            pair_id = f"{split}_{k:06d}"
            tmp = out / "pairs" / f".tmp-{pair_id}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            cv2.imwrite(str(tmp / "ground.png"), cv2.cvtColor(sample.ground, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(tmp / "aerial.png"), cv2.cvtColor(sample.aerial, cv2.COLOR_RGB2BGR))
            hg, wg = sample.ground.shape[:2]
            pick = rng.choice(hg * wg, size=min(correspondences, hg * wg), replace=False)
            v, u = np.divmod(pick, wg)
            buf = io.BytesIO()
            np.savez_compressed(buf, ground_uv=np.stack([u, v], -1).astype(np.float32),
                                aerial_uv=sample.aerial_uv[v, u].astype(np.float32), visible=sample.visible[v, u],
                                ground_class=sample.ground_classes[v, u].astype(np.uint8),
                                bev_height=sample.bev_height.astype(np.float32))
            (tmp / "corr.npz").write_bytes(buf.getvalue())
            cam = sample.camera.camera
            meta = {"id": pair_id, "split": split, "style": sample.style, "world_seed": int(sample.world_seed),
                    "pose": sample.pose.tolist(), "prior_yaw": sample.prior_yaw,
                    "camera": {"model": cam.kind, "width": cam.width, "height": cam.height,
                               **({"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy} if cam.kind == "pinhole" else {}),
                               "base_from_camera": sample.camera.base_from_camera.matrix().tolist()},
                    "aerial": {"center": sample.aerial_center.tolist(), "mpp": sample.mpp, "size": int(sample.aerial.shape[0])},
                    "bev": {"rows": sample.bev.rows, "cols": sample.bev.cols, "cell_m": sample.bev.cell_m}}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            checksums[pair_id] = {f.name: _sha256(f) for f in sorted(tmp.iterdir())}
            final = out / "pairs" / pair_id
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            splits[split].append(pair_id)
            bar.update(1)
    bar.close()
    index = {"format": FORMAT, "version": VERSION, "seed": seed, "camera": camera, "seen_styles": seen,
             "cross_styles": cross, "aerial_mpp": mpp, "splits": splits, "checksums": checksums}
    atomic_write_text(out / "index.json", json.dumps(index, indent=1))
    return out / "index.json"


class CVFMDataset(torch.utils.data.Dataset):
    """Reads one split; every item's files are checked against the index's SHA-256."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        path = self.root / "index.json"
        if not path.is_file():
            raise ValueError(f"{path}: not found (an incomplete or interrupted dataset has no index)")
        try:
            self.index = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if self.index.get("format") != FORMAT or self.index.get("version") != VERSION:
            raise ValueError(f"{path}: expected format {FORMAT} version {VERSION}, got "
                             f"{self.index.get('format')} {self.index.get('version')}")
        if split not in self.index["splits"]:
            raise ValueError(f"split: {split!r} not in {path} (has {sorted(self.index['splits'])})")
        self.ids = self.index["splits"][split]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        pair_id = self.ids[i]
        folder = self.root / "pairs" / pair_id
        for name, digest in self.index["checksums"][pair_id].items():
            f = folder / name
            if not f.is_file():
                raise ValueError(f"{f}: missing")
            if _sha256(f) != digest:
                raise ValueError(f"{f}: checksum mismatch (corrupted or truncated)")
        meta = json.loads((folder / "meta.json").read_text())
        corr = np.load(folder / "corr.npz")
        ground = cv2.cvtColor(cv2.imread(str(folder / "ground.png")), cv2.COLOR_BGR2RGB)
        aerial = cv2.cvtColor(cv2.imread(str(folder / "aerial.png")), cv2.COLOR_BGR2RGB)
        pose = np.asarray(meta["pose"], np.float32)
        center = np.asarray(meta["aerial"]["center"], np.float32)
        return {
            "ground": torch.from_numpy(ground.transpose(2, 0, 1).copy()).float() / 255.0,
            "aerial": torch.from_numpy(aerial.transpose(2, 0, 1).copy()).float() / 255.0,
            "pose": torch.from_numpy(pose),
            "pose_in_patch": torch.tensor([pose[0] - center[0], pose[1] - center[1], pose[2]]),
            "aerial_mpp": torch.tensor(meta["aerial"]["mpp"], dtype=torch.float32),
            "prior_yaw": torch.tensor(meta["prior_yaw"], dtype=torch.float32),
            "ground_uv": torch.from_numpy(corr["ground_uv"]), "aerial_uv": torch.from_numpy(corr["aerial_uv"]),
            "visible": torch.from_numpy(corr["visible"]), "ground_classes": torch.from_numpy(corr["ground_class"]),
            "bev_height": torch.from_numpy(corr["bev_height"]),
            "camera_height": torch.tensor(meta["camera"]["base_from_camera"][2][3], dtype=torch.float32),
        }
