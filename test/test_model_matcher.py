"""Mechanics of the ViewBridge matcher: shapes, geometry of the lifting, Surface Model, gradients,
optimisation on a tiny flat world, ablations and bad input."""
import math
from dataclasses import replace

import pytest
import torch

from cvfm_ros.geometry import CameraRig, MountedCamera, PinholeCamera, rotation_2d, sample_image
from cvfm_ros.model import (LossConfig, ViewBridgeLoss, ViewBridgeMatcher, ground_truth_assignment)
from cvfm_ros.model.lifting import BEVLifter, LiftingConfig
from cvfm_ros.model.losses import matching_loss, subcell_loss, surface_loss, virtual_correspondence_loss
from cvfm_ros.model.pose import PoseSolverConfig, aerial_metric_to_pixels, select_matches, solve_pose
from cvfm_ros.model.simrefiner import SimRefiner, SimRefinerConfig
from cvfm_ros.model.surface import SurfaceModel, SurfaceModelConfig, surface_mask
from cvfm_ros.model.toy import flat_world_batch, random_texture, render_flat_world, tiny_matcher_config


pytestmark = pytest.mark.usefixtures("one_torch_thread")


PANO = MountedCamera.panorama(64, 32, 1.6)


def _tiny(**overrides):
    torch.manual_seed(0)
    return ViewBridgeMatcher(tiny_matcher_config(**overrides), PANO)


def _batch(b=2, seed=1, mpp=0.5):
    # 32 px at 0.5 m: a 16 m patch of 8 x 8 aerial cells of 2 m, like the 8 x 8 BEV cells of 2 m.
    return flat_world_batch(b, (32, 32), mpp, PANO, max_offset_m=3.0, bev_cells=8, seed=seed)


def test_output_shapes_and_values():
    model = _tiny().eval()
    batch, _ = _batch(b=3)
    with torch.no_grad():
        out = model(batch)
    n, m, k = 64, 64, 64
    expected = {
        "pose": (3, 3), "covariance": (3, 3, 3), "valid": (3,), "matches_bev_xy": (3, k, 2),
        "matches_aerial_uv": (3, k, 2), "matches_ground_uv": (3, k, 2), "match_weights": (3, k),
        "surface_height": (3, 8, 8), "bev_valid": (3, 8, 8), "height_weights": (3, 5, 8, 8),
        "surface_mask": (3, 5, 8, 8), "similarity": (3, n, m), "similarity_refined": (3, n, m),
        "log_assign_row": (3, n, m + 1), "log_assign_col": (3, n + 1, m), "match_prob": (3, n, m),
    }
    for key, shape in expected.items():
        assert tuple(out[key].shape) == shape, key
    assert out["valid"].dtype == torch.bool
    for key in ("pose", "covariance", "matches_aerial_uv", "matches_ground_uv", "surface_height"):
        assert torch.isfinite(out[key]).all(), key
    cov = out["covariance"]
    assert torch.allclose(cov, cov.transpose(1, 2)) and (torch.linalg.eigvalsh(cov) > 0).all()
    assert (out["match_weights"] >= 0).all()
    # Row and column distributions (with dustbins) are normalised.
    assert torch.allclose(out["log_assign_row"].exp().sum(-1), torch.ones(3, n), atol=1e-5)
    assert torch.allclose(out["log_assign_col"].exp().sum(1), torch.ones(3, m), atol=1e-5)
    # Matches are BEV cell centres in base_link: their norm is bounded by the BEV half-diagonal.
    assert out["matches_bev_xy"].norm(dim=-1).max() <= 8 * 2.0 / 2 * math.sqrt(2) + 1e-4


