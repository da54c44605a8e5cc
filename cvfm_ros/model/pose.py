"""Correspondences from the assignment matrix and the closed-form pose (no RANSAC).

Deterministic at inference and at fixed shapes (ONNX-exportable): every BEV cell proposes its best
aerial cell; a proposal counts only if it is mutual (the aerial cell's best BEV cell is the same)
unless `require_mutual` is off (in training mode `train_require_mutual` applies instead, off by
default so that the pose loss has matches from the first step); the `num_matches` best proposals by
assignment probability are kept
with that probability as their weight (zero-weight entries pad the fixed K). The aerial location of
each match is refined below the cell by a soft-argmax of the BEV cell's row distribution over a
window around the chosen cell. `cvfm_ros.geometry.weighted_procrustes_2d` then gives the pose of
`base_link` in the aerial patch frame and its covariance from weighted residuals and match spread.

Convention: aerial patch frame = origin at the patch centre, x east, y north (metres); aerial
pixels follow OpenCV (CONVENTIONS.md), x = (u - (W-1)/2) mpp, y = -(v - (H-1)/2) mpp.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cvfm_ros.geometry import (MetricGrid, check_tensor, effective_count, reweighted_procrustes_2d, weighted_procrustes_2d,
                               wrap_angle)


# Kinds of ground camera a validity gate is calibrated for; "sequential": a single pinhole with a
# BEV memory (model/matcher.py, gate_kind).
CAMERA_KINDS = ("panorama", "pinhole", "rig", "sequential")


@dataclass(frozen=True)
class PoseSolverConfig:
    num_matches: int = 256  # K, fixed so that the output shapes are static
    require_mutual: bool = True  # at inference (eval mode)
    # In training mode: early on few matches are mutual, which would starve the pose loss.
    train_require_mutual: bool = False
    subcell_window: int = 3  # odd window (aerial cells) of the soft-argmax; 1 disables it
    min_effective_matches: float = 6.0  # below this effective count (sum w)^2 / sum w^2 -> invalid
    max_residual_cells: float = 3.0  # plain solve (no robust rounds): weighted RMS residual above -> invalid
    min_inlier_share: float = 0.5  # robust solve: share of match weight its rounds keep, below -> invalid
    # Effective inliers (effective matches x inlier share) below this -> invalid. 0 = off; set at
    # release so that mismatched pairs (imagery the matcher cannot explain) are called invalid
    # (eval/benchmark.py, `calibrate_validity_gate`).
    min_effective_inliers: float = 0.0
    # The same gate per kind of ground camera ("pinhole", "rig"; "panorama" is the one above): a
    # single pinhole sees fewer BEV cells than a panorama, so a right fix has fewer inliers; each
    # kind is calibrated on its own mismatched pairs at release. Kinds not listed use the above.
    camera_gates: dict[str, float] = field(default_factory=dict)
    covariance_scale: float = 1.0  # multiplies the Procrustes covariance (calibration knob)
    # Cauchy reweighting rounds of the Procrustes at inference (geometry.reweighted_procrustes_2d)
    # and their scale in aerial cells; chosen on tuning draws (docs/MODEL.md, "Robust solve").
    robust_iterations: int = 3
    train_robust_iterations: int = 0  # in training mode: the shipped weights were trained without
    robust_scale_cells: float = 1.0

    def __post_init__(self) -> None:
        if self.num_matches < 3:
            raise ValueError(f"PoseSolverConfig.num_matches: expected >= 3, got {self.num_matches}")
        if self.subcell_window < 1 or self.subcell_window % 2 == 0:
            raise ValueError(f"PoseSolverConfig.subcell_window: expected an odd size >= 1, got {self.subcell_window}")
        if not self.max_residual_cells > 0:
            raise ValueError(f"PoseSolverConfig.max_residual_cells: expected > 0, got {self.max_residual_cells}")
        if not self.covariance_scale > 0:
            raise ValueError(f"PoseSolverConfig.covariance_scale: expected > 0, got {self.covariance_scale}")
        if self.robust_iterations < 0 or self.train_robust_iterations < 0:
            raise ValueError("PoseSolverConfig.robust_iterations / train_robust_iterations: expected >= 0, got "
                             f"{self.robust_iterations} / {self.train_robust_iterations}")
        if not 0 <= self.min_inlier_share <= 1:
            raise ValueError(f"PoseSolverConfig.min_inlier_share: expected within [0, 1], got {self.min_inlier_share}")
        if not self.robust_scale_cells > 0:
            raise ValueError(f"PoseSolverConfig.robust_scale_cells: expected > 0, got {self.robust_scale_cells}")
        if not self.min_effective_inliers >= 0:
            raise ValueError(f"PoseSolverConfig.min_effective_inliers: expected >= 0, got {self.min_effective_inliers}")
        for kind, gate in self.camera_gates.items():
            if kind not in CAMERA_KINDS or not (isinstance(gate, (int, float)) and gate >= 0):
                raise ValueError(f"PoseSolverConfig.camera_gates: expected {{kind: gate >= 0}} with kinds from "
                                 f"{list(CAMERA_KINDS)}, got {self.camera_gates}")

    def gate_for(self, camera_kind: str) -> float:
        """The validity gate (min effective inliers) for a camera kind of CAMERA_KINDS."""
        return float(self.camera_gates.get(camera_kind, self.min_effective_inliers))


def aerial_pixels_to_metric(pixels: torch.Tensor, image_hw: tuple[int, int], mpp: torch.Tensor) -> torch.Tensor:
    """Aerial OpenCV pixels (B, ..., 2) -> metric (B, ..., 2) in the patch frame, `mpp` (B,)."""
    unit = MetricGrid(image_hw[0], image_hw[1], 1.0).pixel_to_metric(pixels)
    return unit * mpp.view(-1, *([1] * (pixels.dim() - 1))).to(unit)


def aerial_metric_to_pixels(xy: torch.Tensor, image_hw: tuple[int, int], mpp: torch.Tensor) -> torch.Tensor:
    """Inverse of `aerial_pixels_to_metric`."""
    unit = xy / mpp.view(-1, *([1] * (xy.dim() - 1))).to(xy)
    return MetricGrid(image_hw[0], image_hw[1], 1.0).metric_to_pixel(unit)


def window_table(hw: tuple[int, int], window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every cell of a (H, W) grid: indices (H*W, window^2) of its window's cells (clamped)
    and a (H*W, window^2) bool mask of those inside the grid."""
    h, w = hw
    r = torch.arange(h).view(h, 1, 1).expand(h, w, 1)
    c = torch.arange(w).view(1, w, 1).expand(h, w, 1)
    off = torch.arange(window) - window // 2
    dr, dc = torch.meshgrid(off, off, indexing="ij")
    rr, cc = r + dr.reshape(1, 1, -1), c + dc.reshape(1, 1, -1)
    inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    index = rr.clamp(0, h - 1) * w + cc.clamp(0, w - 1)
    return index.reshape(h * w, -1), inside.reshape(h * w, -1)


