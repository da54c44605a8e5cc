"""The runtime Localizer on a generated drive (real tiles on disk, the shipped matcher): a loose prior
yaw is resolved with yaw hypotheses, a tight one costs a single matcher run."""
import math

import numpy as np
import pytest

from cvfm_ros.io import image_to_numpy, odometry_to_se2, read_bag
from cvfm_ros.geometry import MountedCamera
from cvfm_ros.runtime.localizer import Localizer
from cvfm_ros.runtime.settings import NodeSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def last_frame(tiny_drive):
    topics = [tiny_drive.topics["ground_truth"], tiny_drive.topics["image"]]
    truth, image = {}, None
    for m in read_bag(tiny_drive.bag, topics):
        if m.topic == tiny_drive.topics["ground_truth"]:
            truth[m.stamp_ns] = odometry_to_se2(m.message).data.numpy().astype(float)
        else:
            image = (m.stamp_ns, image_to_numpy(m.message))
    # The drive's last frame: the shipped model localizes it to 0.4 m with a known heading (some
    # frames of this tiny world it gets only to 1-3 m, known heading or not).
    return image[1], truth[image[0]]


def _localizer(tiny_drive, kind: str = "model", step_deg: float = 20.0) -> Localizer:
    s = NodeSettings()
    s.tiles.path, s.tiles.max_zoom = str(tiny_drive.tiles), 20
    s.datum.latitude, s.datum.longitude, s.datum.altitude = tiny_drive.datum
    s.camera.height_m = tiny_drive.camera_height_m
    s.matcher.kind, s.matcher.backend, s.matcher.yaw_search_step_deg = kind, "torch", step_deg
    return Localizer(s.localizer_config())


def test_loose_prior_yaw_is_searched_and_recovered(tiny_drive, last_frame):
    image, truth = last_frame
    camera = MountedCamera.panorama(image.shape[1], image.shape[0], tiny_drive.camera_height_m)
    localizer = _localizer(tiny_drive)
    # Heading unknown (a GNSS seed without a compass): the prior yaw is 100 degrees off, sigma 100 degrees.
    prior = truth + np.array([1.5, -1.0, math.radians(100)])
    loose = np.diag([4.0, 4.0, math.radians(100) ** 2])
    result = localizer.localize(image, camera, prior, loose, 0.0)
    assert result.yaw_hypotheses == 18
    assert result.pose is not None
    assert math.hypot(*(result.pose[:2] - truth[:2])) < 1.0
    assert abs(math.remainder(result.pose[2] - truth[2], 2 * math.pi)) < math.radians(3)
    # The same frame with a tight yaw prior runs the matcher once.
    tight = np.diag([4.0, 4.0, math.radians(2) ** 2])
    assert localizer.localize(image, camera, truth + np.array([1.5, -1.0, 0.02]), tight, 0.0).yaw_hypotheses == 1
    # Off: one run at the wrong yaw, which the matcher (trained for ±10°) cannot recover from.
    single = _localizer(tiny_drive, step_deg=0.0).localize(image, camera, prior, loose, 0.0)
    assert single.yaw_hypotheses == 1
    assert abs(math.remainder(single.pose[2] - truth[2], 2 * math.pi)) > math.radians(20)


def test_a_frame_below_the_validity_gate_says_so(tiny_drive, last_frame):
    """A frame the validity gate refuses names the effective-inlier count and the gate it missed
    (what an operator needs to see where availability went); an accepted one carries its count."""
    from dataclasses import replace

    image, truth = last_frame
    camera = MountedCamera.panorama(image.shape[1], image.shape[0], tiny_drive.camera_height_m)
    tight = np.diag([4.0, 4.0, math.radians(2) ** 2])
    accepted = _localizer(tiny_drive).localize(image, camera, truth, tight, 0.0)
    assert accepted.status.name == "OK" and accepted.effective_inliers > 0
    strict = _localizer(tiny_drive)
    pose = strict.matcher.config.pose
    strict.matcher.config = replace(strict.matcher.config, pose=replace(pose, min_effective_inliers=1e6))
    refused = strict.localize(image, camera, truth, tight, 0.0)
    assert refused.status.name == "LOW_CONFIDENCE"
    assert refused.effective_inliers == pytest.approx(accepted.effective_inliers, rel=1e-4)
    assert f"effective inliers {accepted.effective_inliers:.1f} below the panorama validity gate 1000000.0" \
        in refused.reason


