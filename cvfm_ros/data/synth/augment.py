"""Appearance augmentation that moves synthetic pairs towards real street and satellite imagery.

The renderer draws flat-shaded cities: uniform albedo, few trees, a pale flat sky, perfect
exposure. Real pairs (Street View panoramas over satellite orthophotos) differ most in
(docs/REAL_GAP.md, with pictures): large irregular tree canopies over roads and their dark
shadows, textured ground (grass, gravel, worn asphalt), sun glare and a blue gradient sky,
exposure and white balance that differ between the two views and over the image, blur and JPEG
blocks, and parked cars and poles that hide what the aerial view shows.

`augment_pair` applies a random subset of these to the ground and aerial images independently
(the two views never share a camera or a day). Geometry is untouched: every change is a
per-pixel colour change or an occluder drawn over the image, so the pixel-level correspondences
stay exact; occluders are drawn where they would be in reality (canopies and their shadows on
the aerial image, a car body or a pole on the ground image) and are not removed from the
correspondence set, which teaches the matcher to survive them as real imagery forces it to.

Convention: images (H, W, 3) uint8 RGB; all randomness from the given numpy Generator, so an
augmented pair is reproducible from its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (0 = off) and strengths of each change; the defaults are the training ones."""

    enabled: bool = True
    photometric: float = 0.9  # exposure, contrast, gamma, saturation, white balance
    vignette_gradient: float = 0.5  # exposure varying across the image (sun side / shade side)
    texture: float = 0.7  # multi-scale noise modulating albedo (grass, gravel, worn asphalt)
    canopies: float = 0.6  # aerial: irregular dark-green tree canopies with cast shadows
    aerial_shadows: float = 0.5  # aerial: building/tree shadow blobs
    sky: float = 0.6  # ground panorama/pinhole: blue gradient sky with a sun glare
    ground_occluders: float = 0.4  # ground: a near car body, a pole or a tree trunk
    blur: float = 0.4
    jpeg: float = 0.5
    noise: float = 0.5

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if name != "enabled" and not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name}: expected a probability in [0, 1], got {value}")


