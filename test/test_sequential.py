"""Sequential BEV (model/sequential.py, issue 14): past BEVs warped by odometry into the current
frame's BEV, down-weighted by odometry uncertainty, fused before matching."""
import math

import numpy as np
import pytest
import torch

from cvfm_ros.geometry import MountedCamera, PinholeCamera, bev_grid, rotation_2d
from cvfm_ros.geometry.planar import relative
from cvfm_ros.model import ViewBridgeMatcher
from cvfm_ros.model.lifting import bev_points_in_base
from cvfm_ros.model.sequential import fuse_bev, warp_memory
from cvfm_ros.model.toy import flat_world_batch, tiny_matcher_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GRID = bev_grid(16.0, 1.0)  # 16 x 16 cells of 1 m
CELLS = GRID.cell_centres().reshape(-1, 2)


def _map_xy_of_cells(pose: np.ndarray, bev_yaw: float) -> torch.Tensor:
    """(N, 2) map position of every BEV cell of a frame at `pose` (x, y, yaw) lifted at `bev_yaw`."""
    base = bev_points_in_base(CELLS.double(), torch.tensor([bev_yaw], dtype=torch.float64))[0]
    return base @ rotation_2d(torch.tensor(pose[2], dtype=torch.float64)).T + torch.tensor(pose[:2])


def _memory(features, valid, rel, bev_yaw, std=(0.0, 0.0)):
    t = features.shape[1]
    return {"features": features, "valid": valid, "surface_height": torch.zeros_like(valid),
            "relative_pose": torch.as_tensor(rel, dtype=torch.float64).reshape(1, t, 3),
            "bev_yaw": torch.as_tensor(bev_yaw, dtype=torch.float64).reshape(1, t),
            "pose_std": torch.as_tensor(std, dtype=torch.float64).reshape(1, 1, 2).expand(1, t, 2)}


def test_a_past_bev_lands_where_its_cells_are_now():
    """A past BEV whose 'features' are the map coordinates of its own cells, warped into the
    current frame, must read the map coordinates of the current cells (wherever it overlaps)."""
    past_pose, now_pose = np.array([3.0, -1.0, 0.6]), np.array([5.5, 1.0, 1.1])
    past_yaw, now_yaw = 0.55, 1.15  # BEV yaws: the priors' yaws, not the true ones
    past_xy = _map_xy_of_cells(past_pose, past_yaw).T.reshape(1, 1, 2, 16, 16)
    memory = _memory(past_xy, torch.ones(1, 1, 16, 16, dtype=torch.float64), relative(now_pose, past_pose), past_yaw)
    features, _, weight = warp_memory(memory, CELLS.double(), torch.tensor([now_yaw], dtype=torch.float64), GRID)
    truth = _map_xy_of_cells(now_pose, now_yaw)  # (N, 2)
    inside = weight[0, 0] > 0.999
    assert inside.float().mean() > 0.5  # the frames overlap
    assert torch.allclose(features[0, 0, :, inside].T, truth[inside], atol=1e-6)
    assert (weight[0, 0][~inside] < 1.0).all()  # cells the past BEV never covered carry (almost) no weight


def test_odometry_uncertainty_down_weights_old_cells_most_far_away():
    ones = torch.ones(1, 1, 16, 16, dtype=torch.float64)
    feats = torch.zeros(1, 1, 3, 16, 16, dtype=torch.float64)
    yaw = torch.zeros(1, dtype=torch.float64)
    sure = warp_memory(_memory(feats, ones, [0, 0, 0], 0.0), CELLS.double(), yaw, GRID)[2]
    unsure = warp_memory(_memory(feats, ones, [0, 0, 0], 0.0, std=(0.5, math.radians(5))), CELLS.double(), yaw, GRID)[2]
    assert torch.allclose(sure[0, 0, 1:-1], torch.ones(1, dtype=torch.float64))  # interior of the grid
    far, near = CELLS.norm(dim=-1).argmax(), CELLS.norm(dim=-1).argmin()
    assert unsure[0, 0, near] < 1.0 and unsure[0, 0, far] < unsure[0, 0, near]
    # position 0.5 m and yaw 5 deg at 10 m: sigma^2 = 0.25 + (10 * 0.0873)^2 -> 1 / (1 + sigma^2)
    r = float(CELLS[far].norm())
    assert float(unsure[0, 0, far]) == pytest.approx(1 / (1 + 0.25 + (r * math.radians(5)) ** 2), rel=1e-3)


