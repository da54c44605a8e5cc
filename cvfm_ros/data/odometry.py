"""Wheel odometry: simulate it from a true trajectory, and use it between absolute fixes.

`simulate_wheel_odometry` dead-reckons a drifting `odom` track from the true motion corrupted
the way wheel odometry is: a travelled-distance scale error (tyre radius), a yaw-rate bias
(gyro bias / wheel-base error) and white noise on both. Its covariance is propagated with the
systematic errors as unknown constants (an augmented error state), so it grows the way the
drift does instead of like a random walk.

Carrying the last absolute fix forward with odometry (what the node and the replay do) is
`cvfm_ros.runtime.prior.PriorTracker`.

Convention (docs/CONVENTIONS.md): planar poses (x, y, yaw) in metres / radians, yaw CCW
from +x wrapped to (-pi, pi]; odometry poses are of base_link in `odom`; covariances are 3x3
over (x, y, yaw).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from cvfm_ros.geometry import SE2

from .trajectory import Trajectory, check_array


@dataclass(frozen=True)
class OdometryTrack:
    """Odometry messages: pose of `child_frame_id` in `frame_id`, twist and pose covariance.

    t, x, y, yaw, v, yaw_rate: (N,) float64 (seconds, metres, radians, m/s, rad/s);
    covariance: (N, 3, 3) over (x, y, yaw); twist_covariance: (N, 3, 3) over (vx, vy, wz) in
    the child frame.
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    v: np.ndarray
    yaw_rate: np.ndarray
    covariance: np.ndarray
    twist_covariance: np.ndarray
    frame_id: str = "odom"
    child_frame_id: str = "base_link"

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for name in ("t", "x", "y", "yaw", "v", "yaw_rate"):
            object.__setattr__(self, name, check_array(f"OdometryTrack.{name}", getattr(self, name), ("N",), sizes))
        for name in ("covariance", "twist_covariance"):
            object.__setattr__(self, name, check_array(f"OdometryTrack.{name}", getattr(self, name), ("N", 3, 3), sizes))

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def poses(self) -> SE2:
        """SE2 of shape (N,) (data (N, 3), float64)."""
        return SE2(torch.from_numpy(np.stack([self.x, self.y, self.yaw], -1).copy()))


