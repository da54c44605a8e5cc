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


def test_frames_csv_says_why_each_frame_was_or_was_not_published(replayed):
    """frames.csv: a row per processed frame, refused ones too, with the count the validity gate
    compared; its accepted rows are the published fixes and their errors the raw errors."""
    import csv

    rows = list(csv.DictReader((replayed / "frames.csv").read_text().splitlines()))
    metrics = json.loads((replayed / "metrics.json").read_text())
    assert len(rows) == metrics["frames"]
    ok = [r for r in rows if r["status"] == "OK"]
    assert all(r["reason"] for r in rows if r["status"] != "OK")
    raw = TumTrajectory.read(replayed / "estimates.tum")
    assert np.allclose([float(r["stamp"]) for r in ok], raw.stamps)
    assert np.allclose([[float(r["fix_x"]), float(r["fix_y"])] for r in ok], raw.xyz[:, :2], atol=1e-3)
    errors = [float(r["fix_error_m"]) for r in ok]
    assert metrics["raw"]["median_m"] == pytest.approx(float(np.median(errors)), abs=1e-3)
    assert all(float(r["effective_inliers"]) >= 0 for r in rows if r["status"] in ("OK", "LOW_CONFIDENCE"))


def test_output_bag_holds_the_published_poses_and_reports(replayed):
    from cvfm_ros.io import MatchReport, covariance_from_ros, read_bag

    raw = TumTrajectory.read(replayed / "estimates.tum")
    fused = TumTrajectory.read(replayed / "fused.tum")
    messages = list(read_bag(replayed / "localization"))
    poses = [m for m in messages if m.topic == "/cvfm_localizer/pose"]
    reports = [MatchReport.from_msg(m.message) for m in messages if m.topic == "/cvfm/match_report"]
    filtered = [m for m in messages if m.topic == "/odometry/filtered"]
    assert np.allclose([m.stamp_ns * 1e-9 for m in poses], raw.stamps, atol=1e-6)
    assert np.allclose([m.message.pose.pose.position.x for m in poses], raw.xyz[:, 0], atol=1e-4)
    assert all(m.message.header.frame_id == "map" for m in poses)
    cov = covariance_from_ros(poses[0].message.pose.covariance)
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
    # Without ground truth nothing is evaluated: the report is written and the exit code says so.
    assert main(["replay", str(tiny_drive.root), "--out", str(tmp_path / "p"), "--matcher", "baseline", "--rate", "1",
                 "--truth-topic", "/no_truth", "--quiet"]) == 1
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


def _replay(bags, out, *extra):
    return main(["replay", *map(str, bags), "--out", str(out), "--matcher", "baseline", "--rate", "2", "--quiet",
                 *extra])


def test_a_failed_run_leaves_the_previous_folder_whole(tiny_drive, tmp_path, monkeypatch):
    """replay wrote its folder file by file and --out-bag deleted the old bag before the new one
    landed: a killed run left new metrics beside an old report (issue 12, item 13)."""
    import cvfm_ros.eval.bag_replay as bag_replay

    out = tmp_path / "out"
    assert _replay([tiny_drive.root], out, "--out-bag") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bag_replay, "write_output_bag", disk_full)
    assert _replay([tiny_drive.root], out, "--out-bag", "--seed", "5") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert (out / "localization").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no half-written sibling left


