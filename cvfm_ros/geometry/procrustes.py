"""RANSAC-free weighted 2D Procrustes (Kabsch) with a covariance estimate.

Convention: finds the rigid transform dst ≈ R(yaw) @ src + t. yaw is counter-clockwise positive
(radians); (t, yaw) is the pose of the `src` frame in the `dst` frame. The covariance is over
(tx, ty, yaw), in the units metres / radians of the inputs.

The rotation is written in closed form: for centred points, the optimal angle is
atan2(sum w (s x d), sum w (s . d)). This equals the SVD solution restricted to proper rotations,
is differentiable everywhere except at zero spread, and exports to ONNX (which has no SVD).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .checks import check_tensor
from .poses import rotation_2d

# Below these, the rotation is unobservable: the result is flagged invalid rather than NaN.
MIN_WEIGHT_SUM = 1e-8
MIN_SPREAD_M2 = 1e-10
# Variance given to every axis of an invalid solve: "unknown", never zero.
INVALID_VARIANCE = 1e6


def _inverse_3x3(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., 3, 3) matrices by cofactors: elementwise ops only, so the graph exports to
    standard ONNX (torch.linalg.inv has no ONNX operator) and runs under TensorRT."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    g, h, i = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    co = torch.stack([
        torch.stack([e * i - f * h, c * h - b * i, b * f - c * e], -1),
        torch.stack([f * g - d * i, a * i - c * g, c * d - a * f], -1),
        torch.stack([d * h - e * g, b * g - a * h, a * e - b * d], -1),
    ], -2)
    det = a * co[..., 0, 0] + b * co[..., 1, 0] + c * co[..., 2, 0]
    return co / det[..., None, None]


class ProcrustesResult(NamedTuple):
    """Output of `weighted_procrustes_2d` (B = batch)."""

    rotation: torch.Tensor  # (B, 2, 2)
    translation: torch.Tensor  # (B, 2)
    yaw: torch.Tensor  # (B,) radians, CCW
    covariance: torch.Tensor  # (B, 3, 3) over (tx, ty, yaw)
    residual_rms: torch.Tensor  # (B,) weighted RMS residual, metres
    valid: torch.Tensor  # (B,) bool: enough weight and spread to fix a rotation


def weighted_procrustes_2d(
    src: torch.Tensor,
    dst: torch.Tensor,
    weights: torch.Tensor,
    min_variance: float = 0.0,
) -> ProcrustesResult:
    """Weighted rigid 2D alignment of `src` (B, N, 2) onto `dst` (B, N, 2) with `weights` (B, N).

    Weights must be non-negative; they act as relative inverse variances. The covariance is
    s^2 (sum_i w_i J_i^T J_i)^-1 with J_i = [I, perp(R src_i)] the Jacobian of the residual and
    s^2 = sum_i w_i |r_i|^2 / (2 n_eff - 3), n_eff = (sum w)^2 / sum w^2 the effective number of
    matches; `min_variance` is added to the residual variance per axis (a floor, e.g. the grid
    quantisation) so that perfect fits do not claim zero uncertainty.

    Degenerate inputs (all weights zero, all source points at one place) return the identity
    with `valid` False and a covariance of INVALID_VARIANCE on the diagonal, never NaN.
    Collinear points are not degenerate for a proper 2D rotation and are solved normally.
    """
    sizes: dict[str, int] = {}
    check_tensor("src", src, ("B", "N", 2), sizes)
    check_tensor("dst", dst, ("B", "N", 2), sizes)
    check_tensor("weights", weights, ("B", "N"), sizes)
    if (weights < 0).any():
        raise ValueError("weights: expected non-negative values")

    w = weights
    w_sum = w.sum(-1)
    has_weight = w_sum > MIN_WEIGHT_SUM
    w_safe = torch.where(has_weight, w_sum, torch.ones_like(w_sum))
    wn = w / w_safe.unsqueeze(-1)
    src_mean = (wn.unsqueeze(-1) * src).sum(-2)
    dst_mean = (wn.unsqueeze(-1) * dst).sum(-2)
    s = src - src_mean.unsqueeze(-2)
    d = dst - dst_mean.unsqueeze(-2)
    dot = (wn * (s * d).sum(-1)).sum(-1)
    cross = (wn * (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0])).sum(-1)
    spread = (wn * (s * s).sum(-1)).sum(-1)
    valid = has_weight & (spread > MIN_SPREAD_M2) & (dot.abs() + cross.abs() > 1e-12)

    # Keep atan2 away from (0, 0) so gradients stay finite for invalid rows.
    yaw = torch.atan2(torch.where(valid, cross, torch.zeros_like(cross)),
                      torch.where(valid, dot, torch.ones_like(dot)))
    rot = rotation_2d(yaw)
    t = dst_mean - (rot @ src_mean.unsqueeze(-1)).squeeze(-1)

    src_in_dst = src @ rot.transpose(-1, -2)
    resid = dst - (src_in_dst + t.unsqueeze(-2))
    sq = (resid * resid).sum(-1)
    residual_rms = torch.sqrt((wn * sq).sum(-1) + 1e-18)

    n_eff = w_safe**2 / (w * w).sum(-1).clamp_min(1e-30)
    dof = (2 * n_eff - 3).clamp_min(1.0)
    s2 = (w * sq).sum(-1) / dof + min_variance * w_sum / n_eff.clamp_min(1.0)

    perp = torch.stack([-src_in_dst[..., 1], src_in_dst[..., 0]], -1)  # d(R src)/d yaw
    eye = torch.eye(2, dtype=src.dtype, device=src.device).expand(*src.shape[:-1], 2, 2)
    jac = torch.cat([eye, perp.unsqueeze(-1)], -1)  # (B, N, 2, 3)
    info = (w[..., None, None] * jac.transpose(-1, -2) @ jac).sum(-3)
    eye3 = torch.eye(3, dtype=src.dtype, device=src.device)
    info = torch.where(valid[:, None, None], info, eye3.expand_as(info))
    cov = s2[:, None, None] * _inverse_3x3(info + 1e-12 * eye3)
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    invalid_cov = INVALID_VARIANCE * eye3.expand_as(cov)
    cov = torch.where(valid[:, None, None], cov, invalid_cov)

    ident = torch.eye(2, dtype=src.dtype, device=src.device).expand_as(rot)
    rot = torch.where(valid[:, None, None], rot, ident)
    t = torch.where(valid[:, None], t, torch.zeros_like(t))
    yaw = torch.where(valid, yaw, torch.zeros_like(yaw))
    return ProcrustesResult(rot, t, yaw, cov, residual_rms, valid)


def effective_count(weights: torch.Tensor) -> torch.Tensor:
    """Effective number of matches (sum w)^2 / sum w^2 of `weights` (..., N) -> (...); 0 where all
    weights are 0. Equal weights count N; one dominant weight counts about 1."""
    return weights.sum(-1).square() / weights.square().sum(-1).clamp_min(1e-30)


def reweighted_procrustes_2d(
    src: torch.Tensor,
    dst: torch.Tensor,
    weights: torch.Tensor,
    scale: torch.Tensor | float,
    iterations: int = 3,
) -> tuple[ProcrustesResult, torch.Tensor]:
    """`weighted_procrustes_2d` made robust to outlier matches by iterative Cauchy reweighting.

    `src`, `dst` (B, N, 2), `weights` (B, N) as in `weighted_procrustes_2d`; `scale` (B,) (positive)
    or a float > 0, the Cauchy scale in the units of the points. Each of `iterations` rounds solves, then
    multiplies the given weights by 1 / (1 + |r_i|^2 / scale^2) of the residuals r_i of that solve.
    Returns the last solve and its weights (B, N). `iterations` = 0 is the plain weighted solve.

    Why not RANSAC: the rounds are deterministic, fixed in number and differentiable, so the solve
    stays exportable to ONNX with static shapes; matches far off the consensus fade out smoothly
    rather than by a hard inlier threshold. The squared residual is used directly (no square root),
    which keeps the gradient finite at zero residual.
    """
    if iterations < 0:
        raise ValueError(f"iterations: expected >= 0, got {iterations}")
    if not isinstance(scale, torch.Tensor) and not scale > 0:  # tensors: no data-dependent check (ONNX tracing)
        raise ValueError(f"scale: expected a positive value, got {scale}")
    scale_t = torch.as_tensor(scale, dtype=src.dtype, device=src.device)
    scale_sq = scale_t.square().reshape(-1, 1) if scale_t.dim() else scale_t.square()
    result = weighted_procrustes_2d(src, dst, weights)
    robust = weights
    for _ in range(iterations):
        pred = src @ result.rotation.transpose(-1, -2) + result.translation.unsqueeze(-2)
        sq = (pred - dst).square().sum(-1)
        robust = weights / (1.0 + sq / scale_sq)
        result = weighted_procrustes_2d(src, dst, robust)
    return result, robust
