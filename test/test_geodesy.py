"""Geodesy against pyproj (an independent implementation): map ENU <-> WGS84 <-> Web Mercator."""
import math

import numpy as np
import pyproj
import pytest

from cvfm_ros.config import from_dict
from cvfm_ros.maps.geodesy import (
    Datum,
    ecef_to_geodetic,
    geodetic_to_ecef,
    latlon_to_world_px,
    meters_per_pixel,
    tile_bounds_latlon,
    tile_of_world_px,
    world_px_to_latlon,
    zoom_for_mpp,
)

DATUMS = [Datum(47.6, -122.3, 30.0), Datum(-33.87, 151.21, 5.0), Datum(0.5, 179.95, 0.0), Datum(69.65, 18.96, 120.0)]


def _topocentric(d: Datum) -> pyproj.Transformer:
    return pyproj.Transformer.from_pipeline(
        "+proj=pipeline +step +proj=cart +ellps=WGS84 "
        f"+step +proj=topocentric +ellps=WGS84 +lat_0={d.lat_deg} +lon_0={d.lon_deg} +h_0={d.alt_m}")


def _metres(lat_a, lon_a, lat_b, lon_b):
    return pyproj.Geod(ellps="WGS84").inv(lon_a, lat_a, lon_b, lat_b)[2]


@pytest.mark.parametrize("datum", DATUMS, ids=lambda d: f"{d.lat_deg},{d.lon_deg}")
def test_map_geodetic_matches_pyproj_to_a_millimetre_over_10km(datum):
    rng = np.random.default_rng(1)
    e, n = rng.uniform(-5000, 5000, (2, 4000))
    u = rng.uniform(-100, 300, 4000)
    lon_ref, lat_ref, h_ref = _topocentric(datum).transform(e, n, u, direction="INVERSE")
    lat, lon, h = datum.map_to_geodetic(e, n, u)
    assert np.max(_metres(lat, lon, lat_ref, lon_ref)) < 1e-3
    assert np.max(np.abs(h - h_ref)) < 1e-3
    # And back: WGS84 -> map.
    x, y, z = datum.geodetic_to_map(lat_ref, lon_ref, h_ref)
    assert np.max(np.hypot(x - e, y - n)) < 1e-3 and np.max(np.abs(z - u)) < 1e-3
    # The forward direction against pyproj too (not only our own inverse).
    e_ref, n_ref, u_ref = _topocentric(datum).transform(lon_ref, lat_ref, h_ref)
    assert np.max(np.abs(np.stack([x, y, z]) - np.stack([e_ref, n_ref, u_ref]))) < 1e-3


def test_ecef_matches_pyproj_worldwide():
    rng = np.random.default_rng(2)
    lat, lon = rng.uniform(-89.9, 89.9, 5000), rng.uniform(-180, 180, 5000)
    h = rng.uniform(-400, 9000, 5000)
    ref = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    xr, yr, zr = ref.transform(lon, lat, h)
    x, y, z = geodetic_to_ecef(lat, lon, h)
    assert np.max(np.abs(np.stack([x - xr, y - yr, z - zr]))) < 1e-6
    lat2, lon2, h2 = ecef_to_geodetic(xr, yr, zr)
    assert np.max(_metres(lat2, lon2, lat, lon)) < 1e-4 and np.max(np.abs(h2 - h)) < 1e-4


def test_web_mercator_pixels_match_epsg3857():
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-85, 85, 5000), rng.uniform(-180, 180, 5000)
    merc = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    mx, my = merc.transform(lon, lat)
    half = math.pi * 6378137.0
    for zoom in (0, 12, 19, 22):
        size = 256 * 2**zoom
        u, v = latlon_to_world_px(lat, lon, zoom)
        # OpenCV pixel centres: the world's west/north edge is at -0.5.
        u_ref = (mx + half) / (2 * half) * size - 0.5
        v_ref = (half - my) / (2 * half) * size - 0.5
        m_per_px = 2 * half / size
        assert np.max(np.abs(u - u_ref)) * m_per_px < 1e-3 and np.max(np.abs(v - v_ref)) * m_per_px < 1e-3
        lat2, lon2 = world_px_to_latlon(u, v, zoom)
        assert np.max(_metres(lat2, lon2, lat, lon)) < 1e-3


