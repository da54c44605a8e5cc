"""`cvfm-ros tiles info / prefetch` on a small area, against a loopback tile server."""
import json

import numpy as np
import pytest

from cvfm_ros.cli.main import main
from cvfm_ros.config import atomic_write_text
from cvfm_ros.maps.tiles import TileId, load_route, tiles_along_route, tiles_around, tiles_in_bbox, write_xyz_pyramid
from tiles_support import DATUM, orthophoto, start_server, stop_server

# The orthophoto's centre in lat/lon (map (250, -120) at the datum).
CENTRE = tuple(float(v) for v in DATUM.map_to_geodetic(250.0, -120.0)[:2])


@pytest.fixture(scope="module")
def server_root(tmp_path_factory):
    img, grid = orthophoto(size=600)
    root = tmp_path_factory.mktemp("server")
    write_xyz_pyramid(img, grid, DATUM, [18, 19], root)
    return root


@pytest.fixture
def server(server_root, monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    srv = start_server(server_root)
    yield srv
    stop_server(srv)


def _area():
    return ["--center", f"{CENTRE[0]:.8f}", f"{CENTRE[1]:.8f}", "--radius", "30"]


def test_prefetch_then_info(server, tmp_path, capsys):
    cache = tmp_path / "cache"
    report = tmp_path / "prefetch.json"
    argv = ["tiles", "prefetch", "--path", str(cache), "--url", server.url, "--zoom", "18", "19", *_area(),
            "--timeout", "1", "1", "--json", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "complete: every tile" in out
    data = json.loads(report.read_text())
    expected = len(tiles_around(*CENTRE, 30.0, 18)) + len(tiles_around(*CENTRE, 30.0, 19))
    assert data["tiles"] == expected and data["complete"]
    assert sum(z["fetched"] for z in data["prefetch"]["zooms"].values()) == expected
    assert len(server.requests) == expected
    info_json = tmp_path / "info.json"
    assert main(["tiles", "info", "--path", str(cache), "--zoom", "19", *_area(), "--json", str(info_json)]) == 0
    info = json.loads(info_json.read_text())
    assert info["complete"] and info["zooms"]["19"]["missing"] == 0
    # Summary of the whole cache (no area).
    assert main(["tiles", "info", "--path", str(cache)]) == 0
    assert "zoom 19:" in capsys.readouterr().out


def test_info_reports_missing_and_corrupt(server_root, tmp_path, capsys):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(server_root, cache)
    victim = next((cache / "19").rglob("*.png"))
    victim.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    # A wider area than the orthophoto: tiles beyond it are missing.
    rc = main(["tiles", "info", "--path", str(cache), "--zoom", "19", "--center", f"{CENTRE[0]:.8f}",
               f"{CENTRE[1]:.8f}", "--radius", "150", "--json", str(tmp_path / "i.json")])
    out = capsys.readouterr().out
    assert rc == 1 and "INCOMPLETE" in out and "corrupt 19/" in out and "missing 19/" in out
    data = json.loads((tmp_path / "i.json").read_text())
    assert data["zooms"]["19"]["corrupt"] == 1 and data["zooms"]["19"]["missing"] > 0
    assert main(["tiles", "info", "--path", str(cache)]) == 1  # the summary flags corrupt files too


def test_offline_prefetch_reports_without_requests(server, tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    rc = main(["tiles", "prefetch", "--path", str(cache), "--url", server.url, "--offline", "--zoom", "19", *_area()])
    out = capsys.readouterr().out
    assert rc == 1 and "offline: no request made" in out and "missing 19/" in out
    assert server.requests == []


def test_prefetch_along_a_route(server, tmp_path):
    # A TUM trajectory in map (needs the datum) along the orthophoto's middle row.
    route = tmp_path / "route.tum"
    lines = [f"{i:.1f} {x:.2f} -120.0 0 0 0 0 1" for i, x in enumerate(np.linspace(215.0, 285.0, 8))]
    atomic_write_text(route, "# t x y z qx qy qz qw\n" + "\n".join(lines) + "\n")
    cache = tmp_path / "cache"
    argv = ["tiles", "prefetch", "--path", str(cache), "--url", server.url, "--zoom", "19", "--route", str(route),
            "--buffer", "10", "--datum", str(DATUM.lat_deg), str(DATUM.lon_deg), str(DATUM.alt_m)]
    assert main(argv) == 0
    lat, lon = load_route(route, datum=DATUM)
    expected = set(tiles_along_route(lat, lon, 10.0, 19))
    cached = {TileId(19, int(p.parent.name), int(p.stem)) for p in (cache / "19").rglob("*.png")}
    assert cached == expected and len(server.requests) == len(expected)
    # Without the datum the map route is refused with a clear message.
    assert main(["tiles", "info", "--path", str(cache), "--zoom", "19", "--route", str(route)]) == 2


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["tiles", "info", "--path", str(tmp_path / "nope"), *_area(), "--zoom", "19"]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    assert main(["tiles", "info", "--path", str(tmp_path / "c"), "--zoom", "19"]) == 0  # empty summary
    assert main(["tiles", "info", "--path", str(tmp_path / "c"), "--zoom", "19", *_area(),
                 "--bbox", "1", "2", "3", "4"]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["tiles", "prefetch", "--path", str(tmp_path / "c"), "--zoom", "19", *_area()]) == 2
    assert "--url" in capsys.readouterr().err
    assert main(["tiles", "prefetch", "--path", str(tmp_path / "c"), "--url", "ftp://x/{z}/{x}/{y}", *_area()]) == 2


def test_area_tile_sets():
    lat, lon = CENTRE
    box = tiles_in_bbox(lat - 0.001, lon - 0.001, lat + 0.001, lon + 0.001, 19)
    ring = tiles_around(lat, lon, 30.0, 19)
    assert set(ring) <= set(box) and len(ring) >= 4
    # Every tile within the radius is in the set, every tile in the set touches the disc.
    for t in box:
        u0, v0 = t.x * 256 - 0.5, t.y * 256 - 0.5
        corners_u, corners_v = np.meshgrid(np.linspace(u0, u0 + 256, 65), np.linspace(v0, v0 + 256, 65))
        x, y = DATUM.world_px_to_map(corners_u, corners_v, 19)
        cx, cy = DATUM.geodetic_to_plane(lat, lon)
        nearest = np.hypot(x - cx, y - cy).min()
        assert (t in ring) == (nearest < 30.0) or 29.0 < nearest < 31.5, (t, nearest)
    with pytest.raises(ValueError, match="bbox"):
        tiles_in_bbox(1, 2, 0, 3, 10)
    with pytest.raises(ValueError, match="more than"):
        tiles_in_bbox(-60, -170, 60, 170, 18)


def test_route_formats(tmp_path):
    latlon = tmp_path / "r.csv"
    atomic_write_text(latlon, "time,latitude,longitude\n0,47.6,-122.3\n1,47.601,-122.301\n")
    lat, lon = load_route(latlon)
    assert lat.tolist() == [47.6, 47.601] and lon.tolist() == [-122.3, -122.301]
    xy = tmp_path / "xy.csv"
    atomic_write_text(xy, "x,y\n0,0\n100,0\n")
    lat, lon = load_route(xy, datum=DATUM)
    assert lat[0] == pytest.approx(DATUM.lat_deg) and lon[1] > lon[0]
    with pytest.raises(ValueError, match="needs the datum"):
        load_route(xy)
    bad = tmp_path / "bad.csv"
    atomic_write_text(bad, "1,2,3\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_route(bad)
