"""Planar (x, y, yaw) pose maths on numpy arrays: the one place for composition, inversion,
relative poses, interpolation and covariance ellipses (the node, replay, prior and EKF use it).

Convention: planar poses are numpy (3,) arrays (x, y, yaw) per docs/CONVENTIONS.md, yaw in
(-pi, pi] (`wrap`, which is `geometry.poses.wrap_angle`); a pose named `a_from_b` is the pose
of frame b in frame a. Batched torch poses live in `geometry.poses` (SE2, SE3).
"""
from __future__ import annotations

import math

import numpy as np

from .poses import wrap_angle as wrap


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a ∘ b for (3,) planar poses."""
    c, s = math.cos(a[2]), math.sin(a[2])
    return np.array([a[0] + c * b[0] - s * b[1], a[1] + s * b[0] + c * b[1], wrap(a[2] + b[2])])


def inverse(a: np.ndarray) -> np.ndarray:
    c, s = math.cos(a[2]), math.sin(a[2])
    return np.array([-(c * a[0] + s * a[1]), s * a[0] - c * a[1], wrap(-a[2])])


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The pose of b in a's frame: a^-1 ∘ b."""
    return compose(inverse(a), b)


def map_from_odom(map_from_base: np.ndarray, odom_from_base: np.ndarray) -> np.ndarray:
    """The map -> odom transform that makes map ∘ odom -> base_link equal the fix (REP-105)."""
    return compose(map_from_base, inverse(odom_from_base))


def interpolate_pose(t0: float, p0: np.ndarray, t1: float, p1: np.ndarray, t: float) -> np.ndarray:
    """Linear in position, shortest-arc in yaw; t may extrapolate slightly beyond [t0, t1]."""
    a = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
    xy = p0[:2] + a * (p1[:2] - p0[:2])
    return np.array([xy[0], xy[1], wrap(p0[2] + a * wrap(p1[2] - p0[2]))])


def covariance_ellipse(cov2: np.ndarray, sigma: float = 2.0) -> tuple[float, float, float]:
    """(semi-major, semi-minor, angle of the major axis CCW from +x) of the `sigma` ellipse."""
    vals, vecs = np.linalg.eigh(np.asarray(cov2, dtype=float)[:2, :2])
    vals = np.clip(vals, 0.0, None)
    return sigma * math.sqrt(vals[1]), sigma * math.sqrt(vals[0]), math.atan2(vecs[1, 1], vecs[0, 1])


__all__ = ["compose", "covariance_ellipse", "interpolate_pose", "inverse", "map_from_odom", "relative", "wrap"]
