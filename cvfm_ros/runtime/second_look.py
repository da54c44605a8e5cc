"""The second look: a frame the calibrated validity gate refuses, matched again on a shifted crop.

The validity gate (`min_effective_inliers`, per camera kind) is calibrated so that no mismatched
validation pair passes; it therefore also refuses many right fixes that simply have fewer
inliers (on the 4-pinhole rig drives most refused frames were 0.1-1.2 m off). A right fix is a
place in `map`: matched again on an aerial crop `shift_m` away it stays where it is. A fix on
imagery the matcher cannot explain leans to the crop's centre (mismatched pairs land 1-12 m from
the prior) and moves with the crop. So a frame below the gate, but with at least
`min_share` of its effective inliers, is accepted when both looks solve (each at that lower
count) and agree within `tolerance_m` and `tolerance_deg`; the pose and covariance published are
the first look's. Used by the runtime localizer and by `cvfm-ros eval --real` (what the localizer
would publish), with the `gate.second_look_*` settings.

Convention: poses (x, y, yaw) in metres / radians; a look's pose is in its own aerial patch frame
(origin at the crop centre), so comparing two looks adds the crop centres (`map` positions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..geometry.planar import wrap


@dataclass(frozen=True)
class SecondLookSettings:
    """`gate.second_look_*` (runtime/settings.py GateSettings), without the ROS/YAML layer."""

    shift_m: float = 8.0
    tolerance_m: float = 1.0
    tolerance_deg: float = 3.0
    min_share: float = 0.4

    @classmethod
    def from_gate(cls, gate: Any) -> "SecondLookSettings":
        return cls(gate.second_look_shift_m, gate.second_look_tolerance_m, gate.second_look_tolerance_deg,
                   gate.second_look_min_share)


@dataclass(frozen=True)
class SecondLook:
    """What a second look found: `accepted`, the two looks' disagreement in position (m) and yaw
    (deg), and the first look's solve (`solve_pose` dict, pose in the first crop's patch frame):
    what is published on acceptance."""

    accepted: bool
    disagreement_m: float
    disagreement_deg: float
    first: dict


def second_look(matcher: Any, outputs: dict, aerial_mpp: float, gate: float, settings: SecondLookSettings,
                match_shifted: Callable[[np.ndarray], dict | None]) -> SecondLook | None:
    """The second look at a frame the validity gate `gate` refused: None where none runs (see
    `first_look`, or `match_shifted` found no imagery), else what it found. `outputs`: the
    matcher's (export contract) on the first crop; `match_shifted(shift_xy)`: the matcher's
    outputs (same frame, same yaw) on the crop whose centre is `shift_xy` metres (`map`) off, or
    None where there is no imagery there."""
    first = first_look(matcher, outputs, aerial_mpp, gate, settings)
    if first is None:
        return None
    shift = second_look_shift(settings)
    shifted = match_shifted(shift)
    if shifted is None:
        return None
    second = look(matcher, shifted, aerial_mpp, settings.min_share * gate)
    return SecondLook(*looks_agree(first, second, shift, settings), first)


def second_look_shift(settings: SecondLookSettings) -> np.ndarray:
    """(dx, dy) metres in `map` from the first crop's centre to the second's: diagonal, so that a
    road along either map axis moves in the crop."""
    return np.full(2, settings.shift_m / math.sqrt(2.0))


def first_look(matcher: Any, outputs: dict, aerial_mpp: float, gate: float,
               settings: SecondLookSettings) -> dict | None:
    """The first look's solve at the second look's lower count (`min_share * gate`), or None when
    the frame gets no second look (off, a matcher without `solve_matches`, too few effective
    inliers, or no consistent solution even then). `outputs`: the matcher's (export contract)."""
    solve = getattr(matcher, "solve_matches", None)
    eff = float(np.asarray(outputs["effective_inliers"]).reshape(-1)[0])
    low = settings.min_share * gate
    if settings.shift_m <= 0 or solve is None or eff < low:
        return None
    solved = look(matcher, outputs, aerial_mpp, low)
    return solved if bool(solved["valid"][0]) else None


def look(matcher: Any, outputs: dict, aerial_mpp: float, min_effective_inliers: float) -> dict:
    """One look's solve from the matcher's match outputs with the given validity count."""
    return matcher.solve_matches(outputs["matches_bev_xy"], outputs["matches_aerial_uv"], outputs["match_weights"],
                                 aerial_mpp, min_effective_inliers)


def looks_agree(first: dict, second: dict, shift_xy: np.ndarray,
                settings: SecondLookSettings) -> tuple[bool, float, float]:
    """Whether two looks (solves of crops `shift_xy` metres apart) agree: (accepted, position
    disagreement in metres, yaw disagreement in degrees). The second must be valid too."""
    a, b = first["pose"][0].double().numpy(), second["pose"][0].double().numpy()
    distance = float(np.hypot(a[0] - shift_xy[0] - b[0], a[1] - shift_xy[1] - b[1]))
    degrees = abs(math.degrees(wrap(float(a[2] - b[2]))))
    accepted = bool(second["valid"][0]) and distance <= settings.tolerance_m and degrees <= settings.tolerance_deg
    return accepted, distance, degrees
