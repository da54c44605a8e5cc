"""cvfm_ros: cross-view fine-grained matching localization for ROS 2.

Sub-packages are split by responsibility. Only `cvfm_ros.ros` imports rclpy; everything else
imports and runs without ROS.
"""

__version__ = "0.1.0"
