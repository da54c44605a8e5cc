"""ROS message <-> project types: the one conversion layer the bag reader/writer, the node
and replay share (plain objects with the message fields: rosbags' decoded messages or rclpy's).

Convention (docs/CONVENTIONS.md): poses are planar (x, y, yaw) with yaw counter-clockwise
from the frame's +x; 3x3 covariances are over (x, y, yaw) and become the row-major 6x6 ROS
covariance over (x, y, z, roll, pitch, yaw) with `UNESTIMATED_VARIANCE` on z, roll and pitch.
Images are (H, W, 3) uint8 RGB in memory, `rgb8` on the wire. Stamps are integer nanoseconds.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from ..geometry import SE2, SE3, PanoramaCamera, PinholeCamera, quaternion_to_matrix

# Variance given to the axes a 3-DoF fix does not estimate (z, roll, pitch): "unknown", not zero,
# since robot_localization reads zero as certain.
UNESTIMATED_VARIANCE = 1e6


# Indices of (x, y, yaw) in ROS's row-major 6x6 covariance over (x, y, z, roll, pitch, yaw);
# the same indices select (vx, vy, wz) in a twist covariance.
PLANAR_AXES = (0, 1, 5)


def covariance_to_ros(cov3: np.ndarray | None) -> list[float]:
    """3x3 over (x, y, yaw) -> row-major 6x6 over (x, y, z, roll, pitch, yaw) as a list of 36.

    Convention: z, roll and pitch get `UNESTIMATED_VARIANCE` on the diagonal; `None` gives that
    variance on every axis (nothing estimated). Also used for twists over (vx, vy, wz).
    """
    out = np.zeros((6, 6))
    np.fill_diagonal(out, UNESTIMATED_VARIANCE)
    if cov3 is not None:
        cov3 = np.asarray(cov3, dtype=float)
        if cov3.shape != (3, 3) or not np.isfinite(cov3).all():
            raise ValueError(f"covariance: expected a finite 3x3 matrix, got shape {cov3.shape}")
        if not np.allclose(cov3, cov3.T, atol=1e-9 * max(1.0, float(np.abs(cov3).max()))):
            raise ValueError("covariance: expected a symmetric 3x3 matrix")
        out[np.ix_(PLANAR_AXES, PLANAR_AXES)] = cov3
    return out.reshape(-1).tolist()


def covariance_from_ros(cov36) -> np.ndarray:
    """Row-major 6x6 (36 values) -> 3x3 over (x, y, yaw) (or (vx, vy, wz))."""
    full = np.asarray(cov36, dtype=float)
    if full.size != 36:
        raise ValueError(f"covariance: expected 36 values (row-major 6x6), got {full.size}")
    return full.reshape(6, 6)[np.ix_(PLANAR_AXES, PLANAR_AXES)].copy()


def stamp_to_ns(stamp) -> int:
    """A `builtin_interfaces/Time` (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """yaw -> (x, y, z, w) of the rotation about +z."""
    return 0.0, 0.0, math.sin(0.5 * yaw), math.cos(0.5 * yaw)


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
    return covariance_from_ros(msg.pose.covariance)


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
