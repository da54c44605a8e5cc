"""`cvfm-ros synth drive`: a generated drive as a ROS 2 bag plus a Web Mercator tile pyramid.

A drive directory holds:
- `bag/`: a ROS 2 bag (mcap or sqlite3) with camera images (raw or compressed), camera info,
  drifting wheel odometry in `odom`, ground truth `nav_msgs/Odometry` in `map`, `/tf_static`;
- `tiles/`: the world's orthophoto as XYZ tiles `{z}/{x}/{y}.png` around zoom 19, georeferenced at
  the datum, read by the runtime exactly like downloaded imagery;
- `drive.json`: the datum, the spec it was generated from, camera and topic names. It is written
  last (atomically), so a directory without it is an interrupted run and is regenerated.

Convention: `map` is ENU at the datum with the world centred on its origin.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import atomic_write_text

DRIVE_FORMAT_VERSION = 1
DEFAULT_DATUM = (47.6062, -122.3321, 0.0)  # Seattle, where VIGOR's Seattle split lives


@dataclass
class DriveSpec:
    seed: int = 0
    duration_s: float = 60.0
    camera: str = "pano"  # pano | pinhole
    style: str = ""  # empty: the first seen style
    world_size_m: float = 256.0
    rate_hz: float = 10.0
    odom_rate_hz: float = 20.0
    pano_size: tuple[int, int] = (512, 256)
    pinhole_size: tuple[int, int] = (640, 480)
    compressed: bool = False
    storage: str = "mcap"
    datum: tuple[float, float, float] = DEFAULT_DATUM
    zooms: tuple[int, ...] = (17, 18, 19, 20)
    ortho_mpp: float = 0.1

    def validate(self) -> None:
        if self.camera not in ("pano", "pinhole"):
            raise ValueError(f"--camera: expected pano or pinhole, got {self.camera!r}")
        if not 1.0 <= self.duration_s <= 3600.0:
            raise ValueError(f"--duration: expected 1 to 3600 seconds, got {self.duration_s}")
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"--storage: expected mcap or sqlite3, got {self.storage!r}")
        if not 32.0 <= self.world_size_m <= 2048.0:
            raise ValueError(f"--world-size: expected 32 to 2048 metres, got {self.world_size_m}")


@dataclass
class DriveInfo:
    root: Path
    spec: DriveSpec
    bag: Path
    tiles: Path
    topics: dict = field(default_factory=dict)
    camera_height_m: float = 1.8
    frames: int = 0

    @property
    def datum(self) -> tuple[float, float, float]:
        return tuple(self.spec.datum)


def load_drive(root: str | Path) -> DriveInfo:
    root = Path(root)
    meta_path = root / "drive.json"
    if not meta_path.is_file():
        raise ValueError(f"{root}: not a complete drive (drive.json missing)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != DRIVE_FORMAT_VERSION:
        raise ValueError(f"{meta_path}: format_version {meta.get('format_version')} != {DRIVE_FORMAT_VERSION}")
    spec = DriveSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["spec"].items()})
    return DriveInfo(root, spec, root / "bag", root / "tiles", meta["topics"], meta["camera_height_m"], meta["frames"])


def generate_drive(out_dir: str | Path, spec: DriveSpec, progress: bool = True) -> DriveInfo:
    """Generate a drive into `out_dir` (replacing an incomplete one). See the module docstring."""
    import torch
    from tqdm import tqdm

    from ..geometry import SE2, MountedCamera, PinholeCamera
    from ..runtime.geodesy import Datum
    from ..runtime.tiles import write_xyz_pyramid
    from .bags import DriveBagWriter
    from .odometry import simulate_wheel_odometry
    from .synth import SEEN_STYLES, generate_world, render_ground, render_orthophoto
    from .trajectory import plan_drive

    spec.validate()
    out = Path(out_dir)
    if (out / "drive.json").exists():
        raise ValueError(f"--out: {out} already holds a drive; choose another folder or delete it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out: cannot write to {out} ({exc})") from exc
    for stale in ("bag", "tiles"):
        shutil.rmtree(out / stale, ignore_errors=True)

    style = spec.style or SEEN_STYLES[0]
    world = generate_world(style, spec.seed, size_m=spec.world_size_m)
    traj = plan_drive(world.roads, spec.duration_s, rate_hz=spec.odom_rate_hz, seed=spec.seed)
    odom = simulate_wheel_odometry(traj, seed=spec.seed)
    rng = np.random.default_rng(spec.seed)
    height_m = float(rng.uniform(1.6, 2.0))
    if spec.camera == "pano":
        mounted = MountedCamera.panorama(*spec.pano_size, height_m=height_m)
    else:
        w, h = spec.pinhole_size
        f = 0.5 * w / math.tan(math.radians(45))  # 90 degree horizontal field of view
        mounted = MountedCamera.forward_pinhole(PinholeCamera(f, f, (w - 1) / 2, (h - 1) / 2, w, h), height_m,
                                                pitch_down_rad=math.radians(5))

    datum = Datum(*spec.datum)
    ortho, grid = render_orthophoto(world, spec.ortho_mpp, appearance=None, seed=spec.seed + 1)
    write_xyz_pyramid(ortho, grid, datum, list(spec.zooms), out / "tiles")

    topics = {"image": "/camera/image_raw" + ("/compressed" if spec.compressed else ""),
              "camera_info": "/camera/camera_info", "odom": "/odom", "ground_truth": "/ground_truth/odom"}
    camera_every = max(1, round(spec.odom_rate_hz / spec.rate_hz))
    frames = 0
    with DriveBagWriter(out / "bag", storage=spec.storage, compressed_images=spec.compressed) as bag:
        bag.write_tf_static(0, mounted.base_from_camera, child_frame="camera")
        indices = range(len(traj.stamps))
        for k in tqdm(indices, desc="rendering drive", disable=not progress, unit="step"):
            stamp_ns = int(round(traj.stamps[k] * 1e9))
            bag.write_odometry(stamp_ns, odom, k)
            bag.write_ground_truth(stamp_ns, traj, k)
            if k % camera_every == 0:
                pose = SE2(torch.tensor([traj.x[k], traj.y[k], traj.yaw[k]], dtype=torch.float32))
                view = render_ground(world, pose, mounted, rng=rng)
                bag.write_camera_info(stamp_ns, mounted.camera)
                bag.write_image(stamp_ns, view.image)
                frames += 1
    info = {"format_version": DRIVE_FORMAT_VERSION, "spec": asdict(spec), "topics": topics,
            "camera_height_m": height_m, "frames": frames, "world": {"style": style, "seed": spec.seed}}
    atomic_write_text(out / "drive.json", json.dumps(info, indent=2))
    return load_drive(out)
