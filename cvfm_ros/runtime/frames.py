"""Frame bookkeeping shared by the node and the replay tool (pure numpy, no ROS).

Convention: planar poses are numpy (3,) arrays (x, y, yaw) per docs/CONVENTIONS.md; a pose
named `a_from_b` is the pose of frame b in frame a.
"""
from __future__ import annotations

import math

import numpy as np

# Variance given to the axes a 3-DoF fix does not estimate (z, roll, pitch): "unknown", not zero,
# since robot_localization reads zero as certain.
UNESTIMATED_VARIANCE = 1e6


def wrap(angle: float) -> float:
    return math.pi - math.fmod(math.fmod(math.pi - angle, 2 * math.pi) + 2 * math.pi, 2 * math.pi)


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


# Indices of (x, y, yaw) in ROS's row-major 6x6 covariance over (x, y, z, roll, pitch, yaw);
# the same indices select (vx, vy, wz) in a twist covariance.
PLANAR_AXES = (0, 1, 5)


def covariance_to_ros(cov3: np.ndarray | None) -> list[float]:
    """3x3 over (x, y, yaw) -> row-major 6x6 over (x, y, z, roll, pitch, yaw) as a list of 36.

    Convention: z, roll and pitch get `UNESTIMATED_VARIANCE` on the diagonal; `None` gives that
    variance on every axis (nothing estimated). Also used for twists over (vx, vy, wz).
    """
    out = np.zeros((6, 6))
    np.fill_diagonal(out, UNESTIMATED_VARIANCE)
    if cov3 is not None:
        cov3 = np.asarray(cov3, dtype=float)
        if cov3.shape != (3, 3) or not np.isfinite(cov3).all():
            raise ValueError(f"covariance: expected a finite 3x3 matrix, got shape {cov3.shape}")
        if not np.allclose(cov3, cov3.T, atol=1e-9 * max(1.0, float(np.abs(cov3).max()))):
            raise ValueError("covariance: expected a symmetric 3x3 matrix")
        out[np.ix_(PLANAR_AXES, PLANAR_AXES)] = cov3
    return out.reshape(-1).tolist()


def covariance_from_ros(cov36) -> np.ndarray:
    """Row-major 6x6 (36 values) -> 3x3 over (x, y, yaw) (or (vx, vy, wz))."""
    full = np.asarray(cov36, dtype=float)
    if full.size != 36:
        raise ValueError(f"covariance: expected 36 values (row-major 6x6), got {full.size}")
    return full.reshape(6, 6)[np.ix_(PLANAR_AXES, PLANAR_AXES)].copy()


def covariance_ellipse(cov2: np.ndarray, sigma: float = 2.0) -> tuple[float, float, float]:
    """(semi-major, semi-minor, angle of the major axis CCW from +x) of the `sigma` ellipse."""
    vals, vecs = np.linalg.eigh(np.asarray(cov2, dtype=float)[:2, :2])
    vals = np.clip(vals, 0.0, None)
    return sigma * math.sqrt(vals[1]), sigma * math.sqrt(vals[0]), math.atan2(vecs[1, 1], vecs[0, 1])