@pytest.mark.parametrize("camera", [
    PANO,
    MountedCamera.forward_pinhole(PinholeCamera(24.0, 24.0, 31.5, 15.5, 64, 32), 1.6, math.radians(25)),
])
def test_lifting_samples_the_ground_point_each_cell_shows(camera):
    # Lift the ground image itself (3 "feature" channels at stride 1): at height 0 every seen BEV
    # cell must carry the aerial colour of the world point under it.
    gen = torch.Generator().manual_seed(2)
    aerial = random_texture(2, 64, 64, gen, scales=(8, 16))
    pose = torch.tensor([[2.0, -1.5, 0.7], [-3.0, 1.0, -2.2]])
    ground = render_flat_world(aerial, 0.5, pose, camera)["ground"]
    cfg = LiftingConfig(bev_cells=10, bev_cell_m=1.0, num_heights=3, height_min_m=-1.0, height_max_m=1.0)
    lifter = BEVLifter(cfg, feature_channels=3)
    bev_yaw = pose[:, 2] + torch.tensor([0.1, -0.05])  # an imperfect prior
    out = lifter(ground, (camera.camera.height, camera.camera.width), camera, bev_yaw)
    base = lifter.points_in_base(bev_yaw)[:, 1, :, :2]  # height bin 1 is z = 0
    rot = torch.stack([torch.stack([pose[:, 2].cos(), -pose[:, 2].sin()], -1),
                       torch.stack([pose[:, 2].sin(), pose[:, 2].cos()], -1)], -2)
    world = base @ rot.transpose(1, 2) + pose[:, None, :2]
    truth = sample_image(aerial, aerial_metric_to_pixels(world, (64, 64), torch.tensor([0.5, 0.5])))
    seen = out["point_valid"][:, 1]
    assert seen.float().mean() > 0.25
    # Within half a pixel of the image border, bilinear sampling fades into the zero padding.
    pixels, _ = camera.project_base_points(lifter.points_in_base(bev_yaw)[:, 1])
    h, w = camera.camera.height, camera.camera.width
    interior = (pixels[..., 0] > 0.5) & (pixels[..., 0] < w - 1.5) & (pixels[..., 1] > 0.5) & (pixels[..., 1] < h - 1.5)
    if camera.camera.kind == "panorama":
        interior = pixels[..., 1] > 0.5  # wraps horizontally (the seam is interpolated)
    err = (out["volume"][:, :, 1] - truth).abs().amax(1)[seen & interior]
    # Bilinear resampling of a smooth texture at two resolutions: small, not zero.
    assert err.median() < 0.02 and err.max() < 0.1
    assert (out["volume"][:, :, 1][~seen.unsqueeze(1).expand(-1, 3, -1)] == 0).all()


def test_surface_model_masks_bins_above_the_surface():
    heights = torch.tensor([-1.0, 0.0, 1.0, 2.0, 3.0])
    # Column 0: mass at bin 2 -> surface 1 m; column 1: mass at the bottom -> surface -1 m;
    # column 2: uniform -> cumulative reaches 0.85 at the top bin.
    w = torch.tensor([[0.05, 0.05, 0.8, 0.05, 0.05], [0.9, 0.025, 0.025, 0.025, 0.025], [0.2] * 5]).T.unsqueeze(0)
    model = SurfaceModel(SurfaceModelConfig(threshold=0.85, temperature=0.05), heights)
    volume = torch.arange(5.0).view(1, 1, 5, 1).expand(1, 2, 5, 3).clone()  # feature = bin index
    out = model(volume, w)
    assert out["surface_height"][0].tolist() == pytest.approx([1.0, -1.0, 3.0])
    mask = out["surface_mask"][0]
    assert mask[:, 0].tolist() == [1, 1, 1, 0, 0] and mask[:, 1].tolist() == [1, 0, 0, 0, 0]
    assert mask[:, 2].tolist() == [1, 1, 1, 1, 1]
    # Pooled feature = weighted mean over the kept bins only.
    assert out["features"][0, 0, 0] == pytest.approx((0.05 * 0 + 0.05 * 1 + 0.8 * 2) / 0.9, rel=1e-5)
    assert out["features"][0, 0, 1] == pytest.approx(0.0, abs=1e-6)
    # Straight-through: the hard forward has a gradient through the soft mask.
    w_req = w.clone().requires_grad_(True)
    model(volume, w_req)["surface_height"][0, 0].backward()
    assert w_req.grad.abs().sum() > 0
    soft = surface_mask(w, 0.85, 0.005, straight_through=False)  # a sharp soft mask agrees
    assert (soft[0, 3:, 0] < 0.01).all() and (soft[0, :3, 0] > 0.99).all()


def test_simrefiner_starts_as_identity_and_is_local():
    refiner = SimRefiner(SimRefinerConfig(), (4, 4), (5, 5))
    s = torch.randn(2, 16, 25)
    out = refiner(s)
    assert torch.equal(out["refined"], s)
    # With non-zero weights, the local term of one entry depends only on its 4D neighbourhood.
    torch.nn.init.normal_(refiner.local_bev.weight)
    s = torch.zeros(1, 16, 25, requires_grad=True)
    refiner.local_consensus(s)[0, 5, 12].backward()  # BEV cell (1, 1), aerial cell (2, 2)
    touched = s.grad[0].nonzero()
    bev_r, bev_c = touched[:, 0] // 4, touched[:, 0] % 4
    aer_r, aer_c = touched[:, 1] // 5, touched[:, 1] % 5
    assert ((bev_r - 1).abs() <= 1).all() and ((bev_c - 1).abs() <= 1).all()
    assert ((aer_r - 2).abs() <= 1).all() and ((aer_c - 2).abs() <= 1).all()


