"""Data: the synthetic CVFM-style engine, drives as ROS 2 bags, real-dataset loaders."""
