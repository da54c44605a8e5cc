"""Write a drive as a ROS 2 bag without ROS (`DriveBagWriter`, through `rosbags`).

The bag is assembled in a temporary sibling directory and renamed into place on a clean exit,
so a crash never leaves a half-written bag under the requested name. Conventions as in
`cvfm_ros.io.messages`.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from ..geometry import SE2, SE3, PanoramaCamera, PinholeCamera, matrix_to_quaternion
from .bag_types import MATCH_REPORT_TYPE, MatchReport, Storage, _header, make_typestore
from .messages import covariance_to_ros, yaw_to_quaternion


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


def _ros_covariance(covariance: np.ndarray | torch.Tensor | None) -> np.ndarray:
    """3x3 covariance (numpy or torch) -> (36,) array via `messages.covariance_to_ros`."""
    cov = None if covariance is None else _matrix("covariance", covariance, (3, 3))
    return np.asarray(covariance_to_ros(cov))


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
        self.compression: str | None = (None if compressed_images is False
                                        else "jpeg" if compressed_images is True else compressed_images)
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
    def write_image(self, stamp_ns: int, image: np.ndarray, frame_id: str = "camera_optical_frame",
                    topic: str | None = None) -> None:
        """Write an image (H, W, 3) uint8 RGB, or (H, W) uint8 grey (mono8), on `topic` (default:
        the drive's image topic; "/compressed" is appended for compressed images).

        Raw images go out as `rgb8`/`mono8`; compressed ones are encoded by OpenCV and labelled
        the way image_transport's compressed plugin does ("rgb8; jpeg compressed bgr8").
        """
        img = _check_image("image", image)
        topic = self.image_topic if topic is None else topic + ("/compressed" if self.compression else "")
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
            self.write_message(topic, "sensor_msgs/msg/CompressedImage", stamp_ns, msg)
        else:
            h, w = img.shape[:2]
            channels = 1 if mono else 3
            msg = t["sensor_msgs/msg/Image"](
                header=header, height=h, width=w, encoding="mono8" if mono else "rgb8",
                is_bigendian=0, step=w * channels, data=np.ascontiguousarray(img).reshape(-1),
            )
            self.write_message(topic, "sensor_msgs/msg/Image", stamp_ns, msg)

    def write_camera_info(self, stamp_ns: int, camera: PinholeCamera | PanoramaCamera,
                          frame_id: str = "camera_optical_frame", topic: str | None = None) -> None:
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
        self.write_message(self.topics.camera_info if topic is None else topic, "sensor_msgs/msg/CameraInfo",
                           stamp_ns, msg)

    def _pose_with_covariance(self, x: float, y: float, yaw: float, covariance):
        t = self.typestore.types
        qx, qy, qz, qw = yaw_to_quaternion(yaw)
        return t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
                orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
            ),
            covariance=_ros_covariance(covariance),
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
            covariance=_ros_covariance(twist_covariance),
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
        msg = self._odometry_msg(stamp_ns, pose, linear_velocity, yaw_rate, covariance, twist_covariance, frame_id,
                                 child_frame_id)
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
