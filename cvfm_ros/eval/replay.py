"""Offline replay: the node's session (prior propagation, localizer, gating) over a time-ordered
stream of events, plus an EKF fusion, metrics and report files.

Convention: poses (x, y, yaw) of base_link in `map`; stamps are header stamps in seconds.
Events are produced from bags by `cvfm_ros.eval.bag_events` and are plain tuples, so this module
is tested without bags.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from ..geometry import MountedCamera
from ..geometry.planar import compose, interpolate_pose, relative, wrap
from ..runtime.result import LocalizationResult, Status
from ..runtime.session import LocalizationSession
from .ekf import PlanarEkf
from .metrics import nees, position_error_m, summarize, yaw_error_deg


@dataclass
class Event:
    """One input: kind is "odom" (payload (3,) odom pose), "truth" ((3,) map pose), "image"
    (payload (H, W, 3) uint8 RGB), "camera" (a MountedCamera for the following images)."""

    stamp: float
    kind: str
    payload: object


@dataclass
class FrameRecord:
    stamp: float
    status: str
    reason: str
    fix: np.ndarray | None
    fix_cov: np.ndarray | None
    odometry: np.ndarray  # odometry-only estimate in map
    fused: np.ndarray
    truth: np.ndarray | None
    timings_ms: dict[str, float]
    matches: int
    score: float = 0.0
    effective_inliers: float | None = None  # what the validity gate compared (None: no matcher run)
    second_look_m: float | None = None  # how far the second look's fix was from the first (None: none ran)


@dataclass
class ReplayRecord:
    frames: list[FrameRecord] = field(default_factory=list)
    problems: Counter = field(default_factory=Counter)
    examples: list[tuple[float, np.ndarray, LocalizationResult]] = field(default_factory=list)
    wall_s: float = 0.0


def _interp(stamps: list[float], poses: list[np.ndarray], t: float) -> np.ndarray | None:
    """Pose at `t` from a time-sorted track (None more than 0.2 s outside it)."""
    if not stamps or t < stamps[0] - 0.2 or t > stamps[-1] + 0.2:
        return None
    if len(stamps) == 1:
        return poses[0]
    i = int(np.clip(np.searchsorted(stamps, t), 1, len(stamps) - 1))
    return interpolate_pose(stamps[i - 1], poses[i - 1], stamps[i], poses[i], t)


def run_replay(events: Iterable[Event], session: LocalizationSession, truth_track: tuple[list[float], list[np.ndarray]],
               seed_std_xy_m: float = 3.0, seed_std_yaw_deg: float = 3.0, rate_hz: float = 0.0,
               seed: int = 0, keep_examples: int = 4, progress: Callable[[float], None] | None = None,
               ekf_rejection_threshold: float = 16.27) -> ReplayRecord:
    """Drive `session` with time-ordered `events`.

    The first processed image seeds the prior from the ground truth perturbed by the seed noise
    (standing in for the robot's last GNSS fix before it was lost); from then on only odometry and
    the localizer's own fixes move the prior. `rate_hz` > 0 processes images at most that often.
    """
    import time

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    record = ReplayRecord()
    camera: MountedCamera | None = None
    last_stamp: dict[str, float] = {}
    odom_stamps: list[float] = []
    odom_poses: list[np.ndarray] = []
    seeded = False
    ekf: PlanarEkf | None = None
    odom_at_seed = seed_pose = None
    last_odom_for_ekf: np.ndarray | None = None
    last_processed = -math.inf
    truth_stamps, truth_poses = truth_track
    for event in events:
        if event.stamp < last_stamp.get(event.kind, -math.inf):
            record.problems[f"out-of-order {event.kind} stamps"] += 1
        last_stamp[event.kind] = max(event.stamp, last_stamp.get(event.kind, -math.inf))
        if event.kind == "camera":
            camera = event.payload
        elif event.kind == "odom":
            try:
                session.on_odometry(event.stamp, np.asarray(event.payload, dtype=float))
            except ValueError as exc:
                record.problems[f"odometry rejected: {exc}"] += 1
                continue
            odom_stamps.append(event.stamp)
            odom_poses.append(np.asarray(event.payload, dtype=float))
        elif event.kind == "image":
            if rate_hz > 0 and event.stamp - last_processed < 1.0 / rate_hz - 1e-6:
                continue
            if camera is None:
                record.problems["image before any camera model"] += 1
                continue
            truth = _interp(truth_stamps, truth_poses, event.stamp)
            odom = _interp(odom_stamps, odom_poses, event.stamp)
            if odom is None:
                record.problems["image without odometry around its stamp"] += 1
                continue
            if not seeded:
                if truth is None:
                    record.problems["image before ground truth (cannot seed)"] += 1
                    continue
                noise = rng.normal(0, [seed_std_xy_m, seed_std_xy_m, math.radians(seed_std_yaw_deg)])
                seed_pose = truth + noise
                cov = np.diag([seed_std_xy_m**2] * 2 + [math.radians(seed_std_yaw_deg) ** 2])
                session.seed(event.stamp, seed_pose, cov)
                ekf = PlanarEkf(seed_pose, cov, rejection_threshold=ekf_rejection_threshold)
                odom_at_seed = last_odom_for_ekf = odom
                seeded = True
            last_processed = event.stamp
            image = event.payload if isinstance(event.payload, list) else np.asarray(event.payload)  # a rig: a list
            result = session.on_image(image, event.stamp, camera)
            ekf.predict(relative(last_odom_for_ekf, odom))
            last_odom_for_ekf = odom
            if result.ok:
                ekf.update(result.pose, result.covariance)
            odometry_only = compose(seed_pose, relative(odom_at_seed, odom))
            record.frames.append(FrameRecord(
                event.stamp, result.status.name, result.reason,
                None if result.pose is None else np.asarray(result.pose, dtype=float),
                None if result.covariance is None else np.asarray(result.covariance, dtype=float),
                odometry_only, ekf.pose, truth, dict(result.timings_ms), len(result.matches), float(result.score),
                result.effective_inliers, result.second_look_m))
            if result.status != Status.OK:
                record.problems[f"frames with status {result.status.name}"] += 1
            if result.ok and len(record.examples) < keep_examples and len(record.frames) % 15 == 1:
                record.examples.append((event.stamp, image, result))
            if progress is not None:
                progress(event.stamp)
    record.wall_s = time.perf_counter() - started
    return record


def _errors(est: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, float]:
    if not est:
        return {"mean_m": math.nan, "median_m": math.nan, "p95_m": math.nan, "max_m": math.nan,
                "yaw_median_deg": math.nan, "count": 0}
    e, t = np.array(est), np.array(truth)
    pos = summarize(position_error_m(e[:, :2], t[:, :2]))
    return {"mean_m": pos["mean"], "median_m": pos["median"], "p95_m": pos["p95"], "max_m": pos["max"],
            "yaw_median_deg": float(np.median(yaw_error_deg(e[:, 2], t[:, 2]))), "count": len(e)}


def compute_metrics(record: ReplayRecord, outlier_m: float = 5.0) -> dict:
    """metrics.json content: absolute errors without alignment for raw fixes, fused and odometry."""
    with_truth = [f for f in record.frames if f.truth is not None]
    ok = [f for f in with_truth if f.status == "OK"]
    raw_err = [float(np.hypot(*(f.fix[:2] - f.truth[:2]))) for f in ok]
    errs3 = np.array([[*(f.fix[:2] - f.truth[:2]), wrap(f.fix[2] - f.truth[2])]
                      for f in ok]).reshape(-1, 3)
    nees_values = nees(errs3, np.array([f.fix_cov for f in ok]).reshape(-1, 3, 3)) if ok else np.array([])
    frames = len(record.frames)
    return {
        "raw": _errors([f.fix for f in ok], [f.truth for f in ok]),
        "fused": _errors([f.fused for f in with_truth], [f.truth for f in with_truth]),
        "odometry": _errors([f.odometry for f in with_truth], [f.truth for f in with_truth]),
        "availability": (len([f for f in record.frames if f.status == "OK"]) / frames) if frames else 0.0,
        "outlier_rate": float(np.mean(np.array(raw_err) > outlier_m)) if raw_err else 0.0,
        "nees": float(np.mean(nees_values)) if len(nees_values) else math.nan,
        "nees_dof": 3,
        "frames": frames,
        "frames_with_truth": len(with_truth),
        "statuses": dict(Counter(f.status for f in record.frames)),
        "problems": dict(record.problems),
        "fps": frames / record.wall_s if record.wall_s > 0 else math.nan,
        "latency_ms_p50": float(np.median([f.timings_ms.get("total", math.nan) for f in ok])) if ok else math.nan,
    }


def iter_sorted(streams: list[Iterator[Event]]) -> Iterator[Event]:
    """Merge per-topic event iterators (each in header-stamp order) into one time-ordered stream."""
    import heapq

    # At equal stamps, odometry, truth and camera models go before the image that needs them.
    return heapq.merge(*streams, key=lambda e: (e.stamp, e.kind == "image"))