def _se2_np(x, y, yaw):
    return np.stack([x, y, yaw], -1)


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^-1 * b for planar poses (..., 3) in numpy float64."""
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    dx, dy = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
    dyaw = np.angle(np.exp(1j * (b[..., 2] - a[..., 2])))
    return np.stack([c * dx + s * dy, -s * dx + c * dy, dyaw], -1)


def simulate_wheel_odometry(
    traj: Trajectory,
    seed: int = 0,
    *,
    scale_error: float = 0.03,
    yaw_rate_bias: float = math.radians(0.15),
    yaw_scale_error: float = 0.02,
    speed_noise: float = 0.05,
    yaw_rate_noise: float = math.radians(0.3),
    initial_pose: Sequence[float] = (0.0, 0.0, 0.0),
) -> OdometryTrack:
    """Wheel odometry along `traj`, dead-reckoned in `odom` from corrupted motion increments.

    For each interval the true relative motion (from consecutive poses) is scaled by
    (1 + scale_error), its rotation by (1 + yaw_scale_error) (a wheel-base error) and gets
    yaw_rate_bias * dt (unequal tyre radii, gyro bias) plus noise of yaw_rate_noise rad/s,
    and its distance gets noise of speed_noise m/s (both per sample); the chord turns by half the
    extra rotation, as on an arc. The odometry starts at `initial_pose` (x, y, yaw) in `odom`.
    With all five error parameters zero it reproduces the true trajectory expressed from that
    start. Reported twists are the corrupted increments divided by dt (the first message reports
    the corrupted true twist). The covariance (N, 3, 3) over (x, y, yaw) treats the scale error
    errors as unknown constants with standard deviations |scale_error|, |yaw_scale_error| and
    |yaw_rate_bias|.

    Convention: the defaults (3 % distance scale, 2 % yaw scale, 0.15 deg/s = 9 deg/min yaw
    bias) are a car with uncalibrated wheel odometry; at ~8 m/s the track drifts tens of
    metres per minute, which is why absolute localization matters.
    """
    if not isinstance(traj, Trajectory):
        raise ValueError(f"traj: expected a Trajectory, got {type(traj).__name__}")
    for name, value in (("scale_error", scale_error), ("yaw_rate_bias", yaw_rate_bias),
                        ("yaw_scale_error", yaw_scale_error)):
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value}")
    for name, value in (("speed_noise", speed_noise), ("yaw_rate_noise", yaw_rate_noise)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected a non-negative standard deviation, got {value}")
    if scale_error <= -1:
        raise ValueError(f"scale_error: expected > -1 (a fraction of the distance), got {scale_error}")
    start = np.asarray(initial_pose, dtype=float)
    if start.shape != (3,) or not np.isfinite(start).all():
        raise ValueError(f"initial_pose: expected finite (x, y, yaw), got {initial_pose!r}")

    rng = np.random.default_rng(seed)
    n = len(traj)
    truth = _se2_np(traj.x, traj.y, traj.yaw)
    dt = np.diff(traj.t)
    inc = _relative(truth[:-1], truth[1:])                      # (N-1, 3) true increments
    n_dist = rng.standard_normal(n - 1) * speed_noise * dt
    n_rot = rng.standard_normal(n - 1) * yaw_rate_noise * dt
    extra_rot = yaw_scale_error * inc[:, 2] + yaw_rate_bias * dt + n_rot
    chord = inc[:, :2] * (1.0 + scale_error)
    length = np.hypot(chord[:, 0], chord[:, 1])
    direction = np.where(length[:, None] > 1e-12, chord / np.maximum(length, 1e-12)[:, None],
                         np.stack([np.cos(inc[:, 2] / 2), np.sin(inc[:, 2] / 2)], -1))
    signed = np.sign(chord[:, 0]) + (chord[:, 0] == 0)         # reversing stays reversing
    chord = chord + (signed * n_dist)[:, None] * direction
    c, s = np.cos(extra_rot / 2), np.sin(extra_rot / 2)
    meas = np.stack([c * chord[:, 0] - s * chord[:, 1], s * chord[:, 0] + c * chord[:, 1], inc[:, 2] + extra_rot], -1)

    # Dead reckoning: compose the measured increments from the start pose.
    pose = np.empty((n, 3))
    pose[0] = start
    for k in range(n - 1):
        cy, sy = math.cos(pose[k, 2]), math.sin(pose[k, 2])
        pose[k + 1, 0] = pose[k, 0] + cy * meas[k, 0] - sy * meas[k, 1]
        pose[k + 1, 1] = pose[k, 1] + sy * meas[k, 0] + cy * meas[k, 1]
        pose[k + 1, 2] = pose[k, 2] + meas[k, 2]
    pose[:, 2] = np.pi - np.mod(np.pi - pose[:, 2], 2 * np.pi)

    v = np.empty(n)
    w = np.empty(n)
    v[0] = traj.v[0] * (1.0 + scale_error)
    w[0] = traj.yaw_rate[0] * (1.0 + yaw_scale_error) + yaw_rate_bias
    v[1:] = np.sign(meas[:, 0]) * np.hypot(meas[:, 0], meas[:, 1]) / dt
    w[1:] = meas[:, 2] / dt

    # Error-state covariance over (x, y, yaw, scale, bias, yaw scale): the systematic errors are
    # unknown constants, so their effect accumulates coherently (drift), unlike white noise.
    cov = np.zeros((n, 3, 3))
    p = np.zeros((6, 6))
    p[3, 3] = scale_error ** 2
    p[4, 4] = yaw_rate_bias ** 2
    p[5, 5] = yaw_scale_error ** 2
    for k in range(n - 1):
        dist = float(np.hypot(meas[k, 0], meas[k, 1]))
        phi = pose[k, 2] + math.atan2(meas[k, 1], meas[k, 0]) if dist > 1e-12 else pose[k, 2]
        cphi, sphi = math.cos(phi), math.sin(phi)
        f = np.eye(6)
        f[0, 2], f[1, 2] = -dist * sphi, dist * cphi
        f[0, 3], f[1, 3] = dist * cphi, dist * sphi
        # A rotation error e turns this step's chord by e/2 as well.
        for col, drot in ((4, dt[k]), (5, meas[k, 2])):
            f[2, col] = drot
            f[0, col], f[1, col] = -dist * sphi * drot / 2, dist * cphi * drot / 2
        q = np.zeros((6, 6))
        var_d = (speed_noise * dt[k]) ** 2
        q[:2, :2] = var_d * np.outer([cphi, sphi], [cphi, sphi])
        q[2, 2] = (yaw_rate_noise * dt[k]) ** 2
        p = f @ p @ f.T + q
        cov[k + 1] = p[:3, :3]
    # Twist covariance: white noise plus the systematic errors at this speed and turn rate; a
    # car cannot slide sideways, so vy is known to be ~0.
    twist_cov = np.zeros((n, 3, 3))
    twist_cov[:, 0, 0] = speed_noise ** 2 + (scale_error * v) ** 2
    twist_cov[:, 1, 1] = 1e-4
    twist_cov[:, 2, 2] = yaw_rate_noise ** 2 + yaw_rate_bias ** 2 + (yaw_scale_error * w) ** 2
    return OdometryTrack(t=traj.t.copy(), x=pose[:, 0], y=pose[:, 1], yaw=pose[:, 2], v=v, yaw_rate=w,
                         covariance=cov, twist_covariance=twist_cov)


__all__ = ["OdometryTrack", "simulate_wheel_odometry"]
