import math

import numpy as np
import pytest

from cvfm_ros.geometry.planar import compose, interpolate_pose
from cvfm_ros.runtime.prior import PriorConfig, PriorTracker


def _drive(n=100, rate=10.0):
    t = np.arange(n) / rate
    yaw = 0.3 * np.sin(t / 3)
    x = np.cumsum(np.cos(yaw)) * 0.8
    y = np.cumsum(np.sin(yaw)) * 0.8
    return t, np.stack([x, y, yaw], -1)


def test_interpolate_pose_takes_the_short_way_round():
    p = interpolate_pose(0.0, np.array([0, 0, 3.1]), 1.0, np.array([2, 0, -3.1]), 0.5)
    assert p[0] == pytest.approx(1.0) and abs(abs(p[2]) - math.pi) < 1e-6


def test_prior_follows_odometry_from_a_fix():
    t, odom = _drive()
    tracker = PriorTracker()
    offset = np.array([100.0, 50.0, 0.7])  # map_from_odom
    for ti, p in zip(t, odom):
        tracker.add_odometry(ti, p)
    tracker.set_fix(t[10], compose(offset, odom[10]), np.diag([0.01, 0.01, 1e-4]))
    pose, cov = tracker.prior_at(t[80] + 0.05)
    truth = compose(offset, interpolate_pose(t[80], odom[80], t[81], odom[81], t[80] + 0.05))
    assert np.allclose(pose, truth, atol=1e-9)
    assert cov[0, 0] > 0.01 and cov[2, 2] > 1e-4  # uncertainty grows with travel
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_no_prior_without_fix_or_odometry():
    tracker = PriorTracker()
    assert tracker.prior_at(1.0) is None
    tracker.set_fix(1.0, np.zeros(3))
    assert tracker.prior_at(1.0) is None  # no odometry yet
    tracker.add_odometry(1.0, np.zeros(3))
    assert tracker.prior_at(5.0) is None  # too far beyond the newest odometry
    assert tracker.prior_at(1.1) is not None


def test_backwards_time_jump_confirmed_by_two_messages_resets():
    t, odom = _drive()
    tracker = PriorTracker(PriorConfig(time_jump_s=1.0))
    for ti, p in zip(t, odom):
        tracker.add_odometry(ti, p)
    tracker.set_fix(t[-1], np.zeros(3))
    tracker.add_odometry(0.0, odom[0])  # a bag restarted: the first message waits for the next one
    assert tracker.has_fix and tracker.resets == 0
    tracker.add_odometry(0.1, odom[1])
    assert not tracker.has_fix and tracker.prior_at(t[-1]) is None and tracker.resets == 1
    assert tracker.first_odometry_stamp == 0.0 and tracker.odometry_covers(0.1)  # both kept


@pytest.mark.parametrize("stray_stamp", [1e9, 0.0], ids=["future", "zero"])
def test_a_lone_stamp_off_the_timeline_is_ignored(stray_stamp):
    """One odometry message stamped far in the future or at zero (a broken driver, an unset
    header) reset the tracker and dropped the seed for good (issue 12, item 4)."""
    t, odom = _drive()
    tracker = PriorTracker(PriorConfig(time_jump_s=1.0))
    for ti, p in zip(t[:50], odom[:50]):
        tracker.add_odometry(ti, p)
    tracker.set_fix(t[40], np.zeros(3))
    tracker.add_odometry(stray_stamp, odom[0] + 100.0)
    for ti, p in zip(t[50:], odom[50:]):
        tracker.add_odometry(ti, p)
    assert tracker.resets == 0 and tracker.ignored_stamps == 1 and tracker.has_fix
    pose, _ = tracker.prior_at(t[-1])
    reference = PriorTracker(PriorConfig(time_jump_s=1.0))
    for ti, p in zip(t, odom):
        reference.add_odometry(ti, p)
    reference.set_fix(t[40], np.zeros(3))
    assert np.allclose(pose, reference.prior_at(t[-1])[0])  # as if the stray message never came


def test_a_gap_ahead_is_kept_once_the_next_message_confirms_it():
    tracker = PriorTracker(PriorConfig(time_jump_s=1.0))
    tracker.add_odometry(1.0, np.zeros(3))
    tracker.set_fix(1.0, np.zeros(3))
    tracker.add_odometry(5.0, np.array([4.0, 0.0, 0.0]))  # odometry came back after 4 s
    assert not tracker.odometry_covers(5.0)
    tracker.add_odometry(5.1, np.array([4.1, 0.0, 0.0]))
    assert tracker.odometry_covers(5.0) and tracker.resets == 0 and tracker.ignored_stamps == 0
    assert np.allclose(tracker.prior_at(5.0)[0], [4.0, 0.0, 0.0])


def test_bad_odometry_rejected():
    tracker = PriorTracker()
    with pytest.raises(ValueError, match="odometry"):
        tracker.add_odometry(0.0, np.array([np.nan, 0, 0]))
    with pytest.raises(ValueError, match="prior.buffer_s"):
        PriorConfig(buffer_s=0)


@pytest.mark.parametrize("seed_stamp", ["zero", "at_first_odometry"])
def test_a_fix_stays_anchored_after_its_odometry_leaves_the_buffer(seed_stamp):
    """Long after buffer_s without an accepted fix, the prior is still the fix carried by all the
    odometry since it (issue 12, item 3): not re-anchored to whatever odometry is oldest now."""
    tracker = PriorTracker(PriorConfig(buffer_s=30.0))
    t0 = 1000.0
    fix = np.array([10.0, -5.0, 0.0])
    if seed_stamp == "zero":  # a seed stamped 0 (no clock yet), given before any odometry
        tracker.set_fix(0.0, fix, np.diag([25.0, 25.0, 0.01]))
    for k in range(701):  # 70 s at 10 Hz, 1 m/s along odom +x, starting at odom x = 500
        tracker.add_odometry(t0 + k / 10, np.array([500.0 + k / 10, 0.0, 0.0]))
        if seed_stamp == "at_first_odometry" and k == 0:
            tracker.set_fix(t0, fix, np.diag([25.0, 25.0, 0.01]))
    pose, cov = tracker.prior_at(t0 + 70.0)
    assert pose[:2] == pytest.approx([80.0, -5.0], abs=1e-6)  # 70 m driven since the fix
    assert math.sqrt(cov[0, 0]) > 5.0  # and the uncertainty says so
