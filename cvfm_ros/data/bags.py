"""ROS 2 bags without ROS: write a drive (images, camera info, odometry, ground truth, static TF,
match reports) and read it back, through the `rosbags` library.

Writing: `DriveBagWriter` is a context manager producing a rosbag2 directory (MCAP or SQLite3
storage) that `ros2 bag play` and `ros2 bag info` accept. The bag is assembled in a temporary
sibling directory and renamed into place on a clean exit, so a crash never leaves a half-written
bag under the requested name.

Reading: `read_bag` yields `(topic, header_stamp_ns, message)` in header-stamp order (ties broken
by the order of `topics`, then by storage order), decoded with the message definitions embedded
in the bag. Readers must trust header stamps, not record times: a recorder writes a message when
it arrives, which can be well after the sensor time in its header.

Convention (docs/CONVENTIONS.md): poses are planar (x, y, yaw) with yaw counter-clockwise
from the frame's +x; 3x3 covariances are over (x, y, yaw) and become the row-major 6x6 ROS
covariance over (x, y, z, roll, pitch, yaw) with `UNESTIMATED_VARIANCE` on z, roll and pitch.
Images are (H, W, 3) uint8 RGB in memory, `rgb8` on the wire.
"""
from __future__ import annotations

import abc

import math
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import cv2
import numpy as np
import torch

from cvfm_ros.geometry import SE2, SE3, PanoramaCamera, PinholeCamera, matrix_to_quaternion, quaternion_to_matrix
from cvfm_ros.runtime.frames import UNESTIMATED_VARIANCE, covariance_from_ros, covariance_to_ros

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

# The ROS package that owns our message definitions (an ament_cmake interface package; see
# docs/MESSAGES.md). Type names in bags are "<package>/msg/<Name>".
MSG_PACKAGE = "cvfm_ros_msgs"
MATCH_REPORT_TYPE = f"{MSG_PACKAGE}/msg/MatchReport"

Storage = Literal["mcap", "sqlite3"]


def _msg_dirs() -> list[Path]:
    """Where `msg/*.msg` can live: the source tree, then ROS / pip install prefixes."""
    dirs = [Path(__file__).resolve().parents[2] / "msg"]
    env = os.environ.get("CVFM_ROS_MSG_DIR")
    if env:
        dirs.insert(0, Path(env))
    for prefix in [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]:
        if prefix:
            dirs.append(Path(prefix) / "share" / "cvfm_ros" / "msg")
    return dirs


