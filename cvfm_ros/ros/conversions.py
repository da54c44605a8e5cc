"""Message <-> numpy conversions at the ROS edge (rclpy message objects).

Image decoding is shared with the bag reader (`cvfm_ros.data.bags`), which accepts any object
with the sensor_msgs/Image fields, so the node and replay decode pixels identically.
"""
from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import Quaternion

from ..data.bags import camera_info_to_camera, image_to_numpy


def stamp_to_sec(stamp) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> (H, W, 3) uint8 RGB. ValueError names the bad field."""
    return np.ascontiguousarray(image_to_numpy(msg, rgb=True))


def quaternion_to_yaw_checked(q) -> float:
    """geometry_msgs/Quaternion -> yaw; ValueError for NaN or a non-unit quaternion."""
    values = np.array([q.x, q.y, q.z, q.w], dtype=float)
    if not np.isfinite(values).all():
        raise ValueError("orientation: quaternion has NaN or inf")
    norm = float(np.linalg.norm(values))
    if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"orientation: expected a unit quaternion, norm is {norm:.4f}")
    x, y, z, w = values / norm
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def odometry_to_pose(msg) -> np.ndarray:
    """nav_msgs/Odometry -> (x, y, yaw) in its frame; ValueError for NaN or a bad quaternion."""
    p = msg.pose.pose.position
    if not all(math.isfinite(v) for v in (p.x, p.y, p.z)):
        raise ValueError("odom: position has NaN or inf")
    return np.array([p.x, p.y, quaternion_to_yaw_checked(msg.pose.pose.orientation)])


def pose_to_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))
