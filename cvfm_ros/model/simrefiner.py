"""SimRefiner (ViewBridge): residual refinement of the BEV-aerial similarity matrix.

S' = S + alpha * (delta_local + delta_global), with
- delta_local: neighbourhood consensus over the 4D correlation. A separable 4D convolution: a
  k x k convolution over the aerial grid for every BEV cell (S reshaped to (B*N, 1, Ha, Wa)),
  then a k x k convolution over the BEV grid for every aerial cell. A true match is supported
  by its neighbours matching their neighbours; an isolated high score is not.
- delta_global: row/column context. Statistics of every row (a BEV cell's scores against all
  aerial cells) and column go through small MLPs that output a per-row/column sharpening gain
  and offset, so that ambiguous rows (flat, repetitive texture) can be flattened and distinctive
  ones sharpened.
- alpha in (0, 1): a confidence per (row, column) from the same MLPs (sigmoid(a_row + a_col)),
  saying how much of the correction to apply.
The output layers start at zero, so an untrained refiner is the identity.

Convention: S is (B, N, M), rows = BEV cells (row-major over a (Hb, Wb) grid), columns = aerial
cells (row-major over (Ha, Wa)); entries are logits (cosine similarity / temperature).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cvfm_ros.geometry import check_tensor


@dataclass(frozen=True)
class SimRefinerConfig:
    local_channels: int = 4  # hidden channels of the separable 4D convolution
    kernel: int = 3  # neighbourhood (cells) of the local consensus, odd
    global_hidden: int = 16

    def __post_init__(self) -> None:
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"SimRefinerConfig.kernel: expected an odd size >= 1, got {self.kernel}")
        if self.local_channels < 1 or self.global_hidden < 1:
            raise ValueError("SimRefinerConfig: local_channels and global_hidden must be >= 1")


def _stats(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Max, mean, std and logsumexp-minus-max along `dim` -> (..., 4) (std of logits: spread)."""
    mx = s.amax(dim)
    mean = s.mean(dim)
    std = (s - mean.unsqueeze(dim)).square().mean(dim).add(1e-6).sqrt()
    lse = torch.logsumexp(s - mx.unsqueeze(dim), dim)
    return torch.stack([mx - mean, std, lse, mean], -1)


class SimRefiner(nn.Module):
    def __init__(self, config: SimRefinerConfig, bev_hw: tuple[int, int], aerial_hw: tuple[int, int]) -> None:
        super().__init__()
        self.config = config
        self.bev_hw = tuple(bev_hw)
        self.aerial_hw = tuple(aerial_hw)
        c, k = config.local_channels, config.kernel
        self.local_aerial = nn.Conv2d(1, c, k, padding=k // 2, padding_mode="replicate")
        self.local_bev = nn.Conv2d(c, 1, k, padding=k // 2, padding_mode="replicate")
        nn.init.zeros_(self.local_bev.weight)
        nn.init.zeros_(self.local_bev.bias)
        h = config.global_hidden
        # Outputs: gain, offset and confidence logit per row (and per column).
        self.row_mlp = nn.Sequential(nn.Linear(4, h), nn.ReLU(inplace=True), nn.Linear(h, 3))
        self.col_mlp = nn.Sequential(nn.Linear(4, h), nn.ReLU(inplace=True), nn.Linear(h, 3))
        for mlp in (self.row_mlp, self.col_mlp):
            nn.init.zeros_(mlp[-1].weight)
            nn.init.zeros_(mlp[-1].bias)

    def local_consensus(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N, M) -> (B, N, M): separable 4D convolution (aerial neighbourhood, then BEV)."""
        b, n, m = s.shape
        (hb, wb), (ha, wa) = self.bev_hw, self.aerial_hw
        x = torch.relu(self.local_aerial(s.reshape(b * n, 1, ha, wa)))  # (B*N, c, Ha, Wa)
        c = x.shape[1]
        x = x.reshape(b, n, c, m).permute(0, 3, 2, 1).reshape(b * m, c, hb, wb)
        x = self.local_bev(x)  # (B*M, 1, Hb, Wb)
        return x.reshape(b, m, n).transpose(1, 2)

    def forward(self, similarity: torch.Tensor) -> dict[str, torch.Tensor]:
        """`similarity` (B, N, M) logits -> `refined` (B, N, M), `delta_local`, `delta_global`, `alpha`."""
        n_cells = self.bev_hw[0] * self.bev_hw[1]
        m_cells = self.aerial_hw[0] * self.aerial_hw[1]
        s = check_tensor("similarity", similarity, ("B", n_cells, m_cells))
        delta_local = self.local_consensus(s)
        row = self.row_mlp(_stats(s, 2))  # (B, N, 3)
        col = self.col_mlp(_stats(s, 1))  # (B, M, 3)
        row_centred = s - s.mean(2, keepdim=True)
        col_centred = s - s.mean(1, keepdim=True)
        delta_global = (row[..., 0:1] * row_centred + col[..., 0].unsqueeze(1) * col_centred
                        + row[..., 1:2] + col[..., 1].unsqueeze(1))
        alpha = torch.sigmoid(row[..., 2:3] + col[..., 2].unsqueeze(1))
        refined = s + alpha * (delta_local + delta_global)
        return {"refined": refined, "delta_local": delta_local, "delta_global": delta_global, "alpha": alpha}
