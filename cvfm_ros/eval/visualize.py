"""Drawing helpers shared by the node's debug image and the replay report."""
from __future__ import annotations

import cv2
import numpy as np

from ..runtime.result import Matches


def draw_matches(ground: np.ndarray, aerial: np.ndarray, matches: Matches, max_lines: int = 40,
                 height: int = 256) -> np.ndarray:
    """Ground image (left) and aerial patch (right), both RGB uint8, with the strongest matches
    drawn as lines coloured by weight (red = weak, green = strong). Returns RGB uint8."""
    def fit(img: np.ndarray) -> tuple[np.ndarray, float]:
        scale = height / img.shape[0]
        return cv2.resize(img, (max(1, round(img.shape[1] * scale)), height), interpolation=cv2.INTER_AREA), scale

    g, sg = fit(np.ascontiguousarray(ground[..., :3]))
    a, sa = fit(np.ascontiguousarray(aerial[..., :3]))
    canvas = np.concatenate([g, a], axis=1).copy()
    if len(matches):
        order = np.argsort(-matches.weight)[:max_lines]
        w = matches.weight[order]
        w = (w - w.min()) / (np.ptp(w) + 1e-9)
        for k, idx in enumerate(order):
            p = tuple(int(round(c)) for c in matches.ground_uv[idx] * sg)
            q = (int(round(matches.aerial_uv[idx, 0] * sa)) + g.shape[1], int(round(matches.aerial_uv[idx, 1] * sa)))
            color = (int(255 * (1 - w[k])), int(255 * w[k]), 40)
            cv2.line(canvas, p, q, color, 1, cv2.LINE_AA)
            cv2.circle(canvas, p, 2, color, -1)
            cv2.circle(canvas, q, 2, color, -1)
    return canvas
