"""The BEV memory of a localization session (sequential BEV, issue 14): the BEVs of the last frames
with the odometry pose each was taken at, turned into the matcher's memory inputs for a new frame.

Pure numpy, no ROS; the session owns one and clears it when odometry restarts. The uncertainty of a
past frame's pose relative to the current one follows the prior's odometry noise model
(prior.odom_*: position per metre travelled, yaw per metre and per second), so the matcher trusts
old cells as much as the prior trusts the odometry between them.

Convention: odometry poses are (x, y, yaw) in `odom`; `relative_pose` is the past base_link in the
current base_link (planar.relative(now, past)); slots are newest first, empty ones all zero.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..geometry.planar import relative
from .prior import PriorConfig, odometry_sigmas


@dataclass
class StoredBev:
    stamp: float
    odom_pose: np.ndarray  # (3,) in odom
    distance_m: float  # odometry path length at the frame
    features: np.ndarray  # (C, Hb, Wb)
    valid: np.ndarray  # (Hb, Wb)
    surface_height: np.ndarray  # (Hb, Wb)
    bev_yaw: float


class BevMemory:
    """The last `frames` BEVs not older than `max_age_s` (see the module docstring)."""

    def __init__(self, frames: int, max_age_s: float, odometry_noise: PriorConfig) -> None:
        if frames < 1:
            raise ValueError(f"matcher.sequential_frames: expected >= 1 for a memory, got {frames}")
        self.frames, self.max_age_s, self.noise = int(frames), float(max_age_s), odometry_noise
        self._stored: deque[StoredBev] = deque(maxlen=self.frames)

    @classmethod
    def for_localizer(cls, localizer, odometry_noise: PriorConfig) -> "BevMemory | None":
        """The memory a localizer's sequential BEV takes (`memory_frames`, `sequential_max_age_s`),
        or None when it takes none."""
        frames = int(getattr(localizer, "memory_frames", 0) or 0)
        return cls(frames, localizer.config.matcher.sequential_max_age_s, odometry_noise) if frames else None

    def __len__(self) -> int:
        return len(self._stored)

    def clear(self) -> None:
        self._stored.clear()

    def add(self, stamp: float, odom_pose: np.ndarray, distance_m: float, frame_bev: dict) -> None:
        """Keep a processed frame's BEV (`frame_bev`: features, valid, surface_height, bev_yaw)."""
        if self._stored and stamp <= self._stored[-1].stamp:
            return  # an older frame finishing late: the memory stays in time order
        self._stored.append(StoredBev(stamp, np.asarray(odom_pose, dtype=float), float(distance_m),
                                      np.asarray(frame_bev["features"], dtype=np.float32),
                                      np.asarray(frame_bev["valid"], dtype=np.float32),
                                      np.asarray(frame_bev["surface_height"], dtype=np.float32),
                                      float(frame_bev["bev_yaw"])))

    def inputs(self, stamp: float, odom_pose: np.ndarray, distance_m: float,
               shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        """The matcher's memory inputs (model.export.MEMORY_INPUTS at `shapes`, batch 1) for a
        frame at `stamp` and odometry `odom_pose` / `distance_m`: stored frames older than it by
        at most `max_age_s`, newest first; the other slots empty."""
        arrays = {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()}
        usable = [s for s in reversed(self._stored) if 0.0 < stamp - s.stamp <= self.max_age_s]
        for slot, past in enumerate(usable[:self.frames]):
            if past.features.shape != arrays["memory_features"].shape[2:]:
                continue  # stored by another matcher configuration
            sigma_xy, sigma_yaw = odometry_sigmas(self.noise, abs(distance_m - past.distance_m), stamp - past.stamp)
            arrays["memory_features"][0, slot] = past.features
            arrays["memory_valid"][0, slot] = past.valid
            arrays["memory_surface_height"][0, slot] = past.surface_height
            arrays["memory_relative_pose"][0, slot] = relative(np.asarray(odom_pose, dtype=float), past.odom_pose)
            arrays["memory_bev_yaw"][0, slot] = past.bev_yaw
            arrays["memory_pose_std"][0, slot] = (sigma_xy, sigma_yaw)
        return arrays