def test_the_second_look_publishes_a_right_fix_the_gate_refused(tiny_drive, last_frame):
    """A right fix below the validity gate, matched again on a crop 8 m off, stays in place: it is
    published with the pose and covariance of an ungated solve, and says how far the two looks
    were apart. With the second look off the same frame stays refused."""
    from dataclasses import replace

    image, truth = last_frame
    camera = MountedCamera.panorama(image.shape[1], image.shape[0], tiny_drive.camera_height_m)
    tight = np.diag([4.0, 4.0, math.radians(2) ** 2])
    open_gate = _localizer(tiny_drive).localize(image, camera, truth, tight, 0.0)
    assert open_gate.status.name == "OK" and open_gate.second_look_m is None  # valid: no second look
    looked = _localizer(tiny_drive)
    pose = looked.matcher.config.pose
    gate = 1.5 * open_gate.effective_inliers  # refuses this frame; its count is above the second look's share
    looked.matcher.config = replace(looked.matcher.config, pose=replace(pose, min_effective_inliers=gate))
    result = looked.localize(image, camera, truth, tight, 0.0)
    assert result.status.name == "OK", result.reason
    assert result.second_look_m < looked.config.gate.second_look_tolerance_m
    assert "second_look" in result.timings_ms
    np.testing.assert_allclose(result.pose, open_gate.pose, atol=1e-4)
    np.testing.assert_allclose(result.covariance, open_gate.covariance, rtol=1e-3, atol=1e-9)
    # A tolerance no second look meets: refused, and the reason says by how much the looks disagreed.
    looked.config.gate.second_look_tolerance_m = 1e-6
    refused = looked.localize(image, camera, truth, tight, 0.0)
    assert refused.status.name == "LOW_CONFIDENCE"
    assert f"the second look, 8 m off, disagrees by {refused.second_look_m:.2f} m" in refused.reason
    looked.config.gate.second_look_tolerance_m, looked.config.gate.second_look_shift_m = 1.0, 0.0
    off = looked.localize(image, camera, truth, tight, 0.0)
    assert off.status.name == "LOW_CONFIDENCE" and off.second_look_m is None and "second_look" not in off.timings_ms


def test_the_second_look_refuses_a_fix_on_imagery_from_elsewhere(tiny_drive, last_frame):
    """The camera frame against aerial imagery of another place, with a validity gate just above
    what the matcher counts there (so that the second look runs): the two looks disagree and no
    fix is published."""
    from dataclasses import replace

    from cvfm_ros.maps.aerial_image import AerialImage

    image, truth = last_frame
    camera = MountedCamera.panorama(image.shape[1], image.shape[0], tiny_drive.camera_height_m)
    tight = np.diag([4.0, 4.0, math.radians(2) ** 2])
    localizer = _localizer(tiny_drive)
    pose = localizer.matcher.config.pose
    # Elsewhere: the same tiles 35 m away (the frame's place is outside the crop), served under the
    # frame's coordinates.
    far = 35.0 * np.array([math.cos(math.radians(150)), math.sin(math.radians(150))])
    elsewhere = localizer.tiles.read_patch(truth[:2] + far, 2 * localizer.aerial_size, localizer.aerial_mpp,
                                           min_coverage=0.0)
    source = AerialImage(elsewhere.image, localizer.aerial_mpp, origin_uv=(
        (elsewhere.image.shape[1] - 1) / 2 - truth[0] / localizer.aerial_mpp,
        (elsewhere.image.shape[0] - 1) / 2 + truth[1] / localizer.aerial_mpp))
    localizer.matcher.config = replace(localizer.matcher.config, pose=replace(pose, min_effective_inliers=0.0))
    ungated = localizer.localize(image, camera, truth, tight, 0.0, aerial=source)
    localizer.matcher.config = replace(localizer.matcher.config, pose=replace(
        pose, min_effective_inliers=1.01 * ungated.effective_inliers))
    result = localizer.localize(image, camera, truth, tight, 0.0, aerial=source)
    assert result.status.name == "LOW_CONFIDENCE"
    assert result.second_look_m > localizer.config.gate.second_look_tolerance_m


