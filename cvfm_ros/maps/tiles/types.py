"""Tile identifiers, per-tile read results and the errors of the tile cache.

Convention: tiles are addressed XYZ-style (zoom, x, y) with y growing south; TMS and MBTiles
rows are converted at the source that uses them (`tms_row`). Decoded tiles are RGB uint8.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np


class TileId(NamedTuple):
    """An XYZ tile: zoom z, column x (grows east), row y (grows south)."""

    z: int
    x: int
    y: int

    def validate(self, name: str = "tile") -> "TileId":
        """Return self, or raise ValueError naming `name` unless 0 <= x, y < 2**z and 0 <= z <= 30."""
        z, x, y = self
        if not (isinstance(z, (int, np.integer)) and 0 <= z <= 30):
            raise ValueError(f"{name}: expected a zoom in [0, 30], got {z!r}")
        n = 1 << int(z)
        if not (0 <= x < n and 0 <= y < n):
            raise ValueError(f"{name}: expected 0 <= x, y < {n} at zoom {z}, got x={x}, y={y}")
        return self

    @property
    def tms_row(self) -> int:
        """The TMS / MBTiles row of this tile (rows counted from the south)."""
        return (1 << self.z) - 1 - self.y

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


TileStatus = Literal["ok", "missing", "corrupt"]


@dataclass
class TileRead:
    """What a source returned for one tile.

    `rgb` is (T, T, 3) uint8 RGB when status is "ok"; `valid` is (T, T) bool where the tile has
    no-data pixels (transparent PNG/WebP, GeoTIFF nodata), None when every pixel is data.
    `reason` says why a tile is missing or corrupt; `location` names the file or database row.
    """

    tile: TileId
    status: TileStatus
    rgb: np.ndarray | None = None
    valid: np.ndarray | None = None
    reason: str = ""
    location: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class TileDecodeError(ValueError):
    """Bytes that are not a complete, decodable tile image of the expected size."""


class NoCoverage(RuntimeError):
    """A patch request whose share of pixels with tile data is below the required minimum.

    `result` holds the partial `PatchResult` (its `valid` mask and missing-tile list) so callers
    can log or display what is missing.
    """

    def __init__(self, reason: str, result: object | None = None):
        super().__init__(reason)
        self.reason = reason
        self.result = result
