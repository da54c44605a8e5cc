"""Localization and matching metrics (docs/CONVENTIONS.md, "Correspondences and metrics").

Per-sample errors are always kept next to the summaries so that reports can be recomputed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geometry import wrap_angle


def yaw_error_deg(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Absolute wrapped yaw difference in degrees, elementwise."""
    d = np.asarray(estimate, dtype=float) - np.asarray(truth, dtype=float)
    return np.abs(np.degrees(wrap_angle(d)))


def position_error_m(estimate_xy: np.ndarray, truth_xy: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(estimate_xy, dtype=float) - np.asarray(truth_xy, dtype=float), axis=-1)


def summarize(errors: np.ndarray) -> dict[str, float]:
    """mean / median / p95 / max of a 1-D error array (NaN-free); empty -> NaN entries."""
    e = np.asarray(errors, dtype=float)
    if e.size == 0:
        return {"mean": math.nan, "median": math.nan, "p95": math.nan, "max": math.nan}
    return {"mean": float(e.mean()), "median": float(np.median(e)), "p95": float(np.percentile(e, 95)),
            "max": float(e.max())}


def recall(errors: np.ndarray, thresholds: tuple[float, ...]) -> list[float]:
    e = np.asarray(errors, dtype=float)
    if e.size == 0:
        return [math.nan] * len(thresholds)
    return [float((e <= t).mean()) for t in thresholds]


def nees(errors: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """Normalised estimation error squared e^T P^-1 e per sample: errors (N, d), covariances (N, d, d)."""
    e = np.asarray(errors, dtype=float)[..., None]
    return (e.transpose(0, 2, 1) @ np.linalg.solve(np.asarray(covariances, dtype=float), e))[:, 0, 0]


def match_precision(pred_aerial_uv: np.ndarray, true_aerial_uv: np.ndarray, scores: np.ndarray,
                    top_k: int = 30, thresholds_px: tuple[float, ...] = (5.0, 10.0, 15.0)) -> list[float]:
    """CVFM protocol: of the `top_k` most confident matches, the share whose aerial pixel lies within
    each threshold of the true one. Inputs (K, 2), (K, 2), (K,); matches without truth are NaN rows
    in `true_aerial_uv` and count as wrong."""
    if len(scores) == 0:
        return [0.0] * len(thresholds_px)
    order = np.argsort(-np.asarray(scores))[:top_k]
    err = np.linalg.norm(np.asarray(pred_aerial_uv)[order] - np.asarray(true_aerial_uv)[order], axis=-1)
    err = np.where(np.isfinite(err), err, np.inf)
    return [float((err <= t).sum() / len(order)) for t in thresholds_px]


@dataclass
class TumTrajectory:
    """A trajectory in TUM format: stamps (N,), positions (N, 3), quaternions (N, 4) as (x, y, z, w)."""

    stamps: np.ndarray
    xyz: np.ndarray
    quat: np.ndarray

    @classmethod
    def from_planar(cls, stamps, poses: np.ndarray) -> "TumTrajectory":
        poses = np.asarray(poses, dtype=float).reshape(-1, 3)
        zeros = np.zeros(len(poses))
        quat = np.stack([zeros, zeros, np.sin(poses[:, 2] / 2), np.cos(poses[:, 2] / 2)], -1)
        return cls(np.asarray(stamps, dtype=float), np.stack([poses[:, 0], poses[:, 1], zeros], -1), quat)

    @property
    def yaw(self) -> np.ndarray:
        x, y, z, w = self.quat.T
        return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))

    def planar(self) -> np.ndarray:
        return np.stack([self.xyz[:, 0], self.xyz[:, 1], self.yaw], -1)

    def to_text(self) -> str:
        rows = np.concatenate([self.stamps[:, None], self.xyz, self.quat], -1)
        return "".join(" ".join(f"{v:.9f}" if i == 0 else f"{v:.6f}" for i, v in enumerate(r)) + "\n" for r in rows)

    @classmethod
    def read(cls, path) -> "TumTrajectory":
        rows = [line.split() for line in open(path) if line.strip() and not line.startswith("#")]
        if any(len(r) != 8 for r in rows):
            raise ValueError(f"{path}: expected 8 columns per line (t x y z qx qy qz qw)")
        data = np.array(rows, dtype=float).reshape(-1, 8)
        return cls(data[:, 0], data[:, 1:4], data[:, 4:8])
