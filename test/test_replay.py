"""`cvfm-ros replay` on a generated drive: report files, numbers that agree with the TUM files,
and clear reports of broken inputs."""
import json
import shutil

import numpy as np
import pytest

from cvfm_ros.cli.main import main
from cvfm_ros.eval.metrics import TumTrajectory


@pytest.fixture(scope="module")
def replayed(tiny_drive, tmp_path_factory):
    out = tmp_path_factory.mktemp("replay")
    assert main(["replay", str(tiny_drive.root), "--out", str(out), "--matcher", "baseline", "--rate", "2", "--quiet",
                 "--out-bag"]) == 0
    return out


def test_report_files_exist(replayed):
    for name in ("estimates.tum", "fused.tum", "odometry.tum", "ground_truth.tum", "metrics.json", "report.html",
                 "trajectories.png", "error_over_time.png"):
        assert (replayed / name).is_file(), name
    html = (replayed / "report.html").read_text()
    assert "data:image/png;base64," in html and "availability" in html


def test_metrics_agree_with_tum_files(replayed):
    metrics = json.loads((replayed / "metrics.json").read_text())
    for key in ("raw", "fused", "odometry"):
        assert {"mean_m", "median_m", "p95_m", "max_m", "yaw_median_deg"} <= set(metrics[key])
    assert {"availability", "outlier_rate", "nees", "frames"} <= set(metrics)
    truth = TumTrajectory.read(replayed / "ground_truth.tum")
    for key, name in (("fused", "fused.tum"), ("odometry", "odometry.tum")):
        est = TumTrajectory.read(replayed / name)
        assert np.allclose(est.stamps, truth.stamps)
        err = np.hypot(*(est.xyz[:, :2] - truth.xyz[:, :2]).T)
        assert metrics[key]["median_m"] == pytest.approx(float(np.median(err)), abs=1e-4)
        assert metrics[key]["max_m"] == pytest.approx(float(err.max()), abs=1e-4)
    raw = TumTrajectory.read(replayed / "estimates.tum")
    assert metrics["availability"] == pytest.approx(len(raw.stamps) / metrics["frames"])


def test_output_bag_holds_the_published_poses_and_reports(replayed):
    from cvfm_ros.data.bags import MatchReport, read_bag, ros_to_planar_covariance

    raw = TumTrajectory.read(replayed / "estimates.tum")
    fused = TumTrajectory.read(replayed / "fused.tum")
    messages = list(read_bag(replayed / "localization"))
    poses = [m for m in messages if m.topic == "/cvfm_localizer/pose"]
    reports = [MatchReport.from_msg(m.message) for m in messages if m.topic == "/cvfm/match_report"]
    filtered = [m for m in messages if m.topic == "/odometry/filtered"]
    assert np.allclose([m.stamp_ns * 1e-9 for m in poses], raw.stamps, atol=1e-6)
    assert np.allclose([m.message.pose.pose.position.x for m in poses], raw.xyz[:, 0], atol=1e-4)
    assert all(m.message.header.frame_id == "map" for m in poses)
    cov = ros_to_planar_covariance(poses[0].message.pose.covariance)
    assert cov[0, 0] > 0 and cov[2, 2] > 0 and np.allclose(cov, cov.T)
    assert len(reports) == len(filtered) == len(fused.stamps)
    ok = [r for r in reports if r.status == "ok"]
    assert len(ok) == len(poses) and all(r.status_code == 0 and r.num_matches > 0 for r in ok)
    assert all(r.reason for r in reports if r.status != "ok")


def test_fused_beats_odometry(replayed):
    metrics = json.loads((replayed / "metrics.json").read_text())
    assert metrics["availability"] > 0.3
    assert metrics["fused"]["median_m"] < metrics["odometry"]["median_m"]


def test_missing_topic_is_reported(tiny_drive, tmp_path):
    code = main(["replay", str(tiny_drive.root), "--out", str(tmp_path / "o"), "--matcher", "baseline",
                 "--odom-topic", "/no_such_odom", "--quiet"])
    assert code == 2  # the required odometry topic is missing: a clear error, no report
    assert main(["replay", str(tiny_drive.root), "--out", str(tmp_path / "p"), "--matcher", "baseline", "--rate", "1",
                 "--truth-topic", "/no_truth", "--quiet"]) == 0
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert metrics["problems"].get("missing topic /no_truth") == 1


def test_truncated_bag_is_reported(tiny_drive, tmp_path):
    bag = tmp_path / "bag"
    shutil.copytree(tiny_drive.bag, bag)
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "out"
    code = main(["replay", str(bag), "--out", str(out), "--matcher", "baseline", "--tiles", str(tiny_drive.tiles),
                 "--datum", ",".join(map(str, tiny_drive.datum)), "--rate", "2", "--quiet"])
    if code == 0:
        metrics = json.loads((out / "metrics.json").read_text())
        assert any("truncated" in k for k in metrics["problems"]), metrics["problems"]
    else:
        assert code == 2  # unreadable before the first message: a clear error instead
