"""The Surface Model (ViewBridge): per BEV column, where the aerial view's visible surface lies.

Given the height weights w_k of a column (softmax over the height bins, bottom to top), the
surface is the lowest bin s at which the cumulative weight sum_{j<=s} w_j reaches a threshold tau.
Bins at or below the surface are what a top-down view can see (the top and what is under it in
the ground view); bins above carry features of rays passing through free space, which the aerial
view cannot match, and are masked out before the column's feature is pooled.

Bin k is at or below the surface exactly when the cumulative weight strictly below it,
C_k = sum_{j<k} w_j, is < tau. The hard mask [C_k < tau] is used in the forward pass; gradients
flow through sigmoid((tau - C_k) / temperature) (straight-through), so the surface-height loss
trains the height scorer. The surface height is sum_k (h_k - h_{k-1}) m_k (h_{-1} = 0), which for a
hard mask is exactly h_s.

Convention: heights are metres above the ground plane of `base_link`; tensors are (B, K, N) with K
height bins (ascending) and N BEV cells.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cvfm_ros.geometry import check_tensor

_EPS = 1e-6


@dataclass(frozen=True)
class SurfaceModelConfig:
    threshold: float = 0.9  # cumulative height weight that defines the surface
    temperature: float = 0.05  # softness of the backward-pass mask
    straight_through: bool = True  # False: the soft mask is used in the forward pass as well

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"SurfaceModelConfig.threshold: expected (0, 1], got {self.threshold}")
        if not self.temperature > 0:
            raise ValueError(f"SurfaceModelConfig.temperature: expected > 0, got {self.temperature}")


def surface_mask(weights: torch.Tensor, threshold: float, temperature: float, straight_through: bool = True) -> torch.Tensor:
    """Height weights (B, K, N) -> mask (B, K, N) in [0, 1]: 1 for bins at or below the surface."""
    check_tensor("weights", weights, ("B", "K", "N"))
    below = torch.cumsum(weights, dim=1) - weights  # weight strictly below each bin
    soft = torch.sigmoid((threshold - below) / temperature)
    if not straight_through:
        return soft
    hard = (below < threshold).to(weights.dtype)
    return hard + (soft - soft.detach())  # exactly `hard` in value, the soft gradient


def surface_height_from_mask(mask: torch.Tensor, heights: torch.Tensor) -> torch.Tensor:
    """Mask (B, K, N) and ascending bins `heights` (K,) -> surface height (B, N) in metres."""
    check_tensor("mask", mask, ("B", "K", "N"))
    steps = torch.cat([heights[:1], heights[1:] - heights[:-1]]).to(mask)
    return (mask * steps.view(1, -1, 1)).sum(1)


def height_pool(volume: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """FG2 pooling: volume (B, C, K, N) weighted by `weights` (B, K, N) summed over K -> (B, C, N)."""
    return (volume * weights.unsqueeze(1)).sum(2)


class SurfaceModel(nn.Module):
    """Masks the height bins above each column's surface and pools the rest."""

    def __init__(self, config: SurfaceModelConfig, heights: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("heights", heights.clone(), persistent=False)

    def forward(self, volume: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """`volume` (B, C, K, N), `weights` (B, K, N) -> `features` (B, C, N), `surface_height`
        (B, N) metres, `surface_mask` (B, K, N)."""
        mask = surface_mask(weights, self.config.threshold, self.config.temperature, self.config.straight_through)
        kept = weights * mask
        # Renormalised over the kept bins so that the descriptor scale does not depend on tau.
        pooled = height_pool(volume, kept) / kept.sum(1).clamp_min(_EPS).unsqueeze(1)
        return {
            "features": pooled,
            "surface_height": surface_height_from_mask(mask, self.heights),
            "surface_mask": mask,
        }
