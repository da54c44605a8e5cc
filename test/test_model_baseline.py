"""The classical baseline recovers a known pose on consistent flat-world pairs."""
import math

import pytest
import torch

from cvfm_ros.geometry import MountedCamera, PinholeCamera, sample_image, wrap_angle
from cvfm_ros.model import BaselineConfig, ClassicalBaseline
from cvfm_ros.model.toy import random_texture, render_flat_world


pytestmark = pytest.mark.usefixtures("one_torch_thread")


PANO = MountedCamera.panorama(256, 128, 1.6)
PINHOLE = MountedCamera.forward_pinhole(PinholeCamera(120.0, 120.0, 127.5, 63.5, 256, 128), 1.6, math.radians(20))
POSES = torch.tensor([[3.1, -2.3, 0.6], [-1.7, 2.9, -2.5]])


def _pair(camera, mpp=0.25, seed=3):
    aerial = random_texture(2, 128, 128, torch.Generator().manual_seed(seed))
    ground = render_flat_world(aerial, mpp, POSES, camera)["ground"]
    return aerial, ground


@pytest.mark.parametrize("camera,tol_m,tol_deg", [(PANO, 0.15, 0.5), (PINHOLE, 0.35, 2.0)])
def test_baseline_recovers_a_known_pose(camera, tol_m, tol_deg):
    aerial, ground = _pair(camera)
    baseline = ClassicalBaseline(BaselineConfig(), camera)
    prior = POSES[:, 2] + torch.tensor([math.radians(6.0), math.radians(-7.5)])
    out = baseline({"ground": ground, "aerial": aerial, "aerial_mpp": 0.25, "prior_yaw": prior})
    assert out["valid"].all()
    err_m = (out["pose"][:, :2] - POSES[:, :2]).norm(dim=-1)
    err_deg = torch.rad2deg(wrap_angle(out["pose"][:, 2] - POSES[:, 2]).abs())
    assert (err_m < tol_m).all(), err_m
    assert (err_deg < tol_deg).all(), err_deg
    # The covariance is honest: errors within 4 sigma, sigmas not absurdly large.
    sigma = out["covariance"].diagonal(dim1=1, dim2=2).sqrt()
    assert (err_m < 4 * sigma[:, :2].max(-1).values + 0.05).all()
    assert (sigma[:, :2] < 1.0).all() and (sigma[:, 2] < math.radians(5)).all()
    for key, shape in (("matches_bev_xy", (2, 64, 2)), ("matches_aerial_uv", (2, 64, 2)),
                       ("matches_ground_uv", (2, 64, 2)), ("match_weights", (2, 64)), ("surface_height", (2, 64, 64))):
        assert tuple(out[key].shape) == shape, key
    # Pose-implied matches pair a ground pixel and an aerial pixel showing the same texture.
    used = out["match_weights"] > 0
    assert used.sum() > 60
    g = sample_image(ground, out["matches_ground_uv"])
    a = sample_image(aerial, out["matches_aerial_uv"])
    assert (g - a).abs().amax(1)[used].median() < 0.05


def test_baseline_flags_a_pair_that_does_not_agree():
    aerial, ground = _pair(PANO)
    other = random_texture(2, 128, 128, torch.Generator().manual_seed(99))
    baseline = ClassicalBaseline(BaselineConfig(), PANO)
    good = baseline({"ground": ground, "aerial": aerial, "aerial_mpp": 0.25, "prior_yaw": POSES[:, 2]})
    bad = baseline({"ground": ground, "aerial": other, "aerial_mpp": 0.25, "prior_yaw": POSES[:, 2]})
    assert (bad["best_ncc"] < good["best_ncc"] - 0.3).all()
    assert (bad["covariance"].diagonal(dim1=1, dim2=2)[:, 0] > good["covariance"].diagonal(dim1=1, dim2=2)[:, 0]).all()


def test_baseline_bad_input():
    baseline = ClassicalBaseline(BaselineConfig(), PANO)
    aerial, ground = _pair(PANO)
    batch = {"ground": ground, "aerial": aerial, "aerial_mpp": 0.25, "prior_yaw": POSES[:, 2]}
    with pytest.raises(ValueError, match="aerial"):
        baseline(dict(batch, aerial=aerial[:, :, :64]))
    with pytest.raises(ValueError, match="aerial_mpp"):
        baseline(dict(batch, aerial_mpp=0.0))
    with pytest.raises(ValueError, match="ground: expected finite"):
        baseline(dict(batch, ground=ground * float("nan")))
    with pytest.raises(ValueError, match="camera"):
        ClassicalBaseline(BaselineConfig(), MountedCamera.panorama(64, 32, 1.6))
    with pytest.raises(ValueError, match="template_px"):
        BaselineConfig(template_px=128)