def make_typestore() -> "Typestore":
    """The ROS 2 Jazzy type store plus this project's messages from `msg/*.msg`.

    Our types are registered as `cvfm_ros_msgs/msg/<file stem>`. Raises ValueError when no
    `msg/` folder with MatchReport.msg is found (set CVFM_ROS_MSG_DIR to point at one).
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for folder in _msg_dirs():
        if (folder / "MatchReport.msg").is_file():
            types: dict[str, Any] = {}
            for path in sorted(folder.glob("*.msg")):
                types.update(get_types_from_msg(path.read_text(), f"{MSG_PACKAGE}/msg/{path.stem}"))
            store.register(types)
            return store
    raise ValueError(f"msg definitions: MatchReport.msg not found in any of {[str(d) for d in _msg_dirs()]}")


# --------------------------------------------------------------------------------------------
# Small conversions shared by the writer and the readers.


def _check_stamp(name: str, stamp_ns: Any) -> int:
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer time in nanoseconds, got {stamp_ns!r}")
    if stamp_ns < 0:
        raise ValueError(f"{name}: expected a non-negative time in nanoseconds, got {stamp_ns}")
    return int(stamp_ns)


def _xy_yaw(name: str, pose: SE2 | Sequence[float] | np.ndarray | torch.Tensor) -> tuple[float, float, float]:
    data = pose.data if isinstance(pose, SE2) else pose
    arr = np.asarray(data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else data, dtype=float)
    if arr.shape != (3,):
        raise ValueError(f"{name}: expected one planar pose (x, y, yaw), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got {arr.tolist()}")
    return float(arr[0]), float(arr[1]), float(arr[2])


def _matrix(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value, dtype=float)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values")
    return arr


def planar_to_ros_covariance(covariance: np.ndarray | torch.Tensor | None) -> np.ndarray:
    """3x3 covariance over (x, y, yaw) -> (36,) row-major 6x6 ROS covariance
    (`cvfm_ros.runtime.frames.covariance_to_ros` as an array; None: nothing estimated)."""
    cov = None if covariance is None else _matrix("covariance", covariance, (3, 3))
    return np.asarray(covariance_to_ros(cov))


def ros_to_planar_covariance(covariance: Sequence[float] | np.ndarray) -> np.ndarray:
    """(36,) row-major 6x6 ROS covariance -> (3, 3) over (x, y, yaw) (or (vx, vy, wz))."""
    return covariance_from_ros(covariance)


def _yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    return 0.0, 0.0, math.sin(0.5 * yaw), math.cos(0.5 * yaw)


# --------------------------------------------------------------------------------------------
# Match reports (our own message), as a plain dataclass for code that does not touch rosbags.


@dataclass(frozen=True)
class MatchReport:
    """The content of `cvfm_ros_msgs/msg/MatchReport` (msg/MatchReport.msg), without the header.

    Convention: (x, y, yaw) is the pose of base_link in `frame_id` (map), yaw counter-clockwise
    from east; `covariance` is the (3, 3) covariance over (x, y, yaw); times are milliseconds.
    """

    status_code: int
    status: str
    reason: str = ""
    num_matches: int = 0
    score: float = 0.0
    time_tiles_ms: float = 0.0
    time_preprocess_ms: float = 0.0
    time_model_ms: float = 0.0
    time_solve_ms: float = 0.0
    time_total_ms: float = 0.0
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    covariance: tuple[float, ...] = field(default=(0.0,) * 9)
    frame_id: str = "map"

    STATUS_CODES = {"ok": 0, "rejected": 1, "no_imagery": 2, "no_prior": 3, "skipped": 4, "error": 5, "bad_input": 6}

    def __post_init__(self) -> None:
        if not 0 <= int(self.status_code) <= 255:
            raise ValueError(f"MatchReport.status_code: expected a uint8, got {self.status_code}")
        if not 0 <= int(self.num_matches) < 2**32:
            raise ValueError(f"MatchReport.num_matches: expected a uint32, got {self.num_matches}")
        cov = np.asarray(self.covariance, dtype=float).reshape(-1)
        if cov.size != 9:
            raise ValueError(f"MatchReport.covariance: expected 9 values (row-major 3x3), got {cov.size}")
        object.__setattr__(self, "covariance", tuple(float(v) for v in cov))

    def to_msg(self, typestore, stamp_ns: int):
        """The rosbags message object, header stamped `stamp_ns`."""
        t = typestore.types
        return t[MATCH_REPORT_TYPE](
            header=_header(typestore, stamp_ns, self.frame_id),
            status_code=int(self.status_code), status=str(self.status), reason=str(self.reason),
            num_matches=int(self.num_matches), score=float(self.score),
            time_tiles_ms=float(self.time_tiles_ms), time_preprocess_ms=float(self.time_preprocess_ms),
            time_model_ms=float(self.time_model_ms), time_solve_ms=float(self.time_solve_ms),
            time_total_ms=float(self.time_total_ms), x=float(self.x), y=float(self.y), yaw=float(self.yaw),
            covariance=np.asarray(self.covariance, dtype=np.float64),
        )

    @classmethod
    def from_msg(cls, msg) -> "MatchReport":
        """Build from a decoded MatchReport message (any object with its fields)."""
        return cls(
            status_code=int(msg.status_code), status=str(msg.status), reason=str(msg.reason),
            num_matches=int(msg.num_matches), score=float(msg.score), time_tiles_ms=float(msg.time_tiles_ms),
            time_preprocess_ms=float(msg.time_preprocess_ms), time_model_ms=float(msg.time_model_ms),
            time_solve_ms=float(msg.time_solve_ms), time_total_ms=float(msg.time_total_ms),
            x=float(msg.x), y=float(msg.y), yaw=float(msg.yaw),
            covariance=tuple(float(v) for v in np.asarray(msg.covariance).reshape(-1)),
            frame_id=str(msg.header.frame_id),
        )


def _header(typestore, stamp_ns: int, frame_id: str):
    t = typestore.types
    sec, nanosec = divmod(int(stamp_ns), 10**9)
    return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)


def stamp_to_ns(stamp) -> int:
    """A `builtin_interfaces/Time` (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


# --------------------------------------------------------------------------------------------
# Writer


@dataclass(frozen=True)
class BagTopics:
    """Topic names of a drive bag. `image` gets "/compressed" appended for compressed images,
    as image_transport names it."""

    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    odom: str = "/odom"
    ground_truth: str = "/ground_truth/odom"
    tf_static: str = "/tf_static"
    match_report: str = "/cvfm/match_report"


class DriveBagWriter:
    """Write a drive as a rosbag2 directory at `path` (which must not exist yet).

    Use as a context manager. `storage` is "mcap" (ROS 2 Jazzy's default) or "sqlite3".
    `compressed_images` False writes `sensor_msgs/Image` (rgb8); True or "jpeg" writes
    `sensor_msgs/CompressedImage` JPEG (quality `jpeg_quality`); "png" writes lossless PNG.
    Every `write_*` method takes the stamp in integer nanoseconds; it becomes both the header
    stamp and the record time.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        storage: Storage = "mcap",
        compressed_images: bool | Literal["jpeg", "png"] = False,
        *,
        topics: BagTopics = BagTopics(),
        jpeg_quality: int = 90,
    ) -> None:
        if storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage: expected 'mcap' or 'sqlite3', got {storage!r}")
        if compressed_images not in (False, True, "jpeg", "png"):
            raise ValueError(f"compressed_images: expected False, True, 'jpeg' or 'png', got {compressed_images!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality: expected 1..100, got {jpeg_quality}")
        self.path = Path(path)
        if self.path.exists():
            raise ValueError(f"bag {self.path}: already exists; choose a new path (bags are never overwritten)")
        self.storage = storage
        self.compression: str | None = None if compressed_images is False else ("jpeg" if compressed_images is True else compressed_images)
        self.topics = topics
        self.jpeg_quality = int(jpeg_quality)
        self.typestore = make_typestore()
        self._writer = None
        self._tmpdir: Path | None = None
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    @property
    def image_topic(self) -> str:
        return self.topics.image + "/compressed" if self.compression else self.topics.image

    # -- context management: write into a temporary sibling, rename on success ---------------
    def __enter__(self) -> "DriveBagWriter":
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        # The storage file is named after its directory, so the temporary bag keeps the final name.
        self._writer = Writer(self._tmpdir / self.path.name, version=9, storage_plugin=plugin)
        self._writer.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        writer, self._writer = self._writer, None
        tmpdir, self._tmpdir = self._tmpdir, None
        try:
            if exc_type is None and writer is not None:
                writer.close()
                if self.path.exists():
                    raise ValueError(f"bag {self.path}: appeared while writing; not overwriting it")
                os.replace(tmpdir / self.path.name, self.path)
            elif writer is not None:
                try:
                    writer.abort()
                except Exception:  # noqa: BLE001 - the original exception matters more
                    pass
        finally:
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)
        return False

    # -- generic -----------------------------------------------------------------------------
    def _connection(self, topic: str, msgtype: str, latched: bool = False):
        if self._writer is None:
            raise ValueError("DriveBagWriter: use it as a context manager (`with DriveBagWriter(...) as bag:`)")
        conn = self._connections.get(topic)
        if conn is None:
            qos = [_latched_qos()] if latched else []
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore, offered_qos_profiles=qos)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"topic {topic}: already carries {conn.msgtype}, cannot also write {msgtype}")
        return conn

    def write_message(self, topic: str, msgtype: str, stamp_ns: int, message, *, latched: bool = False) -> None:
        """Write any message object of `msgtype` (from `self.typestore.types`) recorded at `stamp_ns`."""
        stamp_ns = _check_stamp("stamp_ns", stamp_ns)
        conn = self._connection(topic, msgtype, latched)
        self._writer.write(conn, stamp_ns, self.typestore.serialize_cdr(message, msgtype))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    # -- sensors ---------------------------------------------------------------------------
    def write_image(self, stamp_ns: int, image: np.ndarray, frame_id: str = "camera_optical_frame") -> None:
        """Write an image (H, W, 3) uint8 RGB, or (H, W) uint8 grey (mono8).

        Raw images go out as `rgb8`/`mono8`; compressed ones are encoded by OpenCV and labelled
        the way image_transport's compressed plugin does ("rgb8; jpeg compressed bgr8").
        """
        img = _check_image("image", image)
        t = self.typestore.types
        header = _header(self.typestore, _check_stamp("stamp_ns", stamp_ns), frame_id)
        mono = img.ndim == 2
        if self.compression:
            ext = ".jpg" if self.compression == "jpeg" else ".png"
            params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
            ok, buf = cv2.imencode(ext, img if mono else cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
            if not ok:
                raise ValueError(f"image: OpenCV could not encode it as {self.compression}")
            fmt = f"mono8; {self.compression} compressed mono8" if mono else f"rgb8; {self.compression} compressed bgr8"
            msg = t["sensor_msgs/msg/CompressedImage"](header=header, format=fmt, data=buf.reshape(-1).astype(np.uint8))
            self.write_message(self.image_topic, "sensor_msgs/msg/CompressedImage", stamp_ns, msg)
        else:
            h, w = img.shape[:2]
            channels = 1 if mono else 3
            msg = t["sensor_msgs/msg/Image"](
                header=header, height=h, width=w, encoding="mono8" if mono else "rgb8",
                is_bigendian=0, step=w * channels, data=np.ascontiguousarray(img).reshape(-1),
            )
            self.write_message(self.image_topic, "sensor_msgs/msg/Image", stamp_ns, msg)

    def write_camera_info(self, stamp_ns: int, camera: PinholeCamera | PanoramaCamera,
                          frame_id: str = "camera_optical_frame") -> None:
        """Write `sensor_msgs/CameraInfo` for a pinhole (K, D, plumb_bob or rational_polynomial)
        or an equirectangular panorama (width/height, zero K, distortion_model "equirectangular")."""
        t = self.typestore.types
        header = _header(self.typestore, _check_stamp("stamp_ns", stamp_ns), frame_id)
        if isinstance(camera, PinholeCamera):
            d = list(camera.distortion)
            if len(d) == 4:
                d.append(0.0)
            model = "plumb_bob" if len(d) == 5 else "rational_polynomial"
            k = camera.K.reshape(-1)
            p = np.concatenate([camera.K, np.zeros((3, 1))], axis=1).reshape(-1)
            r = np.eye(3).reshape(-1)
        elif isinstance(camera, PanoramaCamera):
            # What a 360 camera driver publishes: no pinhole model applies, so K/R/P stay zero.
            d, model, k, p, r = [], "equirectangular", np.zeros(9), np.zeros(12), np.zeros(9)
        else:
            raise ValueError(f"camera: expected a PinholeCamera or PanoramaCamera, got {type(camera).__name__}")
        msg = t["sensor_msgs/msg/CameraInfo"](
            header=header, height=int(camera.height), width=int(camera.width), distortion_model=model,
            d=np.asarray(d, dtype=np.float64), k=np.asarray(k, dtype=np.float64), r=np.asarray(r, dtype=np.float64),
            p=np.asarray(p, dtype=np.float64), binning_x=0, binning_y=0,
            roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )
        self.write_message(self.topics.camera_info, "sensor_msgs/msg/CameraInfo", stamp_ns, msg)

    def _pose_with_covariance(self, x: float, y: float, yaw: float, covariance):
        t = self.typestore.types
        qx, qy, qz, qw = _yaw_quaternion(yaw)
        return t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
                orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
            ),
            covariance=planar_to_ros_covariance(covariance),
        )

    def write_pose(self, stamp_ns: int, pose: SE2 | Sequence[float] | np.ndarray | torch.Tensor,
                   covariance: np.ndarray | torch.Tensor | None, *, frame_id: str = "map",
                   topic: str = "/cvfm_localizer/pose") -> None:
        """Write `geometry_msgs/PoseWithCovarianceStamped` (what the node publishes on `~/pose`):
        planar `pose` (x, y, yaw) of base_link in `frame_id`, 3x3 covariance over (x, y, yaw)."""
        stamp_ns = _check_stamp("stamp_ns", stamp_ns)
        x, y, yaw = _xy_yaw("pose", pose)
        msg = self.typestore.types["geometry_msgs/msg/PoseWithCovarianceStamped"](
            header=_header(self.typestore, stamp_ns, frame_id), pose=self._pose_with_covariance(x, y, yaw, covariance))
        self.write_message(topic, "geometry_msgs/msg/PoseWithCovarianceStamped", stamp_ns, msg)

    def _odometry_msg(self, stamp_ns, pose, linear_velocity, yaw_rate, covariance, twist_covariance, frame_id, child_frame_id):
        t = self.typestore.types
        x, y, yaw = _xy_yaw("pose", pose)
        for name, value in (("linear_velocity", linear_velocity), ("yaw_rate", yaw_rate)):
            if not math.isfinite(float(value)):
                raise ValueError(f"{name}: expected a finite number, got {value}")
        pose_msg = self._pose_with_covariance(x, y, yaw, covariance)
        vec = t["geometry_msgs/msg/Vector3"]
        twist_msg = t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=vec(x=float(linear_velocity), y=0.0, z=0.0),
                                               angular=vec(x=0.0, y=0.0, z=float(yaw_rate))),
            covariance=planar_to_ros_covariance(twist_covariance),
        )
        return t["nav_msgs/msg/Odometry"](
            header=_header(self.typestore, stamp_ns, frame_id), child_frame_id=child_frame_id,
            pose=pose_msg, twist=twist_msg,
        )

    def write_odometry(
        self, stamp_ns: int, pose: SE2 | Sequence[float] | np.ndarray | torch.Tensor, *,
        linear_velocity: float = 0.0, yaw_rate: float = 0.0,
        covariance: np.ndarray | torch.Tensor | None = None,
        twist_covariance: np.ndarray | torch.Tensor | None = None,
        frame_id: str = "odom", child_frame_id: str = "base_link", topic: str | None = None,
    ) -> None:
        """Write `nav_msgs/Odometry`: planar `pose` (x, y, yaw) of `child_frame_id` in `frame_id`,
        twist in the child frame (forward `linear_velocity` m/s, `yaw_rate` rad/s), and 3x3
        covariances over (x, y, yaw) and (vx, vy, wz) (None: nothing estimated)."""
        stamp_ns = _check_stamp("stamp_ns", stamp_ns)
        msg = self._odometry_msg(stamp_ns, pose, linear_velocity, yaw_rate, covariance, twist_covariance, frame_id, child_frame_id)
        self.write_message(topic or self.topics.odom, "nav_msgs/msg/Odometry", stamp_ns, msg)

    def write_ground_truth(
        self, stamp_ns: int, pose: SE2 | Sequence[float] | np.ndarray | torch.Tensor, *,
        linear_velocity: float = 0.0, yaw_rate: float = 0.0,
        frame_id: str = "map", child_frame_id: str = "base_link",
    ) -> None:
        """Write the true pose of base_link in `map` as `nav_msgs/Odometry` on the ground-truth
        topic. Its (x, y, yaw) covariance is zero (exact); z, roll, pitch are unestimated."""
        stamp_ns = _check_stamp("stamp_ns", stamp_ns)
        msg = self._odometry_msg(stamp_ns, pose, linear_velocity, yaw_rate, np.zeros((3, 3)), np.zeros((3, 3)),
                                 frame_id, child_frame_id)
        self.write_message(self.topics.ground_truth, "nav_msgs/msg/Odometry", stamp_ns, msg)

    def write_odometry_track(self, track, start_ns: int = 0) -> None:
        """Write every message of an `OdometryTrack` (cvfm_ros.data.odometry), stamped
        start_ns + t, with its pose and twist covariances."""
        start_ns = _check_stamp("start_ns", start_ns)
        stamps = start_ns + np.round(np.asarray(track.t) * 1e9).astype(np.int64)
        for k, stamp in enumerate(stamps):
            self.write_odometry(int(stamp), (track.x[k], track.y[k], track.yaw[k]), linear_velocity=track.v[k],
                                yaw_rate=track.yaw_rate[k], covariance=track.covariance[k],
                                twist_covariance=track.twist_covariance[k], frame_id=track.frame_id,
                                child_frame_id=track.child_frame_id)

    def write_ground_truth_track(self, traj, start_ns: int = 0) -> None:
        """Write every sample of a `Trajectory` (cvfm_ros.data.trajectory) as ground truth,
        stamped start_ns + t."""
        start_ns = _check_stamp("start_ns", start_ns)
        for k, stamp in enumerate(traj.stamps_ns(start_ns)):
            self.write_ground_truth(int(stamp), (traj.x[k], traj.y[k], traj.yaw[k]), linear_velocity=traj.v[k],
                                    yaw_rate=traj.yaw_rate[k], frame_id=traj.frame_id)

    def write_tf_static(self, stamp_ns: int, transforms: Sequence[tuple[str, str, SE3]]) -> None:
        """Write one `tf2_msgs/TFMessage` on /tf_static (latched QoS, as tf2 publishes it).

        `transforms` holds (parent_frame, child_frame, parent_T_child) triples, e.g.
        ("base_link", "camera_optical_frame", mounted.base_from_camera).
        """
        stamp_ns = _check_stamp("stamp_ns", stamp_ns)
        t = self.typestore.types
        items = []
        for i, entry in enumerate(transforms):
            if not (isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[2], SE3)):
                raise ValueError(f"transforms[{i}]: expected (parent_frame, child_frame, SE3)")
            parent, child, tf = entry
            if tf.rotation.shape != (3, 3):
                raise ValueError(f"transforms[{i}]: expected a single SE3, got batch {tuple(tf.rotation.shape[:-2])}")
            q = matrix_to_quaternion(tf.rotation.double()).tolist()
            tr = tf.translation.double().tolist()
            items.append(t["geometry_msgs/msg/TransformStamped"](
                header=_header(self.typestore, stamp_ns, parent), child_frame_id=child,
                transform=t["geometry_msgs/msg/Transform"](
                    translation=t["geometry_msgs/msg/Vector3"](x=tr[0], y=tr[1], z=tr[2]),
                    rotation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
                ),
            ))
        if not items:
            raise ValueError("transforms: expected at least one transform")
        self.write_message(self.topics.tf_static, "tf2_msgs/msg/TFMessage", stamp_ns,
                           t["tf2_msgs/msg/TFMessage"](transforms=items), latched=True)

    def write_match_report(self, stamp_ns: int, report: MatchReport) -> None:
        """Write a `cvfm_ros_msgs/MatchReport` stamped with the image stamp `stamp_ns`."""
        if not isinstance(report, MatchReport):
            raise ValueError(f"report: expected a MatchReport, got {type(report).__name__}")
        stamp_ns = _check_stamp("stamp_ns", stamp_ns)
        self.write_message(self.topics.match_report, MATCH_REPORT_TYPE, stamp_ns, report.to_msg(self.typestore, stamp_ns))


def _latched_qos():
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def _check_image(name: str, image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or 0 in image.shape:
        raise ValueError(f"{name}: expected shape (H, W, 3) or (H, W) with H, W > 0, got {image.shape}")
    return image


# --------------------------------------------------------------------------------------------
# Message -> project types


# encoding -> (numpy dtype, channels, OpenCV conversion to RGB or None)
_RAW_ENCODINGS: dict[str, tuple[str, int, int | None]] = {
    "rgb8": ("uint8", 3, None),
    "bgr8": ("uint8", 3, cv2.COLOR_BGR2RGB),
    "rgba8": ("uint8", 4, cv2.COLOR_RGBA2RGB),
    "bgra8": ("uint8", 4, cv2.COLOR_BGRA2RGB),
    "mono8": ("uint8", 1, cv2.COLOR_GRAY2RGB),
    "8UC1": ("uint8", 1, cv2.COLOR_GRAY2RGB),
    "mono16": ("uint16", 1, cv2.COLOR_GRAY2RGB),
    "16UC1": ("uint16", 1, cv2.COLOR_GRAY2RGB),
}


def image_to_numpy(msg, rgb: bool = True) -> np.ndarray:
    """A decoded `sensor_msgs/Image` or `sensor_msgs/CompressedImage` -> numpy image.

    rgb=True (default): (H, W, 3) uint8 RGB whatever the encoding: grey is replicated, alpha
    dropped, 16-bit scaled to 8 bits (value / 257). rgb=False: the pixels as stored, (H, W) or
    (H, W, C) in the message's own channel order and dtype (compressed: as OpenCV decodes them,
    i.e. BGR order).
    Supported raw encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16 (and 8UC1/16UC1). Written
    here rather than with rosbags-image because that library ignores `step` (row padding) and
    does not validate the buffer size.
    Raises ValueError naming the field: an unknown `encoding`, zero `height`/`width`, a `step`
    shorter than a row, `data` shorter than step * height, or undecodable compressed `data`.
    """
    if hasattr(msg, "format"):
        return _compressed_to_numpy(msg, rgb)
    encoding = str(msg.encoding)
    if encoding not in _RAW_ENCODINGS:
        raise ValueError(f"encoding: unsupported image encoding {encoding!r}; expected one of {sorted(_RAW_ENCODINGS)}")
    dtype_name, channels, to_rgb = _RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f"height/width: empty {encoding} image ({width}x{height})")
    dtype = np.dtype(dtype_name).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"step: {step} bytes is shorter than one {encoding} row of {width} pixels ({row_bytes} bytes)")
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    # The last row may omit its padding, as some drivers do.
    needed = step * (height - 1) + row_bytes
    if data.size < needed:
        raise ValueError(f"data: {data.size} bytes is too short for a {width}x{height} {encoding} image with step {step} "
                         f"(needs {needed})")
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1))
    img = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder("="), copy=False)
    img = img.reshape(height, width, channels) if channels > 1 else img.reshape(height, width)
    if not rgb:
        return img
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.ascontiguousarray(img) if to_rgb is None else cv2.cvtColor(img, to_rgb)


def _compressed_to_numpy(msg, rgb: bool) -> np.ndarray:
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise ValueError(f"format: compressedDepth images ({fmt!r}) are not camera images")
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if data.size == 0:
        raise ValueError(f"data: empty compressed image (format {fmt!r})")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ValueError(f"data: OpenCV cannot decode this compressed image (format {fmt!r})")
    if not rgb:
        return img
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def quaternion_to_yaw_checked(q, name: str = "orientation") -> float:
    """`geometry_msgs/Quaternion` -> yaw (ZYX, CCW from +x, in (-pi, pi]). The one rule the node
    and replay share: ValueError naming `name` for NaN/inf or a norm off 1 by more than 1e-3 (a
    quaternion that is not a rotation is a broken message, not something to normalise away)."""
    values = np.array([q.x, q.y, q.z, q.w], dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: quaternion has NaN or inf")
    norm = float(np.linalg.norm(values))
    if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"{name}: expected a unit quaternion, norm is {norm:.4f}")
    x, y, z, w = values / norm
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def odometry_to_se2(msg) -> SE2:
    """`nav_msgs/Odometry` -> SE2 (float64, shape (3,)): (x, y, yaw) of child_frame_id in
    header.frame_id. Convention: yaw from the quaternion (ZYX), CCW from +x, wrapped to (-pi, pi].
    ValueError for a non-finite position or a bad quaternion (`quaternion_to_yaw_checked`)."""
    p = msg.pose.pose.position
    if not all(math.isfinite(float(v)) for v in (p.x, p.y, p.z)):
        raise ValueError("pose.position: has NaN or inf")
    yaw = quaternion_to_yaw_checked(msg.pose.pose.orientation, "pose.orientation")
    return SE2(torch.tensor([float(p.x), float(p.y), yaw], dtype=torch.float64))


def odometry_covariance(msg) -> np.ndarray:
    """`nav_msgs/Odometry` -> (3, 3) pose covariance over (x, y, yaw)."""
    return ros_to_planar_covariance(msg.pose.covariance)


def odometry_twist(msg) -> tuple[float, float]:
    """`nav_msgs/Odometry` -> (forward velocity m/s, yaw rate rad/s) in the child frame."""
    return float(msg.twist.twist.linear.x), float(msg.twist.twist.angular.z)


def transform_to_se3(transform_msg) -> SE3:
    """`geometry_msgs/Transform` (or TransformStamped) -> SE3 parent_T_child (float64)."""
    tf = getattr(transform_msg, "transform", transform_msg)
    q, t = tf.rotation, tf.translation
    rot = quaternion_to_matrix(torch.tensor([q.x, q.y, q.z, q.w], dtype=torch.float64))
    return SE3(rot, torch.tensor([t.x, t.y, t.z], dtype=torch.float64))


def camera_info_to_camera(msg) -> PinholeCamera | PanoramaCamera:
    """`sensor_msgs/CameraInfo` -> PanoramaCamera (distortion_model "equirectangular") or
    PinholeCamera (plumb_bob / rational_polynomial / empty model with K).

    Convention: pinhole intrinsics are K (not P), for images that are then undistorted with D.
    Raises ValueError naming the field for other distortion models, zero width/height, a zero K,
    or a binned / ROI-cropped camera (not supported).
    """
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ValueError(f"width/height: expected a positive image size, got {width}x{height}")
    model = str(msg.distortion_model)
    if model == "equirectangular":
        return PanoramaCamera(width, height)
    if int(msg.binning_x) > 1 or int(msg.binning_y) > 1:
        raise ValueError(f"binning_x/binning_y: binned cameras are not supported ({msg.binning_x}, {msg.binning_y})")
    roi = msg.roi
    if int(roi.width) or int(roi.height) or int(roi.x_offset) or int(roi.y_offset):
        raise ValueError("roi: region-of-interest cameras are not supported")
    d = [float(v) for v in np.asarray(msg.d).reshape(-1)]
    if model not in ("plumb_bob", "rational_polynomial", ""):
        raise ValueError(f"distortion_model: {model!r} is not supported; expected plumb_bob, rational_polynomial "
                         f"or equirectangular")
    if model == "" and any(d):
        raise ValueError("distortion_model: empty but d holds non-zero coefficients")
    if model == "plumb_bob" and len(d) not in (0, 4, 5):
        raise ValueError(f"d: plumb_bob expects 5 coefficients, got {len(d)}")
    if model == "rational_polynomial" and len(d) not in (0, 8):
        raise ValueError(f"d: rational_polynomial expects 8 coefficients, got {len(d)}")
    k = np.asarray(msg.k, dtype=float).reshape(-1)
    if k.size != 9 or k[0] <= 0 or k[4] <= 0:
        raise ValueError(f"k: expected a pinhole matrix with positive focal lengths, got {k.tolist()}")
    return PinholeCamera.from_camera_info(k, d or [0.0] * 5, width, height)


# --------------------------------------------------------------------------------------------
# Reader


class BagMessage(NamedTuple):
    """One message read from a bag: its topic, header stamp (ns), the decoded message and its
    clock segment (0, or the count of its topic's backwards clock jumps before it; see read_bag)."""

    topic: str
    stamp_ns: int
    message: Any
    segment: int = 0


class _Source(abc.ABC):
    """A bag's raw messages, (topic, record_ns, raw CDR bytes), in an order that is the same on
    every call (record-time order for rosbags, file order for the recovery readers)."""

    description = "rosbags"

    def __init__(self) -> None:
        self.topics: dict[str, str] = {}
        self.typestore = None

    @abc.abstractmethod
    def raw(self, topics: Sequence[str]) -> Iterator[tuple[str, int, bytes]]:
        """Yield (topic, record_ns, raw CDR bytes) of `topics`."""


class _RosbagsSource(_Source):
    """The normal path: rosbags' AnyReader, types from the definitions embedded in the bag."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        from rosbags.highlevel import AnyReader

        self.path = path
        self._reader_cls = AnyReader
        self._default = make_typestore()
        with AnyReader([path], default_typestore=self._default) as reader:
            for conn in reader.connections:
                self.topics.setdefault(conn.topic, conn.msgtype)
            self.typestore = reader.typestore

    def raw(self, topics):
        with self._reader_cls([self.path], default_typestore=self._default) as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            for conn, record_ns, data in reader.messages(connections=conns):
                yield conn.topic, int(record_ns), bytes(data)


class _McapRecoverySource(_Source):
    """Recovery path for a damaged MCAP file (truncated by a crash, or no metadata.yaml):
    the mcap library's sequential reader, which yields every complete record before the damage."""

    description = "mcap stream recovery"

    def __init__(self, file: Path) -> None:
        super().__init__()
        from rosbags.typesys import get_types_from_msg

        self.file = file
        self.typestore = make_typestore()
        schemas: dict[int, str] = {}
        types: dict[str, Any] = {}
        for rec in self._records(stop_at_error=True):
            kind = type(rec).__name__
            if kind == "Schema":
                schemas[rec.id] = rec.name
                if rec.encoding == "ros2msg" and rec.data:
                    try:
                        types.update(get_types_from_msg(rec.data.decode(), rec.name))
                    except Exception:  # noqa: BLE001 - keep the built-in definition of that type
                        pass
            elif kind == "Channel":
                self.topics.setdefault(rec.topic, schemas.get(rec.schema_id, ""))
        # Types the bag defines and our store lacks (someone else's messages) come from the bag.
        known = set(self.typestore.fielddefs)
        self.typestore.register({k: v for k, v in types.items() if k not in known})

    def _records(self, stop_at_error: bool):
        from mcap.stream_reader import StreamReader

        with open(self.file, "rb") as handle:
            reader = StreamReader(handle, skip_magic=False, emit_chunks=False)
            it = reader.records
            while True:
                try:
                    rec = next(it)
                except StopIteration:
                    return
                except Exception:
                    if stop_at_error:
                        return
                    raise
                yield rec

    def raw(self, topics):
        channels: dict[int, str] = {}
        for rec in self._records(stop_at_error=False):
            kind = type(rec).__name__
            if kind == "Channel":
                channels[rec.id] = rec.topic
            elif kind == "Message":
                topic = channels.get(rec.channel_id, "")
                if topic in topics:
                    yield topic, int(rec.log_time), bytes(rec.data)


class _SqliteRecoverySource(_Source):
    """Recovery path for a damaged rosbag2 SQLite3 file: rows are read in insertion order with
    Python's sqlite3 until the first unreadable page."""

    description = "sqlite3 row recovery"

    def __init__(self, file: Path) -> None:
        super().__init__()
        self.file = file
        self.typestore = make_typestore()
        con = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            self._ids = {}
            for tid, name, msgtype in con.execute("SELECT id, name, type FROM topics"):
                self.topics[name] = msgtype
                self._ids[tid] = name
        finally:
            con.close()

    def raw(self, topics):
        con = sqlite3.connect(f"file:{self.file}?mode=ro", uri=True)
        try:
            for tid, record_ns, data in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
                topic = self._ids.get(tid)
                if topic in topics:
                    yield topic, int(record_ns), bytes(data)
        finally:
            con.close()


def _storage_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    for pattern in ("*.mcap", "*.db3"):
        files = sorted(path.glob(pattern))
        if files:
            return files[0]
    return None


def _open_source(path: Path, partial: bool) -> tuple[_Source, str | None]:
    """Open the bag normally; when that fails and `partial` is set, try a recovery reader."""
    if not path.exists():
        raise ValueError(f"bag {path}: no such file or directory")
    try:
        return _RosbagsSource(path), None
    except Exception as exc:  # noqa: BLE001 - rosbags raises several unrelated types here
        reason = f"{type(exc).__name__}: {exc}"
        if not partial:
            raise ValueError(f"bag {path}: cannot be read ({reason}); read_bag(..., on_error='partial') "
                             f"recovers the readable part of a damaged bag") from exc
    file = _storage_file(path)
    if file is None:
        raise ValueError(f"bag {path}: cannot be read ({reason}) and holds no .mcap or .db3 storage file")
    try:
        source: _Source = _McapRecoverySource(file) if file.suffix == ".mcap" else _SqliteRecoverySource(file)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"bag {path}: cannot be read ({reason}); recovery from {file.name} failed too "
                         f"({type(exc).__name__}: {exc})") from exc
    return source, f"normal open failed ({reason}); read with {source.description}"


