"""Yaw hypotheses: the matcher with a yaw prior, run where the orientation is unknown or loose.

The shipped matcher builds its BEV in the prior's yaw and is trained for prior yaw errors within
±10°. Where the prior's yaw is looser than that (start-up from a NavSatFix, no compass, the
`--orientation unknown` benchmark), the matcher runs at yaw hypotheses spaced by `step` across the
prior's ±3σ (the whole circle at most), and the hypothesis with the most effective inliers wins:
the effective match count (Σw)²/Σw² times the share of match weight that the robust solve's
Cauchy rounds keep (`effective_inliers`, model/pose.py). Measured on two tuning draws of 30
cross-area pairs (synth-cross seeds 5 and 6, never a reported test draw), it picked better than
the effective match count alone, the summed or mean match weight and the residual (docs/MODEL.md,
"Orientation known or unknown").

Convention: yaw in radians, CCW from east (CONVENTIONS.md); hypotheses are wrapped to (-pi, pi].
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..geometry import wrap_angle

DEFAULT_STEP_DEG = 20.0  # twice the ±10° prior-yaw range the shipped matcher is trained for


def yaw_hypotheses(prior_yaw: float, yaw_std_rad: float, step_rad: float, sigmas: float = 3.0) -> np.ndarray:
    """Yaws (H,) to try: `prior_yaw` alone when ±`sigmas`σ fits within one step, else hypotheses
    at most `step_rad` apart covering ±`sigmas`σ (the whole circle, evenly, once that is wider).
    The prior yaw is always the first hypothesis."""
    if not (math.isfinite(prior_yaw) and math.isfinite(yaw_std_rad) and yaw_std_rad >= 0):
        raise ValueError(f"yaw_hypotheses: expected a finite prior yaw and std >= 0, got {prior_yaw}, {yaw_std_rad}")
    if not step_rad > 0:
        raise ValueError(f"yaw_hypotheses: step must be > 0, got {step_rad}")
    half = sigmas * yaw_std_rad
    if half <= step_rad / 2:
        offsets = np.zeros(1)
    elif 2 * half + step_rad >= 2 * math.pi:
        n = math.ceil(2 * math.pi / step_rad)
        offsets = np.arange(n) * (2 * math.pi / n)
    else:
        per_side = math.ceil((half - step_rad / 2) / step_rad)  # each hypothesis covers ±step/2
        side = np.arange(1, per_side + 1) * step_rad
        offsets = np.concatenate([[0.0], np.stack([-side, side], 1).reshape(-1)])
    return wrap_angle(prior_yaw + offsets)


def best_hypothesis(scores: np.ndarray | torch.Tensor) -> int:
    """Index of the hypothesis with the highest score (H,): the matcher's `effective_inliers`."""
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    return int(np.argmax(scores.reshape(-1)))


def pick_hypothesis(outputs: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """The output (batch dimension 1) with the most `effective_inliers` among one output per
    hypothesis, and its index: how a backend that runs one hypothesis at a time searches (the
    localizer); `search_yaw` batches hypotheses through a torch matcher with the same rule."""
    if not outputs:
        raise ValueError("pick_hypothesis: no outputs")
    scores = [np.asarray(o["effective_inliers"].detach().cpu() if isinstance(o["effective_inliers"], torch.Tensor)
                         else o["effective_inliers"], dtype=np.float64).reshape(-1)[0] for o in outputs]
    i = best_hypothesis(np.array(scores))
    return outputs[i], i


def search_yaw(matcher: torch.nn.Module, batch: dict[str, Any], yaws: np.ndarray | torch.Tensor,
               chunk: int = 18) -> tuple[dict[str, torch.Tensor], int]:
    """Run `matcher` on a one-pair `batch` once per yaw hypothesis (batched in chunks) and return the
    outputs (batch dimension 1) of the hypothesis with the most `effective_inliers`, and its index."""
    yaws = torch.as_tensor(np.asarray(yaws, dtype=np.float32))
    if yaws.dim() != 1 or yaws.numel() == 0:
        raise ValueError(f"yaws: expected a non-empty (H,) vector, got shape {tuple(yaws.shape)}")
    if batch["ground"].shape[0] != 1:
        raise ValueError(f"batch: yaw search takes one pair, got {batch['ground'].shape[0]}")
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for start in range(0, yaws.numel(), chunk):
        part = yaws[start:start + chunk]
        h = part.numel()
        expanded = {**batch, "prior_yaw": part.to(batch["ground"].device),
                    "ground": batch["ground"].expand(h, -1, -1, -1), "aerial": batch["aerial"].expand(h, -1, -1, -1)}
        out = matcher(expanded)
        counts = out["effective_inliers"].detach().cpu().double().numpy()
        i = best_hypothesis(counts)
        if best is None or counts[i] > best[0]:
            best = (float(counts[i]), start + i,
                    {k: v[i:i + 1] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == h else v
                     for k, v in out.items()})
    assert best is not None
    return best[2], best[1]
