"""Round trips through rosbag2 bags (MCAP and SQLite3) and the message converters."""
from __future__ import annotations

import math
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cvfm_ros.io import (
    MATCH_REPORT_TYPE,
    UNESTIMATED_VARIANCE,
    BagTopics,
    DriveBagWriter,
    MatchReport,
    camera_info_to_camera,
    image_to_numpy,
    make_typestore,
    odometry_covariance,
    odometry_to_se2,
    odometry_twist,
    read_bag,
    covariance_from_ros,
    covariance_to_ros,
    stamp_to_ns,
    transform_to_se3,
)
from cvfm_ros.geometry import SE2, MountedCamera, PanoramaCamera, PinholeCamera

T0 = 1_700_000_000_123_456_789  # an epoch-sized stamp: nanoseconds must survive exactly
CAMERA = PinholeCamera(320.0, 318.0, 159.5, 119.5, 320, 240, (-0.12, 0.03, 0.001, -0.002, 0.0))


def _images(n: int, h: int = 48, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Smooth random images (JPEG-friendly) with a little per-pixel texture."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1)
        out.append(np.clip(base + rng.integers(-3, 4, (h, w, 3)), 0, 255).astype(np.uint8))
    return out


def _write_drive(path: Path, storage: str, compressed, n: int = 5) -> dict:
    imgs = _images(n)
    poses = [(1.5 * i, -0.5 * i, math.pi - 0.3 * i) for i in range(n)]  # crosses the +-pi seam
    mounted = MountedCamera.forward_pinhole(CAMERA, 1.6, 0.05)
    reports = []
    with DriveBagWriter(path, storage, compressed) as bag:
        bag.write_tf_static(T0, [("base_link", "camera_optical_frame", mounted.base_from_camera)])
        for i in range(n):
            stamp = T0 + i * 100_000_000
            bag.write_image(stamp, imgs[i])
            bag.write_camera_info(stamp, CAMERA)
            cov = np.array([[0.5 + i, 0.1, 0.0], [0.1, 0.7, 0.02], [0.0, 0.02, 0.01]])
            bag.write_odometry(stamp, poses[i], linear_velocity=8.0 + i, yaw_rate=-0.1 * i, covariance=cov)
            bag.write_ground_truth(stamp, SE2.from_xy_yaw(poses[i][0] + 100.0, poses[i][1], poses[i][2]))
            report = MatchReport(MatchReport.STATUS_CODES["ok"], "ok", num_matches=100 + i, score=0.5,
                                 time_model_ms=12.5, time_total_ms=30.0 + i, x=poses[i][0], y=poses[i][1],
                                 yaw=poses[i][2], covariance=np.diag([0.1, 0.2, 0.003]).reshape(-1))
            reports.append(report)
            bag.write_match_report(stamp, report)
    return {"images": imgs, "poses": poses, "reports": reports, "mounted": mounted}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, "png", "jpeg"])
