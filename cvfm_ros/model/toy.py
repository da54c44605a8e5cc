"""A consistent ground/aerial pair of a flat textured world, for tests and smoke checks.

The aerial image is random multi-scale texture lying on the ground plane; the ground image is
rendered from it exactly with the camera model (each ground pixel's ray is intersected with the
plane z = 0 and the aerial image is sampled there), so BEV and aerial agree by construction. The
full synthetic data engine (buildings, trees, occlusion) lives elsewhere; this is the minimal
world in which the pipeline's geometry can be checked end to end.

Convention: poses are (x, y, yaw) of `base_link` in the aerial patch frame (origin at the patch
centre, x east, y north); aerial pixels follow OpenCV (CONVENTIONS.md).
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from cvfm_ros.geometry import MountedCamera, check_tensor, rotation_2d, sample_image
from .extractor import ExtractorConfig
from .lifting import LiftingConfig
from .matcher import MatcherConfig
from .matching import MatchingConfig
from .pose import PoseSolverConfig, aerial_metric_to_pixels
from .simrefiner import SimRefinerConfig

SKY_VALUE = 0.85
OUTSIDE_VALUE = 0.5


def random_texture(batch: int, height: int, width: int, generator: torch.Generator | None = None,
                   scales: tuple[int, ...] = (4, 8, 16, 32)) -> torch.Tensor:
    """(B, 3, H, W) colour texture in [0, 1]: a sum of bicubically upsampled noise at several scales
    (cells of `scales` pixels), distinct per channel, normalised per image."""
    out = torch.zeros(batch, 3, height, width)
    for s in scales:
        coarse = torch.rand(batch, 3, max(2, height // s + 1), max(2, width // s + 1), generator=generator)
        out += torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    lo = out.amin(dim=(1, 2, 3), keepdim=True)
    hi = out.amax(dim=(1, 2, 3), keepdim=True)
    return ((out - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)


def render_flat_world(aerial: torch.Tensor, mpp: float | torch.Tensor, pose: torch.Tensor,
                      camera: MountedCamera) -> dict[str, torch.Tensor]:
    """Render the ground image of the flat world whose ground texture is `aerial` (B, 3, Ha, Wa).

    `pose` (B, 3) is the true pose of `base_link` in the patch frame. Returns `ground`
    (B, 3, Hg, Wg) in [0, 1], `aerial_uv` (B, Hg, Wg, 2) the aerial pixel each ground pixel sees and
    `hit` (B, Hg, Wg) bool (the pixel sees the ground inside the patch; sky and ground outside the
    patch are filled with constants and have hit False).
    """
    check_tensor("aerial", aerial, ("B", 3, "H", "W"))
    b, _, ha, wa = aerial.shape
    check_tensor("pose", pose, (b, 3))
    mpp_t = torch.as_tensor(mpp, dtype=aerial.dtype).expand(b) if not isinstance(mpp, torch.Tensor) or mpp.dim() == 0 \
        else mpp.to(aerial)
    hg, wg = camera.camera.height, camera.camera.width
    v, u = torch.meshgrid(torch.arange(hg, dtype=aerial.dtype), torch.arange(wg, dtype=aerial.dtype), indexing="ij")
    pixels = torch.stack([u, v], -1)
    rays = camera.rays_in_base(pixels).to(aerial.dtype)  # (Hg, Wg, 3) in base_link axes
    origin = camera.base_from_camera.translation.to(aerial.dtype)
    down = rays[..., 2] < -1e-6
    t = torch.where(down, -origin[2] / torch.where(down, rays[..., 2], -torch.ones_like(rays[..., 2])),
                    torch.zeros_like(rays[..., 2]))
    ground_xy = origin[:2] + t.unsqueeze(-1) * rays[..., :2]  # (Hg, Wg, 2) in base_link
    world_xy = ground_xy.reshape(1, -1, 2) @ rotation_2d(pose[:, 2]).transpose(-1, -2) + pose[:, None, :2]
    aerial_uv = aerial_metric_to_pixels(world_xy, (ha, wa), mpp_t).reshape(b, hg, wg, 2)
    inside = ((aerial_uv[..., 0] >= 0) & (aerial_uv[..., 0] <= wa - 1)
              & (aerial_uv[..., 1] >= 0) & (aerial_uv[..., 1] <= ha - 1))
    hit = inside & down.unsqueeze(0)
    colour = sample_image(aerial, aerial_uv)  # (B, 3, Hg, Wg)
    sky = (~down).view(1, 1, hg, wg).expand_as(colour)
    colour = torch.where(hit.unsqueeze(1), colour, torch.full_like(colour, OUTSIDE_VALUE))
    colour = torch.where(sky, torch.full_like(colour, SKY_VALUE), colour)
    return {"ground": colour.clamp(0, 1), "aerial_uv": aerial_uv, "hit": hit}


def flat_world_batch(batch: int, aerial_hw: tuple[int, int], mpp: float, camera: MountedCamera,
                     max_offset_m: float, bev_cells: int, prior_yaw_noise_rad: float = math.radians(10.0), seed: int = 0,
                     corr_stride: int = 4) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A batch for `ViewBridgeMatcher` and its ground truth, on flat textured worlds.

    Poses: offsets uniform in +-max_offset_m, yaw uniform in (-pi, pi], prior yaw = yaw + uniform
    noise in +-prior_yaw_noise_rad. Targets: `pose` (B, 3); `surface_height` (B, bev_cells,
    bev_cells) zeros (flat ground); `corr_ground_uv`, `corr_aerial_uv` (B, P, 2) and
    `corr_valid` (B, P) pixel-level correspondences on every `corr_stride`-th ground pixel.
    """
    gen = torch.Generator().manual_seed(seed)
    aerial = random_texture(batch, aerial_hw[0], aerial_hw[1], gen)
    xy = (torch.rand(batch, 2, generator=gen) * 2 - 1) * max_offset_m
    yaw = (torch.rand(batch, generator=gen) * 2 - 1) * math.pi
    prior = yaw + (torch.rand(batch, generator=gen) * 2 - 1) * prior_yaw_noise_rad
    pose = torch.cat([xy, yaw.unsqueeze(-1)], -1)
    rendered = render_flat_world(aerial, mpp, pose, camera)
    sub = rendered["aerial_uv"][:, ::corr_stride, ::corr_stride]
    hg, wg = sub.shape[1:3]
    v, u = torch.meshgrid(torch.arange(0, camera.camera.height, corr_stride, dtype=torch.float32),
                          torch.arange(0, camera.camera.width, corr_stride, dtype=torch.float32), indexing="ij")
    batch_dict = {"ground": rendered["ground"], "aerial": aerial, "aerial_mpp": float(mpp),
                  "prior_yaw": torch.atan2(torch.sin(prior), torch.cos(prior))}
    targets = {
        "pose": pose,
        "surface_height": torch.zeros(batch, bev_cells, bev_cells),
        "corr_ground_uv": torch.stack([u, v], -1).reshape(1, -1, 2).expand(batch, -1, -1).clone(),
        "corr_aerial_uv": sub.reshape(batch, hg * wg, 2),
        "corr_valid": rendered["hit"][:, ::corr_stride, ::corr_stride].reshape(batch, -1),
    }
    return batch_dict, targets


def tiny_matcher_config(**overrides: object) -> MatcherConfig:
    """A matcher small enough for unit tests and smoke runs (panorama 32x64, aerial 32x32, BEV 8x8
    cells of 2 m, ~40 k parameters). Keyword arguments replace top-level MatcherConfig fields."""
    ext = ExtractorConfig(channels=(8, 16, 16), out_channels=16, blocks=(0, 1, 1), groups=4)
    config = MatcherConfig(
        ground_hw=(32, 64), aerial_hw=(32, 32), ground_extractor=ext, aerial_extractor=ext,
        lifting=LiftingConfig(bev_cells=8, bev_cell_m=2.0, num_heights=5, height_min_m=-1.0, height_max_m=3.0,
                              score_hidden=8, height_embedding=4),
        matching=MatchingConfig(descriptor_dim=16, head_hidden=16, bev_context_channels=16, groups=4),
        simrefiner=SimRefinerConfig(local_channels=2, global_hidden=8),
        pose=PoseSolverConfig(num_matches=64, require_mutual=False),
    )
    return replace(config, **overrides)  # type: ignore[arg-type]
