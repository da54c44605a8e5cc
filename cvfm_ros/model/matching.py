"""Descriptor heads, the BEV-aerial similarity matrix and the dual-softmax with a dustbin.

Convention: descriptors are L2-normalised over channels; the similarity S (B, N, M) is the
cosine similarity of BEV cell n and aerial cell m divided by a learned temperature (logits). The
dustbin is one extra column (for BEV cells with no aerial match: unseen, outside the patch,
invisible from above) and one extra row (aerial cells with no BEV match), both with the same
learned logit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cvfm_ros.geometry import check_tensor
from .extractor import ResidualBlock, conv_norm_act

# Logit given to BEV cells the camera does not see: they go to the dustbin with probability ~1.
MASKED_LOGIT = -1.0e4


@dataclass(frozen=True)
class MatchingConfig:
    descriptor_dim: int = 64
    head_hidden: int = 64
    # Width of the BEV context network (0 = none, FG2-like per-cell descriptors): see BEVContext.
    bev_context_channels: int = 64
    groups: int = 8  # GroupNorm groups of the BEV context network
    temperature: float = 0.1  # initial value (learned as a log)
    dustbin_logit: float = 1.0  # initial value (learned)

    def __post_init__(self) -> None:
        if self.descriptor_dim < 1 or self.head_hidden < 1:
            raise ValueError("MatchingConfig: descriptor_dim and head_hidden must be >= 1")
        if not self.temperature > 0:
            raise ValueError(f"MatchingConfig.temperature: expected > 0, got {self.temperature}")
        if self.bev_context_channels < 0 or (self.bev_context_channels and self.bev_context_channels % self.groups):
            raise ValueError(f"MatchingConfig.bev_context_channels: expected 0 or a multiple of groups={self.groups}, "
                             f"got {self.bev_context_channels}")


class BEVContext(nn.Module):
    """Metric context on the BEV grid: (B, C_in, H, W) -> (B, C, H, W).

    Why: the aerial descriptor of a cell sees tens of metres of texture (the aerial CNN's
    receptive field), while a lifted BEV cell only carries what the ground CNN saw around one
    image point, in perspective. Three scales on the BEV grid (1, 1/2, 1/4 with a residual block
    each, fused at full resolution) give the BEV descriptor a comparable metric neighbourhood;
    without it, training from scratch on textured flat worlds barely beats per-cell colour.
    """

    def __init__(self, in_channels: int, channels: int, groups: int) -> None:
        super().__init__()
        self.inp = conv_norm_act(in_channels, channels, 1, groups)
        self.down2 = nn.Sequential(conv_norm_act(channels, channels, 2, groups), ResidualBlock(channels, groups))
        self.down4 = nn.Sequential(conv_norm_act(channels, channels, 2, groups), ResidualBlock(channels, groups))
        self.fuse = nn.Conv2d(3 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inp(x)
        x2 = self.down2(x1)
        x4 = self.down4(x2)
        size = x1.shape[-2:]
        up = [nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (x2, x4)]
        return torch.relu(self.fuse(torch.cat([x1, *up], 1)))


class DescriptorHead(nn.Module):
    """(B, C_in, H, W) -> (B, D, H, W) L2-normalised descriptors (replicate padding: no border
    signature, see extractor.PADDING)."""

    def __init__(self, in_channels: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, 1, 1, padding_mode="replicate"), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(x), dim=1, eps=1e-6)


class SimilarityMatcher(nn.Module):
    """Similarity logits and the dual-softmax assignment with a learnable dustbin."""

    def __init__(self, config: MatchingConfig) -> None:
        super().__init__()
        self.config = config
        self.log_temperature = nn.Parameter(torch.tensor(math.log(config.temperature)))
        self.dustbin = nn.Parameter(torch.tensor(float(config.dustbin_logit)))

    def similarity(self, bev_desc: torch.Tensor, aerial_desc: torch.Tensor) -> torch.Tensor:
        """`bev_desc` (B, D, Hb, Wb), `aerial_desc` (B, D, Ha, Wa) -> logits (B, Hb*Wb, Ha*Wa)."""
        sizes: dict[str, int] = {}
        check_tensor("bev_desc", bev_desc, ("B", "D", "Hb", "Wb"), sizes)
        check_tensor("aerial_desc", aerial_desc, ("B", "D", "Ha", "Wa"), sizes)
        b, d = bev_desc.shape[:2]
        sim = bev_desc.reshape(b, d, -1).transpose(1, 2) @ aerial_desc.reshape(b, d, -1)
        return sim / self.log_temperature.exp()

    def assign(self, logits: torch.Tensor, row_valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Dual softmax of `logits` (B, N, M) with a dustbin; rows with `row_valid` (B, N) False
        go to the dustbin.

        Returns `log_assign_row` (B, N, M+1) (log-softmax over aerial cells + dustbin, per BEV
        cell), `log_assign_col` (B, N+1, M) (over BEV cells + dustbin, per aerial cell) and
        `match_prob` (B, N, M) = row softmax * column softmax (no dustbins).
        """
        check_tensor("logits", logits, ("B", "N", "M"))
        b, n, m = logits.shape
        s = torch.where(row_valid.unsqueeze(-1), logits, torch.full_like(logits, MASKED_LOGIT))
        z = self.dustbin.to(s)
        log_row = torch.log_softmax(torch.cat([s, z.expand(b, n, 1)], 2), 2)
        log_col = torch.log_softmax(torch.cat([s, z.expand(b, 1, m)], 1), 1)
        prob = torch.exp(log_row[:, :, :m] + log_col[:, :n, :])
        return {"log_assign_row": log_row, "log_assign_col": log_col, "match_prob": prob}
