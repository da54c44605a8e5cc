"""Metric grids: the BEV grid around a camera and georeferenced north-up aerial patches.

Convention (docs/CONVENTIONS.md): image-like grids are indexed (row, col) = (v, u); u grows
along the frame's +x (east for aerial patches), v grows along -y (south). Continuous pixel
coordinates follow OpenCV (the centre of the top-left pixel is (0, 0)). For a patch of W x H
pixels centred at (cx, cy) with `mpp` metres per pixel:
    x = cx + (u - (W-1)/2) * mpp,    y = cy - (v - (H-1)/2) * mpp.
All conversion to `torch.nn.functional.grid_sample` coordinates goes through
`pixels_to_grid_sample` (align_corners=True).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_tensor


def pixels_to_grid_sample(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """OpenCV pixel coordinates (..., 2) -> grid_sample coordinates in [-1, 1] (align_corners=True)."""
    check_tensor("pixels", pixels, (..., 2))
    scale = pixels.new_tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
    return pixels * scale - 1.0


def grid_sample_to_pixels(grid: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Inverse of `pixels_to_grid_sample`."""
    check_tensor("grid", grid, (..., 2))
    scale = grid.new_tensor([(max(width - 1, 1)) / 2.0, (max(height - 1, 1)) / 2.0])
    return (grid + 1.0) * scale


def sample_image(image: torch.Tensor, pixels: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample `image` (B, C, H, W) at OpenCV pixels (B, ..., 2) -> (B, C, ...); outside is zero."""
    check_tensor("image", image, ("B", "C", "H", "W"))
    b, _, h, w = image.shape
    if pixels.shape[0] != b or pixels.shape[-1] != 2:
        raise ValueError(f"pixels: expected shape ({b}, ..., 2), got {tuple(pixels.shape)}")
    grid = pixels_to_grid_sample(pixels, w, h).reshape(b, 1, -1, 2).to(image.dtype)
    out = torch.nn.functional.grid_sample(image, grid, mode=mode, align_corners=True, padding_mode="zeros")
    return out.reshape(b, image.shape[1], *pixels.shape[1:-1])


@dataclass(frozen=True)
class MetricGrid:
    """A square-celled metric grid of `rows` x `cols` cells of `cell_m` metres centred on (cx, cy).

    Used both for the BEV grid around a camera (centre (0, 0) in the camera's planar frame) and,
    through `AerialPatch`, for georeferenced imagery in `map`.
    """

    rows: int
    cols: int
    cell_m: float
    cx: float = 0.0
    cy: float = 0.0

    def __post_init__(self) -> None:
        if self.rows <= 0 or self.cols <= 0:
            raise ValueError(f"MetricGrid: rows and cols must be positive, got {self.rows}x{self.cols}")
        if not self.cell_m > 0:
            raise ValueError(f"MetricGrid: cell_m must be positive metres, got {self.cell_m}")

    @property
    def extent_m(self) -> tuple[float, float]:
        """(width, height) in metres."""
        return self.cols * self.cell_m, self.rows * self.cell_m

    def pixel_to_metric(self, pixels: torch.Tensor) -> torch.Tensor:
        """(..., 2) continuous (u, v) -> (..., 2) metric (x, y)."""
        check_tensor("pixels", pixels, (..., 2))
        x = self.cx + (pixels[..., 0] - (self.cols - 1) / 2) * self.cell_m
        y = self.cy - (pixels[..., 1] - (self.rows - 1) / 2) * self.cell_m
        return torch.stack([x, y], -1)

    def metric_to_pixel(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) metric (x, y) -> (..., 2) continuous (u, v)."""
        check_tensor("xy", xy, (..., 2))
        u = (xy[..., 0] - self.cx) / self.cell_m + (self.cols - 1) / 2
        v = -(xy[..., 1] - self.cy) / self.cell_m + (self.rows - 1) / 2
        return torch.stack([u, v], -1)

    def contains_pixel(self, pixels: torch.Tensor) -> torch.Tensor:
        u, v = pixels[..., 0], pixels[..., 1]
        return (u >= -0.5) & (u <= self.cols - 0.5) & (v >= -0.5) & (v <= self.rows - 0.5)

    def cell_centres(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(rows, cols, 2) metric centres of all cells."""
        dtype = dtype or torch.get_default_dtype()
        v, u = torch.meshgrid(torch.arange(self.rows, dtype=dtype), torch.arange(self.cols, dtype=dtype), indexing="ij")
        return self.pixel_to_metric(torch.stack([u, v], -1))

    def metric_to_index(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., 2) metric -> integer (row, col) of the containing cell, and inside (...,) bool."""
        uv = torch.round(self.metric_to_pixel(xy)).long()
        inside = (uv[..., 0] >= 0) & (uv[..., 0] < self.cols) & (uv[..., 1] >= 0) & (uv[..., 1] < self.rows)
        return torch.stack([uv[..., 1], uv[..., 0]], -1), inside


def bev_grid(size_m: float, cell_m: float) -> MetricGrid:
    """A square BEV grid of side `size_m` centred on the camera, axes of the camera's planar frame.

    Columns grow along the frame's +x, rows along -y: the same layout as a north-up aerial patch
    when the frame's +x points east.
    """
    n = int(round(size_m / cell_m))
    if n <= 0:
        raise ValueError(f"bev_grid: size_m / cell_m must give at least one cell, got {size_m}/{cell_m}")
    return MetricGrid(n, n, cell_m)


@dataclass(frozen=True)
class AerialPatch:
    """A north-up aerial image (C, H, W) georeferenced in `map`: centre (cx, cy) and metres per pixel."""

    image: torch.Tensor
    cx: float
    cy: float
    mpp: float

    def __post_init__(self) -> None:
        check_tensor("AerialPatch.image", self.image, ("C", "H", "W"), floating=False)
        if not self.mpp > 0:
            raise ValueError(f"AerialPatch: mpp must be positive metres per pixel, got {self.mpp}")

    @property
    def grid(self) -> MetricGrid:
        return MetricGrid(self.image.shape[-2], self.image.shape[-1], self.mpp, self.cx, self.cy)

    def pixel_to_map(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.grid.pixel_to_metric(pixels)

    def map_to_pixel(self, xy: torch.Tensor) -> torch.Tensor:
        return self.grid.metric_to_pixel(xy)
