"""The synthetic engine's ground truth is exact: the properties training and evaluation rely on."""
import numpy as np
import pytest
import torch

from cvfm_ros.data.synth import (
    SEEN_STYLES, UNSEEN_STYLES, GroundClass, SyntheticPairDataset, WorldClass, generate_world, make_pair, render_aerial,
    render_ground, surface_height_grid,
)
from cvfm_ros.geometry import SE2, MetricGrid, MountedCamera


@pytest.fixture(scope="module")
def world():
    return generate_world("suburb", 3, size_m=96.0)


@pytest.mark.parametrize("camera", ["pano", "pinhole"])
def test_hit_points_project_back_to_their_pixels(world, camera):
    rng = np.random.default_rng(1)
    sample = make_pair(world, rng, camera=camera, ground_size=(256, 128) if camera == "pano" else (160, 120))
    render_pose = sample.pose
    ground = render_ground(world, render_pose, sample.camera, rng=np.random.default_rng(2))
    finite = np.isfinite(ground.points_map[..., 0])
    assert finite.mean() > 0.3
    pose = SE2(torch.tensor(render_pose, dtype=torch.float64))
    pts = torch.from_numpy(ground.points_map[finite].astype(np.float64))
    r, c, _ = world.cell_index(render_pose[0], render_pose[1])
    base_z = float(world.ground_height[r, c])
    base = torch.cat([pose.inverse().apply(pts[:, :2]), (pts[:, 2:] - base_z)], -1)
    cam = MountedCamera(sample.camera.camera, sample.camera.base_from_camera.__class__(
        sample.camera.base_from_camera.rotation.double(), sample.camera.base_from_camera.translation.double()))
    uv, valid = cam.project_base_points(base)
    v, u = np.nonzero(finite)
    err = (uv - torch.from_numpy(np.stack([u, v], -1)).double())
    if camera == "pano":
        err[:, 0] = torch.remainder(err[:, 0] + 128, 256) - 128
    # float32 storage of map coordinates bounds the round trip
    assert valid.float().mean() > 0.99
    assert err.abs().max() < 0.05


def test_visible_points_share_albedo_with_their_aerial_pixel(world):
    rng = np.random.default_rng(4)
    sample = make_pair(world, rng, camera="pano", ground_size=(256, 128), appearance=False)
    vis = sample.visible
    assert vis.mean() > 0.2
    # the aerial image without appearance changes is the world albedo at pixel centres
    uv = np.rint(sample.aerial_uv[vis]).astype(int)
    aerial_rgb = sample.aerial[uv[:, 1], uv[:, 0]].astype(int)
    ground = render_ground(world, sample.pose, sample.camera, rng=np.random.default_rng(0))
    pts = ground.points_map[vis]
    world_rgb = world.albedo_at(pts[:, :2]).astype(int)
    diff = np.abs(aerial_rgb - world_rgb).max(-1)
    # same surface: identical up to the half-pixel rounding of the aerial pixel (texture grain)
    assert np.median(diff) < 12 and (diff < 40).mean() > 0.9


def test_invisible_classes(world):
    rng = np.random.default_rng(5)
    for _ in range(3):
        sample = make_pair(world, rng, camera="pano", ground_size=(256, 128))
        cls = sample.ground_classes
        assert not sample.visible[cls == GroundClass.FACADE].any()
        assert not sample.visible[cls == GroundClass.SKY].any()
        assert (cls == GroundClass.SKY).any()


def test_ground_under_canopy_is_not_visible_from_the_air(world):
    tree = np.argwhere(world.classes == WorldClass.TREE)
    assert len(tree)
    # stand next to a tree and look at the ground below its canopy
    r, c = tree[len(tree) // 2]
    x, y = world.grid.pixel_to_metric(torch.tensor([[float(c), float(r)]]))[0].tolist()
    cam = MountedCamera.panorama(256, 128, 1.6)
    under_canopy_ground = 0
    for dx, dy in ((3, 0), (-3, 0), (0, 3), (0, -3)):
        g = render_ground(world, np.array([x + dx, y + dy, 0.0]), cam, rng=np.random.default_rng(0))
        pts = g.points_map
        finite = np.isfinite(pts[..., 0])
        rr, cc, inside = world.cell_index(np.nan_to_num(pts[..., 0]), np.nan_to_num(pts[..., 1]))
        under = finite & inside & (world.classes[rr, cc] == WorldClass.TREE) & (g.classes == GroundClass.GROUND)
        under_canopy_ground += under.sum()
        assert not g.aerial_visible[under].any()
    assert under_canopy_ground > 0


def test_surface_height_grid_matches_the_world(world):
    pose = np.array([0.0, 0.0, 0.0])
    grid = MetricGrid(64, 64, 1.0)
    h = surface_height_grid(world, pose, grid)
    centres = grid.cell_centres(torch.float64).numpy()
    assert np.allclose(h, world.height_at(centres))
    rotated = surface_height_grid(world, np.array([0.0, 0.0, np.pi / 2]), grid)
    # with yaw = 90 deg the grid's +x points north: cell (32, 40) at (8.5, -0.5) in the grid is (0.5, 8.5) in map
    assert rotated[32, 40] == pytest.approx(float(world.height_at(np.array([0.5, 8.5]))))
    assert h.max() > 3  # buildings or trees in view


def test_worlds_are_deterministic_and_styles_differ():
    a = generate_world("downtown", 7, size_m=64.0)
    b = generate_world("downtown", 7, size_m=64.0)
    c = generate_world("desert", 7, size_m=64.0)
    assert np.array_equal(a.albedo, b.albedo) and np.array_equal(a.height, b.height)
    assert not np.array_equal(a.albedo, c.albedo)
    assert set(SEEN_STYLES).isdisjoint(UNSEEN_STYLES)


def test_aerial_patch_georeference(world):
    render = render_aerial(world, (5.03, -3.02), 64, 0.2)  # off the cell boundaries: no rounding ties
    assert render.patch.cx == 5.03 and render.image.shape == (64, 64, 3)
    # the clean patch is the world albedo at the pixel centres
    uv = torch.tensor([[10.0, 20.0]])
    xy = render.patch.pixel_to_map(uv)[0].numpy()
    assert np.array_equal(render.clean[20, 10], world.albedo_at(xy))


def test_bad_arguments():
    with pytest.raises(ValueError, match="style"):
        generate_world("atlantis", 0)
    with pytest.raises(ValueError, match="size_m"):
        generate_world("suburb", 0, size_m=5.0)
    world = generate_world("suburb", 0, size_m=96.0)
    with pytest.raises(ValueError, match="camera"):
        make_pair(world, np.random.default_rng(0), camera="fisheye")
    with pytest.raises(ValueError, match="aerial_size"):
        make_pair(world, np.random.default_rng(0), aerial_size=4)
    with pytest.raises(ValueError, match="styles"):
        SyntheticPairDataset([])
    with pytest.raises(ValueError, match="style"):
        SyntheticPairDataset(["atlantis"])


def test_dataset_items_are_deterministic_tensors():
    ds = SyntheticPairDataset(["suburb"], seed=2, length=4, pairs_per_world=4, world_size_m=96.0,
                              ground_size=(128, 64), aerial_size=64)
    a, b = ds[1], ds[1]
    assert torch.equal(a["ground"], b["ground"]) and a["ground"].shape == (3, 64, 128)
    assert a["aerial"].shape == (3, 64, 64) and a["visible"].dtype == torch.bool
    assert a["pose_in_patch"][:2].abs().max() <= 64 * 0.2 / 2
