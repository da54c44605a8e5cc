"""Tile image encoding and the content check every tile passes before it is trusted.

Convention: decoded tiles are (T, T, 3) uint8 RGB plus an optional (T, T) bool validity mask
(alpha > 0) for tiles with transparent no-data pixels. OpenCV's BGR order stays inside this module.
"""
from __future__ import annotations

import struct

import cv2
import numpy as np

from .types import TileDecodeError

FORMATS = ("png", "jpg", "webp")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


def sniff_format(data: bytes) -> str | None:
    """'png', 'jpg' or 'webp' from the first bytes of `data`; None when it is none of them.

    Convention: by magic bytes only, never by file name or Content-Type.
    """
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _check_complete(data: bytes, fmt: str) -> None:
    # Decoders accept some truncated files (libjpeg pads a cut-off JPEG with grey and warns), so a
    # tile cut short by a crash or a dropped connection would pass decoding; the end markers catch it.
    if fmt == "png" and not data.rstrip(b"\x00").endswith(_PNG_IEND):
        raise TileDecodeError("PNG data is truncated (no IEND chunk at the end)")
    if fmt == "jpg" and b"\xff\xd9" not in data[-64:]:
        raise TileDecodeError("JPEG data is truncated (no end-of-image marker)")
    if fmt == "webp":
        (riff_size,) = struct.unpack("<I", data[4:8])
        if riff_size + 8 > len(data):
            raise TileDecodeError(f"WebP data is truncated ({len(data)} bytes, header says {riff_size + 8})")


def decode_tile(data: bytes, tile_size: int | None = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode and validate tile bytes -> (rgb (T, T, 3) uint8, valid (T, T) bool or None).

    Convention: RGB channel order; `valid` is None when the tile has no transparent pixels.
    Grey tiles are expanded to RGB. Raises TileDecodeError (a ValueError) when `data` is not a
    complete PNG/JPEG/WebP image or is not `tile_size` pixels square (None: any square size).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TileDecodeError(f"expected tile bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise TileDecodeError("empty file")
    fmt = sniff_format(data)
    if fmt is None:
        head = data[:16]
        raise TileDecodeError(f"not a PNG, JPEG or WebP image (starts with {head!r})")
    _check_complete(data, fmt)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise TileDecodeError(f"{fmt.upper()} data does not decode")
    if image.dtype != np.uint8:
        # 16-bit PNGs: keep the 8 most significant bits.
        image = (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image.astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        valid = None
    elif image.shape[2] == 4:
        valid = image[:, :, 3] > 0
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        if valid.all():
            valid = None
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        valid = None
    else:
        raise TileDecodeError(f"unsupported channel count {image.shape[2]}")
    h, w = image.shape[:2]
    if h != w or (tile_size is not None and h != tile_size):
        want = f"{tile_size}x{tile_size}" if tile_size is not None else "square"
        raise TileDecodeError(f"tile is {w}x{h} pixels, expected {want}")
    return np.ascontiguousarray(image), valid


def encode_tile(rgb: np.ndarray, valid: np.ndarray | None = None, fmt: str = "png", quality: int = 95) -> bytes:
    """Encode an RGB tile (T, T, 3) uint8 (with an optional (T, T) bool validity mask) as `fmt`.

    Convention: pixels where `valid` is False become transparent (alpha 0) in PNG and WebP; JPEG
    has no alpha, so a mask with any False raises ValueError. `quality` applies to JPEG and lossy
    WebP (above 100: lossless WebP).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {list(FORMATS)}, got {fmt!r}")
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
        raise ValueError(f"rgb: expected a (T, T, 3) uint8 array, got {getattr(rgb, 'shape', type(rgb))}")
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if valid is not None and not valid.all():
        if fmt == "jpg":
            raise ValueError("valid: JPEG cannot store no-data pixels (no alpha channel); use png or webp")
        image = np.dstack([image, np.where(valid, 255, 0).astype(np.uint8)])
    params: list[int] = []
    if fmt == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    elif fmt == "jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    else:
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    ok, buf = cv2.imencode("." + fmt, image, params)
    if not ok:
        raise ValueError(f"fmt: OpenCV could not encode a {fmt} tile")
    return buf.tobytes()