def test_out_is_checked_before_any_work(tiny_drive, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    assert _replay([tiny_drive.root], tmp_path / "a_file") == 2
    assert "--out" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert _replay([tiny_drive.root], tmp_path / "mine") == 2
    assert "thesis.tex" in capsys.readouterr().err and (tmp_path / "mine" / "thesis.tex").is_file()


def test_one_bad_bag_does_not_abort_the_batch(tiny_drive, tmp_path, capsys):
    out = tmp_path / "batch"
    assert _replay([tmp_path / "missing_bag", tiny_drive.root], out) == 1
    assert (out / tiny_drive.root.name / "metrics.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert "does not exist" in summary[str(tmp_path / "missing_bag")]["error"]
    assert "FAILED" in capsys.readouterr().err


def _write_twice(src, dst):
    """The drive's bag recorded twice into one bag: the second run's header stamps start again
    (a sim-time reset during recording), its record times go on."""
    from rosbags.rosbag2 import Reader, Writer

    with Reader(src) as reader:
        messages = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
        conns = list(reader.connections)
    span = messages[-1][1] - messages[0][1] + 10**9
    writer = Writer(dst, version=9)
    writer.open()
    out = {c.topic: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest)
           for c in conns}
    for run in range(2):
        for topic, t, raw in messages:
            writer.write(out[topic], t + run * span, raw)
    writer.close()


def test_a_clock_jump_is_replayed_as_two_runs(tiny_drive, tmp_path):
    """Sorting a bag with a restarted clock by header stamp merged two runs into one (a 5.7 m fix,
    NEES 1672; issue 12, item 15). Each run is now replayed and seeded on its own."""
    from cvfm_ros.io import read_bag

    bag = tmp_path / "twice"
    _write_twice(tiny_drive.bag, bag)
    stream = read_bag(bag, None, split_on_jump_s=1.0)
    assert stream.segments == 2
    out = tmp_path / "out"
    assert _replay([bag], out, "--tiles", str(tiny_drive.tiles), "--datum", ",".join(map(str, tiny_drive.datum))) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    single = tmp_path / "single"
    assert _replay([tiny_drive.root], single) == 0
    once = json.loads((single / "metrics.json").read_text())
    assert metrics["frames"] == 2 * once["frames"]
    assert any("replayed as 2 runs" in k for k in metrics["problems"]), metrics["problems"]
    assert metrics["fused"]["max_m"] < 2 * once["fused"]["max_m"] + 1.0


def test_a_bag_without_a_datum_says_so(tiny_drive, tmp_path):
    """Without --datum a bag was silently localized around the example datum (Seattle) of the
    shipped parameters (issue 12, item 16): the report now names it."""
    out = tmp_path / "out"
    _replay([tiny_drive.bag], out, "--tiles", str(tiny_drive.tiles))
    metrics = json.loads((out / "metrics.json").read_text())
    assert any("datum" in k for k in metrics["problems"]), metrics["problems"]


def test_replay_follows_camera_model_as_the_node_does(tiny_drive, tmp_path):
    """Replay used any camera_info it found while the node follows camera.model (issue 12, item
    16): a panorama drive replayed with camera.model pinhole localizes nothing, as the node would."""
    import yaml

    from cvfm_ros.cli.replay import REPO_CONFIG

    config = yaml.safe_load(REPO_CONFIG.read_text())
    config["/**/cvfm_localizer"]["ros__parameters"]["camera"]["model"] = "pinhole"
    path = tmp_path / "pinhole.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    _replay([tiny_drive.bag], out, "--config", str(path), "--tiles", str(tiny_drive.tiles),
            "--datum", ",".join(map(str, tiny_drive.datum)))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 0
    assert any("camera.model is 'pinhole'" in k for k in metrics["problems"]), metrics["problems"]


def test_node_and_replay_share_one_odometry_rule():
    """The node refused non-unit quaternions, replay normalised them (issue 12, item 16)."""
    from types import SimpleNamespace as NS

    from cvfm_ros.io import odometry_to_se2

    def odom(q):
        return NS(pose=NS(pose=NS(position=NS(x=1.0, y=2.0, z=0.0), orientation=NS(x=0.0, y=0.0, z=q[0], w=q[1]))))

    assert float(odometry_to_se2(odom((0.0, 1.0))).data[2]) == 0.0
    with pytest.raises(ValueError, match="unit quaternion"):
        odometry_to_se2(odom((0.0, 0.9)))
    rclpy = pytest.importorskip("rclpy")  # noqa: F841
    from nav_msgs.msg import Odometry

    from cvfm_ros.ros.conversions import odometry_to_pose

    msg = Odometry()
    msg.pose.pose.orientation.w = 0.9
    with pytest.raises(ValueError, match="unit quaternion"):
        odometry_to_pose(msg)