def test_round_trip(tmp_path, storage, compressed):
    path = tmp_path / "drive"
    truth = _write_drive(path, storage, compressed)
    assert path.is_dir() and (path / "metadata.yaml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["drive"], "temporary files left behind"
    image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    topics = ["/tf_static", "/camera/camera_info", image_topic, "/odom", "/ground_truth/odom", "/cvfm/match_report"]
    stream = read_bag(path, topics)
    assert stream.error is None
    assert stream.counts == {"/tf_static": 1, "/camera/camera_info": 5, image_topic: 5, "/odom": 5,
                             "/ground_truth/odom": 5, "/cvfm/match_report": 5}
    messages = list(stream)
    assert len(messages) == 26
    # Header-stamp order, ties in the order the topics were asked for.
    keys = [(m.stamp_ns, topics.index(m.topic)) for m in messages]
    assert keys == sorted(keys)
    by_topic: dict[str, list] = {}
    for m in messages:
        by_topic.setdefault(m.topic, []).append(m)
        header = m.message.header if hasattr(m.message, "header") else m.message.transforms[0].header
        assert stamp_to_ns(header.stamp) == m.stamp_ns

    for i, m in enumerate(by_topic[image_topic]):
        assert m.stamp_ns == T0 + i * 100_000_000
        got = image_to_numpy(m.message)
        assert got.shape == (48, 64, 3) and got.dtype == np.uint8
        if compressed == "jpeg":
            assert m.message.format.startswith("rgb8; jpeg")
            assert np.abs(got.astype(int) - truth["images"][i]).mean() < 3.0
        else:
            np.testing.assert_array_equal(got, truth["images"][i])
    for i, m in enumerate(by_topic["/odom"]):
        pose = odometry_to_se2(m.message)
        x, y, yaw = truth["poses"][i]
        assert pose.data.dtype == torch.float64
        assert pose.x.item() == pytest.approx(x, abs=1e-12) and pose.y.item() == pytest.approx(y, abs=1e-12)
        assert abs(math.remainder(pose.yaw.item() - yaw, 2 * math.pi)) < 1e-12
        assert -math.pi < pose.yaw.item() <= math.pi
        assert m.message.header.frame_id == "odom" and m.message.child_frame_id == "base_link"
        cov = odometry_covariance(m.message)
        assert cov[0, 0] == pytest.approx(0.5 + i) and cov[1, 2] == pytest.approx(0.02)
        assert np.asarray(m.message.pose.covariance).reshape(6, 6)[2, 2] == UNESTIMATED_VARIANCE
        assert odometry_twist(m.message) == pytest.approx((8.0 + i, -0.1 * i))
    for i, m in enumerate(by_topic["/ground_truth/odom"]):
        assert m.message.header.frame_id == "map"
        assert odometry_to_se2(m.message).x.item() == pytest.approx(truth["poses"][i][0] + 100.0)
    for m in by_topic["/camera/camera_info"]:
        cam = camera_info_to_camera(m.message)
        assert cam == CAMERA
        assert m.message.distortion_model == "plumb_bob"
    (tf_msg,) = by_topic["/tf_static"]
    tf = tf_msg.message.transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("base_link", "camera_optical_frame")
    se3 = transform_to_se3(tf)
    want = truth["mounted"].base_from_camera
    torch.testing.assert_close(se3.rotation.float(), want.rotation, atol=1e-6, rtol=0)
    torch.testing.assert_close(se3.translation.float(), want.translation, atol=1e-6, rtol=0)
    for i, m in enumerate(by_topic["/cvfm/match_report"]):
        assert MatchReport.from_msg(m.message) == truth["reports"][i]
        assert m.message.STATUS_REJECTED == 1  # the constants travel with the definition


def test_bags_are_self_describing(tmp_path):
    """A plain rosbags reader, knowing nothing of our messages, decodes MatchReport from the
    definition stored in the bag; /tf_static is recorded with latched (transient local) QoS."""
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import QosDurability

    path = tmp_path / "drive"
    _write_drive(path, "mcap", False, n=2)
    with AnyReader([path]) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert conns["/cvfm/match_report"].msgtype == MATCH_REPORT_TYPE
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages([conns["/cvfm/match_report"]])]
        assert [m.num_matches for m in msgs] == [100, 101]
        (qos,) = conns["/tf_static"].ext.offered_qos_profiles
        assert qos.durability == QosDurability.TRANSIENT_LOCAL


def test_panorama_camera_info_and_custom_topics(tmp_path):
    path = tmp_path / "pano"
    topics = BagTopics(image="/pano/image", camera_info="/pano/camera_info", odom="/wheel/odom")
    with DriveBagWriter(path, "sqlite3", topics=topics) as bag:
        bag.write_camera_info(5, PanoramaCamera(2048, 1024), frame_id="pano")
        bag.write_image(5, np.zeros((8, 16, 3), np.uint8), frame_id="pano")
        bag.write_odometry(5, (0.0, 0.0, 0.0))
    msgs = {m.topic: m.message for m in read_bag(path)}
    assert set(msgs) == {"/pano/image", "/pano/camera_info", "/wheel/odom"}
    info = msgs["/pano/camera_info"]
    assert info.distortion_model == "equirectangular" and (info.width, info.height) == (2048, 1024)
    assert not np.asarray(info.k).any()
    assert camera_info_to_camera(info) == PanoramaCamera(2048, 1024)
    # No covariance given: nothing is estimated.
    assert np.all(np.diag(np.asarray(msgs["/wheel/odom"].pose.covariance).reshape(6, 6)) == UNESTIMATED_VARIANCE)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_reader_orders_by_header_stamp_not_record_time(tmp_path, storage):
    """Record times here are arrival times: late and out of order. Readers must sort by header."""
    path = tmp_path / "late"
    header_stamps = [300, 100, 200, 500, 400]
    with DriveBagWriter(path, storage) as bag:
        store = bag.typestore
        t = store.types
        for k, stamp in enumerate(header_stamps):
            msg = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=stamp), frame_id=str(k))
            bag.write_message("/h", "std_msgs/msg/Header", 10_000 + k, msg)
            odom_report = MatchReport(0, "ok").to_msg(store, 10**9 + stamp)
            bag.write_message("/r", MATCH_REPORT_TYPE, 20_000 + k, odom_report)
            bag.write_message("/s", "std_msgs/msg/String", 30_000 - k, t["std_msgs/msg/String"](data=str(k)))
    out = list(read_bag(path, ["/h", "/r", "/s"]))
    h = [m for m in out if m.topic == "/h"]
    assert [m.stamp_ns for m in h] == [10**9 + s for s in sorted(header_stamps)]
    assert [m.message.frame_id for m in h] == ["1", "2", "0", "4", "3"]
    assert [m.stamp_ns for m in out if m.topic == "/r"] == [10**9 + s for s in sorted(header_stamps)]
    # No header: record time.
    assert [m.message.data for m in out if m.topic == "/s"] == ["4", "3", "2", "1", "0"]
    assert [m.stamp_ns for m in out] == sorted(m.stamp_ns for m in out)


