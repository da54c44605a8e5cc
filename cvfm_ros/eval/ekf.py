"""A planar EKF fusing odometry increments with absolute fixes (what robot_localization would do).

Convention: state (x, y, yaw) of base_link in `map`; odometry increments are expressed in the
body frame at the previous state (`relative(odom_prev, odom_now)`); fixes are (x, y, yaw) in map
with a 3x3 covariance.

The update (with angle-aware residuals) is filterpy's ExtendedKalmanFilter; the prediction is the
nonlinear SE(2) composition written here because filterpy's predict step is linear.
"""
from __future__ import annotations

import math

import numpy as np
from filterpy.kalman import ExtendedKalmanFilter

from ..geometry.planar import compose, wrap


def _residual(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.asarray(a, dtype=float).reshape(-1) - np.asarray(b, dtype=float).reshape(-1)
    d[2] = wrap(d[2])
    return d.reshape(-1, 1)


class PlanarEkf:
    def __init__(self, pose: np.ndarray, covariance: np.ndarray, xy_noise_per_m: float = 0.05,
                 yaw_noise_per_m_deg: float = 0.5, rejection_threshold: float = 16.27) -> None:
        self._kf = ExtendedKalmanFilter(dim_x=3, dim_z=3)
        self._kf.x = np.asarray(pose, dtype=float).reshape(3, 1).copy()
        self._kf.P = np.asarray(covariance, dtype=float).copy()
        self.xy_noise_per_m = xy_noise_per_m
        self.yaw_noise_per_m = math.radians(yaw_noise_per_m_deg)
        self.rejection_threshold = rejection_threshold
        self.rejected = 0

    @property
    def pose(self) -> np.ndarray:
        return self._kf.x.reshape(3).copy()

    @property
    def covariance(self) -> np.ndarray:
        return self._kf.P.copy()

    def predict(self, delta: np.ndarray) -> None:
        """Move by an odometry increment (dx, dy, dyaw) in the body frame."""
        x = self.pose
        c, s = math.cos(x[2]), math.sin(x[2])
        jac = np.array([[1.0, 0.0, -s * delta[0] - c * delta[1]], [0.0, 1.0, c * delta[0] - s * delta[1]], [0.0, 0.0, 1.0]])
        dist = math.hypot(delta[0], delta[1])
        q = np.diag([(self.xy_noise_per_m * dist) ** 2] * 2 + [(self.yaw_noise_per_m * dist) ** 2 + 1e-8])
        self._kf.x = compose(x, np.asarray(delta, dtype=float)).reshape(3, 1)
        self._kf.P = jac @ self._kf.P @ jac.T + q

    def update(self, fix: np.ndarray, covariance: np.ndarray) -> bool:
        """Fuse an absolute fix unless its Mahalanobis distance squared exceeds the threshold."""
        innovation = _residual(fix, self.pose)
        s = self._kf.P + covariance
        d2 = float((innovation.T @ np.linalg.solve(s, innovation))[0, 0])
        if d2 > self.rejection_threshold:
            self.rejected += 1
            return False
        self._kf.update(np.asarray(fix, dtype=float).reshape(3, 1), HJacobian=lambda x: np.eye(3), Hx=lambda x: x,
                        R=np.asarray(covariance, dtype=float), residual=_residual)
        self._kf.x[2, 0] = wrap(float(self._kf.x[2, 0]))
        return True