def test_select_matches_mutual_and_topk():
    prob = torch.zeros(1, 3, 4)
    prob[0, 0, 1] = 0.9  # mutual
    prob[0, 1, 1] = 0.5  # best of row 1 is column 1, whose best is row 0 -> not mutual
    prob[0, 2, 3] = 0.7  # mutual
    sel = select_matches(prob, torch.ones(1, 3, dtype=torch.bool), 3, require_mutual=True)
    assert sel["bev_index"][0, :2].tolist() == [0, 2] and sel["aerial_index"][0, :2].tolist() == [1, 3]
    assert sel["weights"][0].tolist() == pytest.approx([0.9, 0.7, 0.0])
    loose = select_matches(prob, torch.tensor([[True, True, False]]), 3, require_mutual=False)
    assert loose["weights"][0].tolist() == pytest.approx([0.9, 0.5, 0.0])


def test_solve_pose_recovers_exact_matches_and_gates_bad_ones():
    gen = torch.Generator().manual_seed(0)
    truth = torch.tensor([[4.0, -3.0, 0.8]])
    src = (torch.rand(1, 50, 2, generator=gen) - 0.5) * 30
    rot = torch.tensor([[math.cos(0.8), -math.sin(0.8)], [math.sin(0.8), math.cos(0.8)]])
    dst = src @ rot.T + truth[:, :2]
    cfg = PoseSolverConfig()
    cell = torch.tensor([2.0])
    good = solve_pose(src, dst, torch.ones(1, 50), cfg, cell)
    assert good["valid"].all() and torch.allclose(good["pose"], truth, atol=1e-4)
    # A perfect fit still has the quantisation floor: cell^2 / 12 / n per axis.
    assert good["covariance"][0, 0, 0] == pytest.approx(4.0 / 12 / 50, rel=1e-3)
    noisy = solve_pose(src, dst + 0.3 * torch.randn(1, 50, 2, generator=gen), torch.ones(1, 50), cfg, cell)
    assert noisy["valid"].all() and noisy["covariance"][0, 0, 0] > good["covariance"][0, 0, 0]
    garbage = solve_pose(src, (torch.rand(1, 50, 2, generator=gen) - 0.5) * 30, torch.ones(1, 50), cfg, cell)
    assert not garbage["valid"].any() and garbage["solvable"].all()  # consensus gate
    plain_cfg = PoseSolverConfig(robust_iterations=0)
    garbage_plain = solve_pose(src, (torch.rand(1, 50, 2, generator=gen) - 0.5) * 30, torch.ones(1, 50), plain_cfg, cell)
    assert not garbage_plain["valid"].any() and garbage_plain["residual_rms"][0] > 3 * cell[0]  # residual gate
    assert garbage["covariance"][0, 0, 0] >= 1e6
    peaked = torch.full((1, 50), 1e-4)
    peaked[0, :2] = 1.0
    few = solve_pose(src, dst, peaked, cfg, cell)
    assert not few["valid"].any() and few["effective_matches"][0] < 3  # effective-count gate