def test_missing_topic_and_missing_bag(tmp_path):
    path = tmp_path / "drive"
    _write_drive(path, "mcap", False, n=1)
    with pytest.raises(ValueError, match=r"/camera/image_rect"):
        read_bag(path, ["/odom", "/camera/image_rect"])
    with pytest.raises(ValueError, match="no such file"):
        read_bag(tmp_path / "nope")
    with pytest.raises(ValueError, match="on_error"):
        read_bag(path, on_error="ignore")


def _big_mcap(path: Path, n: int = 14) -> list[np.ndarray]:
    """A bag larger than rosbags' 1 MiB MCAP chunk, so that truncation spares whole chunks."""
    imgs = [np.full((240, 320, 3), i, np.uint8) for i in range(n)]
    with DriveBagWriter(path, "mcap") as bag:
        for i, img in enumerate(imgs):
            bag.write_image(T0 + i, img)
            bag.write_odometry(T0 + i, (float(i), 0.0, 0.0))
    return imgs


def test_truncated_mcap(tmp_path):
    path = tmp_path / "crash"
    imgs = _big_mcap(path)
    file = next(path.glob("*.mcap"))
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(ValueError, match=r"crash.*cannot be read"):
        read_bag(path)
    with pytest.warns(RuntimeWarning, match="recovery"):
        stream = read_bag(path, ["/camera/image_raw", "/odom"], on_error="partial")
    assert stream.error and "stopped after" in stream.error
    got = list(stream)
    images = [m for m in got if m.topic == "/camera/image_raw"]
    assert 4 <= len(images) < len(imgs)
    for m in images:
        np.testing.assert_array_equal(image_to_numpy(m.message), imgs[m.stamp_ns - T0])
    assert stream.counts["/camera/image_raw"] == len(images)


