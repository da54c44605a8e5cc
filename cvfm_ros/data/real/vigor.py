"""VIGOR (Zhu et al., CVPR 2021) as used for fine-grained cross-view localization (SliceMatch,
CCVPE, HC-Net, FG2): street-level panoramas paired with 640x640 north-up aerial images.

On-disk layout (docs/REAL_DATASETS.md):

    <root>/<City>/panorama/<pano_id>,<lat>,<lon>,.jpg      2048x1024 equirectangular
    <root>/<City>/satellite/satellite_<lat>_<lon>.png      640x640, north up
    <root>/splits/<City>/{same_area_balanced_train,same_area_balanced_test,pano_label_balanced}.txt
    <root>/splits__corrected/<City>/<same names with a "__corrected" suffix>.txt

A label line is `pano aerial1 d_row1 d_col1 aerial2 d_row2 d_col2 ... aerial4 d_row4 d_col4`
(the positive aerial first, then three semi-positives). (d_row, d_col) is the offset of the
aerial image's centre from the panorama in aerial pixels: d_row > 0 means the aerial centre is
north of the panorama, d_col > 0 east of it; so the panorama sits at pixel
(u, v) = (W/2 - d_col, H/2 + d_row) in corner coordinates. Offsets are in 640-pixel units.
The original `splits` labels were computed with one resolution (0.114 m/px) for every city;
the corrected labels (SliceMatch) use the per-city resolutions in `VIGOR_MPP` and are what this
loader expects by default.

Panoramas are north-aligned: the centre column looks north, azimuth growing to the right
(clockwise from above), as in our panorama convention. A heading h (degrees clockwise from
north, VIGOR/compass convention) is simulated by rolling the panorama so that its centre column
looks along h; the yaw of base_link is then `vigor_heading_to_yaw(h)`.

Convention on output (docs/CONVENTIONS.md): the aerial image is an `AerialPatch` centred on
(0, 0) of a local ENU frame at the aerial image's centre; the pose is base_link's (x, y, yaw) in
that frame (x east, y north, yaw CCW from east); base_link is the panorama centre projected to
the ground.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from cvfm_ros.geometry import SE2, AerialPatch, MountedCamera, vigor_heading_to_yaw

from .images import read_rgb

VIGOR_CITIES = ("NewYork", "Seattle", "SanFrancisco", "Chicago")
# Metres per pixel of the 640x640 aerial images (zoom-20 Web Mercator at each city's latitude),
# as measured by SliceMatch and used with the corrected labels by CCVPE and FG2.
VIGOR_MPP = {"NewYork": 0.113248, "Seattle": 0.100817, "SanFrancisco": 0.118141, "Chicago": 0.111262}
# The single resolution the original `splits` labels were computed with.
VIGOR_ORIGINAL_LABEL_MPP = 0.114
VIGOR_AERIAL_SIZE = 640
# VIGOR ships no camera calibration; Street View cameras ride on a roof mast about this high.
DEFAULT_PANORAMA_HEIGHT_M = 2.5

Split = Literal["same_area", "cross_area"]
Subset = Literal["train", "test"]
Labels = Literal["corrected", "original"]


@dataclass(frozen=True)
class VigorLabel:
    """One line of a VIGOR label file: a panorama and its four aerial images with offsets."""

    city: str
    panorama: str
    aerials: tuple[str, ...]
    offsets_px: tuple[tuple[float, float], ...]  # (d_row, d_col) per aerial, 640-px units


def parse_label_line(line: str, city: str, where: str = "label") -> VigorLabel:
    """Parse `pano aerial d_row d_col` x4 (13 whitespace-separated columns)."""
    cols = line.split()
    if len(cols) != 13:
        raise ValueError(f"{where}: expected 13 columns (panorama, then 4 x (aerial, d_row, d_col)), got {len(cols)}")
    try:
        offsets = tuple((float(cols[2 + 3 * i]), float(cols[3 + 3 * i])) for i in range(4))
    except ValueError as exc:
        raise ValueError(f"{where}: offsets must be numbers ({exc})") from exc
    if not all(math.isfinite(v) for pair in offsets for v in pair):
        raise ValueError(f"{where}: offsets must be finite")
    return VigorLabel(city, cols[0], tuple(cols[1 + 3 * i] for i in range(4)), offsets)


def parse_panorama_name(name: str) -> tuple[float, float]:
    """`<id>,<lat>,<lon>,.jpg` -> (lat, lon) in degrees."""
    parts = Path(name).name.split(",")
    try:
        return float(parts[-3]), float(parts[-2])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"panorama name {name!r}: expected '<id>,<lat>,<lon>,.jpg'") from exc


def parse_aerial_name(name: str) -> tuple[float, float]:
    """`satellite_<lat>_<lon>.png` -> (lat, lon) in degrees."""
    stem = Path(name).stem
    parts = stem.split("_")
    try:
        return float(parts[-2]), float(parts[-1])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"aerial name {name!r}: expected 'satellite_<lat>_<lon>.png'") from exc


def offset_to_metres(d_row: float, d_col: float, mpp: float) -> tuple[float, float]:
    """A VIGOR label offset -> the panorama's (x east, y north) in metres from the aerial centre."""
    return -d_col * mpp, -d_row * mpp