def _header_peek(typestore, msgtype: str):
    """A function raw CDR bytes -> header stamp in ns, or None where the type has no header.

    Reading just the stamp avoids deserializing every image twice (once to sort, once to
    return it). In CDR a leading std_msgs/Header (or a bare Header) puts `stamp.sec` (int32)
    and `stamp.nanosec` (uint32) right after the 4-byte encapsulation header; byte 1 of that
    header gives the byte order. TFMessage starts with a uint32 sequence length, then the first transform's
    header.
    """
    from rosbags.interfaces import Nodetype

    fields = typestore.fielddefs.get(msgtype, ([], []))[1]
    first = fields[0] if fields else None
    if msgtype == "std_msgs/msg/Header" or (
            first is not None and first[1][0] == Nodetype.NAME and first[1][1] == "std_msgs/msg/Header"):
        offset = 4
    elif msgtype == "tf2_msgs/msg/TFMessage":
        offset = 8
    else:
        return lambda raw: None

    def peek(raw: bytes) -> int | None:
        if len(raw) < offset + 8:
            raise ValueError(f"{msgtype}: message of {len(raw)} bytes is too short to hold a header")
        if offset == 8:
            (count,) = struct.unpack_from("<I" if raw[1] else ">I", raw, 4)
            if count == 0:
                return None
        sec, nanosec = struct.unpack_from("<iI" if raw[1] else ">iI", raw, offset)
        return sec * 10**9 + nanosec

    return peek