def test_missing_metadata_is_recovered_from_the_mcap_file(tmp_path):
    path = tmp_path / "nometa"
    imgs = _big_mcap(path, n=3)
    (path / "metadata.yaml").unlink()
    with pytest.raises(ValueError, match="nometa"):
        read_bag(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stream = read_bag(path, ["/camera/image_raw"], on_error="partial")
    got = [image_to_numpy(m.message) for m in stream]
    assert len(got) == 3 and all((g == i).all() for g, i in zip(got, imgs))
    assert "normal open failed" in stream.error


def test_corrupt_sqlite(tmp_path):
    path = tmp_path / "corrupt"
    imgs = [np.full((120, 160, 3), i, np.uint8) for i in range(40)]
    with DriveBagWriter(path, "sqlite3") as bag:
        for i, img in enumerate(imgs):
            bag.write_image(T0 + i, img)
    file = next(path.glob("*.db3"))
    data = bytearray(file.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 8192] = b"\xab" * 8192
    file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        list(read_bag(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stream = read_bag(path, on_error="partial")
    assert stream.error
    got = list(stream)
    assert len(got) < len(imgs)
    for m in got:
        np.testing.assert_array_equal(image_to_numpy(m.message), imgs[m.stamp_ns - T0])


def test_writer_is_atomic_and_never_overwrites(tmp_path):
    path = tmp_path / "drive"
    with pytest.raises(RuntimeError, match="boom"):
        with DriveBagWriter(path, "mcap") as bag:
            bag.write_odometry(1, (0.0, 0.0, 0.0))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    _write_drive(path, "mcap", False, n=1)
    with pytest.raises(ValueError, match="already exists"):
        DriveBagWriter(path)
    with pytest.raises(ValueError, match="storage"):
        DriveBagWriter(tmp_path / "x", "rosbag1")
    with DriveBagWriter(tmp_path / "y") as bag:
        with pytest.raises(ValueError, match="image"):
            bag.write_image(1, np.zeros((4, 4, 3), np.float32))
        with pytest.raises(ValueError, match="stamp_ns"):
            bag.write_odometry(-1, (0.0, 0.0, 0.0))
        with pytest.raises(ValueError, match="pose"):
            bag.write_odometry(1, (0.0, 0.0))
        with pytest.raises(ValueError, match="covariance"):
            bag.write_odometry(1, (0.0, 0.0, 0.0), covariance=np.ones((3, 3)) + np.triu(np.ones((3, 3)), 1))
        with pytest.raises(ValueError, match="transforms"):
            bag.write_tf_static(1, [])


# ----------------------------------------------------------------------------------------------
# Converters on hand-made messages


def _raw(encoding: str, h: int, w: int, step: int, data: np.ndarray, bigendian: int = 0):
    return types.SimpleNamespace(encoding=encoding, height=h, width=w, step=step, is_bigendian=bigendian,
                                 data=np.asarray(data, np.uint8).reshape(-1))


def test_image_to_numpy_encodings():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(image_to_numpy(_raw("rgb8", 2, 3, 9, rgb)), rgb)
    np.testing.assert_array_equal(image_to_numpy(_raw("bgr8", 2, 3, 9, rgb[..., ::-1])), rgb)
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 7, np.uint8)], -1)
    np.testing.assert_array_equal(image_to_numpy(_raw("rgba8", 2, 3, 12, rgba)), rgb)
    np.testing.assert_array_equal(image_to_numpy(_raw("bgra8", 2, 3, 12, rgba[..., [2, 1, 0, 3]])), rgb)
    np.testing.assert_array_equal(image_to_numpy(_raw("rgba8", 2, 3, 12, rgba), rgb=False), rgba)
    grey = np.array([[0, 10, 20], [30, 40, 255]], np.uint8)
    np.testing.assert_array_equal(image_to_numpy(_raw("mono8", 2, 3, 3, grey)), np.repeat(grey[..., None], 3, -1))
    # Row padding (step > width * channels), as many drivers produce.
    padded = np.zeros((2, 8), np.uint8)
    padded[:, :3] = grey
    np.testing.assert_array_equal(image_to_numpy(_raw("mono8", 2, 3, 8, padded), rgb=False), grey)
    deep = np.array([[0, 257, 65535]], np.uint16)
    for big in (0, 1):
        raw = deep.astype(">u2" if big else "<u2").view(np.uint8)
        assert image_to_numpy(_raw("mono16", 1, 3, 6, raw, big), rgb=False).tolist() == [[0, 257, 65535]]
        assert image_to_numpy(_raw("mono16", 1, 3, 6, raw, big))[0, :, 0].tolist() == [0, 1, 255]


def test_image_to_numpy_errors_name_the_field():
    with pytest.raises(ValueError, match="yuv422"):
        image_to_numpy(_raw("yuv422", 2, 2, 4, np.zeros(8)))
    with pytest.raises(ValueError, match="height/width"):
        image_to_numpy(_raw("rgb8", 0, 3, 9, np.zeros(0)))
    with pytest.raises(ValueError, match="step"):
        image_to_numpy(_raw("rgb8", 2, 3, 8, np.zeros(18)))
    with pytest.raises(ValueError, match="data"):
        image_to_numpy(_raw("rgb8", 2, 3, 9, np.zeros(17)))
    with pytest.raises(ValueError, match="data"):
        image_to_numpy(types.SimpleNamespace(format="jpeg", data=np.zeros(0, np.uint8)))
    with pytest.raises(ValueError, match="data"):
        image_to_numpy(types.SimpleNamespace(format="jpeg", data=np.arange(50, dtype=np.uint8)))


