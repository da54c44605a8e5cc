"""KITTI cross-view loader against a tiny fixture in the dataset's exact layout."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cvfm_ros.data.real.kitti import (
    KittiDataset,
    kitti_satellite_mpp,
    load_kitti_frame,
    prior_from_noise,
    read_kitti_calibration,
)
from cvfm_ros.geometry import SE2

DATE, DRIVE = "2011_09_26", "2011_09_26_drive_0005_sync"

# Calibration of the 2011_09_26 recordings, in KITTI's file format (values as published with
# the raw data, rounded).
CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_rect_00: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
P_rect_00: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_rect_02: 1.242000e+03 3.750000e+02
R_rect_02: 9.998817e-01 1.511453e-02 -2.841595e-03 -1.511724e-02 9.998853e-01 -9.338510e-04 2.827154e-03 9.766976e-04 9.999955e-01
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
"""
IMU_TO_VELO = """calib_time: 25-May-2012 16:47:16
R: 9.999976e-01 7.553071e-04 -2.035826e-03 -7.854027e-04 9.998898e-01 -1.482298e-02 2.024406e-03 1.482454e-02 9.998881e-01
T: -8.086759e-01 3.195559e-01 -7.997231e-01
"""
VELO_TO_CAM = """calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
delta_f: 0.000000e+00 0.000000e+00
delta_c: 0.000000e+00 0.000000e+00
"""


def _oxts(lat: float, lon: float, yaw: float) -> str:
    values = [lat, lon, 112.99, 0.0219, -0.0015, yaw] + [0.1] * 17 + [0.5, 0.05, 4, 10, 4, 4, 4]
    return " ".join(f"{v:.10g}" for v in values) + "\n"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture
