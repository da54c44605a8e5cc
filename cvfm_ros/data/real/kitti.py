"""KITTI cross-view localization (Shi & Li, CVPR 2022 "HighlyAccurate"; used by CCVPE, HC-Net,
FG2): KITTI raw left colour images paired with satellite images centred on each frame's GPS.

On-disk layout (docs/REAL_DATASETS.md):

    <root>/raw_data/<date>/calib_cam_to_cam.txt    (+ calib_imu_to_velo.txt, calib_velo_to_cam.txt)
    <root>/raw_data/<date>/<drive>/image_02/data/<frame>.png    rectified left colour camera
    <root>/raw_data/<date>/<drive>/oxts/data/<frame>.txt        GPS/IMU: lat lon alt roll pitch yaw ...
    <root>/satmap/<date>/<drive>/<frame>.png                    north-up, centred on the OXTS GPS
    split files: train_files.txt ("<date>/<drive>/<frame>.png" per line),
                 test1_files.txt / test2_files.txt ("<name> <sx> <sy> <sr>", each in [-1, 1])

The satellite images are Web Mercator zoom 18 fetched at scale 2, so their resolution at
latitude phi is 156543.03392 cos(phi) / 2^18 / 2 (about 0.196 m/px at KITTI's 49 deg N). A test
line's normalised noise (sx, sy, sr) gives the protocol's prior (within +-20 m and +-10 deg):
with f and r the vehicle's forward and right unit vectors, prior = truth - 20 m * (sx r + sy f)
and prior yaw = true yaw - sr * 10 deg (docs/REAL_DATASETS.md derives this from the reference
data loaders).

Convention on output (docs/CONVENTIONS.md): base_link is the OXTS GPS/IMU unit projected to
the ground (x forward, y left, z up); the satellite image is an AerialPatch centred on (0, 0) of
a local ENU frame at the GPS position, so the true pose is (0, 0, yaw) with yaw the OXTS heading
(already ENU: 0 = east, counter-clockwise). The camera's extrinsics chain the KITTI calibration
files (IMU -> Velodyne -> camera 0 -> rectified camera 2).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cvfm_ros.geometry import SE2, SE3, AerialPatch, MountedCamera, PinholeCamera, wrap_angle

from .images import read_rgb

KITTI_SATELLITE_ZOOM = 18
KITTI_SATELLITE_SCALE = 2
# Height of the Velodyne above the ground in the KITTI recording platform description; the IMU's
# height follows from the IMU -> Velodyne calibration.
KITTI_VELODYNE_HEIGHT_M = 1.73
# Prior ranges of the published test protocol.
KITTI_SHIFT_RANGE_M = 20.0
KITTI_ROTATION_RANGE_DEG = 10.0
# Nominal rectified camera 2 pose relative to the OXTS unit (forward, left, up) in metres, used
# only when calib_imu_to_velo.txt / calib_velo_to_cam.txt are missing.
_NOMINAL_CAMERA_FROM_IMU = (1.08, -0.26, 0.72)
_NOMINAL_IMU_HEIGHT_M = 0.93


def kitti_satellite_mpp(latitude_deg: float) -> float:
    """Metres per pixel of a KITTI cross-view satellite image at `latitude_deg`."""
    return 156543.03392 * math.cos(math.radians(latitude_deg)) / 2 ** KITTI_SATELLITE_ZOOM / KITTI_SATELLITE_SCALE


def read_calib_file(path: Path) -> dict[str, np.ndarray]:
    """A KITTI `KEY: v1 v2 ...` calibration file -> {key: float array}; non-numeric keys skipped."""
    if not path.is_file():
        raise ValueError(f"KITTI calibration {path}: not found")
    out: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, sep, values = line.partition(":")
        if not sep:
            continue
        try:
            out[key.strip()] = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            continue  # e.g. calib_time
    return out


def _rigid(name: str, calib: dict[str, np.ndarray], path: Path) -> np.ndarray:
    if "R" not in calib or "T" not in calib or calib["R"].size != 9 or calib["T"].size != 3:
        raise ValueError(f"KITTI calibration {path}: expected R (9 values) and T (3 values) for {name}")
    m = np.eye(4)
    m[:3, :3] = calib["R"].reshape(3, 3)
    m[:3, 3] = calib["T"]
    return m


@dataclass(frozen=True)
class KittiCalibration:
    """Rectified camera 2 of one KITTI recording day: intrinsics and pose in base_link."""

    camera: PinholeCamera
    base_from_camera: SE3
    imu_height_m: float
    from_nominal: bool = False


def read_kitti_calibration(date_dir: str | os.PathLike, image_size: tuple[int, int] | None = None) -> KittiCalibration:
    """Read `<raw_data>/<date>/calib_*.txt` -> the rectified left colour camera (image_02).

    Intrinsics are P_rect_02's left 3x3 (the images are rectified: no distortion); the image
    size is `image_size` (width, height) or S_rect_02. Extrinsics chain
    cam2_rect <- rect0 (P_rect_02 baseline) <- R_rect_00 <- cam0 <- velo <- imu, and put
    base_link on the ground under the IMU. Without the IMU/Velodyne calibration files nominal
    KITTI extrinsics are used (with a warning).
    """
    date_dir = Path(date_dir)
    cam_path = date_dir / "calib_cam_to_cam.txt"
    cam = read_calib_file(cam_path)
    if "P_rect_02" not in cam or cam["P_rect_02"].size != 12:
        raise ValueError(f"KITTI calibration {cam_path}: expected P_rect_02 with 12 values")
    p2 = cam["P_rect_02"].reshape(3, 4)
    if image_size is None:
        if "S_rect_02" not in cam or cam["S_rect_02"].size != 2:
            raise ValueError(f"KITTI calibration {cam_path}: expected S_rect_02 (or pass image_size)")
        image_size = (int(round(cam["S_rect_02"][0])), int(round(cam["S_rect_02"][1])))
    camera = PinholeCamera(float(p2[0, 0]), float(p2[1, 1]), float(p2[0, 2]), float(p2[1, 2]),
                           int(image_size[0]), int(image_size[1]))
    imu_path, velo_path = date_dir / "calib_imu_to_velo.txt", date_dir / "calib_velo_to_cam.txt"
    if imu_path.is_file() and velo_path.is_file():
        velo_from_imu = _rigid("IMU -> Velodyne", read_calib_file(imu_path), imu_path)
        cam0_from_velo = _rigid("Velodyne -> camera 0", read_calib_file(velo_path), velo_path)
        if "R_rect_00" not in cam or cam["R_rect_00"].size != 9:
            raise ValueError(f"KITTI calibration {cam_path}: expected R_rect_00 with 9 values")
        rect0_from_cam0 = np.eye(4)
        rect0_from_cam0[:3, :3] = cam["R_rect_00"].reshape(3, 3)
        # P_rect_02 = K [I | t]: camera 2's rectified frame is rectified camera 0's shifted by t.
        cam2_from_rect0 = np.eye(4)
        cam2_from_rect0[:3, 3] = [p2[0, 3] / p2[0, 0], p2[1, 3] / p2[1, 1], p2[2, 3]]
        cam2_from_imu = cam2_from_rect0 @ rect0_from_cam0 @ cam0_from_velo @ velo_from_imu
        imu_from_cam2 = np.linalg.inv(cam2_from_imu)
        imu_height = KITTI_VELODYNE_HEIGHT_M + float(velo_from_imu[2, 3])
        nominal = False
    else:
        warnings.warn(f"KITTI calibration in {date_dir}: calib_imu_to_velo.txt or calib_velo_to_cam.txt missing; "
                      "using nominal camera extrinsics", RuntimeWarning, stacklevel=2)
        from cvfm_ros.geometry import BASE_FROM_OPTICAL

        imu_from_cam2 = np.eye(4)
        imu_from_cam2[:3, :3] = BASE_FROM_OPTICAL.double().numpy()
        imu_from_cam2[:3, 3] = _NOMINAL_CAMERA_FROM_IMU
        imu_height = _NOMINAL_IMU_HEIGHT_M
        nominal = True
    base_from_cam2 = imu_from_cam2.copy()
    base_from_cam2[2, 3] += imu_height
    # Orthonormalise: the calibration rotations carry rounding that SE3 users should not see.
    u, _, vt = np.linalg.svd(base_from_cam2[:3, :3])
    rot = u @ vt
    extr = SE3(torch.from_numpy(rot), torch.from_numpy(base_from_cam2[:3, 3].copy()))
    return KittiCalibration(camera, extr, imu_height, nominal)


def read_oxts(path: Path) -> np.ndarray:
    """An OXTS text file -> its values (lat, lon, alt, roll, pitch, yaw, ...) as float64."""
    if not path.is_file():
        raise ValueError(f"KITTI OXTS file {path}: not found")
    try:
        values = np.array([float(v) for v in path.read_text().split()], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"KITTI OXTS file {path}: expected numbers ({exc})") from exc
    if values.size < 6:
        raise ValueError(f"KITTI OXTS file {path}: expected at least 6 values (lat lon alt roll pitch yaw), got {values.size}")
    return values


def prior_from_noise(truth: SE2, shift_x: float, shift_y: float, rotation: float,
                     shift_range_m: float = KITTI_SHIFT_RANGE_M,
                     rotation_range_deg: float = KITTI_ROTATION_RANGE_DEG) -> SE2:
    """The prior of a KITTI test line: normalised noise (sx, sy, sr) in [-1, 1] -> prior SE2.

    Convention: with f, r the true forward and right unit vectors, the prior position is
    truth - shift_range * (sx * r + sy * f) and the prior yaw is yaw - sr * rotation_range.
    """
    x, y, yaw = (float(v) for v in truth.data.tolist())
    f = np.array([math.cos(yaw), math.sin(yaw)])
    r = np.array([math.sin(yaw), -math.cos(yaw)])
    pos = np.array([x, y]) - shift_range_m * (shift_x * r + shift_y * f)
    prior_yaw = float(wrap_angle(yaw - math.radians(rotation * rotation_range_deg)))
    return SE2(torch.tensor([pos[0], pos[1], prior_yaw], dtype=torch.float64))


@dataclass(frozen=True)
class KittiSample:
    """One KITTI cross-view frame in our conventions.

    image: (H, W, 3) uint8 RGB from image_02; camera: the rectified pinhole and its extrinsics;
    aerial: (A, A, 3) uint8 RGB north-up satellite image; patch: it as an AerialPatch centred on
    (0, 0) with `mpp`; pose: true SE2 (float64, (3,)) of base_link in the patch frame;
    prior: the test protocol's prior SE2 (None for lines without noise); latlon: GPS of the frame.
    """

    name: str
    image: np.ndarray
    camera: MountedCamera
    aerial: np.ndarray
    patch: AerialPatch
    pose: SE2
    prior: SE2 | None
    mpp: float
    latlon: tuple[float, float]


def _fit_camera(cam: PinholeCamera, width: int, height: int) -> PinholeCamera:
    """The calibrated camera for an image of `width` x `height`.

    Sizes within 1 % of the calibration (KITTI days differ by a pixel or two) keep the
    intrinsics; a resized copy of the images scales them, keeping OpenCV pixel centres."""
    sx, sy = width / cam.width, height / cam.height
    if abs(sx - 1) <= 0.01 and abs(sy - 1) <= 0.01:
        return PinholeCamera(cam.fx, cam.fy, cam.cx, cam.cy, width, height)
    return cam.resized(width, height)


def _split_name(name: str) -> tuple[str, str, str]:
    parts = Path(name).parts
    if len(parts) != 3 or not parts[2].endswith(".png"):
        raise ValueError(f"KITTI frame name {name!r}: expected '<date>/<drive>/<frame>.png'")
    return parts[0], parts[1], parts[2]


def load_kitti_frame(root: str | os.PathLike, name: str, noise: Sequence[float] | None = None,
                     calibration: KittiCalibration | None = None) -> KittiSample:
    """Load frame `name` ("<date>/<drive>/<frame>.png") from the KITTI cross-view `root`.

    noise: the test line's (sx, sy, sr), giving `prior`. calibration: reuse one read earlier for
    the same date (it is read from raw_data/<date>/ otherwise).
    """
    root = Path(root)
    date, drive, frame = _split_name(name)
    raw = root / "raw_data" / date
    image = read_rgb(raw / drive / "image_02" / "data" / frame, "KITTI image")
    h, w = image.shape[:2]
    if calibration is None:
        try:
            calibration = read_kitti_calibration(raw)
        except ValueError as exc:
            if "S_rect_02" not in str(exc):
                raise
            # No rectified size recorded: the calibration describes images of this size.
            calibration = read_kitti_calibration(raw, (w, h))
    calib = calibration
    calib = KittiCalibration(_fit_camera(calib.camera, w, h), calib.base_from_camera, calib.imu_height_m,
                             calib.from_nominal)
    oxts = read_oxts(raw / drive / "oxts" / "data" / frame.replace(".png", ".txt"))
    lat, lon, yaw = float(oxts[0]), float(oxts[1]), float(oxts[5])
    aerial = read_rgb(root / "satmap" / date / drive / frame, "KITTI satellite image")
    if aerial.shape[0] != aerial.shape[1]:
        raise ValueError(f"KITTI satellite image {root / 'satmap' / name}: expected a square image, "
                         f"got {aerial.shape[1]}x{aerial.shape[0]}")
    mpp = kitti_satellite_mpp(lat)
    patch = AerialPatch(torch.from_numpy(aerial).permute(2, 0, 1).contiguous(), 0.0, 0.0, mpp)
    pose = SE2(torch.tensor([0.0, 0.0, float(wrap_angle(yaw))], dtype=torch.float64))
    prior = None
    if noise is not None:
        if len(noise) != 3 or not all(math.isfinite(float(v)) for v in noise):
            raise ValueError(f"noise: expected three finite numbers (sx, sy, sr), got {noise!r}")
        prior = prior_from_noise(pose, *(float(v) for v in noise))
    return KittiSample(name, image, MountedCamera(calib.camera, calib.base_from_camera), aerial, patch, pose,
                       prior, mpp, (lat, lon))


class KittiDataset:
    """A KITTI cross-view split: `len(ds)` frames, `ds[i]` a `KittiSample`.

    root: the dataset folder (raw_data/, satmap/). split: a split file path, or "train",
    "test1", "test2" looked up as <root>/<split>_files.txt, <root>/KITTI_splits/... or
    <root>/splits/.... Test lines carry prior noise; train lines do not.
    """

    def __init__(self, root: str | os.PathLike, split: str | os.PathLike = "test1") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"KITTI root {self.root}: not a directory")
        self.split_file = self._find_split(split)
        self.names: list[str] = []
        self.noise: list[tuple[float, float, float] | None] = []
        for n, line in enumerate(self.split_file.read_text().splitlines(), start=1):
            cols = line.split()
            if not cols:
                continue
            where = f"{self.split_file}:{n}"
            _split_name(cols[0])
            if len(cols) == 1:
                self.noise.append(None)
            elif len(cols) == 4:
                try:
                    self.noise.append((float(cols[1]), float(cols[2]), float(cols[3])))
                except ValueError as exc:
                    raise ValueError(f"{where}: prior noise must be numbers ({exc})") from exc
            else:
                raise ValueError(f"{where}: expected '<name>' or '<name> sx sy sr', got {len(cols)} columns")
            self.names.append(cols[0])
        self._calib: dict[str, KittiCalibration] = {}

    def _find_split(self, split: str | os.PathLike) -> Path:
        path = Path(split)
        if path.is_file():
            return path
        stem = str(split)
        candidates = [self.root / f"{stem}_files.txt", self.root / "KITTI_splits" / f"{stem}_files.txt",
                      self.root / "splits" / f"{stem}_files.txt"]
        for c in candidates:
            if c.is_file():
                return c
        raise ValueError(f"KITTI split {split!r}: none of {[str(c) for c in [path, *candidates]]} exists")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> KittiSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} KITTI frames")
        name = self.names[index]
        date = _split_name(name)[0]
        if date not in self._calib:
            # One calibration per recording day; load_kitti_frame fits its size to each image.
            self._calib[date] = read_kitti_calibration(self.root / "raw_data" / date)
        calib = self._calib[date]
        return load_kitti_frame(self.root, name, self.noise[index], calib)


__all__ = [
    "KITTI_ROTATION_RANGE_DEG", "KITTI_SHIFT_RANGE_M", "KittiCalibration", "KittiDataset", "KittiSample",
    "kitti_satellite_mpp", "load_kitti_frame", "prior_from_noise", "read_calib_file", "read_kitti_calibration",
    "read_oxts",
]
