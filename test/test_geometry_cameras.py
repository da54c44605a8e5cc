import math

import cv2
import numpy as np
import pytest
import torch

from cvfm_ros.geometry import BASE_FROM_OPTICAL, CameraRig, MountedCamera, PanoramaCamera, PinholeCamera


def test_panorama_roundtrip():
    cam = PanoramaCamera(512, 256)
    uv = torch.stack([torch.rand(1000) * 512, 1 + torch.rand(1000) * 254], -1).double()
    rays = cam.unproject(uv)
    assert torch.allclose(rays.norm(dim=-1), torch.ones(1000, dtype=torch.float64))
    back, valid = cam.project(rays * (0.5 + 50 * torch.rand(1000, 1, dtype=torch.float64)))
    assert valid.all()
    du = torch.remainder(back[:, 0] - uv[:, 0] + 256, 512) - 256
    assert du.abs().max() < 1e-6 and (back[:, 1] - uv[:, 1]).abs().max() < 1e-6


def test_panorama_conventions():
    cam = PanoramaCamera(2048, 1024)
    pts = torch.tensor([[10.0, 0, 0], [0, -10.0, 0], [0, 10.0, 0], [1e-6, 0, 10.0], [1e-6, 0, -10.0]])
    uv, valid = cam.project(pts)
    assert valid.all()
    assert uv[0].tolist() == pytest.approx([1024, 512])  # forward: centre column, horizon row
    assert uv[1, 0] == pytest.approx(1024 + 512)  # right (-y) is a quarter turn clockwise -> to the right
    assert uv[2, 0] == pytest.approx(512)  # left
    assert uv[3, 1] == pytest.approx(0, abs=1e-3)  # zenith is the top row
    assert uv[4, 1] == pytest.approx(1024, abs=1e-3)  # nadir is the bottom
    _, valid = cam.project(torch.zeros(1, 3))
    assert not valid.any()


def test_pinhole_matches_opencv_and_roundtrips():
    dist = (-0.28, 0.07, 0.0007, -0.0004, 0.0)
    cam = PinholeCamera(700.0, 690.0, 320.5, 240.2, 640, 480, dist)
    pts = torch.stack([torch.rand(500) * 2 - 1, torch.rand(500) * 1.4 - 0.7, 1.5 + torch.rand(500) * 20], -1).double()
    pts[:, :2] *= pts[:, 2:] * 0.4
    uv, valid = cam.project(pts)
    ref, _ = cv2.projectPoints(pts.numpy(), np.zeros(3), np.zeros(3), cam.K, np.array(dist))
    assert np.allclose(uv.numpy(), ref.reshape(-1, 2), atol=1e-6)
    rays = cam.unproject(uv[valid])
    back, _ = cam.project(rays * pts[valid][:, 2:])
    assert torch.allclose(back, uv[valid], atol=1e-3)


def test_pinhole_validity_and_bad_input():
    cam = PinholeCamera(500, 500, 319.5, 239.5, 640, 480)
    uv, valid = cam.project(torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, -5.0], [100.0, 0.0, 1.0]]))
    assert valid.tolist() == [True, False, False]
    assert uv[0].tolist() == pytest.approx([319.5, 239.5])
    with pytest.raises(ValueError, match="fx"):
        PinholeCamera(0.0, 500, 1, 1, 640, 480)
    with pytest.raises(ValueError, match="points"):
        cam.project(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="k: expected 9"):
        PinholeCamera.from_camera_info([1, 2, 3], [], 640, 480)


def test_camera_info_roundtrip():
    cam = PinholeCamera.from_camera_info([600, 0, 300, 0, 610, 200, 0, 0, 1], [0.1, 0.01, 0, 0, 0], 640, 400)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (600, 610, 300, 200)
    assert cam.is_distorted