def kitti_root(tmp_path) -> Path:
    root = tmp_path / "KITTI"
    raw = root / "raw_data" / DATE
    raw.mkdir(parents=True)
    (raw / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (raw / "calib_imu_to_velo.txt").write_text(IMU_TO_VELO)
    (raw / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    frames = {"0000000005.png": (49.011212, 8.422446, 0.5), "0000000006.png": (49.011215, 8.422460, -3.0)}
    for frame, (lat, lon, yaw) in frames.items():
        img = np.zeros((38, 124, 3), np.uint8)  # a tenth of 1242 x 375
        img[:19] = (120, 170, 255)  # sky
        _write_png(raw / DRIVE / "image_02" / "data" / frame, img)
        (raw / DRIVE / "oxts" / "data").mkdir(parents=True, exist_ok=True)
        (raw / DRIVE / "oxts" / "data" / frame.replace(".png", ".txt")).write_text(_oxts(lat, lon, yaw))
        sat = np.zeros((64, 64, 3), np.uint8)
        sat[:32] = (0, 0, 255)  # north half blue
        _write_png(root / "satmap" / DATE / DRIVE / frame, sat)
    (root / "train_files.txt").write_text(f"{DATE}/{DRIVE}/0000000005.png\n{DATE}/{DRIVE}/0000000006.png\n")
    splits = root / "KITTI_splits"
    splits.mkdir()
    (splits / "test1_files.txt").write_text(f"{DATE}/{DRIVE}/0000000005.png 0.5 -0.25 1.0\n")
    return root


def test_calibration_chain_is_physical(kitti_root):
    calib = read_kitti_calibration(kitti_root / "raw_data" / DATE)
    cam = calib.camera
    assert (cam.width, cam.height) == (1242, 375)
    assert (cam.fx, cam.cx, cam.cy) == pytest.approx((721.5377, 609.5593, 172.854))
    assert not cam.is_distorted
    t = calib.base_from_camera.translation.numpy()
    # KITTI's rig: the left colour camera is about 1.08 m ahead of the OXTS unit, 0.26 m to its
    # right, 1.65 m above the road (the Velodyne is at 1.73 m).
    assert t[0] == pytest.approx(1.08, abs=0.03)
    assert t[1] == pytest.approx(-0.26, abs=0.03)
    assert t[2] == pytest.approx(1.65, abs=0.03)
    assert calib.imu_height_m == pytest.approx(0.93, abs=0.01)
    r = calib.base_from_camera.rotation.numpy()
    # Optical z looks forward (base +x), optical x points right (-y), optical y down (-z).
    assert r[:, 2] @ [1, 0, 0] > 0.999 and r[:, 0] @ [0, -1, 0] > 0.999 and r[:, 1] @ [0, 0, -1] > 0.999
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_frame_loading(kitti_root):
    s = load_kitti_frame(kitti_root, f"{DATE}/{DRIVE}/0000000005.png")
    assert s.image.shape == (38, 124, 3) and tuple(s.image[0, 0]) == (120, 170, 255)
    # Intrinsics follow the (here tenfold) downscaled image.
    cam = s.camera.camera
    assert (cam.width, cam.height) == (124, 38)
    assert cam.fx == pytest.approx(721.5377 * 124 / 1242) and cam.fy == pytest.approx(721.5377 * 38 / 375)
    assert cam.cx == pytest.approx((609.5593 + 0.5) * 124 / 1242 - 0.5)
    assert s.aerial.shape == (64, 64, 3)
    assert s.mpp == pytest.approx(kitti_satellite_mpp(49.011212)) and s.mpp == pytest.approx(0.196, abs=0.001)
    assert s.patch.mpp == s.mpp and s.patch.image.shape == (3, 64, 64)
    # North is up: the blue half of the satellite image is the half with y > 0.
    north = s.patch.map_to_pixel(torch.tensor([0.0, 5.0], dtype=torch.float64))
    assert north[1] < 31.5
    torch.testing.assert_close(s.pose.data, torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64))
    assert s.prior is None and s.latlon == pytest.approx((49.011212, 8.422446))


def test_test_split_priors(kitti_root):
    ds = KittiDataset(kitti_root, "test1")
    assert len(ds) == 1
    s = ds[0]
    # sx = 0.5, sy = -0.25, sr = 1.0 of +-20 m, +-10 deg.
    yaw = 0.5
    forward = np.array([math.cos(yaw), math.sin(yaw)])
    right = np.array([math.sin(yaw), -math.cos(yaw)])
    offset = s.prior.data[:2].numpy() - s.pose.data[:2].numpy()
    np.testing.assert_allclose(offset, -20.0 * (0.5 * right - 0.25 * forward), atol=1e-9)
    assert s.prior.yaw.item() == pytest.approx(yaw - math.radians(10.0))
    assert float(np.hypot(*offset)) <= 20.0 * math.sqrt(2)
    train = KittiDataset(kitti_root, "train")
    assert len(train) == 2 and train[1].prior is None
    assert train[1].pose.yaw.item() == pytest.approx(-3.0)
    wrapped = prior_from_noise(SE2(torch.tensor([0.0, 0.0, -3.1], dtype=torch.float64)), 0.0, 0.0, 1.0)
    assert -math.pi < wrapped.yaw.item() <= math.pi


def test_bad_layouts(kitti_root):
    with pytest.raises(ValueError, match="test2"):
        KittiDataset(kitti_root, "test2")
    bad = kitti_root / "bad_files.txt"
    bad.write_text(f"{DATE}/{DRIVE}/0000000005.png 0.1 0.2\n")
    with pytest.raises(ValueError, match="bad_files.txt:1"):
        KittiDataset(kitti_root, bad)
    bad.write_text("0000000005.png\n")
    with pytest.raises(ValueError, match="date"):
        KittiDataset(kitti_root, bad)
    with pytest.raises(ValueError, match="KITTI image"):
        load_kitti_frame(kitti_root, f"{DATE}/{DRIVE}/0000000007.png")
    (kitti_root / "satmap" / DATE / DRIVE / "0000000006.png").unlink()
    with pytest.raises(ValueError, match="satellite image"):
        load_kitti_frame(kitti_root, f"{DATE}/{DRIVE}/0000000006.png")
    (kitti_root / "raw_data" / DATE / "calib_imu_to_velo.txt").unlink()
    with pytest.warns(RuntimeWarning, match="nominal"):
        calib = read_kitti_calibration(kitti_root / "raw_data" / DATE)
    assert calib.from_nominal and calib.base_from_camera.translation[2].item() == pytest.approx(1.65)
    (kitti_root / "raw_data" / DATE / "calib_cam_to_cam.txt").write_text("calib_time: never\n")
    with pytest.raises(ValueError, match="P_rect_02"):
        read_kitti_calibration(kitti_root / "raw_data" / DATE)
