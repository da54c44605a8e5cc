"""Lifting ground-image features to a metric BEV grid around the camera (FG2-style height bins).

For every BEV cell and every height bin, the 3D point (cell centre, height) is projected into the
ground image with the mounted camera model; the ground features are sampled there (zero where the
camera does not see the point), every (cell, height) point gets a learned score, and a softmax
over the heights of each column says which heights the column's feature comes from.

Convention: the BEV frame is centred on `base_link` (on the ground) with its axes rotated by
`bev_yaw` from `base_link`'s: a point p_bev = R(bev_yaw) p_base. With bev_yaw = the prior yaw, the
BEV's +x is east and its rows grow south when the prior is right, i.e. the BEV is laid out like a
north-up aerial patch. Cells follow `cvfm_ros.geometry.bev_grid` (columns along +x, rows along -y).
Heights are metres above the ground plane of `base_link` (z = 0), not relative to the camera as in
FG2: the camera height is known from the extrinsics, so the two are the same bins shifted.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cvfm_ros.geometry import CameraRig, MetricGrid, MountedCamera, bev_grid, check_tensor, rotation_2d, sample_image

# Score given to (cell, height) points the camera does not see: finite so that softmax and its
# gradient stay NaN-free even for columns with no visible point.
INVISIBLE_SCORE = -1.0e4


@dataclass(frozen=True)
class LiftingConfig:
    """BEV grid and height bins."""

    bev_cells: int = 32  # the BEV is bev_cells x bev_cells
    bev_cell_m: float = 2.0  # metres per BEV cell
    height_min_m: float = -1.0  # lowest height bin, metres above base_link's ground plane
    height_max_m: float = 9.0
    num_heights: int = 11
    height_embedding: int = 8  # channels of the learned per-bin embedding fed to the scorer
    score_hidden: int = 32

    def __post_init__(self) -> None:
        if self.bev_cells <= 0 or not self.bev_cell_m > 0:
            raise ValueError(f"LiftingConfig: bev_cells and bev_cell_m must be positive, got {self.bev_cells}, {self.bev_cell_m}")
        if self.num_heights < 1 or (self.num_heights > 1 and not self.height_max_m > self.height_min_m):
            raise ValueError(f"LiftingConfig: need num_heights >= 1 and height_max_m > height_min_m, got "
                             f"{self.num_heights}, [{self.height_min_m}, {self.height_max_m}]")

    @property
    def grid(self) -> MetricGrid:
        return bev_grid(self.bev_cells * self.bev_cell_m, self.bev_cell_m)

    def heights(self) -> torch.Tensor:
        """(K,) height bins in metres above the ground."""
        return torch.linspace(self.height_min_m, self.height_max_m, self.num_heights)


def image_to_feature_pixels(pixels: torch.Tensor, image_hw: tuple[int, int], feature_hw: tuple[int, int]) -> torch.Tensor:
    """OpenCV pixels (..., 2) of an image (H, W) -> continuous pixels of its (Hf, Wf) feature map.

    Convention: both use OpenCV centres; feature cell j spans image pixels [j*s, (j+1)*s), so
    f = (p + 0.5) * Wf / W - 0.5 per axis.
    """
    check_tensor("pixels", pixels, (..., 2))
    scale = pixels.new_tensor([feature_hw[1] / image_hw[1], feature_hw[0] / image_hw[0]])
    return (pixels + 0.5) * scale - 0.5


def bev_points_in_base(cell_xy: torch.Tensor, bev_yaw: torch.Tensor) -> torch.Tensor:
    """BEV cell centres (N, 2) in the BEV frame -> (B, N, 2) in `base_link` for each bev_yaw (B,)."""
    check_tensor("cell_xy", cell_xy, ("N", 2))
    check_tensor("bev_yaw", bev_yaw, ("B",))
    # p_base = R(bev_yaw)^T p_bev; as row vectors that is p_bev @ R(bev_yaw).
    return cell_xy.to(bev_yaw).unsqueeze(0) @ rotation_2d(bev_yaw)


class BEVLifter(nn.Module):
    """Samples ground features at every (BEV cell, height) point and scores the heights."""

    def __init__(self, config: LiftingConfig, feature_channels: int) -> None:
        super().__init__()
        self.config = config
        grid = config.grid
        self.register_buffer("heights", config.heights(), persistent=False)
        self.register_buffer("cell_xy", grid.cell_centres().reshape(-1, 2), persistent=False)
        self.height_embedding = nn.Parameter(0.1 * torch.randn(config.height_embedding, config.num_heights))
        self.scorer = nn.Sequential(
            nn.Conv2d(feature_channels + config.height_embedding, config.score_hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(config.score_hidden, 1, 1),
        )

    @property
    def grid(self) -> MetricGrid:
        return self.config.grid

    def points_in_base(self, bev_yaw: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, K, N, 3) points (cell centre at every height) in `base_link`."""
        xy = bev_points_in_base(self.cell_xy, bev_yaw)  # (B, N, 2)
        b, n = xy.shape[:2]
        k = self.heights.numel()
        z = self.heights.to(xy).view(1, k, 1, 1).expand(b, k, n, 1)
        return torch.cat([xy.unsqueeze(1).expand(b, k, n, 2), z], -1)

    def forward(self, features: torch.Tensor, image_hw: tuple[int, int], camera: MountedCamera | CameraRig,
                bev_yaw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Lift `features` (B, C, Hf, Wf) of a ground image of size `image_hw` to the BEV; for a
        CameraRig of R cameras `features` is (B, R, C, Hf, Wf) and a point's feature is the mean
        over the cameras that see it (one BEV for the rig).

        Returns `volume` (B, C, K, N) sampled features (zero where unseen), `height_scores` and
        `height_weights` (B, K, N) (softmax over K), `point_valid` (B, K, N) bool and `bev_valid`
        (B, N) bool (some height of the column is seen); N = cells, row-major over the BEV grid.
        """
        points = self.points_in_base(bev_yaw)  # (B, K, N, 3)
        if isinstance(camera, CameraRig):
            sums, seen_by = None, None
            for i, mounted in enumerate(camera.cameras):
                sampled, valid_i = self._sample(features[:, i], image_hw, mounted, points)
                sums = sampled if sums is None else sums + sampled
                seen_by = valid_i.to(features.dtype) if seen_by is None else seen_by + valid_i.to(features.dtype)
            volume = sums / seen_by.clamp(min=1.0).unsqueeze(1)
            valid = seen_by > 0
        else:
            volume, valid = self._sample(features, image_hw, camera, points)
        b, k, n = points.shape[:3]
        embed = self.height_embedding.view(1, -1, k, 1).expand(b, -1, k, n)
        scores = self.scorer(torch.cat([volume, embed], 1)).squeeze(1)  # (B, K, N)
        scores = torch.where(valid, scores, torch.full_like(scores, INVISIBLE_SCORE))
        return {
            "volume": volume,
            "height_scores": scores,
            "height_weights": torch.softmax(scores, dim=1),
            "point_valid": valid,
            "bev_valid": valid.any(1),
        }

    @staticmethod
    def _sample(features: torch.Tensor, image_hw: tuple[int, int], camera: MountedCamera,
                points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, C, Hf, Wf) of one camera at `points` (B, K, N, 3): (B, C, K, N) (zero where
        unseen) and valid (B, K, N)."""
        hf, wf = features.shape[-2:]
        pixels, valid = camera.project_base_points(points)
        fpix = image_to_feature_pixels(pixels, image_hw, (hf, wf))
        if camera.camera.kind == "panorama":
            # The panorama wraps around horizontally: one column of each edge copied to the other
            # side lets bilinear sampling interpolate across the seam instead of fading to zero.
            features = torch.cat([features[..., -1:], features, features[..., :1]], -1)
            fpix = fpix + fpix.new_tensor([1.0, 0.0])
        return sample_image(features, fpix) * valid.unsqueeze(1).to(features.dtype), valid
