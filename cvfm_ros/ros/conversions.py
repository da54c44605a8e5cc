"""Message <-> numpy conversions at the ROS edge (rclpy message objects).

Image decoding is shared with the bag reader (`cvfm_ros.data.bags`), which accepts any object
with the sensor_msgs/Image fields, so the node and replay decode pixels identically.
"""
from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import Quaternion

from ..data.bags import (  # noqa: F401 (re-exported for the node)
    camera_info_to_camera, image_to_numpy, odometry_to_se2, quaternion_to_yaw_checked,
)


def stamp_to_sec(stamp) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> (H, W, 3) uint8 RGB. ValueError names the bad field."""
    return np.ascontiguousarray(image_to_numpy(msg, rgb=True))


def odometry_to_pose(msg) -> np.ndarray:
    """nav_msgs/Odometry -> (x, y, yaw) in its frame; the bag reader's conversion, so the node
    and replay accept and reject the same messages. ValueError for NaN or a bad quaternion."""
    return odometry_to_se2(msg).data.numpy().astype(float)


def pose_to_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))