def test_solve_pose_robust_rounds_reject_outlier_matches():
    gen = torch.Generator().manual_seed(1)
    truth = torch.tensor([[-2.0, 5.0, -0.3]])
    src = (torch.rand(1, 60, 2, generator=gen) - 0.5) * 30
    rot = torch.tensor([[math.cos(-0.3), -math.sin(-0.3)], [math.sin(-0.3), math.cos(-0.3)]])
    dst = src @ rot.T + truth[:, :2] + 0.1 * torch.randn(1, 60, 2, generator=gen)
    dst[:, :8] += torch.tensor([6.0, -5.0])  # a cluster of wrong matches, as on repeated texture
    cell = torch.tensor([1.6])
    plain = solve_pose(src, dst, torch.ones(1, 60), PoseSolverConfig(robust_iterations=0), cell)
    robust = solve_pose(src, dst, torch.ones(1, 60), PoseSolverConfig(), cell)
    plain_err = (plain["pose"][0, :2] - truth[0, :2]).norm()
    robust_err = (robust["pose"][0, :2] - truth[0, :2]).norm()
    assert plain_err > 0.5 and robust_err < 0.1
    assert robust["valid"].all() and robust["covariance"][0, 0, 0] < plain["covariance"][0, 0, 0]
    # the gate judges the plain solve either way
    assert torch.equal(robust["residual_rms"], plain["residual_rms"])
    # Far outliers fail the plain solve's residual gate; the robust solve keeps the pose and passes.
    far = dst.clone()
    far[:, 8:18] += torch.tensor([25.0, 10.0])
    plain_far = solve_pose(src, far, torch.ones(1, 60), PoseSolverConfig(robust_iterations=0), cell)
    robust_far = solve_pose(src, far, torch.ones(1, 60), PoseSolverConfig(), cell)
    assert not plain_far["valid"].any() and robust_far["valid"].all()
    assert (robust_far["pose"][0, :2] - truth[0, :2]).norm() < 0.2
    assert 0.6 < robust_far["effective_inliers"][0] / robust_far["effective_matches"][0] < 0.9
    with pytest.raises(ValueError, match="min_inlier_share"):
        PoseSolverConfig(min_inlier_share=1.5)
    with pytest.raises(ValueError, match="robust_scale_cells"):
        PoseSolverConfig(robust_scale_cells=0.0)
    with pytest.raises(ValueError, match="robust_iterations"):
        PoseSolverConfig(robust_iterations=-1)


def test_ground_truth_assignment_with_a_perfect_prior():
    model = _tiny()
    batch, targets = _batch(b=2)
    batch["prior_yaw"] = targets["pose"][:, 2].clone()
    with torch.no_grad():
        out = model(batch)
    gt = ground_truth_assignment(model, out, targets)
    # With bev_yaw = yaw the BEV axes are the patch axes: cell centre (x, y) lies at pose + (x, y).
    xy = model.bev_cell_xy.unsqueeze(0) + targets["pose"][:, None, :2]
    u = xy[..., 0] / 0.5 + 15.5  # aerial pixels, mpp 0.5, 32 px
    v = -xy[..., 1] / 0.5 + 15.5
    col, row = torch.div(u + 0.5, 4, rounding_mode="floor"), torch.div(v + 0.5, 4, rounding_mode="floor")
    inside = (col >= 0) & (col < 8) & (row >= 0) & (row < 8)
    visible = gt["bev_visible"]
    expected = torch.where(inside & visible, (row * 8 + col).long(), torch.full_like(col, 64).long())
    assert torch.equal(gt["row_target"], expected)
    assert (gt["row_target"] < 64).sum() > 10
    # Correspondences cut the visibility: the BEV cells the panorama sees inside the patch only.
    assert visible.sum() < out["bev_valid"].sum()
    # Column targets are consistent with the row targets: with equal cell sizes and aligned axes,
    # the BEV cell under an aerial cell's centre maps back into that aerial cell.
    assert (gt["col_target"] < 64).sum() > 10
    for b in range(2):
        for m in torch.nonzero(gt["col_target"][b] < 64).flatten().tolist():
            assert int(gt["row_target"][b, gt["col_target"][b, m]]) == m


def test_a_mismatched_pair_learns_the_dustbin_and_no_pose():
    """data.negative_share (issue 14): a pair marked `negative` sends every BEV and aerial cell to
    the dustbin at full weight and adds nothing to the pose and sub-cell terms."""
    model = _tiny()
    batch, targets = _batch(b=2)
    batch["prior_yaw"] = targets["pose"][:, 2].clone()
    out = model(batch)
    marked = {**targets, "negative": torch.tensor([False, True])}
    gt = ground_truth_assignment(model, out, marked)
    plain = ground_truth_assignment(model, out, targets)
    assert torch.equal(gt["row_target"][0], plain["row_target"][0]) and (plain["row_target"][1] < 64).sum() > 10
    assert (gt["row_target"][1] == 64).all() and (gt["col_target"][1] == 64).all()
    # Full weight: the mismatched pair's dustbin rows count as much as a right pair's matches.
    only_negative = {k: v[1:] for k, v in gt.items()}
    one = {k: v[1:] for k, v in out.items() if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == 2}
    nll = -one["log_assign_row"][0, :, 64].mean() - one["log_assign_col"][0, 64, :].mean()
    torch.testing.assert_close(matching_loss(one, only_negative, 0.2, 1.0), 0.5 * nll)
    loss = ViewBridgeLoss(LossConfig(subcell_weight=1.0))
    both, right_only = loss(model, out, marked), loss(model, {k: v for k, v in out.items()}, targets)
    assert torch.isfinite(both["total"]) and both["matching"] != right_only["matching"]
    first = {k: (v[:1] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == 2 else v) for k, v in out.items()}
    alone = loss(model, first, {k: v[:1] for k, v in targets.items()})
    torch.testing.assert_close(both["pose"], alone["pose"])  # the negative pair adds no pose term
    torch.testing.assert_close(both["subcell"], alone["subcell"])
    with pytest.raises(ValueError, match="targets\\['negative'\\]"):
        ground_truth_assignment(model, out, {**targets, "negative": torch.tensor([True])})


