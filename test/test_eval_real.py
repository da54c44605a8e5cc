"""`cvfm-ros eval --real`: the real-pair protocol on manifests in the format of ../shared/data/real.

The pairs here are synthetic (rendered by the data engine, written as ordinary image files with a
manifest) so that the truth is exact: a wrong sign or frame in the protocol shows as large errors.
"""
import json
import math

import cv2
import numpy as np
import pytest

from cvfm_ros.cli.main import main
from cvfm_ros.data.synth import generate_world, make_pair
from cvfm_ros.eval.real_pairs import PRIOR_YAW_DEG, load_manifest, prior_draws, summarize_real
from cvfm_ros.geometry import MountedCamera, PinholeCamera

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write_pair(folder, name, sample, extra_camera=None):
    """Write a synthetic sample as a manifest entry (aerial at its own size and resolution)."""
    (folder / name).mkdir()
    cv2.imwrite(str(folder / name / "pano.png"), cv2.cvtColor(sample.ground, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / name / "sat.png"), cv2.cvtColor(sample.aerial, cv2.COLOR_RGB2BGR))
    n = sample.aerial.shape[0]
    u = (sample.pose[0] - sample.aerial_center[0]) / sample.mpp + (n - 1) / 2
    v = -(sample.pose[1] - sample.aerial_center[1]) / sample.mpp + (n - 1) / 2
    camera = {"model": "equirectangular", "height_m": sample.camera.height_m}
    camera.update(extra_camera or {})
    return {"name": name, "ground": f"{name}/pano.png", "aerial": f"{name}/sat.png", "camera": camera,
            "aerial_mpp": sample.mpp, "camera_uv": [float(u), float(v)], "yaw_deg": math.degrees(sample.pose[2]),
            "max_prior_offset_m": 5.0, "source": "synthetic test pair", "label": "exact"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    world = generate_world("suburb", 7, size_m=160.0)
    entries = []
    # A 512x256 panorama over a 320 px aerial image at 0.25 m/px (the matcher uses 0.4 m/px).
    for i in range(2):
        s = make_pair(world, np.random.default_rng(100 + i), camera="pano", ground_size=(512, 256),
                      aerial_size=320, mpp=0.25, max_offset_frac=0.1)
        entries.append(_write_pair(folder, f"pano_{i}", s))
    # A 640x480 pinhole with a 90 deg FOV (resized non-uniformly to the matcher's input).
    f = 320.0
    cam = PinholeCamera(f, f, 319.5, 239.5, 640, 480)
    mounted = MountedCamera.forward_pinhole(cam, 1.8)
    s = make_pair(world, np.random.default_rng(200), camera="pinhole", ground_size=(640, 480), aerial_size=320,
                  mpp=0.25, max_offset_frac=0.1, camera_override=mounted)
    entries.append(_write_pair(folder, "pinhole_0", s, {"model": "pinhole", "K": [f, 0, 319.5, 0, f, 239.5, 0, 0, 1],
                                                        "width": 640, "height": 480}))
    path = folder / "pairs.json"
    path.write_text(json.dumps(entries))
    return path


def test_prior_draws_follow_the_protocol():
    draws = prior_draws(3, 10.0, 500, seed=0)
    assert draws.shape == (500, 3)
    assert np.hypot(draws[:, 0], draws[:, 1]).max() <= 10.0
    assert np.abs(np.degrees(draws[:, 2])).max() <= PRIOR_YAW_DEG
    # area-uniform in the disc: about a quarter of the draws lie within half the radius
    assert 0.18 < (np.hypot(draws[:, 0], draws[:, 1]) < 5.0).mean() < 0.32
    assert np.array_equal(draws, prior_draws(3, 10.0, 500, seed=0))
    assert not np.array_equal(draws, prior_draws(4, 10.0, 500, seed=0))


def test_eval_real_localizes_exact_synthetic_pairs_and_writes_the_documented_json(manifest, tmp_path):
    out = tmp_path / "real.json"
    assert main(["eval", "--real", str(manifest), "--matcher", "baseline", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["count"] == 3 * 8 and result["pairs"] == 3
    for key in ("position_error_m", "yaw_error_deg", "recall", "better_than_prior", "valid"):
        assert key in result
    assert set(result["valid"]) >= {"count", "max_error_m", "median_error_m"}
    rows = result["per_sample"]
    assert len(rows) == 24 and {r["pair"] for r in rows} == {"pano_0", "pano_1", "pinhole_0"}
    assert all(r["prior_error_m"] <= 5.0 for r in rows)
    # On an exact synthetic panorama that the baseline can match, every draw lands within
    # decimetres whatever the prior: a flipped axis, a wrong resolution or a wrong prior centre
    # would put it metres off. (pano_1 is a pair the baseline fails on; it still must run.)
    pano = [r for r in rows if r["pair"] == "pano_0"]
    assert max(r["position_error_m"] for r in pano) < 0.5
    assert max(r["yaw_error_deg"] for r in pano) < 2.0
    assert all(r["position_error_m"] < r["prior_error_m"] for r in pano)
    assert result["settings"]["data"] == "real:pairs.json" and result["settings"]["priors_per_pair"] == 8
    # valid fixes carry the NEES of the covariance the localizer would publish
    assert all((r["nees"] is not None) == r["valid"] for r in rows)
    assert result["valid"]["nees_median"] is None or result["valid"]["nees_median"] > 0
    # the same seed gives the same draws
    assert main(["eval", "--real", str(manifest), "--matcher", "baseline", "--json", str(tmp_path / "b.json"),
                 "--quiet"]) == 0
    again = json.loads((tmp_path / "b.json").read_text())
    assert [r["position_error_m"] for r in again["per_sample"]] == [r["position_error_m"] for r in rows]


def test_eval_real_runs_the_model_on_panorama_and_pinhole_entries(manifest, tmp_path):
    out = tmp_path / "model.json"
    assert main(["eval", "--real", str(manifest), "--priors", "2", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["count"] == 6 and all(math.isfinite(r["position_error_m"]) for r in result["per_sample"])


def test_summary_counts_better_than_prior_and_valid_fixes():
    rows = [{"pair": "a", "draw": 0, "prior_error_m": 5.0, "position_error_m": 1.0, "yaw_error_deg": 1.0, "valid": True, "ms": 1},
            {"pair": "a", "draw": 1, "prior_error_m": 2.0, "position_error_m": 4.0, "yaw_error_deg": 2.0, "valid": True, "ms": 1},
            {"pair": "b", "draw": 0, "prior_error_m": 9.0, "position_error_m": 12.0, "yaw_error_deg": 9.0, "valid": False,
             "ms": 1}]
    s = summarize_real(rows)
    assert s["better_than_prior"] == pytest.approx(1 / 3)
    assert s["valid"]["count"] == 2 and s["valid"]["max_error_m"] == 4.0 and s["valid"]["median_error_m"] == 2.5
    assert s["recall"]["5m"] == pytest.approx(2 / 3)
    none_valid = summarize_real([dict(rows[2])])
    assert none_valid["valid"] == {"count": 0, "share": 0.0, "max_error_m": None, "median_error_m": None,
                                   "nees_median": None}


def test_bad_manifests_name_the_entry_and_key(manifest, tmp_path):
    entries = json.loads(manifest.read_text())
    cases = [
        ({"camera": {"model": "fisheye", "height_m": 2}}, r"\[0\]\.camera\.model"),
        ({"aerial_mpp": 0}, r"\[0\]\.aerial_mpp: expected a positive number"),
        ({"camera_uv": [1]}, r"\[0\]\.camera_uv"),
        ({"ground": "missing.png"}, r"\[0\]\.ground: .*missing\.png not found"),
        ({"camera": {"model": "pinhole", "height_m": 1.5, "K": [1, 2], "width": 64, "height": 48}}, r"camera\.K"),
        ({"name": entries[1]["name"]}, r"\[1\]\.name: expected a unique"),
    ]
    for i, (change, pattern) in enumerate(cases):
        bad = [dict(entries[0], **change), *entries[1:]]
        path = manifest.parent / f"bad_{i}.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=pattern):
            load_manifest(path)
    (manifest.parent / "empty.json").write_text("[]")
    with pytest.raises(ValueError, match="non-empty JSON list"):
        load_manifest(manifest.parent / "empty.json")
    with pytest.raises(ValueError, match="not found"):
        load_manifest(tmp_path / "nope.json")
    # the CLI turns it into exit status 2 with the message
    assert main(["eval", "--real", str(tmp_path / "nope.json"), "--json", str(tmp_path / "x.json")]) == 2


def test_eval_real_counts_the_second_look_as_the_localizer_would(manifest):
    """A draw the validity gate refuses is valid where the localizer's second look (a crop 8 m
    off) agrees, as the localizer would publish it; without the second look the gate alone counts."""
    from dataclasses import replace

    from cvfm_ros.eval.real_pairs import evaluate_real
    from cvfm_ros.runtime.localizer import build_matcher
    from cvfm_ros.runtime.settings import MatcherSettings

    matcher = build_matcher(MatcherSettings())  # the shipped weights, as `cvfm-ros eval` loads them
    mpp = float(matcher.runtime_metadata["aerial_mpp"])
    pairs = [p for p in load_manifest(manifest) if p.name == "pano_0"]
    opened = evaluate_real(matcher, pairs, mpp, priors=3, progress=False, second_look=None)
    counts = [r["effective_inliers"] for r in opened["per_sample"]]
    # A gate above every draw's count, with each draw above the second look's share of it.
    matcher.config = replace(matcher.config, pose=replace(matcher.config.pose, min_effective_inliers=1.2 * max(counts),
                                                          camera_gates={}))
    assert 0.4 * 1.2 * max(counts) < min(counts)
    gated = evaluate_real(matcher, pairs, mpp, priors=3, progress=False, second_look=None)
    assert gated["valid"]["count"] == 0 and all(r["second_look"] is None for r in gated["per_sample"])
    looked = evaluate_real(matcher, pairs, mpp, priors=3, progress=False)
    rows = looked["per_sample"]
    assert all(r["second_look"] is not None for r in rows)
    assert [r["valid"] for r in rows] == [r["second_look"]["accepted"] for r in rows]
    assert looked["valid"]["count"] >= 1
    assert all(r["position_error_m"] < 1.0 and r["nees"] is not None for r in rows if r["valid"])
    assert all(r["second_look"]["disagreement_m"] > 1.0 or r["second_look"]["disagreement_deg"] > 3.0
               for r in rows if not r["valid"])
