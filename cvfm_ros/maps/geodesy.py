"""Geodesy: the `map` frame (ENU at a datum) <-> WGS84 <-> Web Mercator global pixels.

Convention (docs/CONVENTIONS.md):
- `map` is the east-north-up tangent plane at a `Datum` (WGS84 latitude, longitude in degrees,
  ellipsoidal altitude in metres); x east, y north, z up, metres.
- Web Mercator (EPSG:3857) global pixel coordinates at zoom z: the world is
  `tile_size * 2**z` pixels wide and tall, u grows east, v grows south (XYZ tiles). Continuous
  pixel coordinates follow OpenCV: the centre of the top-left pixel of tile (0, 0) is (0, 0), so
  the world's west edge (lon -180) is at u = -0.5 and its north edge at v = -0.5. Tile (x, y)
  holds the pixel centres u in [x*T, x*T + T - 1].
- Metres per pixel at latitude phi and zoom z: 156543.03392 * cos(phi) / 2**z (256-pixel tiles).
  This is the scale on Web Mercator's sphere; on the WGS84 ellipsoid the east and north scales
  differ from it by up to about 0.3 %, which is why patches are resampled through latitude and
  longitude and never by treating tiles as metric.

All conversions are vectorised over numpy arrays (any shape, broadcast together) and return
float64 arrays.

Why closed form instead of pyproj: a patch read converts every output pixel (65 536 for a
256 x 256 patch) from `map` to latitude/longitude once per camera frame. pyproj's
cart -> topocentric pipeline takes about 8 ms for that on the development CPU, the closed forms
below about 3 ms, and they need no per-thread pyproj Transformer (Transformers must not be
shared between threads, and patch reads may come from several). The test suite checks them
against pyproj (cart -> topocentric pipeline, EPSG:4978, EPSG:3857) to well under a millimetre
(measured: about 1e-5 mm over a 10 km square).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# WGS84 ellipsoid.
WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
WGS84_B = WGS84_A * (1.0 - WGS84_F)
_EP2 = (WGS84_A**2 - WGS84_B**2) / WGS84_B**2

# Web Mercator's sphere radius (EPSG:3857 uses the WGS84 semi-major axis) and its latitude limit,
# where the square world ends: atan(sinh(pi)).
WEB_MERCATOR_RADIUS = WGS84_A
WEB_MERCATOR_MAX_LAT = math.degrees(math.atan(math.sinh(math.pi)))  # 85.0511287...
# Metres per pixel at the equator at zoom 0 with 256-pixel tiles: 2*pi*R / 256.
EQUATOR_MPP_Z0 = 156543.03392


def as_float_array(name: str, value: Any) -> np.ndarray:
    """`value` (scalar or array-like) -> float64 array; ValueError naming `name` if not finite numbers.

    Convention: numpy counterpart of `cvfm_ros.geometry.check_tensor` (which checks torch tensors)
    for the geodesy boundary, where inputs are numpy arrays or floats.
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected numbers, got {type(value).__name__} ({exc})") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite numbers, found NaN or inf")
    return arr


def _check_zoom(zoom: Any) -> int:
    if isinstance(zoom, bool) or not isinstance(zoom, (int, np.integer)) or not 0 <= int(zoom) <= 30:
        raise ValueError(f"zoom: expected an integer in [0, 30], got {zoom!r}")
    return int(zoom)


def _check_tile_size(tile_size: Any) -> int:
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or int(tile_size) <= 0:
        raise ValueError(f"tile_size: expected a positive integer number of pixels, got {tile_size!r}")
    return int(tile_size)