def test_gradients_reach_both_extractors_through_every_loss():
    model = _tiny()
    batch, targets = _batch(b=2)
    targets["surface_height"] = torch.full((2, 8, 8), 0.5)
    cfg = LossConfig()
    for name in ("matching", "pose", "surface"):
        model.zero_grad()
        out = model(batch)
        if name == "matching":
            loss = matching_loss(out, ground_truth_assignment(model, out, targets), cfg.dustbin_weight)
        elif name == "pose":
            assert out["pose_solvable"].all()
            loss = virtual_correspondence_loss(out["pose"], targets["pose"], out["pose_solvable"], 5, 10.0)
        else:
            loss = surface_loss(out, targets, out["bev_valid"], 1.0)
        loss.backward()
        ground = sum(p.grad.abs().sum() for p in model.ground_extractor.parameters() if p.grad is not None)
        aerial = sum(p.grad.abs().sum() for p in model.aerial_extractor.parameters() if p.grad is not None)
        assert ground > 0, name
        if name != "surface":  # the surface height comes from the ground view alone
            assert aerial > 0, name


def test_subcell_loss_measures_match_positions_in_cells():
    model = _tiny().train()
    batch, targets = _batch(b=2)
    out = model(batch)
    loss = subcell_loss(model, out, targets["pose"], reach_cells=1.5, huber_cells=0.5)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert sum(p.grad.abs().sum() for p in model.aerial_extractor.parameters() if p.grad is not None) > 0
    # Matches placed exactly where their BEV points land cost nothing; half a cell off costs the
    # Huber value of 0.5 cell on one axis.
    exact = {k: v.detach() for k, v in out.items() if isinstance(v, torch.Tensor)}
    true_xy = exact["matches_bev_xy"] @ rotation_2d(targets["pose"][:, 2]).transpose(-1, -2) + targets["pose"][:, None, :2]
    exact["matches_aerial_uv"] = aerial_metric_to_pixels(true_xy, model.config.aerial_hw, exact["aerial_mpp"])
    exact["match_weights"] = torch.ones_like(exact["match_weights"])
    assert float(subcell_loss(model, exact, targets["pose"], 1.5, 0.5)) == pytest.approx(0.0, abs=1e-5)
    half_cell = torch.tensor([0.5 * model.aerial_extractor.stride, 0.0])
    shifted = {**exact, "matches_aerial_uv": exact["matches_aerial_uv"] + half_cell}
    assert float(subcell_loss(model, shifted, targets["pose"], 1.5, 0.5)) == pytest.approx(0.125, rel=1e-3)
    far = {**exact, "matches_aerial_uv": exact["matches_aerial_uv"] + 3.0 * model.aerial_extractor.stride}
    assert float(subcell_loss(model, far, targets["pose"], 1.5, 0.5)) == 0.0  # beyond reach: not counted
    with pytest.raises(ValueError, match="subcell"):
        LossConfig(subcell_weight=-1.0)
    terms = ViewBridgeLoss(LossConfig(subcell_weight=1.0))(model, out, targets)
    assert "subcell" in terms and "subcell" not in ViewBridgeLoss()(model, out, targets)


def test_loss_decreases_on_a_fixed_flat_world_batch():
    model = _tiny()
    batch, targets = _batch(b=4, seed=1)
    loss_fn = ViewBridgeLoss(LossConfig())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        terms = loss_fn(model, model(batch), targets)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in terms.items()})
    assert set(history[0]) == {"matching", "pose", "surface", "total"}
    assert history[-1]["total"] < 0.5 * history[0]["total"]
    assert history[-1]["matching"] < 0.8 * history[0]["matching"]
    assert history[-1]["pose"] < 0.5 * history[0]["pose"]