def _smooth_noise(rng: np.random.Generator, hw: tuple[int, int], scales: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-std multi-octave noise (H, W): white noise blurred at several scales."""
    h, w = hw
    total = np.zeros((h, w), np.float32)
    for s in scales:
        small = rng.standard_normal((max(2, h // s + 2), max(2, w // s + 2))).astype(np.float32)
        total += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (total - total.mean()) / (total.std() + 1e-6)


def _blob_mask(rng: np.random.Generator, hw: tuple[int, int], count: int, radius_px: tuple[float, float]) -> np.ndarray:
    """Float mask (H, W) in [0, 1] of `count` irregular blobs (noisy discs), softly edged."""
    h, w = hw
    mask = np.zeros((h, w), np.float32)
    for _ in range(count):
        r = rng.uniform(*radius_px)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        n = 12
        angles = np.linspace(0, 2 * math.pi, n, endpoint=False)
        radii = r * rng.uniform(0.65, 1.25, n)
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1.0)
    return cv2.GaussianBlur(mask, (0, 0), 1.0)


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32) / 255.0
    x = x * rng.uniform(0.6, 1.4)  # exposure
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.5, 1.4)  # saturation
    x = x * rng.uniform(0.85, 1.15, 3)[None, None, :]  # white balance / colour cast
    x = np.clip(x, 0, 1) ** rng.uniform(0.75, 1.35)  # gamma
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _gradient(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5))
    gain = 1.0 + rng.uniform(0.15, 0.45) * ramp
    return np.clip(img.astype(np.float32) * gain[..., None], 0, 255).astype(np.uint8)


def _texture(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = _smooth_noise(rng, img.shape[:2], (2, 6, 16))
    gain = 1.0 + rng.uniform(0.05, 0.18) * n
    return np.clip(img.astype(np.float32) * gain[..., None], 0, 255).astype(np.uint8)


def _canopies(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tree canopies seen from above: dark textured green blobs, their shadows offset sun-away."""
    h, w = img.shape[:2]
    scale = w / 128.0
    mask = _blob_mask(rng, (h, w), int(rng.integers(2, 10)), (3 * scale, 11 * scale))
    shift = rng.uniform(2, 7, 2) * scale * rng.choice([-1, 1], 2)
    shadow = cv2.warpAffine(mask, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (w, h))
    x = img.astype(np.float32)
    x *= (1.0 - rng.uniform(0.35, 0.6) * np.clip(shadow - mask, 0, 1))[..., None]
    leaf = np.array([rng.uniform(35, 75), rng.uniform(50, 95), rng.uniform(25, 55)], np.float32)
    tex = 1.0 + 0.3 * _smooth_noise(rng, (h, w), (1, 3))
    canopy = leaf[None, None, :] * tex[..., None]
    x = x * (1 - mask[..., None]) + canopy * mask[..., None]
    return np.clip(x, 0, 255).astype(np.uint8)


def _aerial_shadows(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    mask = _blob_mask(rng, (h, w), int(rng.integers(1, 5)), (6 * w / 128, 20 * w / 128))
    return (img.astype(np.float32) * (1.0 - rng.uniform(0.3, 0.55) * mask[..., None])).astype(np.uint8)


def _sky(img: np.ndarray, rng: np.random.Generator, horizon_row: int) -> np.ndarray:
    """Replace the bright, low-texture upper part by a blue gradient sky with a sun glare."""
    h, w = img.shape[:2]
    top = img[: max(1, horizon_row)].astype(np.float32)
    grey = top.mean(axis=2)
    sat = top.max(axis=2) - top.min(axis=2)
    # The renderer's sky is bright and nearly flat; buildings and trees are darker or textured.
    is_sky = (grey > np.percentile(grey, 40)) & (sat < 60)
    rows = np.linspace(0, 1, top.shape[0], dtype=np.float32)[:, None, None]
    zenith = np.array([rng.uniform(40, 90), rng.uniform(90, 140), rng.uniform(170, 240)], np.float32)
    horizon = np.array([rng.uniform(170, 230), rng.uniform(190, 235), rng.uniform(215, 250)], np.float32)
    sky = zenith * (1 - rows) + horizon * rows
    sky = np.broadcast_to(sky, top.shape).copy()
    su, sv = rng.uniform(0, w), rng.uniform(0, top.shape[0] * 0.6)
    yy, xx = np.mgrid[0: top.shape[0], 0:w].astype(np.float32)
    glare = np.exp(-((xx - su) ** 2 + (yy - sv) ** 2) / (2 * (rng.uniform(4, 14) * w / 256) ** 2))
    sky = sky + 255 * glare[..., None]
    out = img.astype(np.float32).copy()
    m = cv2.GaussianBlur(is_sky.astype(np.float32), (0, 0), 0.8)[..., None]
    out[: top.shape[0]] = top * (1 - m) + sky * m
    return np.clip(out, 0, 255).astype(np.uint8)


def _ground_occluder(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    out = img.copy()
    colour = tuple(int(c) for c in rng.uniform(10, 230, 3))
    kind = rng.integers(3)
    if kind == 0:  # a parked car next to the camera: a wide dark-bottomed box low in the image
        x0 = int(rng.uniform(0, w * 0.9))
        width = int(rng.uniform(0.08, 0.25) * w)
        y0 = int(rng.uniform(0.5, 0.65) * h)
        cv2.rectangle(out, (x0, y0), (x0 + width, int(h * 0.82)), colour, -1)
        cv2.rectangle(out, (x0, int(h * 0.78)), (x0 + width, int(h * 0.86)), (20, 20, 20), -1)
    elif kind == 1:  # a pole or a tree trunk: a thin vertical bar
        x0 = int(rng.uniform(0, w))
        cv2.rectangle(out, (x0, int(rng.uniform(0.0, 0.3) * h)), (x0 + max(1, int(w * rng.uniform(0.004, 0.02))),
                      int(rng.uniform(0.55, 0.75) * h)), colour, -1)
    else:  # foliage hanging into the view: a dark green blob in the upper half
        mask = _blob_mask(rng, (h, w), int(rng.integers(1, 4)), (0.04 * w, 0.12 * w))
        mask[int(h * 0.5):] = 0
        leaf = np.array([rng.uniform(30, 70), rng.uniform(50, 100), rng.uniform(20, 50)], np.float32)
        out = (out * (1 - mask[..., None]) + leaf * mask[..., None]).astype(np.uint8)
    return out


def _blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.3))


def _jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 85))])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else img


def _noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), img.shape), 0, 255).astype(np.uint8)


def _apply(img: np.ndarray, rng: np.random.Generator, steps: list) -> np.ndarray:
    """Each (probability, change) in order: draw, and apply the change when the draw is below it."""
    for probability, change in steps:
        if rng.random() < probability:
            img = change(img, rng)
    return np.ascontiguousarray(img)


def augment_ground(img: np.ndarray, rng: np.random.Generator, config: AugmentConfig,
                   horizon_row: int | None = None) -> np.ndarray:
    """Augment a ground image (H, W, 3) uint8; `horizon_row`: rows above it may hold sky (default H/2)."""
    if not config.enabled:
        return img
    horizon_row = img.shape[0] // 2 if horizon_row is None else horizon_row
    return _apply(img, rng, [(config.sky, lambda im, r: _sky(im, r, horizon_row)), (config.texture, _texture),
                             (config.ground_occluders, _ground_occluder), *_common(config)])


def augment_aerial(img: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Augment a north-up aerial image (H, W, 3) uint8."""
    if not config.enabled:
        return img
    return _apply(img, rng, [(config.texture, _texture), (config.canopies, _canopies),
                             (config.aerial_shadows, _aerial_shadows), *_common(config)])


def _common(config: AugmentConfig) -> list:
    """The changes both views get, after their own, in this order."""
    return [(config.photometric, _photometric), (config.vignette_gradient, _gradient), (config.blur, _blur),
            (config.noise, _noise), (config.jpeg, _jpeg)]
