"""ROS data without ROS: message conversions (`messages`), our message types (`bag_types`) and
ROS 2 bag writing and reading (`bag_writer`, `bag_reader`), through `rosbags`. Above geometry,
below everything that reads or writes ROS data (maps, data, runtime, eval, ros, cli)."""
from .bag_reader import BagMessage, BagStream, read_bag
from .bag_types import MATCH_REPORT_TYPE, MatchReport, make_typestore
from .bag_writer import BagTopics, DriveBagWriter
from .messages import (
    UNESTIMATED_VARIANCE, camera_info_to_camera, covariance_from_ros, covariance_to_ros, image_to_numpy,
    odometry_covariance, odometry_to_se2, odometry_twist, quaternion_to_yaw_checked, stamp_to_ns, transform_to_se3,
    yaw_to_quaternion,
)

__all__ = [
    "BagMessage", "BagStream", "BagTopics", "DriveBagWriter", "MATCH_REPORT_TYPE", "MatchReport",
    "UNESTIMATED_VARIANCE", "camera_info_to_camera", "covariance_from_ros", "covariance_to_ros", "image_to_numpy",
    "make_typestore", "odometry_covariance", "odometry_to_se2", "odometry_twist", "quaternion_to_yaw_checked",
    "read_bag", "stamp_to_ns", "transform_to_se3", "yaw_to_quaternion",
]