def test_pose_loss_waits_then_ramps_up():
    model = _tiny()
    batch, targets = _batch(b=2, seed=2)
    out = model(batch)
    loss_fn = ViewBridgeLoss(LossConfig(pose_start_step=10, pose_warmup_steps=20))
    base = lambda t: t["matching"] + 0.1 * t["surface"]  # noqa: E731
    for step, ramp in ((0, 0.0), (9, 0.0), (20, 0.5), (30, 1.0), (500, 1.0), (None, 1.0)):
        t = {k: v.detach() for k, v in loss_fn(model, out, targets, step=step).items()}
        assert float(t["total"]) == pytest.approx(float(base(t) + 0.1 * ramp * t["pose"]), rel=1e-5), step
    with pytest.raises(ValueError, match="pose_start_step"):
        LossConfig(pose_start_step=-1)


def test_ablation_switches_change_the_module_graph():
    full = _tiny()
    no_surface = _tiny(use_surface_model=False)
    no_refiner = _tiny(use_simrefiner=False)
    assert full.surface_model is not None and no_surface.surface_model is None
    assert full.simrefiner is not None and no_refiner.simrefiner is None
    keys = set(full.state_dict())
    assert any(k.startswith("simrefiner.") for k in keys)
    assert not any(k.startswith("simrefiner.") for k in no_refiner.state_dict())
    # The surface height is fed back into the BEV descriptor: one more input channel.
    assert full.bev_context.inp[0].in_channels == no_surface.bev_context.inp[0].in_channels + 1
    flat = _tiny(matching=replace(tiny_matcher_config().matching, bev_context_channels=0))
    assert flat.bev_context is None and not any(k.startswith("bev_context.") for k in flat.state_dict())
    batch, targets = _batch(b=1)
    with torch.no_grad():
        out_ns, out_nr = no_surface(batch), no_refiner(batch)
    assert "surface_mask" not in out_ns and out_ns["surface_height"].shape == (1, 8, 8)
    assert torch.equal(out_nr["similarity"], out_nr["similarity_refined"])
    terms = ViewBridgeLoss()(no_surface, no_surface(batch), targets)
    assert "surface" not in terms


def test_unknown_orientation_builds_the_bev_at_yaw_zero():
    model = _tiny(use_prior_yaw=False).eval()
    batch, targets = _batch(b=2)
    with torch.no_grad():
        out = model(batch)
    assert torch.equal(out["bev_yaw"], torch.zeros(2))
    terms = ViewBridgeLoss()(model, model(batch), targets)
    assert torch.isfinite(terms["total"])


def test_bad_input_raises_value_error_naming_the_argument():
    model = _tiny()
    batch, _ = _batch(b=2)
    bad = dict(batch, ground=batch["ground"][:, :, :16])
    with pytest.raises(ValueError, match="ground"):
        model(bad)
    with pytest.raises(ValueError, match="aerial"):
        model(dict(batch, aerial=batch["aerial"][:, :1]))
    nan_aerial = batch["aerial"].clone()
    nan_aerial[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="aerial: expected finite"):
        model(dict(batch, aerial=nan_aerial))
    with pytest.raises(ValueError, match="ground: expected values in"):
        model(dict(batch, ground=batch["ground"] * 255))
    with pytest.raises(ValueError, match="aerial_mpp"):
        model(dict(batch, aerial_mpp=-1.0))
    with pytest.raises(ValueError, match="prior_yaw"):
        model(dict(batch, prior_yaw=torch.zeros(3)))
    with pytest.raises(ValueError, match="camera: image size"):
        model.set_camera(MountedCamera.panorama(128, 64, 1.6))
    # A camera 1 km up looking at the horizon sees none of the BEV points (heights -1..3 m).
    high = MountedCamera.forward_pinhole(PinholeCamera(30.0, 30.0, 31.5, 15.5, 64, 32), 1000.0)
    with pytest.raises(ValueError, match="camera: sees no BEV cell"):
        model.set_camera(high)
    with pytest.raises(ValueError, match="camera: none in the batch and none set"):
        ViewBridgeMatcher(tiny_matcher_config())(batch)
    with pytest.raises(ValueError, match="num_matches"):
        tiny_matcher_config(pose=replace(tiny_matcher_config().pose, num_matches=65))


