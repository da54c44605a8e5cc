"""Loaders for public cross-view localization datasets (VIGOR, KITTI cross-view), converted to
the project's conventions on read. Layouts: docs/REAL_DATASETS.md."""
from .kitti import KittiDataset, KittiSample, load_kitti_frame, read_kitti_calibration
from .vigor import VIGOR_MPP, VigorDataset, VigorLabel, VigorSample, load_vigor_pair

__all__ = [
    "KittiDataset", "KittiSample", "VIGOR_MPP", "VigorDataset", "VigorLabel", "VigorSample", "load_kitti_frame",
    "load_vigor_pair", "read_kitti_calibration",
]