def test_fusion_widens_what_is_seen_and_keeps_the_current_view():
    now = torch.rand(1, 3, 256, dtype=torch.float64)
    valid = torch.zeros(1, 256, dtype=torch.bool)
    valid[:, :128] = True  # the current frame sees the top half
    past = torch.rand(1, 1, 3, 16, 16, dtype=torch.float64)
    past_valid = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    past_valid[..., 8:, :] = 1.0  # the past frame saw the bottom half (same place: no motion)
    fused = fuse_bev(now, valid, torch.zeros(1, 256, dtype=torch.float64), _memory(past, past_valid, [0, 0, 0], 0.0),
                     CELLS.double(), torch.zeros(1, dtype=torch.float64), GRID)
    assert fused["valid"].all()
    assert torch.allclose(fused["features"][:, :, :128], now[:, :, :128])  # what the current frame sees stays
    assert torch.allclose(fused["features"][:, :, 128:], past.reshape(1, 3, 256)[:, :, 128:])  # the rest: memory
    assert fused["from_memory"][:, 128:].all() and not fused["from_memory"][:, :128].any()


def test_a_memory_of_the_same_frame_changes_nothing_and_bad_memory_is_named():
    torch.manual_seed(0)
    pinhole = MountedCamera.forward_pinhole(PinholeCamera(32.0, 32.0, 31.5, 15.5, 64, 32), 1.6)
    batch, _ = flat_world_batch(1, (32, 32), 0.5, pinhole, max_offset_m=3.0, bev_cells=8, seed=4)
    model = ViewBridgeMatcher(tiny_matcher_config(), pinhole).eval()
    with torch.no_grad():
        single = model(batch)
        memory = {"features": single["frame_bev_features"][:, None], "valid": single["frame_bev_valid"][:, None],
                  "surface_height": single["frame_surface_height"][:, None], "relative_pose": torch.zeros(1, 1, 3),
                  "bev_yaw": batch["prior_yaw"][:, None], "pose_std": torch.zeros(1, 1, 2)}
        again = model({**batch, "bev_memory": memory})
    for key in ("pose", "covariance", "match_weights", "bev_valid"):
        torch.testing.assert_close(again[key], single[key])
    with pytest.raises(ValueError, match="bev_memory\\['relative_pose'\\]"):
        model({**batch, "bev_memory": {**memory, "relative_pose": torch.zeros(1, 2, 3)}})
    with pytest.raises(ValueError, match="bev_memory: missing pose_std"):
        model({**batch, "bev_memory": {k: v for k, v in memory.items() if k != "pose_std"}})


def test_sequence_pairs_give_the_matcher_its_own_past_bevs(tmp_path):
    """`eval --sequential K` / the "sequential" validity gate: benchmark pairs with K earlier frames
    along the way the camera came; `load_pair` turns them into the matcher's BEV memory."""
    from cvfm_ros.eval.benchmark import HISTORY_STEP_M, benchmark_pairs, load_pair

    files = benchmark_pairs("synth-cross", 0, 2, tmp_path, (32, 64), 32, 0.5, 10.0, camera="pinhole", history=3)
    d = np.load(files[0])
    assert d["history_ground"].shape == (3, 32, 64, 3) and d["history_relative"].shape == (3, 3)
    back = np.linalg.norm(d["history_relative"][:, :2], axis=1)
    assert np.all(np.diff(back) > 1.0) and back[0] == pytest.approx(HISTORY_STEP_M, rel=1e-6)
    assert np.all(d["history_relative"][:, 0] < 0)  # behind the camera
    model = ViewBridgeMatcher(tiny_matcher_config()).eval()
    batch, _, _ = load_pair(files[0], model, 0.5)
    memory = batch["bev_memory"]
    assert memory["features"].shape == (1, 3, model.bev_input_channels, 8, 8)
    assert torch.allclose(memory["relative_pose"][0], torch.from_numpy(d["history_relative"]).float())
    with torch.no_grad():
        out = model(batch)
    assert out["bev_valid"].float().mean() >= out["frame_bev_valid"].float().mean()  # the memory adds cells