def select_matches(prob: torch.Tensor, row_valid: torch.Tensor, k: int, require_mutual: bool) -> dict[str, torch.Tensor]:
    """Top-k mutual best matches of `prob` (B, N, M) -> `bev_index`, `aerial_index` (B, K) long
    and `weights` (B, K) (the assignment probability; 0 for non-mutual or invalid rows)."""
    sizes: dict[str, int] = {}
    check_tensor("prob", prob, ("B", "N", "M"), sizes)
    check_tensor("row_valid", row_valid, ("B", "N"), sizes, floating=False)
    n = prob.shape[1]
    if k > n:
        raise ValueError(f"num_matches: expected at most the number of BEV cells {n}, got {k}")
    best_val, best_m = prob.max(2)  # (B, N)
    score = best_val * row_valid.to(prob.dtype)
    if require_mutual:
        best_n = prob.argmax(1)  # (B, M)
        mutual = torch.gather(best_n, 1, best_m) == torch.arange(n, device=prob.device).unsqueeze(0)
        score = score * mutual.to(prob.dtype)
    # Rows with score 0 (padding) tie; top-k implementations order ties differently (torch vs
    # ONNX Runtime), so a negligible index-dependent offset makes the order the lower index first.
    tie_break = torch.arange(n, device=prob.device, dtype=prob.dtype).unsqueeze(0) * 1e-20
    _, bev_index = torch.topk(score - tie_break, k, dim=1)
    weights = torch.gather(score, 1, bev_index)
    return {"bev_index": bev_index, "aerial_index": torch.gather(best_m, 1, bev_index), "weights": weights}


