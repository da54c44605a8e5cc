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
import os
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import atomic_write_text

DRIVE_FORMAT_VERSION = 1
DEFAULT_DATUM = (47.6062, -122.3321, 0.0)  # Seattle, where VIGOR's Seattle split lives
START_STAMP_NS = 1_760_000_000 * 10**9  # drives start at a fixed epoch stamp (deterministic bags)


_RENDER_JOB: tuple | None = None  # (world, mounted, seed) of this render worker


def _init_render_worker(world, mounted, seed: int) -> None:
    global _RENDER_JOB
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _RENDER_JOB = (world, mounted, seed)


def _render_one(args: tuple[int, np.ndarray]) -> np.ndarray | list[np.ndarray]:
    from ..geometry import CameraRig
    from .synth import render_ground
    from .synth.render import GroundAppearance

    index, pose = args
    world, mounted, seed = _RENDER_JOB
    if isinstance(mounted, CameraRig):  # one capture: every camera in the same light
        rng = np.random.default_rng([seed, index])
        look = GroundAppearance.random(rng)
        return [render_ground(world, pose, c, look, rng).image for c in mounted.cameras]
    return render_ground(world, pose, mounted, rng=np.random.default_rng([seed, index])).image


def _render_views(world, mounted, poses: list[np.ndarray], seed: int):
    """Ground images along the drive, in order, rendered on all cores. Workers are spawned (fork
    after torch and OpenCV started their thread pools can deadlock) and receive the world once.
    Each frame has its own seeded RNG, so the images do not depend on the number of workers."""
    import multiprocessing as mp

    jobs = list(enumerate(poses))
    workers = min(os.cpu_count() or 1, 8, max(1, len(jobs) // 20))
    if workers <= 1:
        _init_render_worker(world, mounted, seed)
        yield from map(_render_one, jobs)
        return
    with mp.get_context("spawn").Pool(workers, initializer=_init_render_worker, initargs=(world, mounted, seed)) as pool:
        yield from pool.imap(_render_one, jobs, chunksize=4)


def _roads_inside(world, margin_m: float) -> list[np.ndarray]:
    """Road centre lines cut to the part of the world whose imagery exists (minus a margin)."""
    half = world.size_m / 2 - margin_m
    out = []
    for road in world.roads:
        keep = np.abs(road.polyline).max(1) < half
        idx = np.flatnonzero(keep)
        if len(idx) < 2:
            continue
        for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
            if len(run) >= 2:
                out.append(road.polyline[run])
    if not out:
        raise ValueError(f"world of {world.size_m} m has no road inside a {margin_m} m margin")
    return out


@dataclass
class DriveSpec:
    seed: int = 0
    duration_s: float = 60.0
    camera: str = "pano"  # pano | pinhole | rig:NAME,NAME,... (pinholes at RIG_POSITIONS)
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

    def rig_names(self) -> tuple[str, ...]:
        """The rig's camera names ("rig:front,left,rear,right"), () for one camera."""
        return tuple(n.strip() for n in self.camera[4:].split(",")) if self.camera.startswith("rig:") else ()

    def validate(self) -> None:
        from ..geometry import RIG_POSITIONS

        names = self.rig_names()
        if self.camera not in ("pano", "pinhole") and not names:
            raise ValueError(f"--camera: expected pano, pinhole or rig:NAME,NAME,..., got {self.camera!r}")
        if names and (len(set(names)) != len(names) or not set(names) <= set(RIG_POSITIONS)):
            raise ValueError(f"--camera: a rig's cameras are distinct names of {', '.join(sorted(RIG_POSITIONS))}, "
                             f"got {self.camera!r}")
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
    from tqdm import tqdm

    from ..geometry import CameraRig, MountedCamera, PinholeCamera
    from ..maps.geodesy import Datum
    from ..maps.tiles import write_xyz_pyramid
    from ..io import DriveBagWriter
    from .odometry import simulate_wheel_odometry
    from .synth import SEEN_STYLES, generate_world, render_orthophoto
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
    for stale in ("bag", "tiles"):  # leftovers of an interrupted run
        shutil.rmtree(out / stale, ignore_errors=True)

    style = spec.style or SEEN_STYLES[0]
    world = generate_world(style, spec.seed, size_m=spec.world_size_m)
    traj = plan_drive(_roads_inside(world, margin_m=30.0), spec.duration_s, rate_hz=spec.odom_rate_hz, seed=spec.seed)
    odom = simulate_wheel_odometry(traj, seed=spec.seed)
    rng = np.random.default_rng(spec.seed)
    height_m = float(rng.uniform(1.6, 2.0))
    if spec.camera == "pano":
        mounted = MountedCamera.panorama(*spec.pano_size, height_m=height_m)
        camera_frame = "camera"
    else:
        w, h = spec.pinhole_size
        f = 0.5 * w / math.tan(math.radians(45))  # 90 degree horizontal field of view
        pinhole = PinholeCamera(f, f, (w - 1) / 2, (h - 1) / 2, w, h)
        mounted = MountedCamera.forward_pinhole(pinhole, height_m, pitch_down_rad=math.radians(5))
        camera_frame = "camera_optical_frame"
        if spec.rig_names():
            mounted = CameraRig.ring(pinhole, height_m, spec.rig_names(), pitch_down_rad=math.radians(5))
    # One camera: its topics and frame; a rig: camera NAME on /cameras/NAME/... in NAME_optical_frame.
    views = ([(None, None, camera_frame, mounted)] if not isinstance(mounted, CameraRig) else
             [(f"/cameras/{n}/image_raw", f"/cameras/{n}/camera_info", f"{n}_optical_frame", c)
              for n, c in zip(mounted.names, mounted.cameras)])

    datum = Datum(*spec.datum)
    ortho, grid = render_orthophoto(world, spec.ortho_mpp, appearance=None, seed=spec.seed + 1)
    write_xyz_pyramid(ortho, grid, datum, list(spec.zooms), out / "tiles")

    camera_every = max(1, round(spec.odom_rate_hz / spec.rate_hz))
    start_ns = START_STAMP_NS
    steps = list(range(0, len(traj.t), camera_every))
    poses = [np.array([traj.x[k], traj.y[k], traj.yaw[k]]) for k in steps]
    frames = 0
    with DriveBagWriter(out / "bag", storage=spec.storage, compressed_images=spec.compressed) as bag:
        bag.write_tf_static(start_ns, [("base_link", frame, view.base_from_camera) for _, _, frame, view in views])
        bag.write_odometry_track(odom, start_ns)
        bag.write_ground_truth_track(traj, start_ns)
        for k, images in tqdm(zip(steps, _render_views(world, mounted, poses, spec.seed)), total=len(steps),
                              desc="rendering drive", disable=not progress, unit="frame"):
            stamp_ns = start_ns + int(round(traj.t[k] * 1e9))
            for (image_topic, info_topic, frame, view), image in zip(views, images if len(views) > 1 else [images]):
                bag.write_camera_info(stamp_ns, view.camera, frame_id=frame, topic=info_topic)
                bag.write_image(stamp_ns, image, frame_id=frame, topic=image_topic)
            frames += 1
    topics = {"image": bag.image_topic, "camera_info": bag.topics.camera_info, "odom": bag.topics.odom,
              "ground_truth": bag.topics.ground_truth}
    if isinstance(mounted, CameraRig):  # the rig's topics follow /cameras/NAME/...; "image" is a template
        topics.update({"image": "/cameras/{name}/image_raw" + ("/compressed" if spec.compressed else ""),
                       "camera_info": "/cameras/{name}/camera_info", "rig": list(mounted.names)})
    info = {"format_version": DRIVE_FORMAT_VERSION, "spec": asdict(spec), "topics": topics,
            "camera_height_m": height_m, "frames": frames, "world": {"style": style, "seed": spec.seed}}
    atomic_write_text(out / "drive.json", json.dumps(info, indent=2))
    return load_drive(out)