def test_mounted_pinhole_axes_and_height():
    cam = PinholeCamera(500, 500, 319.5, 239.5, 640, 480)
    mounted = MountedCamera.forward_pinhole(cam, height_m=1.6)
    uv, valid = mounted.project_base_points(torch.tensor([[10.0, 0.0, 1.6], [10.0, 1.0, 1.6], [10.0, 0.0, 0.0]]))
    assert valid.all()
    assert uv[0].tolist() == pytest.approx([319.5, 239.5], abs=1e-4)  # straight ahead
    assert uv[1, 0] < 319.5  # base_link +y is left in the image
    assert uv[2, 1] > 239.5  # the ground is below the horizon
    # Optical z is base x; optical x is base -y; optical y is base -z.
    assert torch.allclose(BASE_FROM_OPTICAL @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]))
    tilted = MountedCamera.forward_pinhole(cam, height_m=1.6, pitch_down_rad=math.radians(10))
    uv_t, _ = tilted.project_base_points(torch.tensor([[10.0, 0.0, 1.6]]))
    assert uv_t[0, 1] < 239.5  # tilting down moves the horizon up in the image


def test_mounted_panorama_rays():
    mounted = MountedCamera.panorama(512, 256, height_m=2.0)
    assert mounted.height_m == pytest.approx(2.0)
    uv, valid = mounted.project_base_points(torch.tensor([[5.0, 0.0, 0.0]]))
    assert valid.all() and uv[0, 0] == pytest.approx(256) and uv[0, 1] > 128
    ray = mounted.rays_in_base(uv)
    # the ray from the lens through that pixel hits the ground at the original point
    hit = torch.tensor([0.0, 0.0, 2.0]) + ray[0] * (2.0 / -ray[0, 2])
    assert hit.tolist() == pytest.approx([5.0, 0.0, 0.0], abs=1e-4)


def test_rig_cameras_look_where_they_are_named():
    cam = PinholeCamera(64.0, 64.0, 63.5, 31.5, 128, 64)
    rig = CameraRig.ring(cam, height_m=1.5, pitch_down_rad=math.radians(5))
    assert rig.names == ("front", "left", "rear", "right") and len(rig) == 4 and rig.size == (128, 64)
    # Points 10 m away at the cameras' height, in front of, left of, behind and right of the robot.
    points = torch.tensor([[10.0, 0.0, 1.5], [0.0, 10.0, 1.5], [-10.0, 0.0, 1.5], [0.0, -10.0, 1.5],
                           [0.0, 0.0, 50.0]])
    pixels, valid = rig.project_base_points(points)
    assert pixels.shape == (4, 5, 2) and valid.shape == (4, 5)
    for i in range(4):  # camera i sees point i at its centre column, and no camera sees the zenith
        assert valid[i, i] and pixels[i, i, 0] == pytest.approx(63.5, abs=1e-3)
    assert int(valid[:, :4].sum()) == 4 and not valid[:, 4].any()
    uv, index, seen = rig.first_view(points)
    assert index.tolist() == [0, 1, 2, 3, -1] and seen.tolist() == [True] * 4 + [False]
    assert torch.allclose(uv[1], pixels[1, 1])
    # The general mount: a camera 0.5 m left of base_link, turned right, sees a point ahead-right.
    side = MountedCamera.pinhole(cam, 1.5, yaw_rad=-math.pi / 2, position_xy=(0.0, 0.5))
    uv, ok = side.project_base_points(torch.tensor([[0.0, -9.5, 1.5]]))
    assert ok.all() and uv[0].tolist() == pytest.approx([63.5, 31.5 - 64 * math.tan(0.0)], abs=1e-3)


def test_rig_refuses_mixed_sizes_unknown_positions_and_duplicate_names():
    cam = PinholeCamera(64.0, 64.0, 63.5, 31.5, 128, 64)
    with pytest.raises(ValueError, match="same size"):
        CameraRig((MountedCamera.forward_pinhole(cam, 1.5), MountedCamera.panorama(256, 128, 1.5)))
    with pytest.raises(ValueError, match="unknown position"):
        CameraRig.ring(cam, 1.5, names=("front", "up"))
    with pytest.raises(ValueError, match="distinct"):
        CameraRig.ring(cam, 1.5, names=("front", "front"))
    with pytest.raises(ValueError, match="one or more"):
        CameraRig(())
    resized = CameraRig.ring(cam, 1.5).resized(64, 32)
    assert resized.size == (64, 32) and resized.cameras[0].camera.fx == pytest.approx(32.0)
