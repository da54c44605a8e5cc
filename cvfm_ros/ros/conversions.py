"""What only the rclpy edge needs on top of `cvfm_ros.io.messages` (the one conversion layer,
shared with the bag reader, so the node and replay accept and decode messages identically):
rclpy message constructors and float stamps."""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Quaternion

from ..io import image_to_numpy, odometry_to_se2, yaw_to_quaternion


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
    """yaw -> geometry_msgs/Quaternion (rotation about +z)."""
    x, y, z, w = yaw_to_quaternion(yaw)
    return Quaternion(x=x, y=y, z=z, w=w)
