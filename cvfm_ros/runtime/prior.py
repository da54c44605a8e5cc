"""The coarse prior: the last absolute fix propagated by odometry increments (node and replay).

Convention: poses are numpy (3,) (x, y, yaw); fixes live in `map`, odometry in `odom`; stamps are
seconds (float) from message headers. Covariances are 3x3 over (x, y, yaw).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from ..config import setting
from ..geometry.planar import compose, interpolate_pose, relative


@dataclass
class PriorConfig:
    """How the prior is kept and how fast its uncertainty grows."""

    buffer_s: float = setting(30.0, "odometry history kept for interpolation at image stamps, seconds",
                              range=(0.5, 3600.0))
    max_extrapolation_s: float = setting(0.3, "an image newer than the last odometry by more has no prior, seconds",
                                         range=(0.001, 10.0))
    time_jump_s: float = setting(1.0, "odometry this far off the newest, confirmed by the next message, is a "
                                 "time jump (back: the prior resets), seconds", range=(0.01, 3600.0))
    odom_xy_noise_per_m: float = setting(0.05, "1-sigma position growth of the prior per metre travelled",
                                         range=(0.0, 10.0))
    odom_yaw_noise_per_m_deg: float = setting(0.5, "1-sigma yaw growth of the prior per metre travelled, degrees",
                                              range=(0.0, 180.0))
    odom_yaw_noise_per_s_deg: float = setting(0.1, "1-sigma yaw growth of the prior per second (gyro bias), degrees",
                                              range=(0.0, 180.0))
    initial_std_xy_m: float = setting(5.0, "1-sigma position of a seed without its own covariance, metres",
                                      range=(0.01, 1e4))
    initial_std_yaw_deg: float = setting(5.0, "1-sigma yaw of a seed without its own covariance, degrees",
                                         range=(0.01, 180.0))

    def __post_init__(self) -> None:
        for name in ("buffer_s", "max_extrapolation_s", "time_jump_s", "initial_std_xy_m", "initial_std_yaw_deg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"prior.{name}: expected a positive number, got {getattr(self, name)}")


def odometry_sigmas(cfg: PriorConfig, distance_m: float, dt_s: float) -> tuple[float, float]:
    """1-sigma (position m, yaw rad) that odometry accumulates over `distance_m` travelled in `dt_s`."""
    return (cfg.odom_xy_noise_per_m * distance_m,
            math.radians(cfg.odom_yaw_noise_per_m_deg * distance_m + cfg.odom_yaw_noise_per_s_deg * abs(dt_s)))


def propagate_covariance(fix_pose: np.ndarray, fix_cov: np.ndarray, delta: np.ndarray, distance_m: float,
                         dt_s: float, cfg: PriorConfig) -> np.ndarray:
    """Covariance of fix ∘ delta: the fix's covariance carried through the composition plus
    odometry noise that grows with distance travelled and elapsed time."""
    c, s = math.cos(fix_pose[2]), math.sin(fix_pose[2])
    jac = np.array([[1.0, 0.0, -s * delta[0] - c * delta[1]],
                    [0.0, 1.0, c * delta[0] - s * delta[1]],
                    [0.0, 0.0, 1.0]])
    xy_sigma, yaw_sigma = odometry_sigmas(cfg, distance_m, dt_s)
    return jac @ fix_cov @ jac.T + np.diag([xy_sigma**2, xy_sigma**2, yaw_sigma**2])


class PriorTracker:
    """Keeps an odometry buffer and the last absolute fix; answers "where are we at stamp t?".

    Not thread-safe by itself: the node serialises access with its own lock.
    """

    def __init__(self, config: PriorConfig | None = None) -> None:
        self.config = config or PriorConfig()
        self.resets = 0  # confirmed backwards time jumps (counters survive reset())
        self.ignored_stamps = 0  # lone odometry stamps off the timeline (dropped)
        self.reset()

    def reset(self) -> None:
        """Forget odometry and the fix (a time jump); the counters stay."""
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self._distance: list[float] = []  # cumulative odometry path length at each sample
        self._fix: tuple[float, np.ndarray, np.ndarray] | None = None
        # The odometry (pose, path length) at the fix, fixed once known: propagation must not
        # depend on what the buffer still holds (after buffer_s the fix's odometry is gone).
        self._anchor: tuple[np.ndarray, float] | None = None
        # An odometry sample off the timeline, held until the next message confirms or refutes it.
        self._pending: tuple[float, np.ndarray] | None = None

    @property
    def has_fix(self) -> bool:
        return self._fix is not None

    def odometry_covers(self, stamp: float) -> bool:
        """True when the buffer holds odometry at or after `stamp` (the prior interpolates, not extrapolates)."""
        return bool(self._stamps) and self._stamps[-1] >= stamp

    @property
    def first_odometry_stamp(self) -> float | None:
        """Stamp of the oldest buffered odometry (None before any)."""
        return self._stamps[0] if self._stamps else None

    def add_odometry(self, stamp: float, odom_pose: np.ndarray) -> None:
        """Add an `odom` pose. Raises ValueError on NaN/inf; out-of-order samples are inserted.

        A stamp more than `time_jump_s` away from the newest odometry (either way) takes effect only
        when the next message confirms the new timeline: then a jump back (a bag restarted, sim
        time reset) resets the tracker (`resets`) and a jump ahead (a gap) is kept. A lone stamp in
        the future or the past (a broken driver, an unset header) is dropped (`ignored_stamps`)
        instead of resetting the tracker or wiping the buffer.
        """
        odom_pose = np.asarray(odom_pose, dtype=float)
        if odom_pose.shape != (3,) or not np.isfinite(odom_pose).all() or not math.isfinite(stamp):
            raise ValueError("odometry: expected a finite (x, y, yaw) pose and stamp")
        for sample_stamp, sample_pose in self._screen(stamp, odom_pose):
            self._insert(sample_stamp, sample_pose)

    def _screen(self, stamp: float, pose: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """The samples to insert now (0, 1 or 2); see add_odometry."""
        jump = self.config.time_jump_s
        pending, self._pending = self._pending, None
        if not self._stamps or abs(stamp - self._stamps[-1]) <= jump:
            self.ignored_stamps += int(pending is not None)  # the held stamp was a lone outlier
            return [(stamp, pose)]
        if pending is None or stamp < pending[0] - jump:
            self.ignored_stamps += int(pending is not None)
            self._pending = (stamp, pose)  # off the timeline: wait for the next message
            return []
        if pending[0] < self._stamps[-1]:  # two messages agree that time went back
            self.reset()
            self.resets += 1
        return [pending, (stamp, pose)]

    def _insert(self, stamp: float, odom_pose: np.ndarray) -> None:
        i = bisect.bisect(self._stamps, stamp)
        if i > 0 and self._stamps[i - 1] == stamp:
            return
        self._stamps.insert(i, stamp)
        self._poses.insert(i, odom_pose)
        if i == len(self._stamps) - 1:  # in order: extend the path length
            step = float(np.hypot(*(odom_pose[:2] - self._poses[i - 1][:2]))) if i else 0.0
            self._distance.append((self._distance[-1] if i else 0.0) + step)
        else:  # out of order: recompute from scratch (rare)
            steps = [float(np.hypot(*(b[:2] - a[:2]))) for a, b in zip(self._poses, self._poses[1:])]
            self._distance = [0.0, *np.cumsum(steps).tolist()]
        self._resolve_anchor()
        while self._stamps and self._stamps[0] < self._stamps[-1] - self.config.buffer_s:
            self._stamps.pop(0)
            self._poses.pop(0)
            self._distance.pop(0)

    def _resolve_anchor(self) -> None:
        """Pin the fix to the odometry at its stamp as soon as the buffer has it; a fix older than
        all odometry (a seed stamped 0, or one from before odometry started) is pinned to the
        first odometry received after it, once, not to whatever is oldest later."""
        if self._fix is None or self._anchor is not None or not self._stamps:
            return
        at_fix = self.odom_at(self._fix[0])
        if at_fix is not None:
            self._anchor = (at_fix[0].copy(), at_fix[1])
        elif self._fix[0] < self._stamps[0]:
            self._anchor = (self._poses[0].copy(), self._distance[0])

    def odom_at(self, stamp: float) -> tuple[np.ndarray, float] | None:
        """Interpolated `odom` pose and cumulative distance at `stamp`, or None outside the buffer."""
        if not self._stamps:
            return None
        reach = self.config.max_extrapolation_s
        if stamp > self._stamps[-1] + reach or stamp < self._stamps[0] - reach:
            return None
        if len(self._stamps) == 1:
            return self._poses[0].copy(), 0.0
        i = min(max(bisect.bisect(self._stamps, stamp), 1), len(self._stamps) - 1)
        t0, t1 = self._stamps[i - 1], self._stamps[i]
        pose = interpolate_pose(t0, self._poses[i - 1], t1, self._poses[i], stamp)
        a = 0.0 if t1 == t0 else (stamp - t0) / (t1 - t0)
        return pose, self._distance[i - 1] + a * (self._distance[i] - self._distance[i - 1])

    def set_fix(self, stamp: float, map_pose: np.ndarray, covariance: np.ndarray | None = None) -> None:
        """An absolute pose of base_link in `map` at `stamp` (seed, re-seed or accepted fix)."""
        map_pose = np.asarray(map_pose, dtype=float)
        if map_pose.shape != (3,) or not np.isfinite(map_pose).all():
            raise ValueError("fix: expected a finite (x, y, yaw) pose")
        if covariance is None:
            covariance = np.diag([self.config.initial_std_xy_m**2] * 2 + [math.radians(self.config.initial_std_yaw_deg)**2])
        covariance = np.asarray(covariance, dtype=float)
        if covariance.shape != (3, 3) or not np.isfinite(covariance).all():
            raise ValueError("fix covariance: expected a finite 3x3 matrix")
        self._fix = (stamp, map_pose.copy(), covariance.copy())
        self._anchor = None
        self._resolve_anchor()

    def prior_at(self, stamp: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The fix propagated to `stamp` by odometry: (pose (3,), covariance (3, 3)), or None."""
        if self._fix is None:
            return None
        fix_stamp, fix_pose, fix_cov = self._fix
        self._resolve_anchor()
        at_now = self.odom_at(stamp)
        if at_now is None or self._anchor is None:
            return None
        at_fix = self._anchor
        delta = relative(at_fix[0], at_now[0])
        distance = abs(at_now[1] - at_fix[1])
        pose = compose(fix_pose, delta)
        return pose, propagate_covariance(fix_pose, fix_cov, delta, distance, stamp - fix_stamp, self.config)