def test_camera_passed_per_call_overrides_the_default_without_changing_it():
    """Callers set `matcher.camera` from outside, and backends for several cameras shared one
    module (issue 13): a per-call camera gives what a matcher built for it gives."""
    torch.manual_seed(0)
    pinhole = MountedCamera.forward_pinhole(PinholeCamera(32.0, 32.0, 31.5, 15.5, 64, 32), 1.6)
    batch, _ = flat_world_batch(1, (32, 32), 0.5, pinhole, max_offset_m=3.0, bev_cells=8, seed=4)
    model = _tiny().eval()
    reference = ViewBridgeMatcher(model.config, pinhole).eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        per_call = model({**batch, "camera": pinhole})
        expected = reference(batch)
    assert model.camera is PANO
    torch.testing.assert_close(per_call["pose"], expected["pose"])
    torch.testing.assert_close(per_call["matches_ground_uv"], expected["matches_ground_uv"])


RIG = CameraRig.ring(PinholeCamera(32.0, 32.0, 31.5, 15.5, 64, 32), 1.6, pitch_down_rad=math.radians(20))


def test_rig_lifting_fills_one_bev_from_every_camera():
    """Issue 14: a 4-pinhole rig lifted into one BEV sees all around (a single pinhole a wedge),
    and every seen cell carries the world colour under it, whichever camera saw it."""
    gen = torch.Generator().manual_seed(3)
    aerial = random_texture(1, 64, 64, gen, scales=(8, 16))
    pose = torch.tensor([[1.0, -0.5, 0.4]])
    ground = torch.stack([render_flat_world(aerial, 0.5, pose, c)["ground"] for c in RIG.cameras], 1)
    cfg = LiftingConfig(bev_cells=10, bev_cell_m=1.0, num_heights=3, height_min_m=-1.0, height_max_m=1.0)
    lifter = BEVLifter(cfg, feature_channels=3)
    bev_yaw = pose[:, 2]
    out = lifter(ground, (32, 64), RIG, bev_yaw)
    single = lifter(ground[:, 0], (32, 64), RIG.cameras[0], bev_yaw)
    seen = out["point_valid"][:, 1]
    assert seen.float().mean() > 3 * single["point_valid"][:, 1].float().mean()
    base = lifter.points_in_base(bev_yaw)[:, 1, :, :2]
    world = base @ rotation_2d(pose[:, 2]).transpose(1, 2) + pose[:, None, :2]
    truth = sample_image(aerial, aerial_metric_to_pixels(world, (64, 64), torch.tensor([0.5])))
    pixels, valid = RIG.project_base_points(lifter.points_in_base(bev_yaw)[:, 1])
    interior = ((pixels[..., 0] > 0.5) & (pixels[..., 0] < 62.5) & (pixels[..., 1] > 0.5) & (pixels[..., 1] < 30.5)
                | ~valid).all(0)  # away from every seeing camera's border (bilinear fade)
    err = (out["volume"][:, :, 1] - truth).abs().amax(1)[seen & interior]
    assert err.numel() > 20 and err.median() < 0.02 and err.max() < 0.1


def test_each_camera_kind_has_its_own_validity_gate():
    torch.manual_seed(0)
    pinhole = RIG.cameras[0]
    batch, _ = flat_world_batch(1, (32, 32), 0.5, pinhole, max_offset_m=3.0, bev_cells=8, seed=4)
    rig_batch = {**batch, "camera": CameraRig((pinhole,)), "ground": batch["ground"][:, None]}
    model = _tiny().eval()
    # an untrained matcher: open the other validity conditions so that the gate decides
    model.config = replace(model.config, pose=replace(model.config.pose, min_effective_matches=0.0,
                                                      min_inlier_share=0.0))
    with torch.no_grad():
        single = model(batch)
        assert single["valid"].all() and model(rig_batch)["valid"].all()
        model.config = replace(model.config, pose=replace(model.config.pose, min_effective_inliers=1e9))
        assert not model(batch)["valid"].any()  # the gate applies
        model.config = replace(model.config, pose=replace(model.config.pose, min_effective_inliers=0.0,
                                                          camera_gates={"rig": 1e9}))
        assert torch.equal(model(batch)["valid"], single["valid"])  # only rigs are held to the rig gate
        assert not model(rig_batch)["valid"].any()
        # With a BEV memory a single pinhole is held to the sequential gate, a rig still to its own.
        memory = {"features": single["frame_bev_features"][:, None], "valid": single["frame_bev_valid"][:, None],
                  "surface_height": single["frame_surface_height"][:, None], "relative_pose": torch.zeros(1, 1, 3),
                  "bev_yaw": batch["prior_yaw"][:, None], "pose_std": torch.zeros(1, 1, 2)}
        with_memory = {**batch, "camera": pinhole, "bev_memory": memory}
        model.config = replace(model.config, pose=replace(model.config.pose, camera_gates={"sequential": 1e9}))
        assert not model(with_memory)["valid"].any()
        assert model({**rig_batch, "bev_memory": memory})["valid"].all()
        model.config = replace(model.config, pose=replace(model.config.pose, camera_gates={"rig": 1e9}))
        assert model(with_memory)["valid"].all()
        assert not model({**rig_batch, "bev_memory": memory})["valid"].any()
    assert model.config.pose.gate_for("pinhole") == model.config.pose.min_effective_inliers
    with pytest.raises(ValueError, match="camera_gates"):
        replace(model.config.pose, camera_gates={"fisheye": 1.0})