def geodetic_to_ecef(lat_deg: Any, lon_deg: Any, alt_m: Any = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 (lat, lon in degrees, ellipsoidal altitude in metres) -> ECEF (X, Y, Z) metres.

    Shapes: any, broadcast together. Convention: EPSG:4979 -> EPSG:4978.
    """
    lat = np.radians(as_float_array("lat_deg", lat_deg))
    lon = np.radians(as_float_array("lon_deg", lon_deg))
    alt = as_float_array("alt_m", alt_m)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
    x = (n + alt) * cos_lat * np.cos(lon)
    y = (n + alt) * cos_lat * np.sin(lon)
    z = (n * (1.0 - WGS84_E2) + alt) * sin_lat
    return x, y, z


def ecef_to_geodetic(x: Any, y: Any, z: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF (X, Y, Z) metres -> WGS84 (lat, lon in degrees, ellipsoidal altitude in metres).

    Shapes: any, broadcast together. Convention: EPSG:4978 -> EPSG:4979.
    Bowring's method with one refinement of the parametric latitude, written with square roots
    instead of trigonometric calls (it runs per patch pixel): below 1e-10 degrees (well under a
    millimetre) for points within tens of kilometres of the ellipsoid, all a ground robot needs.
    """
    x = as_float_array("x", x)
    y = as_float_array("y", y)
    z = as_float_array("z", z)
    p = np.sqrt(x * x + y * y)
    lon = np.arctan2(y, x)
    # (cos, sin) of the parametric latitude, normalised from their ratio without dividing by p
    # (p is 0 on the polar axis).
    pb, za = p * WGS84_B, z * WGS84_A
    norm = np.sqrt(pb * pb + za * za)
    norm = np.where(norm > 0.0, norm, 1.0)
    cos_b, sin_b = pb / norm, za / norm
    for step in range(2):
        num = z + (_EP2 * WGS84_B) * sin_b**3
        den = p - (WGS84_E2 * WGS84_A) * cos_b**3
        r = np.sqrt(num * num + den * den)
        r = np.where(r > 0.0, r, 1.0)
        sin_lat, cos_lat = num / r, den / r
        if step == 0:
            t = (1.0 - WGS84_F) * sin_lat
            nb = np.sqrt(t * t + cos_lat * cos_lat)
            sin_b, cos_b = t / nb, cos_lat / nb
    lat = np.arctan2(num, den)
    # This form of the height stays well conditioned at the poles (no division by cos(lat)).
    alt = p * cos_lat + z * sin_lat - WGS84_A * np.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    return np.degrees(lat), np.degrees(lon), alt


@dataclass(frozen=True)
class Datum:
    """The origin of `map`: WGS84 latitude/longitude (degrees) and ellipsoidal altitude (metres).

    Convention: `map` is the ENU tangent plane at this point (x east, y north, z up). |lat| must
    stay below Web Mercator's limit (85.05 deg) because the satellite tiles live in Web Mercator.
    """

    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lat_deg", "lon_deg", "alt_m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ValueError(f"Datum.{name}: expected a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"Datum.{name}: expected a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not abs(self.lat_deg) < 85.05:
            raise ValueError(
                f"Datum.lat_deg: expected |latitude| < 85.05 degrees (Web Mercator's limit), got {self.lat_deg}"
            )
        if not -180.0 <= self.lon_deg <= 180.0:
            raise ValueError(f"Datum.lon_deg: expected a longitude in [-180, 180] degrees, got {self.lon_deg}")
        if not -12000.0 <= self.alt_m <= 12000.0:
            raise ValueError(f"Datum.alt_m: expected an altitude within +-12 km of the ellipsoid, got {self.alt_m}")

    @property
    def _origin_and_rotation(self) -> tuple[np.ndarray, np.ndarray]:
        # Cached on the frozen instance: the datum is used for every frame.
        cached = self.__dict__.get("_cache")
        if cached is None:
            origin = np.array(geodetic_to_ecef(self.lat_deg, self.lon_deg, self.alt_m), dtype=np.float64)
            lat, lon = math.radians(self.lat_deg), math.radians(self.lon_deg)
            sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
            # Rows: east, north, up unit vectors expressed in ECEF.
            rot = np.array([[-so, co, 0.0], [-sl * co, -sl * so, cl], [cl * co, cl * so, sl]])
            cached = (origin, rot)
            object.__setattr__(self, "_cache", cached)
        return cached

    def geodetic_to_map(self, lat_deg: Any, lon_deg: Any, alt_m: Any = None,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """WGS84 (lat, lon degrees, alt metres; alt None = the datum's altitude) -> `map` (x, y, z) metres.

        Shapes: any, broadcast together. Convention: ENU at this datum.
        """
        if alt_m is None:
            alt_m = self.alt_m
        x, y, z = geodetic_to_ecef(lat_deg, lon_deg, alt_m)
        origin, r = self._origin_and_rotation
        dx, dy, dz = x - origin[0], y - origin[1], z - origin[2]
        return (r[0, 0] * dx + r[0, 1] * dy + r[0, 2] * dz,
                r[1, 0] * dx + r[1, 1] * dy + r[1, 2] * dz,
                r[2, 0] * dx + r[2, 1] * dy + r[2, 2] * dz)

    def map_to_geodetic(self, x: Any, y: Any, z: Any = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`map` (x east, y north, z up; metres) -> WGS84 (lat, lon degrees, ellipsoidal alt metres).

        Shapes: any, broadcast together. Convention: ENU at this datum; z = 0 is the tangent
        plane (it rises above the ellipsoid away from the datum, about 2 m at 5 km).
        """
        e = as_float_array("x", x)
        n = as_float_array("y", y)
        u = as_float_array("z", z)
        origin, r = self._origin_and_rotation
        # Written out instead of a (N, 3) @ (3, 3) product, which numpy runs several times slower.
        ex = origin[0] + r[0, 0] * e + r[1, 0] * n + r[2, 0] * u
        ey = origin[1] + r[0, 1] * e + r[1, 1] * n + r[2, 1] * u
        ez = origin[2] + r[0, 2] * e + r[1, 2] * n + r[2, 2] * u
        return ecef_to_geodetic(ex, ey, ez)

    def geodetic_to_plane(self, lat_deg: Any, lon_deg: Any) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 (lat, lon) degrees -> (x, y) of the point of the `map` plane z = 0 with that lat/lon.

        Shapes: any, broadcast together. Convention: the exact inverse of `map_to_geodetic(x, y, 0)`
        in (lat, lon): the ellipsoid normal through (lat, lon) is followed to the tangent plane.
        (`geodetic_to_map` at the datum's altitude would differ horizontally by d^3 / (2 R^2),
        about 4 mm at 7 km from the datum.)
        """
        alt = np.full(np.broadcast_shapes(np.shape(lat_deg), np.shape(lon_deg)), self.alt_m)
        for _ in range(3):
            # The plane lies -z above the point at this altitude; a few steps converge to sub-micrometre.
            x, y, z = self.geodetic_to_map(lat_deg, lon_deg, alt)
            alt = alt - z
        return x, y

    def map_to_world_px(self, x: Any, y: Any, zoom: int, tile_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """`map` (x, y) metres on the tangent plane -> Web Mercator global pixels (u, v) at `zoom`.

        Shapes: any, broadcast together. Convention: see the module docstring (OpenCV pixel
        centres, v grows south).
        """
        lat, lon, _ = self.map_to_geodetic(x, y)
        return latlon_to_world_px(lat, lon, zoom, tile_size)

    def world_px_to_map(self, u: Any, v: Any, zoom: int, tile_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Web Mercator global pixels (u, v) at `zoom` -> `map` (x, y) metres on the tangent plane.

        Shapes: any, broadcast together. Convention: see the module docstring; exact inverse of
        `map_to_world_px`.
        """
        lat, lon = world_px_to_latlon(u, v, zoom, tile_size)
        return self.geodetic_to_plane(lat, lon)

    def to_dict(self) -> dict[str, float]:
        return {"lat_deg": self.lat_deg, "lon_deg": self.lon_deg, "alt_m": self.alt_m}


def latlon_to_world_px(lat_deg: Any, lon_deg: Any, zoom: int, tile_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 (lat, lon) degrees -> Web Mercator global pixel coordinates (u, v) at `zoom`.

    Shapes: any, broadcast together. Convention: EPSG:3857 scaled to `tile_size * 2**zoom` pixels,
    OpenCV pixel centres (west/north world edge at -0.5), v grows south. Latitudes beyond
    +-85.0511 map outside the world (v < -0.5 or v > size - 0.5).
    """
    zoom = _check_zoom(zoom)
    tile_size = _check_tile_size(tile_size)
    lat = as_float_array("lat_deg", lat_deg)
    lon = as_float_array("lon_deg", lon_deg)
    if np.any(np.abs(lat) >= 90.0):
        raise ValueError("lat_deg: expected latitudes strictly between -90 and 90 degrees")
    size = float(tile_size) * 2.0**zoom
    u = (lon / 360.0 + 0.5) * size - 0.5
    merc_y = np.log(np.tan(np.pi / 4.0 + np.radians(lat) / 2.0))
    v = (0.5 - merc_y / (2.0 * np.pi)) * size - 0.5
    return u, v


def world_px_to_latlon(u: Any, v: Any, zoom: int, tile_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Web Mercator global pixels (u, v) at `zoom` -> WGS84 (lat, lon) degrees.

    Shapes: any, broadcast together. Convention: inverse of `latlon_to_world_px`.
    """
    zoom = _check_zoom(zoom)
    tile_size = _check_tile_size(tile_size)
    u = as_float_array("u", u)
    v = as_float_array("v", v)
    size = float(tile_size) * 2.0**zoom
    lon = ((u + 0.5) / size - 0.5) * 360.0
    merc_y = (0.5 - (v + 0.5) / size) * 2.0 * np.pi
    lat = np.degrees(2.0 * np.arctan(np.exp(merc_y)) - np.pi / 2.0)
    return lat, lon


def meters_per_pixel(lat_deg: Any, zoom: int, tile_size: int = 256) -> np.ndarray:
    """Web Mercator ground resolution (metres per pixel) at latitude `lat_deg` and `zoom`.

    Shapes: any. Convention: 156543.03392 * cos(lat) / 2**zoom for 256-pixel tiles (scaled by
    256 / tile_size otherwise); the scale on Web Mercator's sphere.
    """
    zoom = _check_zoom(zoom)
    tile_size = _check_tile_size(tile_size)
    lat = as_float_array("lat_deg", lat_deg)
    return EQUATOR_MPP_Z0 * (256.0 / tile_size) * np.cos(np.radians(lat)) / 2.0**zoom


def zoom_for_mpp(lat_deg: float, mpp: float, tile_size: int = 256) -> int:
    """The coarsest zoom whose tiles are at least as fine as `mpp` metres per pixel at `lat_deg`.

    Convention: returns an int in [0, 30]; the caller clamps it to the zooms a source has.
    """
    lat = float(as_float_array("lat_deg", lat_deg))
    mpp = float(as_float_array("mpp", mpp))
    if not mpp > 0:
        raise ValueError(f"mpp: expected positive metres per pixel, got {mpp}")
    z0 = EQUATOR_MPP_Z0 * (256.0 / _check_tile_size(tile_size)) * math.cos(math.radians(lat))
    # The 1e-9 keeps an exact match (mpp equal to a zoom's resolution) at that zoom.
    return int(min(30, max(0, math.ceil(math.log2(z0 / mpp) - 1e-9))))


def tile_of_world_px(u: Any, v: Any, tile_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Global pixel (u, v) -> integer tile indices (x, y) of the tile holding that point.

    Shapes: any. Convention: tile x covers u in [x*T - 0.5, (x+1)*T - 0.5).
    """
    tile_size = _check_tile_size(tile_size)
    u = as_float_array("u", u)
    v = as_float_array("v", v)
    return np.floor((u + 0.5) / tile_size).astype(np.int64), np.floor((v + 0.5) / tile_size).astype(np.int64)


def tile_bounds_latlon(zoom: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Edges of XYZ tile (zoom, x, y): (lat_south, lon_west, lat_north, lon_east) in degrees."""
    zoom = _check_zoom(zoom)
    n = 2**zoom
    if not (0 <= x < n and 0 <= y < n):
        raise ValueError(f"tile: expected 0 <= x, y < {n} at zoom {zoom}, got x={x}, y={y}")
    lat_n, lon_w = world_px_to_latlon(x * 256 - 0.5, y * 256 - 0.5, zoom)
    lat_s, lon_e = world_px_to_latlon((x + 1) * 256 - 0.5, (y + 1) * 256 - 0.5, zoom)
    return float(lat_s), float(lon_w), float(lat_n), float(lon_e)