def test_tile_indexing_and_edges():
    # Tile (x, y) holds pixel centres x*256 .. x*256+255; its west edge is at x*256 - 0.5.
    tx, _ = tile_of_world_px(np.array([-0.5, 255.49, 255.5]), np.zeros(3))
    assert tx.tolist() == [0, 0, 1]
    s, w, n, e = tile_bounds_latlon(1, 0, 0)
    assert (w, e) == (-180.0, 0.0) and s == pytest.approx(0.0, abs=1e-12)
    assert n == pytest.approx(85.0511287798, abs=1e-9)
    assert latlon_to_world_px(0.0, 0.0, 0)[0] == pytest.approx(127.5)


def test_meters_per_pixel_formula_and_local_scale():
    assert float(meters_per_pixel(0.0, 0)) == pytest.approx(156543.03392)
    assert float(meters_per_pixel(47.6, 19)) == pytest.approx(156543.03392 * math.cos(math.radians(47.6)) / 2**19)
    assert float(meters_per_pixel(47.6, 19, tile_size=512)) == pytest.approx(float(meters_per_pixel(47.6, 20)))
    # On the ground: a metre east / north in map moves this many Web Mercator pixels. The formula is
    # the scale on the sphere; the WGS84 east and north scales differ from it by under 0.3 % here,
    # and from each other, which is why patches are resampled through lat/lon.
    d = Datum(47.6, -122.3, 0.0)
    u0, v0 = d.map_to_world_px(0.0, 0.0, 19)
    ue, ve = d.map_to_world_px(10.0, 0.0, 19)
    un, vn = d.map_to_world_px(0.0, 10.0, 19)
    mpp = float(meters_per_pixel(47.6, 19))
    east_scale, north_scale = 10.0 / float(ue - u0) / mpp, 10.0 / float(v0 - vn) / mpp
    assert abs(east_scale - 1) < 3e-3 and abs(north_scale - 1) < 3e-3
    assert abs(east_scale - north_scale) > 1e-3
    assert abs(float(ve - v0)) < 1e-3 and abs(float(un - u0)) < 1e-3  # north-up, no rotation at the datum
    # zoom_for_mpp: the coarsest zoom whose pixels are at least as fine as asked.
    z = zoom_for_mpp(47.6, 0.2)
    assert meters_per_pixel(47.6, z) <= 0.2 < meters_per_pixel(47.6, z - 1)
    assert zoom_for_mpp(47.6, mpp) == 19


def test_round_trips_map_world_px():
    d = Datum(47.6, -122.3, 30.0)
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-5000, 5000, (2, 1000))
    u, v = d.map_to_world_px(x, y, 19)
    x2, y2 = d.world_px_to_map(u, v, 19)
    assert np.max(np.hypot(x2 - x, y2 - y)) < 1e-6
    lat, lon, h = d.map_to_geodetic(x, y, 0.0)
    x3, y3, z3 = d.geodetic_to_map(lat, lon, h)
    assert np.max(np.abs(np.stack([x3 - x, y3 - y, z3]))) < 1e-6


def test_bad_datum_and_arguments_are_named():
    with pytest.raises(ValueError, match="Datum.lat_deg"):
        Datum(85.2, 0.0)
    with pytest.raises(ValueError, match="Datum.lat_deg"):
        Datum(float("nan"), 0.0)
    with pytest.raises(ValueError, match="Datum.lon_deg"):
        Datum(10.0, 200.0)
    with pytest.raises(ValueError, match="Datum.alt_m"):
        Datum(10.0, 20.0, float("inf"))
    with pytest.raises(ValueError, match="Datum.lat_deg: expected a number"):
        Datum("47", 0.0)
    with pytest.raises(ValueError, match="zoom"):
        latlon_to_world_px(0.0, 0.0, 31)
    with pytest.raises(ValueError, match="x: expected finite"):
        Datum(1.0, 2.0).map_to_geodetic(np.array([0.0, np.nan]), 0.0)
    # Through the config system, with the file-path style error.
    assert from_dict(Datum, {"lat_deg": 47.6, "lon_deg": -122.3, "alt_m": 3}) == Datum(47.6, -122.3, 3.0)
    with pytest.raises(ValueError, match="config: Datum.lat_deg"):
        from_dict(Datum, {"lat_deg": 89.0, "lon_deg": 0.0})
