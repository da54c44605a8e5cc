import pytest
import torch

from cvfm_ros.geometry import AerialPatch, MetricGrid, bev_grid, pixels_to_grid_sample, sample_image


def test_aerial_patch_follows_conventions():
    patch = AerialPatch(torch.zeros(3, 100, 200), cx=1000.0, cy=-50.0, mpp=0.2)
    centre = patch.pixel_to_map(torch.tensor([[99.5, 49.5]]))
    assert centre[0].tolist() == pytest.approx([1000.0, -50.0])
    top_left = patch.pixel_to_map(torch.tensor([[0.0, 0.0]]))
    assert top_left[0].tolist() == pytest.approx([1000 - 99.5 * 0.2, -50 + 49.5 * 0.2])  # west and north
    xy = torch.randn(100, 2, dtype=torch.float64) * 30 + torch.tensor([1000.0, -50.0], dtype=torch.float64)
    assert torch.allclose(patch.pixel_to_map(patch.map_to_pixel(xy)), xy, atol=1e-9)


def test_bev_grid_cells_and_index():
    grid = bev_grid(64.0, 0.5)
    assert (grid.rows, grid.cols) == (128, 128)
    centres = grid.cell_centres()
    assert centres.shape == (128, 128, 2)
    assert centres[0, -1, 0] > 0 and centres[0, -1, 1] > 0  # top-right cell is +x, +y
    idx, inside = grid.metric_to_index(centres.reshape(-1, 2))
    assert inside.all()
    rows, cols = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    assert torch.equal(idx, torch.stack([rows, cols], -1).reshape(-1, 2))
    _, inside = grid.metric_to_index(torch.tensor([[100.0, 0.0]]))
    assert not inside.any()
    with pytest.raises(ValueError, match="cell_m"):
        MetricGrid(4, 4, 0.0)


def test_grid_sample_helper_hits_pixel_centres():
    image = torch.arange(2 * 3 * 5 * 7, dtype=torch.float64).reshape(2, 3, 5, 7)
    v, u = torch.meshgrid(torch.arange(5.0), torch.arange(7.0), indexing="ij")
    pix = torch.stack([u, v], -1).double().expand(2, 5, 7, 2)
    out = sample_image(image, pix)
    assert torch.allclose(out, image)
    corners = pixels_to_grid_sample(torch.tensor([[0.0, 0.0], [6.0, 4.0]]), 7, 5)
    assert corners.tolist() == [[-1.0, -1.0], [1.0, 1.0]]
    half = sample_image(image, torch.tensor([[[0.5, 0.0]], [[0.5, 0.0]]], dtype=torch.float64))
    assert torch.allclose(half[:, :, 0], (image[:, :, 0, 0] + image[:, :, 0, 1]) / 2)