def test_baseline_searches_yaw_itself(tiny_drive, last_frame):
    image, truth = last_frame
    camera = MountedCamera.panorama(image.shape[1], image.shape[0], tiny_drive.camera_height_m)
    result = _localizer(tiny_drive, kind="baseline").localize(
        image, camera, truth, np.diag([4.0, 4.0, math.radians(100) ** 2]), 0.0)
    assert result.yaw_hypotheses == 1


def test_weights_refuse_camera_models_they_were_not_trained_for(tiny_drive, last_frame):
    """Panorama-only weights never publish a fix for a pinhole camera: BAD_INPUT naming why."""
    from cvfm_ros.geometry import PinholeCamera
    from cvfm_ros.runtime.localizer import build_matcher
    from cvfm_ros.runtime.result import Status

    s = NodeSettings()
    s.tiles.path, s.tiles.max_zoom = str(tiny_drive.tiles), 20
    s.datum.latitude, s.datum.longitude, s.datum.altitude = tiny_drive.datum
    s.matcher.backend = "torch"
    matcher = build_matcher(s.matcher)
    matcher.runtime_metadata = {**matcher.runtime_metadata, "camera_models": ["panorama"]}
    localizer = Localizer(s.localizer_config(), matcher=matcher)
    image, truth = last_frame
    pinhole = MountedCamera.forward_pinhole(PinholeCamera(128.0, 128.0, 127.5, 63.5, 256, 128), 1.8)
    result = localizer.localize(np.zeros((128, 256, 3), np.uint8), pinhole, truth, np.diag([4.0, 4.0, 0.01]), 0.0)
    assert result.status == Status.BAD_INPUT and "trained for panorama cameras only" in result.reason
    assert result.pose is None
    panorama = MountedCamera.panorama(image.shape[1], image.shape[0], tiny_drive.camera_height_m)
    assert localizer.localize(image, panorama, truth, np.diag([4.0, 4.0, 0.01]), 0.0).status != Status.BAD_INPUT


def test_an_image_that_is_no_panorama_is_refused(tiny_drive, last_frame):
    from cvfm_ros.runtime.result import Status

    localizer = _localizer(tiny_drive)
    image, truth = last_frame
    for h, w in ((10, 10000), (128, 128), (16, 32)):
        camera = MountedCamera.panorama(w, h, tiny_drive.camera_height_m)
        result = localizer.localize(np.zeros((h, w, 3), np.uint8), camera, truth, np.diag([4.0, 4.0, 0.01]), 0.0)
        assert result.status == Status.BAD_INPUT and "not an equirectangular panorama" in result.reason
        assert result.pose is None


def test_checkpoint_runtime_metadata_is_checked(tmp_path):
    import torch

    from cvfm_ros.runtime.localizer import SHIPPED_WEIGHTS, build_matcher
    from cvfm_ros.runtime.settings import MatcherSettings

    payload = torch.load(SHIPPED_WEIGHTS, map_location="cpu", weights_only=True)
    for key, value in (("aerial_mpp", 0.0), ("covariance_scale", 1e-6), ("covariance_floor", [0.1, -1.0, 0.1]),
                       ("camera_models", ["fisheye"]), ("aerial_mpp", float("nan")),
                       ("camera_covariance_scales", {"fisheye": 2.0}), ("camera_covariance_scales", {"rig": 0.0})):
        bad = dict(payload, extra=dict(payload["extra"], runtime={**payload["extra"]["runtime"], key: value}))
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match=f"runtime metadata {key}"):
            build_matcher(MatcherSettings(kind="model", weights=str(tmp_path / "bad.pt")))
