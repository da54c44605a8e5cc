"""Camera rigs (issue 14): several pinholes lifted into one BEV, through the runtime localizer on
every backend, on a synthetic rig pair with exact truth."""
import math

import numpy as np
import pytest

from cvfm_ros.data.synth import generate_world, make_pair
from cvfm_ros.eval.benchmark import benchmark_rig
from cvfm_ros.maps.aerial_image import AerialImage
from cvfm_ros.runtime.localizer import Localizer
from cvfm_ros.runtime.result import Status

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LITE0 = "cvfm_ros/weights/matcher_lite0_rig.pt"  # the Lite0 matcher fine-tuned on rigs (config/train_rig_lite0.yaml)


@pytest.fixture(scope="module")
def rig_pair():
    world = generate_world("suburb", 7, size_m=160.0)
    # Each camera's image at twice the matcher's input size: the localizer resizes them.
    rig = benchmark_rig((256, 512), np.random.default_rng(3))
    s = make_pair(world, np.random.default_rng(11), ground_size=(512, 256), aerial_size=200, mpp=0.3,
                  max_offset_frac=0.1, camera_override=rig)
    truth = np.array([s.pose[0] - s.aerial_center[0], s.pose[1] - s.aerial_center[1], s.pose[2]])
    return s, truth


def _localize(localizer, s, truth, images=None, camera=None):
    prior = np.array([truth[0] + 2.0, truth[1] - 1.5, truth[2] + math.radians(4)])
    return localizer.localize(list(s.ground) if images is None else images, camera or s.camera, prior,
                              np.diag([9.0, 9.0, math.radians(8) ** 2]), 0.0, aerial=AerialImage(s.aerial, s.mpp))


def test_a_rig_localizes_and_every_backend_agrees(rig_pair, tmp_path):
    s, truth = rig_pair
    assert s.ground.shape == (4, 256, 512, 3) and s.visible.shape == (4, 256, 512)
    results = {}
    for backend in ("torch", "onnxruntime"):
        localizer = Localizer.from_weights(LITE0, backend=backend)
        localizer.cache_dir = tmp_path
        assert localizer.prepare(s.camera).startswith(backend)
        results[backend] = _localize(localizer, s, truth)
    torch_result = results["torch"]
    assert torch_result.ok, torch_result.reason
    assert math.hypot(*(torch_result.pose[:2] - truth[:2])) < 1.0
    assert abs(math.remainder(torch_result.pose[2] - truth[2], 2 * math.pi)) < math.radians(2)
    assert np.allclose(results["onnxruntime"].pose, torch_result.pose, atol=0.05)


def test_rig_frames_that_do_not_fit_are_bad_input(rig_pair):
    s, truth = rig_pair
    localizer = Localizer.from_weights(LITE0, backend="torch")
    three = _localize(localizer, s, truth, images=list(s.ground[:3]))
    assert three.status is Status.BAD_INPUT and "a rig of 4 cameras needs a list of 4 images" in three.reason
    small = list(s.ground)
    small[2] = small[2][::2, ::2].copy()
    wrong = _localize(localizer, s, truth, images=small)
    assert wrong.status is Status.BAD_INPUT and wrong.reason.startswith("rig camera rear: image: 256x128")
    shipped = Localizer.from_weights(backend="torch")  # trained on panoramas only
    assert "trained for panorama cameras only" in _localize(shipped, s, truth).reason
    baseline = Localizer.from_weights(matcher="baseline")
    assert "lifts one camera only" in _localize(baseline, s, truth).reason


def test_a_rig_drive_replays_with_one_frame_per_capture(tiny_rig_drive, tmp_path):
    """`synth drive --camera rig:...` writes one image + camera_info topic per camera and one TF per
    camera frame; replay groups each capture into one rig frame and localizes it."""
    import json

    from cvfm_ros.cli.main import main
    from cvfm_ros.io import read_bag

    topics = read_bag(tiny_rig_drive.bag, None).topics
    for name in ("front", "left", "rear", "right"):
        assert f"/cameras/{name}/image_raw" in topics and f"/cameras/{name}/camera_info" in topics
    out = tmp_path / "replay"
    assert main(["replay", str(tiny_rig_drive.root), "--out", str(out), "--weights", LITE0, "--backend", "torch",
                 "--rate", "2", "--quiet", "--seed-std", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 7  # 3 s at 2 Hz: every capture is one frame, not four
    assert metrics["raw"]["count"] >= 1 and metrics["raw"]["median_m"] < 1.5
    assert not any("rig images left out" in p for p in metrics.get("problems", {}))
    # A template without {name} cannot name the rig's topics: refused, naming the option.
    assert main(["replay", str(tiny_rig_drive.root), "--out", str(tmp_path / "bad"), "--weights", LITE0,
                 "--image-topic", "/front/image_raw", "--quiet"]) != 0


def test_rig_fixes_take_the_covariance_scale_calibrated_for_rigs(tiny_rig_drive, tmp_path):
    """Each camera kind publishes the covariance scale calibrated on its own drives (a rig's errors
    relative to the matcher's covariance are not a panorama's): the panorama scale leaves a rig
    replay alone, doubling the rig's scale doubles the scaled part of its fixes' covariance."""
    import numpy as np
    import torch

    from cvfm_ros.eval.drive_calibration import replay_fixes

    payload = torch.load(LITE0, map_location="cpu", weights_only=True)
    runtime = payload["extra"]["runtime"]
    scale = runtime["covariance_scale"]

    def replay(name: str, **metadata):
        path = tmp_path / name
        torch.save(dict(payload, extra=dict(payload["extra"], runtime={**runtime, **metadata})), path)
        return replay_fixes(str(path), tiny_rig_drive.root, rate_hz=2.0)

    errors, covariances, localizer = replay("rig.pt", camera_covariance_scales={"rig": scale})
    assert len(errors) >= 1
    other_panorama = replay("pano.pt", covariance_scale=10 * scale, camera_covariance_scales={"rig": scale})
    np.testing.assert_allclose(other_panorama[0], errors)
    np.testing.assert_allclose(other_panorama[1], covariances)
    # Until a first fix is accepted nothing depends on the scale: the first fix is the same one.
    doubled_errors, doubled, _ = replay("rig2.pt", camera_covariance_scales={"rig": 2 * scale})
    np.testing.assert_allclose(doubled_errors[0], errors[0])
    floor = localizer.covariance_floor
    np.testing.assert_allclose(doubled[0] - floor, 2 * (covariances[0] - floor), rtol=1e-6, atol=1e-12)


def test_release_drive_calibration_calibrates_the_rig_on_rig_drives(tiny_rig_drive, tmp_path):
    """`release --calibrate-drives` calibrates each camera kind on drives of that kind: the rig
    kind replays the rig drive found at its calibration folder and gets a scale of its own."""
    from cvfm_ros.eval.drive_calibration import calibrate_on_drives, calibration_drive

    folder = calibration_drive(tmp_path, "rig", 0, 3.0)
    assert "rig" in folder.name
    folder.symlink_to(tiny_rig_drive.root, target_is_directory=True)
    result = calibrate_on_drives(LITE0, 1, tmp_path, ("rig",), duration_s=3.0, progress=False)
    assert set(result["scales"]) == {"rig"} and result["fixes"]["rig"] >= 1
    assert 1e-2 <= result["scales"]["rig"] <= 1e4
    assert result["report"][0].startswith(f"covariance calibration (rig) on {result['fixes']['rig']} accepted fixes")
    with pytest.raises(ValueError, match="unknown camera kinds"):
        calibrate_on_drives(LITE0, 1, tmp_path, ("fisheye",), duration_s=3.0)
