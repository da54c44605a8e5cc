"""One robot's localization session: prior tracking + the localizer + statistics.

The ROS node and the replay tool both drive this class, so a bag replay runs exactly the prior
propagation and gating the node runs. Pure Python (no ROS); not thread-safe (callers serialise).
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..geometry import MountedCamera
from ..geometry.planar import wrap
from .bev_memory import BevMemory
from .prior import PriorConfig, PriorTracker
from .result import LocalizationResult, Status


class LocalizerLike(Protocol):
    def localize(self, image: np.ndarray, camera: MountedCamera, prior: np.ndarray, prior_cov: np.ndarray,
                 stamp: float) -> LocalizationResult: ...


@dataclass
class SessionStats:
    """Counters the node reports in /diagnostics and replay writes to its report."""

    frames: int = 0
    dropped_frames: int = 0
    statuses: Counter = field(default_factory=Counter)
    bad_inputs: Counter = field(default_factory=Counter)
    time_jumps: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=200))
    image_stamps: deque = field(default_factory=lambda: deque(maxlen=50))
    last_status: str = "NONE"
    last_reason: str = ""
    last_coverage: float | None = None

    def input_rate_hz(self) -> float:
        if len(self.image_stamps) < 2 or self.image_stamps[-1] <= self.image_stamps[0]:
            return 0.0
        return (len(self.image_stamps) - 1) / (self.image_stamps[-1] - self.image_stamps[0])

    def latency_ms(self, q: float = 50.0) -> float:
        return float(np.percentile(list(self.latencies_ms), q)) if self.latencies_ms else 0.0


@dataclass
class PendingFrame:
    """A frame between `LocalizationSession.start_frame` and `complete_frame`: its prior, or the
    result it already has (no matcher run needed)."""

    stamp: float
    prior: np.ndarray | None = None
    prior_cov: np.ndarray | None = None
    result: LocalizationResult | None = None
    resets: int = 0  # the tracker's reset count when the frame started
    odometry: tuple[np.ndarray, float] | None = None  # (odom pose, path length) at the stamp
    memory: dict[str, np.ndarray] | None = None  # sequential BEV: the past frames' BEVs for the localizer

    def localize_kwargs(self) -> dict:
        """Extra arguments of `localize` for this frame (the BEV memory where one is kept)."""
        return {"memory": self.memory} if self.memory is not None else {}


class LocalizationSession:
    """Feed odometry, seeds and images; get one `LocalizationResult` per processed image.

    `on_image` runs one frame start to end. A node that must not hold its lock during inference
    calls `start_frame` (under the lock), runs the localizer, then `complete_frame` (under the lock).
    """

    def __init__(self, localizer: LocalizerLike, prior_config: PriorConfig | None = None) -> None:
        self.localizer = localizer
        self.tracker = PriorTracker(prior_config)
        self.stats = SessionStats()
        # A seed from configuration (the pose where the robot starts): applied again after a
        # confirmed backwards time jump (a bag restarted or sim time reset puts the robot there).
        self._standing_seed: tuple[np.ndarray, np.ndarray | None] | None = None
        # Sequential BEV (the localizer says how many past frames it takes): their BEVs live here,
        # with the odometry they were taken at, and go when the odometry restarts.
        self.memory = BevMemory.for_localizer(localizer, self.tracker.config)

    def on_odometry(self, stamp: float, odom_pose: np.ndarray) -> None:
        """Raises ValueError for a non-finite pose (the caller counts and logs it)."""
        resets, ignored = self.tracker.resets, self.tracker.ignored_stamps
        self.tracker.add_odometry(stamp, odom_pose)
        if self.tracker.ignored_stamps > ignored:
            self.record_bad_input("odom", f"a stamp more than prior.time_jump_s={self.tracker.config.time_jump_s} s "
                                  "off the odometry timeline, not confirmed by the next message (ignored)")
        if self.tracker.resets > resets:
            self.stats.time_jumps += self.tracker.resets - resets
            if self.memory is not None:  # odometry restarted: the stored BEVs' poses mean nothing now
                self.memory.clear()
            if self._standing_seed is not None:
                self.tracker.set_fix(self.tracker.first_odometry_stamp, *self._standing_seed)

    def seed(self, stamp: float, map_pose: np.ndarray, covariance: np.ndarray | None = None, *,
             standing: bool = False) -> None:
        """An absolute pose from /initialpose, NavSatFix or configuration (`standing`: re-applied
        after a time jump back, see __init__)."""
        self.tracker.set_fix(stamp, map_pose, covariance)
        if standing:
            self._standing_seed = (np.array(map_pose, dtype=float),
                                   None if covariance is None else np.array(covariance, dtype=float))

    def record_bad_input(self, source: str, reason: str) -> None:
        self.stats.bad_inputs[source] += 1
        self.stats.last_status, self.stats.last_reason = Status.BAD_INPUT.name, f"{source}: {reason}"

    def on_image_received(self, stamp: float) -> None:
        """Count an arriving image for `input_rate_hz` (also those dropped before processing)."""
        self.stats.image_stamps.append(stamp)

    def start_frame(self, stamp: float) -> PendingFrame:
        """The prior for an image at `stamp`, or the result that needs no matcher run."""
        self.stats.frames += 1
        frame = PendingFrame(stamp, resets=self.tracker.resets)
        if not stamp > 0:
            frame.result = LocalizationResult(stamp, Status.BAD_INPUT, "image: the header stamp is zero "
                                              "(unset); the prior needs the capture time")
            return frame
        prior = self.tracker.prior_at(stamp)
        if prior is None:
            reason = ("no absolute seed yet (set an initial pose, /initialpose or a NavSatFix)"
                      if not self.tracker.has_fix else "no odometry around the image stamp")
            frame.result = LocalizationResult(stamp, Status.NO_PRIOR, reason)
        else:
            frame.prior, frame.prior_cov = prior
            if self.memory is not None:
                frame.odometry = self.tracker.odom_at(stamp)
                if frame.odometry is not None:
                    frame.memory = self.memory.inputs(stamp, frame.odometry[0], frame.odometry[1],
                                                      self.localizer.memory_shapes)
        return frame

    def complete_frame(self, frame: PendingFrame, result: LocalizationResult | None = None,
                       latency_ms: float | None = None) -> LocalizationResult:
        """Take the localizer's `result` for `frame` (None when `frame.result` is set): fuse an OK
        fix into the prior and update the statistics. `latency_ms` is the matcher run's time."""
        if frame.result is not None:
            result = frame.result
        elif self.tracker.resets != frame.resets:
            result = LocalizationResult(frame.stamp, Status.NO_PRIOR, "time jumped back during inference: "
                                        "the fix belongs to the old timeline")
        elif result.ok:
            # Fuse the fix with the odometry-propagated prior (a Kalman update with H = I) rather
            # than replacing it: one wrong fix then moves the prior part of the way. The prior is
            # taken again now: a seed that arrived during inference is respected.
            prior = self.tracker.prior_at(frame.stamp) or (frame.prior, frame.prior_cov)
            self.tracker.set_fix(frame.stamp, *fuse(prior[0], prior[1], result.pose, result.covariance))
        if (self.memory is not None and result.frame_bev is not None and frame.odometry is not None
                and self.tracker.resets == frame.resets):
            self.memory.add(frame.stamp, frame.odometry[0], frame.odometry[1], result.frame_bev)
        if frame.result is None and latency_ms is not None:
            self.stats.latencies_ms.append(latency_ms)
        self.stats.statuses[result.status.name] += 1
        self.stats.last_status, self.stats.last_reason = result.status.name, result.reason
        if result.coverage is not None:
            self.stats.last_coverage = result.coverage
        return result

    def on_image(self, image: np.ndarray, stamp: float, camera: MountedCamera) -> LocalizationResult:
        """One frame start to end (replay; tests)."""
        self.on_image_received(stamp)
        frame = self.start_frame(stamp)
        if frame.result is not None:
            return self.complete_frame(frame)
        started = time.perf_counter()
        result = self.localizer.localize(image, camera, frame.prior, frame.prior_cov, stamp, **frame.localize_kwargs())
        return self.complete_frame(frame, result, (time.perf_counter() - started) * 1e3)


def fuse(prior: np.ndarray, prior_cov: np.ndarray, fix: np.ndarray, fix_cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kalman update of a planar pose prior with an absolute fix (yaw residual wrapped)."""
    innovation = np.asarray(fix, dtype=float) - prior
    innovation[2] = wrap(float(innovation[2]))
    gain = prior_cov @ np.linalg.inv(prior_cov + fix_cov)
    pose = prior + gain @ innovation
    pose[2] = wrap(float(pose[2]))
    cov = (np.eye(3) - gain) @ prior_cov
    return pose, 0.5 * (cov + cov.T)


class LatestSlot:
    """A one-item mailbox: producers overwrite, the consumer always gets the newest item.

    Used to run inference on a worker without building a backlog: an item replaced before the
    worker took it counts as dropped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0

    def put(self, item) -> bool:
        """Store `item`; returns True if an unprocessed item was dropped to make room."""
        with self._cond:
            dropped = self._item is not None
            self.dropped += int(dropped)
            self._item = item
            self._cond.notify()
            return dropped

    def take(self, timeout: float | None = None):
        """The newest item (removing it), or None after `timeout` seconds or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