def test_camera_info_errors_name_the_field():
    store = make_typestore()
    t = store.types

    def info(model, d, k=(100.0, 0, 50, 0, 100.0, 40, 0, 0, 1), binning=0):
        return t["sensor_msgs/msg/CameraInfo"](
            header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="c"),
            height=80, width=100, distortion_model=model, d=np.asarray(d, float), k=np.asarray(k, float),
            r=np.eye(3).reshape(-1), p=np.zeros(12), binning_x=binning, binning_y=0,
            roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))

    assert camera_info_to_camera(info("rational_polynomial", [0.1] * 8)).distortion == (0.1,) * 8
    assert camera_info_to_camera(info("", [])).distortion == (0.0,) * 5
    with pytest.raises(ValueError, match="distortion_model"):
        camera_info_to_camera(info("equidistant", [0.1] * 4))
    with pytest.raises(ValueError, match="k:"):
        camera_info_to_camera(info("plumb_bob", [0.0] * 5, k=[0.0] * 9))
    with pytest.raises(ValueError, match="d:"):
        camera_info_to_camera(info("plumb_bob", [0.0] * 3))
    with pytest.raises(ValueError, match="binning"):
        camera_info_to_camera(info("plumb_bob", [0.0] * 5, binning=2))


def test_covariance_layout():
    cov = np.array([[1.0, 0.2, 0.3], [0.2, 2.0, 0.4], [0.3, 0.4, 3.0]])
    ros = np.asarray(covariance_to_ros(cov)).reshape(6, 6)
    assert ros[0, 0] == 1.0 and ros[7 // 6, 7 % 6] == 2.0 and ros[5, 5] == 3.0 and ros[0, 5] == 0.3
    assert ros[2, 2] == ros[3, 3] == ros[4, 4] == UNESTIMATED_VARIANCE
    np.testing.assert_array_equal(covariance_from_ros(ros.reshape(-1)), cov)
    with pytest.raises(ValueError, match="covariance"):
        covariance_from_ros(np.zeros(9))


def test_simulated_drive_through_a_bag(tmp_path):
    """Planner -> odometry simulation -> bag -> reader: poses, twists and covariances survive."""
    from cvfm_ros.data.odometry import simulate_wheel_odometry
    from cvfm_ros.geometry.planar import interpolate_pose
    from cvfm_ros.data.trajectory import plan_drive

    roads = [np.array([[0.0, 0.0], [300.0, 0.0], [300.0, 200.0], [0.0, 200.0], [0.0, 0.0]])]
    traj = plan_drive(roads, 10.0, 10.0, seed=0)
    odom = simulate_wheel_odometry(traj, seed=0)
    path = tmp_path / "sim"
    with DriveBagWriter(path, "mcap") as bag:
        bag.write_ground_truth_track(traj, T0)
        bag.write_odometry_track(odom, T0)
    msgs = list(read_bag(path, ["/ground_truth/odom", "/odom"]))
    gt = [m for m in msgs if m.topic == "/ground_truth/odom"]
    od = [m for m in msgs if m.topic == "/odom"]
    assert len(gt) == len(od) == len(traj) == 101
    np.testing.assert_array_equal([m.stamp_ns for m in gt], traj.stamps_ns(T0))
    gt_poses = torch.stack([odometry_to_se2(m.message).data for m in gt])
    np.testing.assert_allclose(gt_poses.numpy(), np.stack([traj.x, traj.y, traj.yaw], -1), atol=1e-9)
    k = 70
    np.testing.assert_allclose(odometry_covariance(od[k].message), odom.covariance[k], rtol=1e-12, atol=1e-15)
    assert odometry_twist(od[k].message) == pytest.approx((odom.v[k], odom.yaw_rate[k]))
    twist_cov = covariance_from_ros(od[k].message.twist.covariance)
    np.testing.assert_allclose(twist_cov, odom.twist_covariance[k])
    # What the replay tool does: odometry at an image stamp between two messages.
    stamps = np.array([m.stamp_ns for m in od])
    poses = torch.stack([odometry_to_se2(m.message).data for m in od])
    p = poses.double().numpy()
    mid = interpolate_pose(stamps[k] * 1e-9, p[k], stamps[k + 1] * 1e-9, p[k + 1], stamps[k] * 1e-9 + 0.05)
    assert float(np.linalg.norm(mid[:2] - p[k, :2])) == pytest.approx(
        0.5 * float(np.linalg.norm(p[k + 1, :2] - p[k, :2])), rel=1e-6)