def refine_subcell(row_prob: torch.Tensor, bev_index: torch.Tensor, aerial_index: torch.Tensor,
                   cell_uv: torch.Tensor, table: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Soft-argmax aerial location of each match over a window around its cell.

    `row_prob` (B, N, M) per-BEV-cell distribution over aerial cells; `bev_index`, `aerial_index`
    (B, K); `cell_uv` (M, 2) continuous coordinates of the aerial cells (any unit); `table`,
    `inside` (M, W) from `window_table`. Returns (B, K, 2) in the unit of `cell_uv`.
    """
    b, k = bev_index.shape
    m = row_prob.shape[2]
    rows = torch.gather(row_prob, 1, bev_index.unsqueeze(-1).expand(b, k, m))  # (B, K, M)
    neigh = table[aerial_index]  # (B, K, W)
    p = torch.gather(rows, 2, neigh) * inside[aerial_index].to(rows.dtype)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    return (p.unsqueeze(-1) * cell_uv[neigh]).sum(-2)


def solve_pose(bev_xy: torch.Tensor, aerial_xy: torch.Tensor, weights: torch.Tensor, config: PoseSolverConfig,
               cell_m: torch.Tensor, robust_iterations: int | None = None,
               min_effective_inliers: float | None = None) -> dict[str, torch.Tensor]:
    """Weighted Procrustes of `bev_xy` (B, K, 2) in `base_link` onto `aerial_xy` (B, K, 2) in the
    patch frame -> `pose` (B, 3) (x, y, yaw of base_link), `covariance` (B, 3, 3), `valid` (B,)
    (the gate below), `solvable` (B,) (well-posed: some weight and spread), `residual_rms` (B,),
    `effective_matches` (B,), `effective_inliers` (B,).

    `cell_m` (B,) is the aerial cell size in metres: it sets the per-match variance floor
    cell^2 / 12 (grid quantisation, so that a perfect fit does not claim zero uncertainty), the
    residual gate of `valid` (max_residual_cells) and the Cauchy scale of the robust rounds.
    The pose and covariance come from `robust_iterations` (default `config.robust_iterations`)
    Cauchy reweighting rounds. `valid` needs a well-posed solve and `min_effective_matches`
    effective matches, and then, with robust rounds, a share of match weight kept by them of at
    least `min_inlier_share` (matches that agree with the pose); without, a plain weighted RMS
    residual within `max_residual_cells` (a robust fit's residual is bounded by its scale, so that
    gate would pass any match set); and at least `min_effective_inliers` effective inliers (the
    calibrated out-of-distribution gate; `min_effective_inliers` overrides the config's, e.g. with
    `config.gate_for(camera kind)`). `residual_rms` is the plain solve's.
    """
    iterations = config.robust_iterations if robust_iterations is None else robust_iterations
    floor_variance = cell_m.square() / 12.0
    plain = weighted_procrustes_2d(bev_xy, aerial_xy, weights)
    res, robust_weights = plain, weights
    if iterations > 0:
        scale = config.robust_scale_cells * cell_m.to(bev_xy)
        res, robust_weights = reweighted_procrustes_2d(bev_xy, aerial_xy, weights, scale, iterations)
    # The floor enters like the library's min_variance but per batch element (mpp varies).
    w_sum = weights.sum(-1)
    n_eff = effective_count(weights)
    inlier_share = robust_weights.sum(-1) / w_sum.clamp_min(1e-30)
    if iterations > 0:
        consistent = inlier_share >= config.min_inlier_share
    else:
        consistent = plain.residual_rms <= config.max_residual_cells * cell_m.to(plain.residual_rms)
    effective_inliers = n_eff * inlier_share
    valid = (plain.valid & res.valid & (n_eff >= config.min_effective_matches) & consistent
             & (effective_inliers >= (config.min_effective_inliers if min_effective_inliers is None
                                      else min_effective_inliers)))
    cov = res.covariance * config.covariance_scale
    # Add the quantisation floor: variance floor / n_eff per translation axis and
    # floor / (n_eff * spread) for yaw (spread = weighted mean squared distance of the matches
    # from their centroid); the translation-yaw cross term of the floor is neglected.
    wn = weights / w_sum.clamp_min(1e-30).unsqueeze(-1)
    src_rot = bev_xy @ res.rotation.transpose(-1, -2)
    mean = (wn.unsqueeze(-1) * src_rot).sum(1, keepdim=True)
    spread = (wn * (src_rot - mean).square().sum(-1)).sum(-1).clamp_min(1e-6)
    floor = floor_variance.to(cov) / n_eff.clamp_min(1.0)
    floor_diag = torch.stack([floor, floor, floor / spread], -1)
    eye = torch.eye(3, dtype=cov.dtype, device=cov.device)  # (diag_embed has no ONNX export)
    cov = cov + floor_diag.unsqueeze(-1) * eye
    invalid_cov = torch.full_like(floor_diag, 1e6).unsqueeze(-1) * eye
    cov = torch.where(valid[:, None, None], cov, invalid_cov)
    pose = torch.cat([res.translation, wrap_angle(res.yaw).unsqueeze(-1)], -1)
    return {"pose": pose, "covariance": cov, "valid": valid, "solvable": res.valid, "residual_rms": plain.residual_rms,
            "effective_matches": n_eff,
            # effective matches times the share of their weight the robust rounds kept: the count of
            # matches that agree with the pose (how yaw hypotheses are ranked, model/yaw_search.py)
            "effective_inliers": effective_inliers}
