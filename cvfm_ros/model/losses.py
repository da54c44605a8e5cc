"""Training losses of the matcher: matching (InfoNCE), pose (virtual correspondences), surface height.

- Matching: bidirectional InfoNCE on the dual-softmax logits. The positive of BEV cell n is the
  aerial cell under its centre given the true pose; of aerial cell m, the BEV cell under its
  centre. Cells with no visible truth take the dustbin as their positive: BEV cells the camera
  does not see or that fall outside the aerial patch, aerial cells outside the BEV or over an
  unseen BEV cell. With pixel-level correspondences (synthetic data), a BEV cell is "visible" only
  if some valid correspondence lands in it, so occluded ground and facades go to the dustbin.
- Pose (FG2's virtual correspondence error): a grid of virtual points around `base_link` is
  mapped by the predicted and the true pose; the mean distance is the loss. It back-propagates
  through the weighted Procrustes into the match weights and sub-cell positions.
- Surface height: Huber loss between the Surface Model's height map and the true surface height
  (metres above ground per BEV cell) over visible cells.
- Sub-cell (off by default, `subcell_weight`): Huber loss, in aerial cells, between each selected
  match's soft-argmax aerial position and the true position of its BEV point, over matches within
  `subcell_reach_cells` of the truth. The cell classification alone leaves the positions inside a
  cell to the pose loss, which sees them only through their average.

Convention: poses are (x, y, yaw) of `base_link` in the aerial patch frame (origin at the patch
centre, x east, y north). The surface-height target lives on the matcher's BEV grid in the frame
centred at the TRUE position of `base_link` with yaw `outputs["bev_yaw"]` (the data engine's
`surface_height_grid(world, pose=(x_true, y_true, bev_yaw), grid=matcher.bev_grid)`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cvfm_ros.geometry import check_tensor, rotation_2d
from .lifting import bev_points_in_base, image_to_feature_pixels
from .matcher import ViewBridgeMatcher
from .pose import aerial_metric_to_pixels, aerial_pixels_to_metric


@dataclass(frozen=True)
class LossConfig:
    matching_weight: float = 1.0
    pose_weight: float = 0.1  # VCE is in metres (~10 early on); keep the matching term in charge
    surface_weight: float = 0.1
    dustbin_weight: float = 0.2  # weight of rows/columns whose positive is the dustbin
    negative_weight: float = 1.0  # weight of every row/column of a mismatched pair (targets["negative"])
    virtual_points: int = 5  # virtual points per side of the square grid
    virtual_extent_m: float = 10.0  # half side of the virtual point grid around base_link
    surface_huber_m: float = 1.0
    subcell_weight: float = 0.0
    subcell_reach_cells: float = 1.5  # matches farther off are the matching loss's business
    subcell_huber_cells: float = 0.5
    # The pose loss is off before `pose_start_step`, then its weight ramps up linearly over
    # `pose_warmup_steps`. Why: early matches are noise, and the Procrustes gradient through them
    # is as large as the matching gradient and points nowhere. Measured on one batch of 4 synthetic
    # pairs: 60 steps with the pose loss from step 0 leave cell top-1 at 1 %, without it 12 %.
    pose_start_step: int = 0
    pose_warmup_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("matching_weight", "pose_weight", "surface_weight", "dustbin_weight", "negative_weight",
                     "subcell_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"LossConfig.{name}: expected >= 0, got {getattr(self, name)}")
        if not (self.subcell_reach_cells > 0 and self.subcell_huber_cells > 0):
            raise ValueError("LossConfig: subcell_reach_cells and subcell_huber_cells must be > 0, got "
                             f"{self.subcell_reach_cells}, {self.subcell_huber_cells}")
        if self.virtual_points < 2 or not self.virtual_extent_m > 0:
            raise ValueError("LossConfig: need virtual_points >= 2 and virtual_extent_m > 0")
        if self.pose_warmup_steps < 0 or self.pose_start_step < 0:
            raise ValueError(f"LossConfig: pose_start_step and pose_warmup_steps must be >= 0, got "
                             f"{self.pose_start_step}, {self.pose_warmup_steps}")


def _patch_from_base(points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """(B, P, 2) in base_link -> (B, P, 2) in the patch frame under `pose` (B, 3)."""
    return points @ rotation_2d(pose[:, 2]).transpose(-1, -2) + pose[:, None, :2]


def _base_from_patch(points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    return (points - pose[:, None, :2]) @ rotation_2d(pose[:, 2])


def ground_truth_assignment(matcher: ViewBridgeMatcher, outputs: dict[str, torch.Tensor],
                            targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """True assignment: `row_target` (B, N) aerial cell index or M (dustbin) per BEV cell,
    `col_target` (B, M) BEV cell index or N (dustbin) per aerial cell, `bev_visible` (B, N).

    `targets["pose"]` (B, 3) is required; `corr_aerial_uv` (B, P, 2) with `corr_valid` (B, P)
    (aerial pixels of pixel-level correspondences) refine the visibility when present;
    `negative` (B,) bool marks mismatched pairs (an aerial patch of no place the camera is in):
    every cell of theirs goes to the dustbin. Also returns `negative` (B,) bool.
    """
    pose = check_tensor("targets['pose']", targets["pose"], ("B", 3)).to(outputs["pose"])
    b = pose.shape[0]
    bev_yaw, mpp = outputs["bev_yaw"], outputs["aerial_mpp"]
    grid = matcher.bev_grid
    n = grid.rows * grid.cols
    ha, wa = matcher.aerial_feature_hw
    m = ha * wa
    visible = outputs["bev_valid"].reshape(b, n)
    if "corr_aerial_uv" in targets:
        corr = check_tensor("targets['corr_aerial_uv']", targets["corr_aerial_uv"], (b, "P", 2)).to(pose)
        corr_valid = targets.get("corr_valid", torch.ones(corr.shape[:2], dtype=torch.bool, device=corr.device))
        check_tensor("targets['corr_valid']", corr_valid, (b, corr.shape[1]), floating=False)
        base = _base_from_patch(aerial_pixels_to_metric(corr, matcher.config.aerial_hw, mpp), pose)
        bev = base @ rotation_2d(bev_yaw).transpose(-1, -2)
        rc, inside = grid.metric_to_index(bev)
        ok = inside & corr_valid.bool()
        flat = torch.where(ok, rc[..., 0] * grid.cols + rc[..., 1], torch.zeros_like(rc[..., 0]))
        hits = torch.zeros(b, n, device=pose.device).scatter_add_(1, flat, ok.to(pose.dtype))
        visible = visible & (hits > 0)

    # BEV cell centre -> aerial feature cell.
    cell_patch = _patch_from_base(bev_points_in_base(matcher.bev_cell_xy.to(pose), bev_yaw), pose)
    fuv = image_to_feature_pixels(aerial_metric_to_pixels(cell_patch, matcher.config.aerial_hw, mpp),
                                  matcher.config.aerial_hw, (ha, wa))
    col, row = torch.round(fuv[..., 0]).long(), torch.round(fuv[..., 1]).long()
    in_patch = (col >= 0) & (col < wa) & (row >= 0) & (row < ha)
    row_target = torch.where(in_patch & visible, row * wa + col, torch.full_like(col, m))

    # Aerial cell centre -> BEV cell.
    aerial_base = _base_from_patch(aerial_pixels_to_metric(matcher.aerial_cell_uv.to(pose).expand(b, m, 2),
                                                           matcher.config.aerial_hw, mpp), pose)
    rc, inside = grid.metric_to_index(aerial_base @ rotation_2d(bev_yaw).transpose(-1, -2))
    n_idx = torch.where(inside, rc[..., 0] * grid.cols + rc[..., 1], torch.zeros_like(rc[..., 0]))
    seen = torch.gather(visible, 1, n_idx) & inside
    col_target = torch.where(seen, n_idx, torch.full_like(n_idx, n))
    negative = targets.get("negative")
    negative = (torch.zeros(b, dtype=torch.bool, device=pose.device) if negative is None
                else check_tensor("targets['negative']", negative, (b,), floating=False).bool())
    row_target = torch.where(negative[:, None], torch.full_like(row_target, m), row_target)
    col_target = torch.where(negative[:, None], torch.full_like(col_target, n), col_target)
    return {"row_target": row_target, "col_target": col_target, "bev_visible": visible, "negative": negative}


def matching_loss(outputs: dict[str, torch.Tensor], assignment: dict[str, torch.Tensor],
                  dustbin_weight: float, negative_weight: float = 1.0) -> torch.Tensor:
    """Bidirectional InfoNCE (negative log-likelihood of the true cell or the dustbin); rows and
    columns of mismatched pairs (`assignment["negative"]`) weigh `negative_weight`."""
    log_row, log_col = outputs["log_assign_row"], outputs["log_assign_col"]
    rt, ct = assignment["row_target"], assignment["col_target"]
    m, n = log_row.shape[2] - 1, log_col.shape[1] - 1
    nll_row = -torch.gather(log_row, 2, rt.unsqueeze(-1)).squeeze(-1)  # (B, N)
    nll_col = -torch.gather(log_col, 1, ct.unsqueeze(1)).squeeze(1)  # (B, M)
    w_row = torch.where(rt == m, torch.full_like(nll_row, dustbin_weight), torch.ones_like(nll_row))
    w_col = torch.where(ct == n, torch.full_like(nll_col, dustbin_weight), torch.ones_like(nll_col))
    negative = assignment.get("negative")
    if negative is not None:
        w_row = torch.where(negative[:, None], torch.full_like(w_row, negative_weight), w_row)
        w_col = torch.where(negative[:, None], torch.full_like(w_col, negative_weight), w_col)
    row = (w_row * nll_row).sum() / w_row.sum().clamp_min(1e-6)
    col = (w_col * nll_col).sum() / w_col.sum().clamp_min(1e-6)
    return 0.5 * (row + col)


def virtual_correspondence_loss(pred_pose: torch.Tensor, true_pose: torch.Tensor, valid: torch.Tensor,
                                points_per_side: int, extent_m: float) -> torch.Tensor:
    """Mean distance (metres) between virtual points mapped by `pred_pose` and `true_pose` (B, 3),
    over the batch elements where `valid` (B,) holds (0 with a graph when none is)."""
    lin = torch.linspace(-extent_m, extent_m, points_per_side, dtype=pred_pose.dtype, device=pred_pose.device)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    pts = torch.stack([gx, gy], -1).reshape(1, -1, 2).expand(pred_pose.shape[0], -1, -1)
    dist = (_patch_from_base(pts, pred_pose) - _patch_from_base(pts, true_pose.to(pred_pose))).norm(dim=-1).mean(-1)
    w = valid.to(dist.dtype)
    return (dist * w).sum() / w.sum().clamp_min(1.0)


def subcell_loss(matcher: ViewBridgeMatcher, outputs: dict[str, torch.Tensor], true_pose: torch.Tensor,
                 reach_cells: float, huber_cells: float, pairs: torch.Tensor | None = None) -> torch.Tensor:
    """Huber loss (aerial cells) of the selected matches' aerial positions `matches_aerial_uv`
    (B, K, 2) against where their BEV points `matches_bev_xy` land under `true_pose` (B, 3), over
    matches with weight > 0 within `reach_cells` of the truth (0 with a graph when none is), of
    the pairs (B,) bool where given (default: all)."""
    cell_px = float(matcher.aerial_extractor.stride)
    true_xy = _patch_from_base(outputs["matches_bev_xy"], true_pose.to(outputs["matches_bev_xy"]))
    true_uv = aerial_metric_to_pixels(true_xy, matcher.config.aerial_hw, outputs["aerial_mpp"])
    err = (outputs["matches_aerial_uv"] - true_uv) / cell_px
    mask = (outputs["match_weights"] > 0) & (err.detach().abs() < reach_cells).all(-1)
    if pairs is not None:
        mask = mask & pairs[:, None]
    per_match = torch.nn.functional.huber_loss(err, torch.zeros_like(err), reduction="none", delta=huber_cells).sum(-1)
    w = mask.to(per_match.dtype)
    return (per_match * w).sum() / w.sum().clamp_min(1.0)


def surface_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], visible: torch.Tensor,
                 huber_m: float) -> torch.Tensor:
    """Huber loss (metres) of `surface_height` (B, Hb, Wb) against `targets['surface_height']`
    over visible cells with a finite target (and `targets['surface_valid']` if given)."""
    pred = outputs["surface_height"]
    target = check_tensor("targets['surface_height']", targets["surface_height"], tuple(pred.shape)).to(pred)
    mask = visible.reshape(pred.shape) & torch.isfinite(target)
    if "surface_valid" in targets:
        mask = mask & targets["surface_valid"].reshape(pred.shape).bool()
    safe_target = torch.where(mask, target, pred.detach())
    per_cell = torch.nn.functional.huber_loss(pred, safe_target, reduction="none", delta=huber_m)
    w = mask.to(pred.dtype)
    return (per_cell * w).sum() / w.sum().clamp_min(1.0)


class ViewBridgeLoss(torch.nn.Module):
    """Weighted sum of the three losses; returns a dict with `total` and each term."""

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()

    def forward(self, matcher: ViewBridgeMatcher, outputs: dict[str, torch.Tensor],
                targets: dict[str, torch.Tensor], step: int | None = None) -> dict[str, torch.Tensor]:
        """Losses of `outputs` (the matcher's forward) against `targets`; `step` (training step)
        drives the pose-weight warm-up (None = full weight)."""
        cfg = self.config
        assignment = ground_truth_assignment(matcher, outputs, targets)
        terms = {
            "matching": matching_loss(outputs, assignment, cfg.dustbin_weight, cfg.negative_weight),
            # Every well-posed solve is trained, also those the confidence gate would call invalid;
            # a mismatched pair has no pose to find.
            "pose": virtual_correspondence_loss(outputs["pose"], targets["pose"],
                                                outputs["pose_solvable"] & ~assignment["negative"],
                                                cfg.virtual_points, cfg.virtual_extent_m),
        }
        if step is None:
            ramp = 1.0
        elif step < cfg.pose_start_step:
            ramp = 0.0
        else:
            ramp = 1.0 if cfg.pose_warmup_steps == 0 else min(1.0, (step - cfg.pose_start_step) / cfg.pose_warmup_steps)
        total = cfg.matching_weight * terms["matching"] + cfg.pose_weight * ramp * terms["pose"]
        # The surface term supervises the Surface Model; in the FG2 ablation there is none to train.
        if matcher.surface_model is not None and "surface_height" in targets:
            # Every column the camera sees has a surface (a facade's column has the roof's height).
            terms["surface"] = surface_loss(outputs, targets, outputs["bev_valid"], cfg.surface_huber_m)
            total = total + cfg.surface_weight * terms["surface"]
        if cfg.subcell_weight > 0:
            terms["subcell"] = subcell_loss(matcher, outputs, targets["pose"], cfg.subcell_reach_cells,
                                            cfg.subcell_huber_cells, ~assignment["negative"])
            total = total + cfg.subcell_weight * terms["subcell"]
        terms["total"] = total
        return terms
