"""Geometric core: poses, cameras, metric grids and weighted Procrustes (torch, batched)."""
from .cameras import BASE_FROM_OPTICAL, RIG_POSITIONS, Camera, CameraRig, MountedCamera, PanoramaCamera, PinholeCamera
from .checks import check_finite, check_tensor
from .grids import AerialPatch, MetricGrid, bev_grid, grid_sample_to_pixels, pixels_to_grid_sample, sample_image
from .poses import (
    SE2,
    SE3,
    matrix_to_quaternion,
    quaternion_to_matrix,
    quaternion_to_yaw,
    rotation_2d,
    vigor_heading_to_yaw,
    wrap_angle,
    yaw_to_quaternion,
    yaw_to_vigor_heading,
)
from .procrustes import ProcrustesResult, effective_count, reweighted_procrustes_2d, weighted_procrustes_2d

__all__ = [
    "AerialPatch", "BASE_FROM_OPTICAL", "Camera", "CameraRig", "RIG_POSITIONS", "MetricGrid", "MountedCamera", "PanoramaCamera",
    "PinholeCamera", "ProcrustesResult", "SE2", "SE3", "bev_grid", "check_finite", "check_tensor", "effective_count",
    "grid_sample_to_pixels", "matrix_to_quaternion", "pixels_to_grid_sample", "quaternion_to_matrix",
    "quaternion_to_yaw", "reweighted_procrustes_2d", "rotation_2d", "sample_image", "vigor_heading_to_yaw",
    "weighted_procrustes_2d",
    "wrap_angle", "yaw_to_quaternion", "yaw_to_vigor_heading",
]