class BagStream:
    """Iterator over `BagMessage(topic, stamp_ns, message)` in header-stamp order.

    Attributes: `path`; `topics` (topic -> message type, the requested ones); `counts` (readable
    messages per topic); `error` (None, or why reading stopped early / needed recovery);
    `typestore` (the rosbags type store used to decode).
    """

    def __init__(self, path: Path, source: _Source, topics: list[str], order: list[tuple[int, int, int]],
                 total: int, counts: dict[str, int], error: str | None) -> None:
        self.path = path
        self.topics = {t: source.topics[t] for t in topics}
        self.counts = counts
        self.error = error
        self.typestore = source.typestore
        self._source = source
        self._topic_list = topics
        self._order = order
        self._total = total
        self._iter: Iterator[BagMessage] | None = None
        self.segments = 1  # clock segments (read_bag's split_on_jump_s)

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> "BagStream":
        return self

    def __next__(self) -> BagMessage:
        if self._iter is None:
            self._iter = self._generate()
        return next(self._iter)

    def _generate(self) -> Iterator[BagMessage]:
        # Second pass: storage order in, header-stamp order out. A message arriving before its
        # turn waits in `pending`, so memory holds only the out-of-order stretch.
        pending: dict[int, tuple[str, bytes, int]] = {}
        next_rank = 0
        raw_iter = self._source.raw(self._topic_list)
        for seq in range(self._total):
            topic, _record_ns, raw = next(raw_iter)
            rank, stamp, segment = self._order[seq]
            pending[rank] = (topic, raw, stamp, segment)
            while next_rank in pending:
                t, r, s, g = pending.pop(next_rank)
                yield BagMessage(t, s, self.typestore.deserialize_cdr(r, self.topics[t]), g)
                next_rank += 1
        raw_iter.close()


