"""Publish a north-up metric orthophoto as a real Web Mercator XYZ tile pyramid.

Convention: the orthophoto is georeferenced in `map` by a `cvfm_ros.geometry.MetricGrid`
(rows x cols cells of `cell_m` metres centred on (cx, cy), OpenCV pixel centres, rows grow
south). Each tile pixel centre goes Web Mercator pixel -> lat/lon -> `map` (ENU at the datum, on
the tangent plane z = 0: the exact inverse of the patch reader's mapping) -> orthophoto pixel
and is sampled bilinearly, so the tiles are what a tile server would hold for that place and the
runtime reads them like downloaded imagery.
Pixels outside the orthophoto (or outside `valid`) become transparent in PNG/WebP tiles; JPEG has
no alpha, so tiles only partly covered are skipped (and counted) rather than filled with black.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ...config import atomic_write_bytes, atomic_write_text
from ...geometry import MetricGrid
from ..geodesy import Datum, latlon_to_world_px, meters_per_pixel, world_px_to_latlon
from .codec import FORMATS, encode_tile

METADATA_NAME = "metadata.json"


@dataclass
class PyramidStats:
    """What `write_xyz_pyramid` wrote: tiles and bytes per zoom, tiles skipped, the bounds."""

    tiles: dict[int, int] = field(default_factory=dict)
    bytes: int = 0
    partial_skipped: dict[int, int] = field(default_factory=dict)
    bounds_latlon: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    out_dir: str = ""

    @property
    def total_tiles(self) -> int:
        return sum(self.tiles.values())


def _grid_pixel(grid: MetricGrid, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The grid's own conversion (torch, float64) keeps one definition of the georeference.
    uv = grid.metric_to_pixel(torch.from_numpy(np.stack([x, y], -1)))
    return uv[..., 0].numpy(), uv[..., 1].numpy()


def write_xyz_pyramid(image: np.ndarray, grid: MetricGrid, datum: Datum, zooms: list[int],
                      out_dir: str | os.PathLike, fmt: str = "png", valid: np.ndarray | None = None,
                      tile_size: int = 256, quality: int = 95) -> PyramidStats:
    """Resample an orthophoto into XYZ tiles `{out_dir}/{z}/{x}/{y}.{fmt}` plus `metadata.json`.

    image: (H, W, 3) uint8 RGB, north-up; grid: its georeference in `map` (grid.rows == H,
    grid.cols == W); datum: origin of `map`; zooms: XYZ zoom levels to write; valid: optional
    (H, W) bool of orthophoto pixels that hold data.
    Convention: see the module docstring. Each tile is written atomically; existing tiles of the
    same ids are replaced, others in `out_dir` are left alone. Coarser zooms average the
    orthophoto first (INTER_AREA) so they do not alias.
    Returns PyramidStats (tiles and bytes written, partial tiles skipped for JPEG).
    """
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"image: expected an (H, W, 3) uint8 RGB array, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
    h, w = image.shape[:2]
    if not isinstance(grid, MetricGrid):
        raise ValueError(f"grid: expected a cvfm_ros.geometry.MetricGrid, got {type(grid).__name__}")
    if (grid.rows, grid.cols) != (h, w):
        raise ValueError(f"grid: expected {h} rows x {w} cols to match image, got {grid.rows}x{grid.cols}")
    if not isinstance(datum, Datum):
        raise ValueError(f"datum: expected a Datum, got {type(datum).__name__}")
    if not zooms or not all(isinstance(z, (int, np.integer)) and 0 <= z <= 30 for z in zooms):
        raise ValueError(f"zooms: expected a non-empty list of zooms in [0, 30], got {zooms!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {list(FORMATS)}, got {fmt!r}")
    if valid is not None and (not isinstance(valid, np.ndarray) or valid.shape != (h, w)):
        raise ValueError(f"valid: expected an ({h}, {w}) bool array, got {getattr(valid, 'shape', type(valid))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_mask = np.full((h, w), 255, np.uint8) if valid is None else np.where(valid, 255, 0).astype(np.uint8)

    # The footprint's lat/lon bounds, from points along its edge (the map -> lat/lon mapping is
    # smooth, so edge samples bound it).
    s = np.linspace(0.0, 1.0, 33)
    ue, ve = s * w - 0.5, s * h - 0.5
    us = np.concatenate([ue, ue, np.full_like(s, -0.5), np.full_like(s, w - 0.5)])
    vs = np.concatenate([np.full_like(s, -0.5), np.full_like(s, h - 0.5), ve, ve])
    xy = grid.pixel_to_metric(torch.from_numpy(np.stack([us, vs], -1))).numpy()
    lat_e, lon_e, _ = datum.map_to_geodetic(xy[:, 0], xy[:, 1])
    stats = PyramidStats(out_dir=str(out),
                         bounds_latlon=(float(lat_e.min()), float(lon_e.min()), float(lat_e.max()), float(lon_e.max())))

    t = int(tile_size)
    g = np.arange(t, dtype=np.float64)
    lat_c = float(np.mean(lat_e))
    for z in sorted({int(z) for z in zooms}):
        factor = int(meters_per_pixel(lat_c, z, t) / grid.cell_m)
        src, src_mask = image, data_mask
        if factor >= 2:
            size = (max(1, w // factor), max(1, h // factor))
            src = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            src_mask = cv2.resize(data_mask, size, interpolation=cv2.INTER_AREA)
        sx, sy = w / src.shape[1], h / src.shape[0]
        eu, ev = latlon_to_world_px(lat_e, lon_e, z, t)
        n = 1 << z
        x0, x1 = max(0, int(math.floor((eu.min() + 0.5) / t))), min(n - 1, int(math.floor((eu.max() + 0.5) / t)))
        y0, y1 = max(0, int(math.floor((ev.min() + 0.5) / t))), min(n - 1, int(math.floor((ev.max() + 0.5) / t)))
        written = skipped = 0
        for ty in range(y0, y1 + 1):
            for tx in range(x0, x1 + 1):
                uu, vv = np.meshgrid(tx * t + g, ty * t + g)
                lat, lon = world_px_to_latlon(uu, vv, z, t)
                mx, my = datum.geodetic_to_plane(lat, lon)
                pu, pv = _grid_pixel(grid, mx, my)
                inside = (pu >= -0.5) & (pu <= w - 0.5) & (pv >= -0.5) & (pv <= h - 0.5)
                if not inside.any():
                    continue
                map_x = ((pu + 0.5) / sx - 0.5).astype(np.float32)
                map_y = ((pv + 0.5) / sy - 0.5).astype(np.float32)
                rgb = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                m = cv2.remap(src_mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                tile_valid = inside & (m > 127)
                if not tile_valid.any():
                    continue
                if fmt == "jpg" and not tile_valid.all():
                    skipped += 1
                    continue
                payload = encode_tile(rgb, None if tile_valid.all() else tile_valid, fmt, quality)
                atomic_write_bytes(out / str(z) / str(tx) / f"{ty}.{fmt}", payload)
                written += 1
                stats.bytes += len(payload)
        stats.tiles[z] = written
        if skipped:
            stats.partial_skipped[z] = skipped

    south, west, north, east = stats.bounds_latlon
    xs, ys = xy[:, 0], xy[:, 1]
    metadata: dict[str, Any] = {
        "format": "cvfm_ros xyz pyramid",
        "scheme": "xyz",
        "tile_size": t,
        "fmt": fmt,
        "datum": datum.to_dict(),
        "zooms": sorted(stats.tiles),
        "tiles_per_zoom": {str(k): v for k, v in stats.tiles.items()},
        "bounds_latlon": {"south": south, "west": west, "north": north, "east": east},
        "bounds_map": {"xmin": float(xs.min()), "ymin": float(ys.min()), "xmax": float(xs.max()),
                       "ymax": float(ys.max())},
        "source_grid": {"rows": grid.rows, "cols": grid.cols, "cell_m": grid.cell_m, "cx": grid.cx, "cy": grid.cy},
    }
    atomic_write_text(out / METADATA_NAME, json.dumps(metadata, indent=2) + "\n")
    return stats
