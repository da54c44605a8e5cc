"""Image files of the real datasets."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_rgb(path: Path, what: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; ValueError naming `what` and the path if it is
    missing or unreadable."""
    if not path.is_file():
        raise ValueError(f"{what} {path}: not found")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{what} {path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