def read_bag(path: str | os.PathLike, topics: Sequence[str] | None = None, *,
             on_error: Literal["raise", "partial"] = "raise", split_on_jump_s: float | None = None) -> BagStream:
    """Open a rosbag2 bag (directory, or a bare .mcap / .db3 file) and index `topics` (None: all).

    Returns a `BagStream`: an iterator of `BagMessage(topic, stamp_ns, message)` where stamp_ns
    is the header stamp (messages without a header use their record time; a TFMessage uses its
    first transform's stamp), ordered by stamp, ties by the order of `topics`, then storage order.
    Messages are decoded with the definitions stored in the bag (our MatchReport included).

    Errors: a missing path, unreadable bag or topic absent from the bag raises ValueError naming
    it. With on_error="partial" a damaged bag (truncated MCAP, corrupt SQLite pages, missing
    metadata.yaml) yields every message readable before the damage and `stream.error` says why
    it stopped (a warning is issued too).

    Clock jumps: sorting by header stamp would interleave two runs recorded one after the other
    with restarted clocks (sim time reset, a bag of bags). With `split_on_jump_s`, a topic whose
    header stamp goes back by more than that (in recording order) starts a new segment; messages
    are ordered by (segment, stamp) and carry `segment`, and `stream.segments` counts them.
    """
    if on_error not in ("raise", "partial"):
        raise ValueError(f"on_error: expected 'raise' or 'partial', got {on_error!r}")
    path = Path(path)
    partial = on_error == "partial"
    source, error = _open_source(path, partial)
    wanted = list(dict.fromkeys(topics)) if topics is not None else sorted(source.topics)
    missing = [t for t in wanted if t not in source.topics]
    if missing:
        raise ValueError(f"bag {path}: no topic {', '.join(repr(t) for t in missing)}; "
                         f"it has {sorted(source.topics)}")
    peeks = {t: _header_peek(source.typestore, source.topics[t]) for t in wanted}
    rank_of_topic = {t: i for i, t in enumerate(wanted)}
    keys: list[tuple[int, int, int, int]] = []
    counts = {t: 0 for t in wanted}
    segment_of = {t: 0 for t in wanted}
    newest: dict[str, int] = {}
    jump_ns = None if split_on_jump_s is None else int(split_on_jump_s * 1e9)
    # First pass: header stamps only, to know the output order before decoding anything.
    try:
        for seq, (topic, record_ns, raw) in enumerate(source.raw(wanted)):
            stamp = peeks[topic](raw)
            stamp = record_ns if stamp is None else stamp
            if jump_ns is not None and topic in newest and stamp < newest[topic] - jump_ns:
                segment_of[topic] += 1
                newest[topic] = stamp
            newest[topic] = max(newest.get(topic, stamp), stamp)
            keys.append((segment_of[topic], stamp, rank_of_topic[topic], seq))
            counts[topic] += 1
    except Exception as exc:  # noqa: BLE001 - storage back-ends raise many types
        where = f"after {len(keys)} readable messages"
        reason = f"{type(exc).__name__}: {exc}"
        if not partial:
            raise ValueError(f"bag {path}: unreadable {where} ({reason}); read_bag(..., on_error='partial') "
                             f"returns the readable part") from exc
        error = f"{error}; " if error else ""
        error += f"stopped {where}: {reason}"
    if error:
        warnings.warn(f"bag {path}: {error}", RuntimeWarning, stacklevel=2)
    order = [(0, 0, 0)] * len(keys)
    for rank, (segment, stamp, _, seq) in enumerate(sorted(keys)):
        order[seq] = (rank, stamp, segment)
    stream = BagStream(path, source, wanted, order, len(keys), counts, error)
    stream.segments = 1 + max(segment_of.values(), default=0)
    return stream


__all__ = [
    "BagMessage", "BagStream", "BagTopics", "DriveBagWriter", "MATCH_REPORT_TYPE", "MatchReport",
    "UNESTIMATED_VARIANCE", "camera_info_to_camera", "image_to_numpy", "make_typestore", "odometry_covariance",
    "odometry_to_se2", "odometry_twist", "quaternion_to_yaw_checked", "planar_to_ros_covariance", "read_bag", "ros_to_planar_covariance",
    "stamp_to_ns", "transform_to_se3",
]
