import json

import pytest

from cvfm_ros.cli.main import main
from cvfm_ros.eval.benchmark import markdown_table


def test_eval_writes_the_documented_json(tmp_path):
    out = tmp_path / "e.json"
    assert main(["eval", "--benchmark", "synth-cross", "--matcher", "baseline", "--count", "3",
                 "--cache", str(tmp_path / "cache"), "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    for key in ("mean", "median", "p95"):
        assert key in result["position_error_m"] and key in result["yaw_error_deg"]
    assert set(result["recall"]) == {"1m", "3m", "5m", "1deg", "3deg", "5deg"}
    assert set(result["match_precision"]) == {"5px", "10px", "15px"}
    assert result["count"] == 3 and len(result["per_sample"]["position_error_m"]) == 3
    assert result["settings"]["data"] == "synth-cross" and result["settings"]["prior_xy_m"] == 10.0
    # the draw is cached and reused: a second run gives the same per-sample errors
    assert main(["eval", "--benchmark", "synth-cross", "--matcher", "baseline", "--count", "3",
                 "--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "f.json"), "--quiet"]) == 0
    again = json.loads((tmp_path / "f.json").read_text())
    assert again["per_sample"]["position_error_m"] == result["per_sample"]["position_error_m"]
    # the model card's table is rendered from these JSONs
    table = markdown_table([("baseline", result)]).splitlines()
    assert len(table) == 3 and table[2].startswith("| baseline | synth-cross (seed 0) | known | 3 |")
    assert f"{result['position_error_m']['median']:.2f}" in table[2]


def test_eval_rejects_bad_count(tmp_path):
    assert main(["eval", "--matcher", "baseline", "--count", "0", "--json", str(tmp_path / "x.json")]) == 2


def test_covariance_calibration_recovers_a_known_underestimate(tmp_path):
    """A matcher whose errors are twice the standard deviation it reports needs a scale of 4."""
    import numpy as np
    import torch

    from cvfm_ros.eval.benchmark import calibrate_covariance_scale

    class Overconfident(torch.nn.Module):
        config = type("C", (), {"ground_hw": (8, 16)})()

        def __init__(self, errors):
            super().__init__()
            self.errors, self.k = errors, 0

        def set_camera(self, camera):
            self.camera = camera

        def forward(self, batch):
            truth = self.truths[self.k]
            pose = torch.tensor(truth + self.errors[self.k])[None]
            self.k += 1
            return {"pose": pose, "valid": torch.tensor([True]),
                    "covariance": torch.diag(torch.tensor([0.25, 0.25, 1e-4], dtype=torch.float64))[None]}

    rng = np.random.default_rng(0)
    count = 400
    errors = rng.normal(size=(count, 3)) * 2 * np.sqrt([0.25, 0.25, 1e-4])
    files, truths = [], []
    for i in range(count):
        pose, center = rng.uniform(-50, 50, 3), rng.uniform(-50, 50, 2)
        pose[2] = rng.uniform(-3.0, 3.0)
        path = tmp_path / f"p{i}.npz"
        np.savez(path, ground=np.zeros((8, 16, 3), np.uint8), aerial=np.zeros((4, 4, 3), np.uint8), pose=pose,
                 center=center, prior_yaw=pose[2], camera_height=1.7)
        files.append(path)
        truths.append(np.array([pose[0] - center[0], pose[1] - center[1], pose[2]]))
    matcher = Overconfident(errors)
    matcher.truths = truths
    result = calibrate_covariance_scale(matcher, files, 0.4, (1e-9, 1e-9, 1e-12))
    assert result["valid_pairs"] == count
    assert 3.4 < result["covariance_scale"] < 4.7
    assert result["median_nees_unscaled"] > 4 * 2.0


def test_validity_gate_calls_mismatched_pairs_invalid(tmp_path):
    """The calibrated gate passes none of the pairs whose aerial patch shows another place, and
    keeps fixes on the right place (shipped weights, a small synth-same draw)."""
    from dataclasses import replace

    import numpy as np
    import torch

    from cvfm_ros.eval.benchmark import benchmark_pairs, calibrate_validity_gate, load_pair
    from cvfm_ros.runtime.localizer import build_matcher
    from cvfm_ros.runtime.settings import MatcherSettings

    torch.set_num_threads(1)
    matcher = build_matcher(MatcherSettings(kind="model")).eval()
    files = benchmark_pairs("synth-same", 1, 20, tmp_path, matcher.config.ground_hw, matcher.config.aerial_hw[0], 0.4, 10.0)
    shipped_gate = matcher.config.pose.min_effective_inliers
    gate = calibrate_validity_gate(matcher, files, 0.4)
    assert gate["negatives_valid_after"] == 0.0 and gate["positives_valid_after"] > 0.5
    assert gate["negatives_valid_before"] > 0.0  # without the gate some mismatched pairs pass
    assert gate["min_effective_inliers"] >= 0.0
    assert matcher.config.pose.min_effective_inliers == shipped_gate  # the matcher is left as it was
    # With the threshold in the matcher, mismatched pairs come out invalid from the model itself.
    matcher.config = replace(matcher.config, pose=replace(matcher.config.pose,
                                                          min_effective_inliers=gate["min_effective_inliers"]))
    for i, path in enumerate(files):
        batch, _, _ = load_pair(path, matcher, 0.4)
        other, _, _ = load_pair(files[(i + 10) % 20], matcher, 0.4)
        load_pair(path, matcher, 0.4)
        with torch.inference_mode():
            assert not bool(matcher({**batch, "aerial": other["aerial"]})["valid"][0])
    with np.testing.assert_raises(ValueError):
        calibrate_validity_gate(matcher, files[:19], 0.4)


def test_eval_pinhole_benchmark_uses_a_90_degree_forward_camera(tmp_path):
    import math

    import numpy as np

    out = tmp_path / "p.json"
    assert main(["eval", "--benchmark", "synth-cross", "--camera", "pinhole", "--matcher", "baseline", "--count", "2",
                 "--cache", str(tmp_path / "cache"), "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["camera"] == "pinhole" and result["count"] == 2
    folders = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len(folders) == 1 and folders[0].endswith("_pinhole")
    pair = np.load(next((tmp_path / "cache" / folders[0]).iterdir()))
    fx, fy, cx, cy = pair["intrinsics"]
    assert fx == fy and math.degrees(2 * math.atan(0.5 * 256 / fx)) == pytest.approx(90.0)
    # the camera looks forward and sees the ground: valid correspondences exist in its lower half
    assert pair["visible"][64:].any() and not pair["visible"][:20].any()


def test_covariance_scale_for_mean_nees_recovers_the_true_scale():
    """Drive calibration (issue 12, item 9): errors drawn with covariance 4 C + floor give back 4."""
    import numpy as np

    from cvfm_ros.eval.drive_calibration import scale_for_mean_nees

    rng = np.random.default_rng(0)
    floor = np.diag([0.01, 0.01, 1e-4])
    model = np.stack([np.diag(rng.uniform(0.05, 0.5, 3)) for _ in range(4000)])
    errors = np.stack([rng.multivariate_normal(np.zeros(3), 4.0 * c + floor) for c in model])
    assert abs(scale_for_mean_nees(errors, model, floor) - 4.0) < 0.25


def test_drive_replay_fixes_calibrate_to_nees_three(tiny_drive):
    import numpy as np

    from cvfm_ros.eval.drive_calibration import replay_fixes, scale_for_mean_nees
    from cvfm_ros.eval.metrics import nees
    from cvfm_ros.runtime.localizer import SHIPPED_WEIGHTS

    errors, covs, localizer = replay_fixes(str(SHIPPED_WEIGHTS), tiny_drive.root, rate_hz=2.0)
    assert len(errors) >= 3
    model = (covs - localizer.covariance_floor) / localizer.covariance_scale
    scale = scale_for_mean_nees(errors, model, localizer.covariance_floor)
    assert np.mean(nees(errors, scale * model + localizer.covariance_floor)) == pytest.approx(3.0, rel=1e-3)