def label_files(root: str | os.PathLike, split: Split = "same_area", subset: Subset = "test",
                labels: Labels = "corrected", cities: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """(city, label file) pairs for a VIGOR split, as the published protocols define them.

    same_area: all four cities, `same_area_balanced_{train,test}.txt`. cross_area: train on
    NewYork + Seattle, test on SanFrancisco + Chicago, every panorama (`pano_label_balanced.txt`).
    labels="corrected" reads `splits__corrected/` (file names with or without the `__corrected`
    suffix); "original" reads `splits/`. Raises ValueError naming a missing file.
    """
    root = Path(root)
    if split not in ("same_area", "cross_area"):
        raise ValueError(f"split: expected 'same_area' or 'cross_area', got {split!r}")
    if subset not in ("train", "test"):
        raise ValueError(f"subset: expected 'train' or 'test', got {subset!r}")
    if labels not in ("corrected", "original"):
        raise ValueError(f"labels: expected 'corrected' or 'original', got {labels!r}")
    if split == "same_area":
        default_cities, stem = VIGOR_CITIES, f"same_area_balanced_{subset}"
    else:
        default_cities = ("NewYork", "Seattle") if subset == "train" else ("SanFrancisco", "Chicago")
        stem = "pano_label_balanced"
    chosen = tuple(cities) if cities is not None else default_cities
    unknown = [c for c in chosen if c not in VIGOR_CITIES]
    if unknown:
        raise ValueError(f"cities: unknown {unknown}; VIGOR has {list(VIGOR_CITIES)}")
    out = []
    for city in chosen:
        if labels == "corrected":
            folder = root / "splits__corrected" / city
            candidates = [folder / f"{stem}__corrected.txt", folder / f"{stem}.txt"]
        else:
            candidates = [root / "splits" / city / f"{stem}.txt"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ValueError(f"VIGOR label file: none of {[str(c) for c in candidates]} exists")
        out.append((city, found))
    return out


@dataclass(frozen=True)
class VigorSample:
    """A VIGOR pair in our conventions.

    panorama: (H, W, 3) uint8 RGB, centre column looking along `heading_deg`;
    aerial: (A, A, 3) uint8 RGB, north up; patch: the aerial as an AerialPatch centred on (0, 0)
    with `mpp` metres per pixel; pose: SE2 (float64, shape (3,)) of base_link in the patch frame;
    pixel: (u, v) OpenCV pixel of base_link in the aerial image; camera: the mounted panorama.
    """

    panorama: np.ndarray
    aerial: np.ndarray
    patch: AerialPatch
    pose: SE2
    pixel: tuple[float, float]
    camera: MountedCamera
    heading_deg: float
    mpp: float
    city: str
    panorama_path: Path
    aerial_path: Path


def load_vigor_pair(
    panorama_path: str | os.PathLike,
    aerial_path: str | os.PathLike,
    offset_px: tuple[float, float],
    city: str | None = None,
    *,
    mpp: float | None = None,
    heading_deg: float = 0.0,
    camera_height_m: float = DEFAULT_PANORAMA_HEIGHT_M,
    label_mpp: float | None = None,
) -> VigorSample:
    """Load one VIGOR panorama / aerial pair and convert its label.

    offset_px: (d_row, d_col) from the label line, in 640-px units. The aerial resolution is
    `mpp` or `VIGOR_MPP[city]` (for the 640-px image; a resized aerial scales it). `label_mpp`
    is the resolution the offsets were computed with: None means the same as the image (the
    corrected labels); pass VIGOR_ORIGINAL_LABEL_MPP for the original labels, whose offsets are
    then rescaled to the true resolution. heading_deg: compass heading (0 = north, clockwise)
    that the returned panorama's centre column should face (the file faces north).
    Raises ValueError naming the file for missing/unreadable images or a panorama that is not
    2:1, or an aerial that is not square.
    """
    panorama_path, aerial_path = Path(panorama_path), Path(aerial_path)
    if mpp is None:
        if city not in VIGOR_MPP:
            raise ValueError(f"city: expected one of {list(VIGOR_MPP)} (or pass mpp), got {city!r}")
        mpp = VIGOR_MPP[city]
    if not (math.isfinite(mpp) and mpp > 0):
        raise ValueError(f"mpp: expected a positive resolution, got {mpp}")
    if not math.isfinite(heading_deg):
        raise ValueError(f"heading_deg: expected a finite angle, got {heading_deg}")
    pano = read_rgb(panorama_path, "VIGOR panorama")
    h, w = pano.shape[:2]
    if w != 2 * h:
        raise ValueError(f"VIGOR panorama {panorama_path}: expected an equirectangular 2:1 image, got {w}x{h}")
    aerial = read_rgb(aerial_path, "VIGOR aerial image")
    size = aerial.shape[0]
    if aerial.shape[1] != size:
        raise ValueError(f"VIGOR aerial image {aerial_path}: expected a square image, got {aerial.shape[1]}x{size}")
    scale = VIGOR_AERIAL_SIZE / size  # labels are in 640-px units whatever the stored size
    mpp_img = mpp * scale
    d_row, d_col = (float(v) for v in offset_px)
    if label_mpp is not None:
        d_row, d_col = d_row * label_mpp / mpp, d_col * label_mpp / mpp
    x, y = offset_to_metres(d_row, d_col, mpp)
    # Roll so the centre column faces the heading: new column u shows old column u + shift.
    shift = int(round(heading_deg / 360.0 * w)) % w
    if shift:
        pano = np.ascontiguousarray(np.roll(pano, -shift, axis=1))
    heading = shift * 360.0 / w
    yaw = float(vigor_heading_to_yaw(heading))
    patch = AerialPatch(torch.from_numpy(aerial).permute(2, 0, 1).contiguous(), 0.0, 0.0, mpp_img)
    pose = SE2(torch.tensor([x, y, yaw], dtype=torch.float64))
    u, v = patch.map_to_pixel(torch.tensor([x, y], dtype=torch.float64)).tolist()
    camera = MountedCamera.panorama(w, h, camera_height_m)
    return VigorSample(pano, aerial, patch, pose, (u, v), camera, heading, mpp_img, city or "", panorama_path, aerial_path)


class VigorDataset:
    """A VIGOR split: `len(ds)` label lines, `ds[i]` a `VigorSample` (positive aerial).

    root: the VIGOR folder (see module docstring). split: "same_area" or "cross_area"; subset:
    "train" or "test"; labels: "corrected" (default) or "original"; cities: restrict to these.
    headings: optional per-panorama compass headings in degrees (file name -> heading), e.g.
    a published fixed set of test orientations; default 0 (north-aligned, as stored).
    """

    def __init__(self, root: str | os.PathLike, split: Split = "same_area", subset: Subset = "test",
                 labels: Labels = "corrected", cities: Sequence[str] | None = None,
                 headings: dict[str, float] | None = None,
                 camera_height_m: float = DEFAULT_PANORAMA_HEIGHT_M) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"VIGOR root {self.root}: not a directory")
        self.labels_kind = labels
        self.headings = dict(headings or {})
        self.camera_height_m = float(camera_height_m)
        self.labels: list[VigorLabel] = []
        for city, path in label_files(self.root, split, subset, labels, cities):
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    self.labels.append(parse_label_line(line, city, f"{path}:{n}"))

    def __len__(self) -> int:
        return len(self.labels)

    def paths(self, index: int, aerial_index: int = 0) -> tuple[Path, Path]:
        label = self.labels[index]
        city = self.root / label.city
        return city / "panorama" / label.panorama, city / "satellite" / label.aerials[aerial_index]

    def __getitem__(self, index: int) -> VigorSample:
        return self.sample(index)

    def sample(self, index: int, aerial_index: int = 0, heading_deg: float | None = None) -> VigorSample:
        """Load line `index` with aerial `aerial_index` (0 = positive, 1..3 = semi-positives)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} VIGOR samples")
        if not 0 <= aerial_index < 4:
            raise ValueError(f"aerial_index: expected 0..3, got {aerial_index}")
        label = self.labels[index]
        pano_path, aerial_path = self.paths(index, aerial_index)
        heading = self.headings.get(label.panorama, 0.0) if heading_deg is None else heading_deg
        return load_vigor_pair(
            pano_path, aerial_path, label.offsets_px[aerial_index], label.city, heading_deg=heading,
            camera_height_m=self.camera_height_m,
            label_mpp=VIGOR_ORIGINAL_LABEL_MPP if self.labels_kind == "original" else None,
        )


__all__ = [
    "DEFAULT_PANORAMA_HEIGHT_M", "VIGOR_AERIAL_SIZE", "VIGOR_CITIES", "VIGOR_MPP", "VIGOR_ORIGINAL_LABEL_MPP",
    "VigorDataset", "VigorLabel", "VigorSample", "label_files", "load_vigor_pair", "offset_to_metres",
    "parse_aerial_name", "parse_label_line", "parse_panorama_name",
]
