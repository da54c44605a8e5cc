"""The ROS 2 layer: the only sub-package that imports rclpy."""
