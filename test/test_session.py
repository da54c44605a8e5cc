import threading

import numpy as np

from cvfm_ros.geometry import MountedCamera
from cvfm_ros.runtime.result import LocalizationResult, Status
from cvfm_ros.runtime.session import LatestSlot, LocalizationSession


class EchoLocalizer:
    """Returns the prior shifted by a known correction, to check what the session feeds back."""

    def __init__(self):
        self.priors = []

    def localize(self, image, camera, prior, prior_cov, stamp):
        self.priors.append(prior.copy())
        return LocalizationResult(stamp, Status.OK, pose=prior + np.array([1.0, 0.0, 0.0]),
                                  covariance=np.diag([0.1, 0.1, 0.01]))


def test_session_needs_a_seed_then_feeds_fixes_back():
    loc = EchoLocalizer()
    session = LocalizationSession(loc)
    cam = MountedCamera.panorama(64, 32, 1.8)
    image = np.zeros((32, 64, 3), np.uint8)
    for k in range(30):
        session.on_odometry(k * 0.1, np.array([k * 0.1, 0.0, 0.0]))
    assert session.on_image(image, 0.5, cam).status == Status.NO_PRIOR
    session.seed(0.5, np.array([10.0, 5.0, 0.0]))
    r1 = session.on_image(image, 1.0, cam)
    assert r1.ok and np.allclose(loc.priors[-1], [10.5, 5.0, 0.0])
    session.on_image(image, 2.0, cam)
    # the confident fix at t=1 (11.5, fused with the 5 m seed prior) propagated by 1 m of odometry
    assert np.allclose(loc.priors[-1], [12.5, 5.0, 0.0], atol=0.01)
    assert session.stats.statuses["OK"] == 2 and session.stats.statuses["NO_PRIOR"] == 1


def test_session_resets_on_a_bag_restart_and_reapplies_the_standing_seed():
    """A bag restart resets the prior; the seed from configuration (where the bag starts) is
    applied again, so localization resumes; an /initialpose-style seed is not (issue 12, item 4)."""
    cam = MountedCamera.panorama(64, 32, 1.8)
    image = np.zeros((32, 64, 3), np.uint8)
    for standing in (True, False):
        session = LocalizationSession(EchoLocalizer())
        session.seed(0.0, np.array([5.0, 0.0, 0.0]), standing=standing)
        for k in range(100):
            session.on_odometry(k * 0.1, np.array([k * 0.1, 0.0, 0.0]))
        assert session.on_image(image, 9.5, cam).ok
        for k in range(20):  # the bag starts again
            session.on_odometry(k * 0.1, np.array([k * 0.1, 0.0, 0.0]))
        assert session.stats.time_jumps == 1
        result = session.on_image(image, 1.5, cam)
        if standing:
            assert result.ok and np.allclose(session.localizer.priors[-1], [6.5, 0.0, 0.0])
        else:
            assert result.status == Status.NO_PRIOR and "seed" in result.reason


def test_zero_stamped_image_is_bad_input_and_keeps_the_prior():
    session = LocalizationSession(EchoLocalizer())
    cam = MountedCamera.panorama(64, 32, 1.8)
    image = np.zeros((32, 64, 3), np.uint8)
    for k in range(30):
        session.on_odometry(k * 0.1, np.array([k * 0.1, 0.0, 0.0]))
    session.seed(0.5, np.array([10.0, 5.0, 0.0]))
    result = session.on_image(image, 0.0, cam)
    assert result.status == Status.BAD_INPUT and "stamp is zero" in result.reason
    assert session.tracker.has_fix and session.on_image(image, 1.0, cam).ok


def test_a_frame_split_around_inference_respects_what_arrived_meanwhile():
    """The node runs the matcher outside its lock: a seed that arrives during inference is fused
    with, not overwritten; a time jump during inference discards the old timeline's fix."""
    loc = EchoLocalizer()
    session = LocalizationSession(loc)
    cam = MountedCamera.panorama(64, 32, 1.8)
    image = np.zeros((32, 64, 3), np.uint8)
    for k in range(30):
        session.on_odometry(k * 0.1, np.array([k * 0.1, 0.0, 0.0]))
    session.seed(1.0, np.array([0.0, 0.0, 0.0]), np.diag([100.0, 100.0, 0.1]))
    frame = session.start_frame(2.0)
    result = loc.localize(image, cam, frame.prior, frame.prior_cov, 2.0)  # at (2, 0)
    session.seed(2.0, np.array([50.0, 0.0, 0.0]), np.diag([1e-4, 1e-4, 1e-6]))  # a confident seed
    assert session.complete_frame(frame, result, 5.0).ok
    assert abs(session.tracker.prior_at(2.0)[0][0] - 50.0) < 0.1
    assert list(session.stats.latencies_ms) == [5.0]
    frame = session.start_frame(2.5)
    result = loc.localize(image, cam, frame.prior, frame.prior_cov, 2.5)
    session.on_odometry(0.0, np.zeros(3))
    session.on_odometry(0.1, np.zeros(3))  # the bag restarted meanwhile
    result = session.complete_frame(frame, result, 5.0)
    assert result.status == Status.NO_PRIOR and "old timeline" in result.reason


def test_latest_slot_keeps_only_the_newest():
    slot = LatestSlot()
    assert not slot.put(1)
    assert slot.put(2) and slot.put(3)
    assert slot.take(0.01) == 3 and slot.dropped == 2
    assert slot.take(0.01) is None
    got = []
    worker = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    worker.start()
    slot.put(4)
    worker.join(5.0)
    assert got == [4]
    slot.close()
    assert slot.take(1.0) is None


def test_fix_is_fused_with_the_prior_not_replacing_it():
    from cvfm_ros.runtime.session import fuse

    prior, prior_cov = np.array([0.0, 0.0, 0.0]), np.diag([1.0, 1.0, 0.01])
    pose, cov = fuse(prior, prior_cov, np.array([10.0, 0.0, 0.0]), np.diag([1.0, 1.0, 0.01]))
    assert np.allclose(pose, [5.0, 0.0, 0.0]) and np.allclose(cov, np.diag([0.5, 0.5, 0.005]))
    pose, _ = fuse(np.array([0.0, 0.0, 3.1]), prior_cov, np.array([0.0, 0.0, -3.1]), prior_cov)
    assert abs(abs(pose[2]) - np.pi) < 1e-6  # yaw fused across the +-pi seam
