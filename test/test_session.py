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


def test_session_resets_on_backwards_jump():
    session = LocalizationSession(EchoLocalizer())
    cam = MountedCamera.panorama(64, 32, 1.8)
    image = np.zeros((32, 64, 3), np.uint8)
    for k in range(100):
        session.on_odometry(k * 0.1, np.array([k * 0.1, 0.0, 0.0]))
    session.seed(9.0, np.zeros(3))
    assert session.on_image(image, 9.5, cam).ok
    result = session.on_image(image, 1.0, cam)
    assert result.status == Status.NO_PRIOR and "time jumped" in result.reason
    assert session.stats.time_jumps == 1 and not session.tracker.has_fix


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
