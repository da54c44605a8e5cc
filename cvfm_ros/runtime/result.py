"""What the runtime localizer returns for every frame (shared by the node and the replay tool).

Convention: poses are (x, y, yaw) of `base_link` in `map` (ENU metres, yaw CCW from east,
radians in (-pi, pi]); covariances are 3x3 over (x, y, yaw).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class Status(enum.IntEnum):
    """Outcome of one localization attempt (`MATCH_REPORT_STATUS` maps it onto msg/MatchReport.msg)."""

    OK = 0
    NO_TILES = 1
    LOW_CONFIDENCE = 2
    REJECTED_BY_GATE = 3
    BAD_INPUT = 4
    NO_PRIOR = 5


# Status -> (MatchReport status_code, status word): the message groups the two quality rejections.
MATCH_REPORT_STATUS = {
    Status.OK: (0, "ok"), Status.LOW_CONFIDENCE: (1, "rejected"), Status.REJECTED_BY_GATE: (1, "rejected"),
    Status.NO_TILES: (2, "no_imagery"), Status.NO_PRIOR: (3, "no_prior"), Status.BAD_INPUT: (6, "bad_input"),
}


@dataclass
class Matches:
    """K correspondences of one frame: ground pixel, aerial pixel, `map` position and weight."""

    ground_uv: np.ndarray  # (K, 2) ground-image pixels (OpenCV convention)
    aerial_uv: np.ndarray  # (K, 2) aerial-patch pixels
    map_xy: np.ndarray  # (K, 2) metres in `map`
    weight: np.ndarray  # (K,)
    ground_camera: np.ndarray | None = None  # (K,) int: the rig camera whose image `ground_uv` is in (None: 0)

    @classmethod
    def empty(cls) -> "Matches":
        return cls(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0,)), np.zeros((0,), int))

    def __len__(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class LocalizationResult:
    """One frame's result. `pose` and `covariance` are set whenever a solve ran, even when the
    status rejects it (so tools can show why); only `status == OK` results are published."""

    stamp: float
    status: Status
    reason: str = ""
    pose: np.ndarray | None = None  # (3,) x, y, yaw in map
    covariance: np.ndarray | None = None  # (3, 3)
    matches: Matches = field(default_factory=Matches.empty)
    score: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    mahalanobis: float | None = None
    coverage: float | None = None
    # The count the validity gate compares (pose.camera_gates): why a frame was or was not valid.
    effective_inliers: float | None = None
    # The second look (a frame below the validity gate matched again on a shifted aerial crop):
    # how far apart the two fixes were in position (m) and yaw (deg); None where none ran.
    second_look_m: float | None = None
    second_look_deg: float | None = None
    aerial_image: np.ndarray | None = None  # the aerial patch used (H, W, 3) uint8, for debug output
    yaw_hypotheses: int = 1  # matcher runs for this frame (more than 1 where the prior yaw was loose)
    # sequential BEV: this frame's BEV for the next frames' memory (runtime/bev_memory.py)
    frame_bev: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK
