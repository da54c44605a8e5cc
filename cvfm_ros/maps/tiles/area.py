"""Which tiles cover an area: a lat/lon box, a radius around a point, a buffer around a route.

Convention: areas are given in WGS84 degrees (routes in `map` metres are converted with their
datum first); tiles are XYZ `TileId`s. Distances are tested in Web Mercator pixels of the zoom,
with the buffer converted at each point's latitude and a 1 % margin for the difference between
Web Mercator's sphere and the ellipsoid, so the set errs on the side of one tile too many.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Literal

import numpy as np

from ..geodesy import Datum, WEB_MERCATOR_MAX_LAT, as_float_array, latlon_to_world_px, meters_per_pixel
from .types import TileId

RouteFormat = Literal["auto", "tum", "xy", "latlon"]
# A guard against typing a zoom that asks for millions of tiles.
MAX_TILES = 500_000


def _check_count(count: int, what: str) -> None:
    if count > MAX_TILES:
        raise ValueError(f"{what}: covers {count} tiles, more than {MAX_TILES}; use a smaller area or zoom")


def tiles_in_bbox(lat_min: float, lon_min: float, lat_max: float, lon_max: float, zoom: int,
                  tile_size: int = 256) -> list[TileId]:
    """All tiles of `zoom` that intersect the box [lat_min, lat_max] x [lon_min, lon_max] (degrees).

    Convention: the box may not cross the antimeridian (lon_min <= lon_max); latitudes are clamped
    to Web Mercator's +-85.0511.
    """
    values = as_float_array("bbox", [lat_min, lon_min, lat_max, lon_max])
    lat_min, lon_min, lat_max, lon_max = (float(v) for v in values)
    if not (-90 < lat_min <= lat_max < 90):
        raise ValueError(f"bbox: expected -90 < lat_min <= lat_max < 90, got {lat_min}, {lat_max}")
    if not (-180 <= lon_min <= lon_max <= 180):
        raise ValueError(f"bbox: expected -180 <= lon_min <= lon_max <= 180 (no antimeridian crossing), "
                         f"got {lon_min}, {lon_max}")
    lim = WEB_MERCATOR_MAX_LAT - 1e-9
    lat_min, lat_max = max(lat_min, -lim), min(lat_max, lim)
    u, v = latlon_to_world_px([lat_max, lat_min], [lon_min, lon_max], zoom, tile_size)
    n = 1 << zoom
    x0, x1 = (min(n - 1, max(0, int(math.floor((c + 0.5) / tile_size)))) for c in u)
    y0, y1 = (min(n - 1, max(0, int(math.floor((c + 0.5) / tile_size)))) for c in v)
    _check_count((x1 - x0 + 1) * (y1 - y0 + 1), "bbox")
    return [TileId(zoom, x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


def tiles_along_route(lat_deg: np.ndarray, lon_deg: np.ndarray, buffer_m: float, zoom: int,
                      tile_size: int = 256) -> list[TileId]:
    """Tiles of `zoom` within `buffer_m` metres of a polyline (N,) lat, (N,) lon degrees (N >= 1).

    Convention: a single point gives the tiles within `buffer_m` of it (a radius). The line is
    sampled at most a quarter tile apart and the sampling gap is added to the buffer.
    """
    lat = as_float_array("route latitudes", lat_deg).reshape(-1)
    lon = as_float_array("route longitudes", lon_deg).reshape(-1)
    if lat.shape != lon.shape or lat.size == 0:
        raise ValueError(f"route: expected matching non-empty latitude/longitude arrays, got {lat.shape}, {lon.shape}")
    buffer_m = float(as_float_array("buffer_m", buffer_m))
    if buffer_m < 0:
        raise ValueError(f"buffer_m: expected a non-negative distance in metres, got {buffer_m}")
    if np.any(np.abs(lat) >= WEB_MERCATOR_MAX_LAT):
        raise ValueError("route: latitudes beyond Web Mercator's +-85.05 degrees")
    t = tile_size
    u, v = latlon_to_world_px(lat, lon, zoom, t)
    # Densify: consecutive samples at most step pixels apart.
    step = t / 4.0
    pts_u, pts_v, pts_lat = [u[:1]], [v[:1]], [lat[:1]]
    for i in range(1, lat.size):
        du, dv = u[i] - u[i - 1], v[i] - v[i - 1]
        k = max(1, int(math.ceil(math.hypot(du, dv) / step)))
        s = np.arange(1, k + 1) / k
        pts_u.append(u[i - 1] + s * du)
        pts_v.append(v[i - 1] + s * dv)
        pts_lat.append(lat[i - 1] + s * (lat[i] - lat[i - 1]))
    pu, pv, plat = np.concatenate(pts_u), np.concatenate(pts_v), np.concatenate(pts_lat)
    radius = buffer_m / meters_per_pixel(plat, zoom, t) * 1.01 + (step / 2.0 if lat.size > 1 else 0.0)
    n = 1 << zoom
    tiles: set[TileId] = set()
    for cu, cv, r in zip(pu, pv, radius, strict=True):
        x0, x1 = int(math.floor((cu - r + 0.5) / t)), int(math.floor((cu + r + 0.5) / t))
        y0, y1 = max(0, int(math.floor((cv - r + 0.5) / t))), min(n - 1, int(math.floor((cv + r + 0.5) / t)))
        _check_count(len(tiles) + (x1 - x0 + 1) * (y1 - y0 + 1), "route buffer")
        for ty in range(y0, y1 + 1):
            top, bottom = ty * t - 0.5, (ty + 1) * t - 0.5
            dy = max(top - cv, 0.0, cv - bottom)
            for tx in range(x0, x1 + 1):
                left, right = tx * t - 0.5, (tx + 1) * t - 0.5
                dx = max(left - cu, 0.0, cu - right)
                if dx * dx + dy * dy <= r * r:
                    tiles.add(TileId(zoom, tx % n, ty))
    return sorted(tiles)


def tiles_around(lat_deg: float, lon_deg: float, radius_m: float, zoom: int, tile_size: int = 256) -> list[TileId]:
    """Tiles of `zoom` within `radius_m` metres of (lat, lon) degrees.

    Convention: as `tiles_along_route` with a single point (WGS84 degrees, XYZ ids).
    """
    return tiles_along_route(np.array([lat_deg]), np.array([lon_deg]), radius_m, zoom, tile_size)


def load_route(path: str | os.PathLike, fmt: RouteFormat = "auto", datum: Datum | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Read a route file -> (lat (N,), lon (N,)) in degrees.

    Formats: "tum" (`t x y z qx qy qz qw` per line, `map` metres, '#' comments), "xy" (CSV with
    columns x, y in `map` metres), "latlon" (CSV with columns lat, lon; also latitude/longitude).
    Routes in `map` need `datum`. "auto": a CSV header names the columns; otherwise lines of 8
    numbers are TUM.
    Convention: `map` x/y are ENU metres on the datum's tangent plane (CONVENTIONS.md), TUM
    columns `t x y z qx qy qz qw`; returned arrays are (N,) float64 degrees.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"route file {path}: not found")
    if fmt not in ("auto", "tum", "xy", "latlon"):
        raise ValueError(f"route format: expected auto, tum, xy or latlon, got {fmt!r}")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError(f"route file {path}: no points")
    first = lines[0].replace(",", " ").replace(";", " ").split()
    has_header = any(not _is_number(tok) for tok in first)
    if fmt == "auto":
        if has_header:
            names = {tok.strip().lower() for tok in first}
            if names & {"lat", "latitude"} and names & {"lon", "lng", "longitude"}:
                fmt = "latlon"
            elif {"x", "y"} <= names:
                fmt = "xy"
            else:
                raise ValueError(f"route file {path}: header {first} names neither lat/lon nor x/y columns")
        elif len(first) == 8:
            fmt = "tum"
        else:
            raise ValueError(f"route file {path}: cannot tell the format (no header, {len(first)} columns); "
                             "give it (tum, xy or latlon)")
    if fmt == "tum":
        rows = [ln.split() for ln in lines]
        bad = [i for i, r in enumerate(rows) if len(r) != 8 or not all(_is_number(v) for v in r)]
        if bad:
            raise ValueError(f"route file {path}: line {bad[0] + 1} is not 8 numbers (TUM: t x y z qx qy qz qw)")
        xs = np.array([float(r[1]) for r in rows])
        ys = np.array([float(r[2]) for r in rows])
        return _from_map(path, xs, ys, datum)
    # CSV: with a header, columns by name; without, the first two columns.
    with path.open(newline="") as handle:
        reader = csv.reader(ln for ln in handle if ln.strip() and not ln.lstrip().startswith("#"))
        table = [row for row in reader]
    if has_header:
        header = [h.strip().lower() for h in table[0]]
        table = table[1:]
        keys = (("lat", "latitude"), ("lon", "lng", "longitude")) if fmt == "latlon" else (("x",), ("y",))
        try:
            cols = [next(header.index(k) for k in names if k in header) for names in keys]
        except StopIteration:
            raise ValueError(f"route file {path}: header {header} lacks the {fmt} columns") from None
    else:
        cols = [0, 1]
    try:
        a = np.array([float(row[cols[0]]) for row in table])
        b = np.array([float(row[cols[1]]) for row in table])
    except (ValueError, IndexError) as exc:
        raise ValueError(f"route file {path}: a row is not numeric in the {fmt} columns ({exc})") from None
    if a.size == 0:
        raise ValueError(f"route file {path}: no points")
    if fmt == "xy":
        return _from_map(path, a, b, datum)
    if np.any(np.abs(a) > 90) or np.any(np.abs(b) > 180):
        raise ValueError(f"route file {path}: latitude/longitude out of range (lat, lon order expected)")
    return a, b


def _from_map(path: Path, xs: np.ndarray, ys: np.ndarray, datum: Datum | None) -> tuple[np.ndarray, np.ndarray]:
    if datum is None:
        raise ValueError(f"route file {path}: holds map x/y metres, so it needs the datum (lat, lon, alt) of map")
    lat, lon, _ = datum.map_to_geodetic(xs, ys)
    return lat, lon


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