def test_a_rig_of_one_camera_is_that_camera_and_rig_input_is_checked():
    torch.manual_seed(0)
    pinhole = RIG.cameras[1]
    batch, _ = flat_world_batch(1, (32, 32), 0.5, pinhole, max_offset_m=3.0, bev_cells=8, seed=4)
    model = _tiny().eval()
    with torch.no_grad():
        single = model({**batch, "camera": pinhole})
        rig = model({**batch, "camera": CameraRig((pinhole,)), "ground": batch["ground"][:, None]})
        four = model({**batch, "camera": RIG, "ground": batch["ground"][:, None].expand(-1, 4, -1, -1, -1)})
    for key in ("pose", "covariance", "matches_ground_uv", "match_weights"):
        torch.testing.assert_close(rig[key], single[key])
    assert four["pose"].shape == (1, 3) and four["matches_ground_camera"].shape == four["match_weights"].shape
    seen = four["matches_ground_camera"] >= 0
    assert (four["matches_ground_uv"][seen] >= -0.5).all() and (four["matches_ground_uv"][~seen] == -1).all()
    assert four["bev_valid"].float().mean() > 2 * single["bev_valid"].float().mean()
    with pytest.raises(ValueError, match="ground"):  # one image for a rig of four
        model({**batch, "camera": RIG})
    up = MountedCamera.pinhole(RIG.cameras[0].camera, 1000.0, yaw_rad=math.pi)  # sees no BEV point
    with pytest.raises(ValueError, match="rig camera 2 \\(rear\\): camera: sees no BEV cell"):
        model.check_camera(CameraRig((*RIG.cameras[:2], up), ("front", "left", "rear")))


def test_solve_matches_is_the_forward_solve_with_another_gate():
    """The localizer's second look re-solves from the match outputs: with the forward pass's own gate
    it gives the forward pose, covariance and validity; with an open gate a gated-out frame's
    pose is the same and its covariance finite."""
    torch.manual_seed(0)
    batch, _ = flat_world_batch(1, (32, 32), 0.5, RIG.cameras[0], max_offset_m=3.0, bev_cells=8, seed=4)
    model = _tiny().eval()
    model.config = replace(model.config, pose=replace(model.config.pose, min_effective_matches=0.0,
                                                      min_inlier_share=0.0))
    with torch.no_grad():
        out = model(batch)
    again = model.solve_matches(out["matches_bev_xy"], out["matches_aerial_uv"], out["match_weights"], 0.5,
                                model.config.pose.min_effective_inliers)
    assert bool(out["valid"][0]) and bool(again["valid"][0])
    torch.testing.assert_close(again["pose"], out["pose"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again["covariance"], out["covariance"], atol=1e-7, rtol=1e-4)
    model.config = replace(model.config, pose=replace(model.config.pose, min_effective_inliers=1e9))
    with torch.no_grad():
        gated = model(batch)
    assert not bool(gated["valid"][0]) and float(gated["covariance"][0, 0, 0]) == pytest.approx(1e6)
    reopened = model.solve_matches(gated["matches_bev_xy"].numpy(), gated["matches_aerial_uv"].numpy(),
                                   gated["match_weights"].numpy(), 0.5, 0.0)
    assert bool(reopened["valid"][0])
    torch.testing.assert_close(reopened["pose"], out["pose"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reopened["covariance"], out["covariance"], atol=1e-7, rtol=1e-4)
