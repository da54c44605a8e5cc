"""Drawing helpers shared by the node's debug image and the replay report."""
from __future__ import annotations

import cv2
import numpy as np

from ..runtime.result import Matches


def draw_matches(ground: np.ndarray | list[np.ndarray], aerial: np.ndarray, matches: Matches, max_lines: int = 40,
                 height: int = 256) -> np.ndarray:
    """Ground image (left; a rig's images side by side, camera 0 first) and aerial patch (right),
    all RGB uint8, with the strongest matches drawn as lines coloured by weight (red = weak,
    green = strong). Returns RGB uint8."""
    def fit(img: np.ndarray) -> tuple[np.ndarray, float]:
        scale = height / img.shape[0]
        return cv2.resize(img, (max(1, round(img.shape[1] * scale)), height), interpolation=cv2.INTER_AREA), scale

    views = [fit(np.ascontiguousarray(img[..., :3])) for img in (ground if isinstance(ground, (list, tuple)) else [ground])]
    offsets = np.cumsum([0] + [v.shape[1] for v, _ in views])
    g = np.concatenate([v for v, _ in views], axis=1)
    a, sa = fit(np.ascontiguousarray(aerial[..., :3]))
    canvas = np.concatenate([g, a], axis=1).copy()
    cameras = matches.ground_camera if matches.ground_camera is not None else np.zeros(len(matches), int)
    if len(matches):
        order = np.argsort(-matches.weight)[:max_lines]
        w = matches.weight[order]
        w = (w - w.min()) / (np.ptp(w) + 1e-9)
        for k, idx in enumerate(order):
            cam = int(np.clip(cameras[idx], 0, len(views) - 1))
            u, v = matches.ground_uv[idx] * views[cam][1]
            p = (int(round(u)) + int(offsets[cam]), int(round(v)))
            q = (int(round(matches.aerial_uv[idx, 0] * sa)) + g.shape[1], int(round(matches.aerial_uv[idx, 1] * sa)))
            color = (int(255 * (1 - w[k])), int(255 * w[k]), 40)
            cv2.line(canvas, p, q, color, 1, cv2.LINE_AA)
            cv2.circle(canvas, p, 2, color, -1)
            cv2.circle(canvas, q, 2, color, -1)
    return canvas
