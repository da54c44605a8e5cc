"""Wheel-odometry simulation, prior propagation and odometry interpolation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cvfm_ros.data.odometry import simulate_wheel_odometry
from cvfm_ros.data.trajectory import DriveProfile, plan_drive
from cvfm_ros.geometry import SE2


def city() -> list[np.ndarray]:
    """A larger grid of blocks (long streets, so the average speed is near 8 m/s)."""
    roads = [np.array([[0.0, y], [900.0, y]]) for y in (0.0, 300.0, 600.0)]
    roads += [np.array([[x, 0.0], [x, 600.0]]) for x in (0.0, 450.0, 900.0)]
    return roads


def _truth_in_odom(traj) -> np.ndarray:
    poses = traj.poses()
    return poses[0].inverse().compose(poses).data.numpy()


def test_zero_noise_reproduces_the_trajectory():
    traj = plan_drive(city(), 60.0, 10.0, seed=0)
    odom = simulate_wheel_odometry(traj, seed=0, scale_error=0.0, yaw_rate_bias=0.0, yaw_scale_error=0.0,
                                   speed_noise=0.0, yaw_rate_noise=0.0)
    truth = _truth_in_odom(traj)
    np.testing.assert_allclose(odom.x, truth[:, 0], atol=1e-9)
    np.testing.assert_allclose(odom.y, truth[:, 1], atol=1e-9)
    np.testing.assert_allclose(np.angle(np.exp(1j * (odom.yaw - truth[:, 2]))), 0.0, atol=1e-12)
    assert not odom.covariance.any()
    # The twist is the true motion averaged over each interval.
    np.testing.assert_allclose(odom.v[1:], 0.5 * (traj.v[1:] + traj.v[:-1]), atol=0.05)
    # From a given start pose in odom, everything is carried along rigidly.
    start = (5.0, -3.0, 2.0)
    moved = simulate_wheel_odometry(traj, scale_error=0.0, yaw_rate_bias=0.0, yaw_scale_error=0.0, speed_noise=0.0,
                                    yaw_rate_noise=0.0, initial_pose=start)
    want = SE2(torch.tensor(start, dtype=torch.float64)).compose(SE2(torch.from_numpy(truth))).data.numpy()
    np.testing.assert_allclose(moved.x, want[:, 0], atol=1e-9)
    np.testing.assert_allclose(moved.y, want[:, 1], atol=1e-9)


def test_default_drift_is_large_and_grows():
    finals = []
    for seed in range(3):
        traj = plan_drive(city(), 60.0, 10.0, seed=seed)
        assert 7.0 < traj.v.mean() < 10.0
        odom = simulate_wheel_odometry(traj, seed=seed)
        truth = _truth_in_odom(traj)
        err = np.hypot(odom.x - truth[:, 0], odom.y - truth[:, 1])
        assert err[-1] > err[200] > err[50]
        trace = odom.covariance[:, 0, 0] + odom.covariance[:, 1, 1]
        assert trace[-1] > trace[400] > trace[200] > 100 * trace[50]
        # The covariance is honest about the drift it describes.
        assert err[-1] < 3.0 * math.sqrt(trace[-1])
        np.testing.assert_allclose(odom.covariance, odom.covariance.transpose(0, 2, 1), atol=1e-9)
        finals.append(err[-1])
    assert min(finals) > 10.0 and np.median(finals) > 15.0, finals


def test_each_error_source_acts_as_described():
    traj = plan_drive(city(), 30.0, 10.0, seed=4, profile=DriveProfile(stop_probability=0.0))
    base = dict(scale_error=0.0, yaw_rate_bias=0.0, yaw_scale_error=0.0, speed_noise=0.0, yaw_rate_noise=0.0)
    scaled = simulate_wheel_odometry(traj, **{**base, "scale_error": 0.05})
    dist_true = traj.path_length_m
    dist_odom = float(np.hypot(np.diff(scaled.x), np.diff(scaled.y)).sum())
    assert dist_odom == pytest.approx(1.05 * dist_true, rel=1e-3)
    biased = simulate_wheel_odometry(traj, **{**base, "yaw_rate_bias": math.radians(1.0)})
    truth = _truth_in_odom(traj)
    yaw_err = np.angle(np.exp(1j * (biased.yaw - truth[:, 2])))
    np.testing.assert_allclose(yaw_err, np.radians(1.0) * traj.t, atol=1e-9)
    noisy_a = simulate_wheel_odometry(traj, seed=1)
    noisy_b = simulate_wheel_odometry(traj, seed=1)
    noisy_c = simulate_wheel_odometry(traj, seed=2)
    np.testing.assert_array_equal(noisy_a.x, noisy_b.x)
    assert not np.array_equal(noisy_a.x, noisy_c.x)
    with pytest.raises(ValueError, match="speed_noise"):
        simulate_wheel_odometry(traj, speed_noise=-1.0)
    with pytest.raises(ValueError, match="traj"):
        simulate_wheel_odometry(truth)
