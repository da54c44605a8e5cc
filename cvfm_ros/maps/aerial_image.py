"""One georeferenced aerial image as a patch source (the single-pair API and `cvfm-ros
localize`), and the one resampling of a north-up aerial image into a metric square (`aerial_crop`,
shared with training crops and the real-pair eval).

Convention: the image is north-up, `mpp` metres per pixel, OpenCV pixel centres; map x is east
(+u), y north (-v). `origin_uv` is the pixel at map (0, 0) (default: the image centre).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from .tiles import NoCoverage, PatchResult


def aerial_crop(aerial: np.ndarray, mpp: float, centre_px: tuple[float, float], coverage_m: float,
                out_px: int, border: int = cv2.BORDER_REFLECT) -> tuple[np.ndarray, np.ndarray]:
    """Re-sample a north-up `aerial` (H, W, 3) at `mpp` to an `out_px` square covering `coverage_m`
    centred on source pixel `centre_px`. Returns the image and the 2x3 affine source px -> output px.

    Convention: OpenCV pixel centres in both images; outside the source is reflected (training
    crops) or, with `border=cv2.BORDER_CONSTANT`, black (evaluation: nothing invented).
    """
    k = coverage_m / out_px / mpp  # source pixels per output pixel
    half = (out_px - 1) / 2
    dst_to_src = np.array([[k, 0, centre_px[0] - k * half], [0, k, centre_px[1] - k * half]], np.float64)
    src = aerial
    if k > 1.2:  # anti-alias before decimating
        sigma = 0.5 * math.sqrt(k * k - 1)
        src = cv2.GaussianBlur(aerial, (0, 0), sigma)
    out = cv2.warpAffine(src, dst_to_src, (out_px, out_px), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=border, borderValue=0)
    src_to_dst = np.array([[1 / k, 0, half - centre_px[0] / k], [0, 1 / k, half - centre_px[1] / k]], np.float64)
    return out, src_to_dst


class AerialImage:
    """Serves `read_patch` like `TileStore` from one aerial image in memory; pixels outside it
    are black and not valid (nothing is invented)."""

    def __init__(self, image: np.ndarray, mpp: float, origin_uv: Sequence[float] | None = None,
                 min_coverage: float = 0.0) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(f"aerial: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        if not (math.isfinite(mpp) and mpp > 0):
            raise ValueError(f"aerial mpp: expected positive metres per pixel, got {mpp}")
        height, width = image.shape[:2]
        self.image, self.mpp, self.min_coverage = image, float(mpp), float(min_coverage)
        self.origin_uv = ((width - 1) / 2, (height - 1) / 2) if origin_uv is None else tuple(map(float, origin_uv))

    def read_patch(self, center_xy: Sequence[float] | np.ndarray, size_px: int, mpp: float,
                   min_coverage: float | None = None) -> PatchResult:
        """A north-up `size_px` square at `mpp` centred on map `center_xy` (metres)."""
        x, y = float(center_xy[0]), float(center_xy[1])
        centre_px = (self.origin_uv[0] + x / self.mpp, self.origin_uv[1] - y / self.mpp)
        coverage_m = size_px * mpp
        out, _ = aerial_crop(self.image, self.mpp, centre_px, coverage_m, size_px, border=cv2.BORDER_CONSTANT)
        mask, _ = aerial_crop(np.full(self.image.shape[:2], 255, np.uint8), self.mpp, centre_px, coverage_m,
                              size_px, border=cv2.BORDER_CONSTANT)
        valid = mask > 127
        result = PatchResult(out, valid, x, y, float(mpp), float(valid.mean()), zoom=-1)
        needed = self.min_coverage if min_coverage is None else min_coverage
        if result.coverage < needed:
            raise NoCoverage(f"the aerial image covers {result.coverage:.0%} of the patch around ({x:.1f}, {y:.1f}) "
                             f"(< {needed:.0%})", result)
        return result
