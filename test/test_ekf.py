import math

import numpy as np

from cvfm_ros.eval.ekf import PlanarEkf
from cvfm_ros.geometry.planar import compose


def test_ekf_fuses_drifting_odometry_with_fixes():
    rng = np.random.default_rng(0)
    truth = np.array([0.0, 0.0, 0.0])
    ekf = PlanarEkf(truth, np.diag([1.0, 1.0, 0.01]))
    dead_reckoned = truth.copy()
    fused_err, odom_err = [], []
    for k in range(600):
        step = np.array([0.8, 0.0, 0.01 * math.sin(k / 50)])
        truth = compose(truth, step)
        noisy = step * np.array([1.03, 1.0, 1.0]) + np.array([0.0, 0.0, 0.0005])  # scale error + yaw bias
        dead_reckoned = compose(dead_reckoned, noisy)
        ekf.predict(noisy)
        if k % 10 == 0:
            fix = truth + rng.normal(0, [0.5, 0.5, 0.01])
            ekf.update(fix, np.diag([0.25, 0.25, 1e-4]))
        fused_err.append(np.hypot(*(ekf.pose[:2] - truth[:2])))
        odom_err.append(np.hypot(*(dead_reckoned[:2] - truth[:2])))
    assert odom_err[-1] > 10 and np.median(fused_err[100:]) < 1.0


def test_ekf_rejects_outliers_and_wraps_yaw():
    ekf = PlanarEkf(np.array([0.0, 0.0, math.pi - 0.01]), np.diag([1.0, 1.0, 0.01]))
    assert not ekf.update(np.array([100.0, 0.0, 0.0]), np.diag([0.1, 0.1, 0.01]))
    assert ekf.rejected == 1
    assert ekf.update(np.array([0.0, 0.0, -math.pi + 0.01]), np.diag([0.1, 0.1, 0.01]))
    assert abs(abs(ekf.pose[2]) - math.pi) < 0.02
