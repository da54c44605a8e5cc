"""Tile pyramid write -> metric patch read, the three tile sources, coverage and corruption."""
import json
import logging
import shutil
import sqlite3

import cv2
import numpy as np
import pytest
import torch

from cvfm_ros.config import from_dict
from cvfm_ros.geometry import AerialPatch
from cvfm_ros.maps.geodesy import meters_per_pixel
from cvfm_ros.maps.tiles import (
    NoCoverage,
    TileConfig,
    TileId,
    TileStore,
    XYZDirectory,
    decode_tile,
    encode_tile,
    write_xyz_pyramid,
)
from tiles_support import DATUM, marker_centroids, orthophoto, resample_direct


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    img, grid = orthophoto()
    root = tmp_path_factory.mktemp("pyramid")
    stats = write_xyz_pyramid(img, grid, DATUM, [17, 18, 19], root / "xyz")
    return img, grid, root / "xyz", stats


def test_pyramid_files_and_metadata(world):
    img, grid, xyz, stats = world
    meta = json.loads((xyz / "metadata.json").read_text())
    assert meta["datum"] == DATUM.to_dict() and meta["zooms"] == [17, 18, 19]
    assert meta["tiles_per_zoom"] == {str(z): n for z, n in stats.tiles.items()}
    on_disk = {z: len(list((xyz / str(z)).rglob("*.png"))) for z in (17, 18, 19)}
    assert on_disk == stats.tiles and stats.tiles[19] >= 9
    assert not list(xyz.rglob("*.tmp"))
    # Edge tiles are partly outside the orthophoto: transparent there, not black "data".
    partial = [p for p in (xyz / "19").rglob("*.png") if decode_tile(p.read_bytes())[1] is not None]
    assert partial
    b = meta["bounds_map"]
    w, h = grid.extent_m
    assert b["xmax"] - b["xmin"] == pytest.approx(w) and b["ymax"] - b["ymin"] == pytest.approx(h)


@pytest.mark.parametrize("mpp", [0.2, 0.5])
def test_patch_reassembles_the_orthophoto(world, mpp):
    img, grid, xyz, _ = world
    store = TileStore(TileConfig(path=str(xyz)), DATUM)
    cx, cy = 255.0, -117.0
    size = 256 if mpp == 0.2 else 200
    result = store.read_patch((cx, cy), size, mpp)
    ref = resample_direct(img, grid, cx, cy, size, mpp)
    assert result.image.shape == (size, size, 3) and result.image.dtype == np.uint8
    # The coarsest zoom at least as fine as asked, or the finest the pyramid has.
    assert result.zoom == (19 if mpp == 0.2 else 18)
    assert result.coverage == 1.0 and result.status == "ok" and not result.missing_tiles
    diff = np.abs(result.image.astype(float) - ref.astype(float))
    assert diff.mean() < 4.0, diff.mean()
    # Sub-pixel alignment: image shift by phase correlation, and each marker's position.
    grey = [cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64) for a in (result.image, ref)]
    (dx, dy), _ = cv2.phaseCorrelate(grey[0], grey[1])
    assert abs(dx) < 0.25 and abs(dy) < 0.25, (dx, dy)
    got, want = marker_centroids(result.image), marker_centroids(ref)
    assert len(want) >= 3 and set(got) == set(want)
    for colour in want:
        assert np.linalg.norm(got[colour] - want[colour]) < 1.0, (colour, got[colour], want[colour])
    # A metric assumption (ignoring cos(lat)) would scale the patch by 1.48: the markers would be
    # tens of pixels off, so the check above does discriminate.
    assert meters_per_pixel(47.6, 19) / meters_per_pixel(0.0, 19) < 0.7
    patch = result.to_aerial_patch()
    assert isinstance(patch, AerialPatch) and patch.image.shape == (3, size, size) and patch.mpp == mpp
    assert torch.equal(patch.image.permute(1, 2, 0), torch.from_numpy(result.image))


def test_partial_and_missing_coverage_is_reported_not_zero_filled(world):
    img, grid, xyz, _ = world
    store = TileStore(TileConfig(path=str(xyz), min_coverage=0.9), DATUM)
    # Half the patch lies east of the orthophoto (its east edge is at x = 250 + 60 = 310 m).
    with pytest.raises(NoCoverage) as err:
        store.read_patch((310.0, -120.0), 128, 0.2)
    partial = err.value.result
    assert 0.35 < partial.coverage < 0.65
    xs = 310.0 + (np.arange(128) - 63.5) * 0.2
    inside = xs <= 310.0 + 0.1
    # Every pixel flagged valid lies within the orthophoto, and pixels well inside are valid.
    assert not partial.valid[:, xs > 310.2].any() and partial.valid[:, xs < 309.5].all()
    assert (partial.image[~partial.valid] == 0).all()
    assert inside.any()
    ok = store.read_patch((310.0, -120.0), 128, 0.2, min_coverage=0.0)
    assert ok.status == "partial" and np.array_equal(ok.valid, partial.valid)
    # Far away: no tile at all; the reason names the tiles and what to do.
    with pytest.raises(NoCoverage, match=r"coverage 0\.0% .*missing tiles 19/.*cvfm-ros tiles prefetch"):
        store.read_patch((5000.0, 5000.0), 64, 0.2)


def test_zoom_fallback_fills_from_coarser_tiles(world, tmp_path):
    img, grid, xyz, _ = world
    copy = tmp_path / "xyz"
    shutil.copytree(xyz, copy)
    store = TileStore(TileConfig(path=str(copy)), DATUM)
    centre = (255.0, -117.0)
    full = store.read_patch(centre, 128, 0.2)
    used = sorted({TileId(19, *map(int, (p.parent.name, p.stem))) for p in (copy / "19").rglob("*.png")})
    # Remove the zoom-19 tile under the patch centre: zoom 18 fills it, at a lower resolution.
    u, v = DATUM.map_to_world_px(*centre, 19)
    victim = TileId(19, int((u + 0.5) // 256), int((v + 0.5) // 256))
    assert victim in used
    (copy / "19" / str(victim.x) / f"{victim.y}.png").unlink()
    store = TileStore(TileConfig(path=str(copy)), DATUM)
    res = store.read_patch(centre, 128, 0.2)
    assert res.coverage == 1.0 and res.missing_tiles == [victim] and 18 in res.zoom_share
    assert np.abs(res.image.astype(float) - full.image.astype(float)).mean() < 8
    strict = TileStore(TileConfig(path=str(copy), zoom_fallback=0, min_coverage=0.0), DATUM)
    assert strict.read_patch(centre, 128, 0.2).coverage < 1.0


def _tms_copy(xyz, out):
    for path in xyz.rglob("*.png"):
        z, x, y = int(path.parent.parent.name), int(path.parent.name), int(path.stem)
        target = out / str(z) / str(x) / f"{(1 << z) - 1 - y}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


def _mbtiles(xyz, out):
    db = sqlite3.connect(out)
    db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    db.executemany("INSERT INTO metadata VALUES (?, ?)", [("name", "test"), ("format", "png")])
    for path in xyz.rglob("*.png"):
        z, x, y = int(path.parent.parent.name), int(path.parent.name), int(path.stem)
        # MBTiles rows count from the south (TMS).
        db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, path.read_bytes()))
    db.commit()
    db.close()


def test_xyz_tms_and_mbtiles_read_the_same_tiles(world, tmp_path):
    img, grid, xyz, _ = world
    _tms_copy(xyz, tmp_path / "tms")
    _mbtiles(xyz, tmp_path / "world.mbtiles")
    stores = {
        "xyz": TileStore(TileConfig(path=str(xyz)), DATUM),
        "tms": TileStore(TileConfig(path=str(tmp_path / "tms"), tms=True), DATUM),
        "mbtiles": TileStore(TileConfig(path=str(tmp_path / "world.mbtiles")), DATUM),
    }
    assert stores["mbtiles"].source.metadata["format"] == "png"
    tiles = sorted(TileId(19, int(p.parent.name), int(p.stem)) for p in (xyz / "19").rglob("*.png"))
    for tile in tiles:
        reads = {k: s.read_tile(tile) for k, s in stores.items()}
        assert all(r.ok for r in reads.values()), tile
        assert np.array_equal(reads["xyz"].rgb, reads["tms"].rgb)
        assert np.array_equal(reads["xyz"].rgb, reads["mbtiles"].rgb)
    patches = {k: s.read_patch((255.0, -117.0), 96, 0.2).image for k, s in stores.items()}
    assert np.array_equal(patches["xyz"], patches["tms"]) and np.array_equal(patches["xyz"], patches["mbtiles"])
    # The flip matters: the TMS folder read as XYZ gives other tiles (or none) at those ids.
    wrong = TileStore(TileConfig(path=str(tmp_path / "tms"), min_coverage=0.0), DATUM)
    assert wrong.read_patch((255.0, -117.0), 96, 0.2).coverage < 1.0
    for s in stores.values():
        s.close()


def test_geotiff_source(world, tmp_path):
    rasterio = pytest.importorskip("rasterio", reason="GeoTIFF sources are an optional extra (pip install rasterio)")
    import pyproj

    img, grid, _, _ = world
    # The same place as a UTM zone 10N orthophoto at 0.25 m: a different CRS and resolution.
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32610", always_xy=True)
    to_ll = pyproj.Transformer.from_crs("EPSG:32610", "EPSG:4326", always_xy=True)
    lat0, lon0, _ = DATUM.map_to_geodetic(250.0, -120.0)
    e0, n0 = to_utm.transform(float(lon0), float(lat0))
    res, n = 0.25, 420
    west, north = e0 - n * res / 2, n0 + n * res / 2
    cols, rows = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5)
    lon, lat = to_ll.transform(west + cols * res, north - rows * res)
    x, y = DATUM.geodetic_to_plane(lat, lon)
    uv = grid.metric_to_pixel(torch.from_numpy(np.stack([x, y], -1))).numpy().astype(np.float32)
    raster = cv2.remap(img, uv[..., 0], uv[..., 1], cv2.INTER_LINEAR)
    path = tmp_path / "ortho.tif"
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=3, dtype="uint8", crs="EPSG:32610",
                       transform=rasterio.Affine(res, 0.0, west, 0.0, -res, north)) as ds:
        ds.write(np.moveaxis(raster, -1, 0))
    store = TileStore(TileConfig(path=str(path)), DATUM)
    assert 19 in store.available_zooms()
    result = store.read_patch((255.0, -117.0), 128, 0.3)
    ref = resample_direct(img, grid, 255.0, -117.0, 128, 0.3)
    assert result.coverage == 1.0
    assert np.abs(result.image.astype(float) - ref.astype(float)).mean() < 6.0
    got, want = marker_centroids(result.image), marker_centroids(ref)
    for colour in want:
        assert np.linalg.norm(got[colour] - want[colour]) < 1.0


def test_geotiff_without_rasterio_says_what_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_rasterio(name, *args, **kwargs):
        if name == "rasterio" or name.startswith("rasterio."):
            raise ImportError("No module named 'rasterio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rasterio)
    (tmp_path / "a.tif").write_bytes(b"II*\x00")
    with pytest.raises(ImportError, match="pip install rasterio"):
        TileStore(TileConfig(path=str(tmp_path / "a.tif")), DATUM)


def test_corrupt_tile_is_detected_reported_and_not_trusted(world, tmp_path, caplog):
    img, grid, xyz, _ = world
    copy = tmp_path / "xyz"
    shutil.copytree(xyz, copy)
    centre = (255.0, -117.0)
    u, v = DATUM.map_to_world_px(*centre, 19)
    tile = TileId(19, int((u + 0.5) // 256), int((v + 0.5) // 256))
    path = copy / "19" / str(tile.x) / f"{tile.y}.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a crash mid-copy, without the atomic rename
    store = TileStore(TileConfig(path=str(copy), zoom_fallback=0, min_coverage=0.0), DATUM)
    read = store.read_tile(tile)
    assert read.status == "corrupt" and "truncated" in read.reason and read.rgb is None
    with caplog.at_level(logging.WARNING):
        res = store.read_patch(centre, 128, 0.2)
    assert res.corrupt_tiles == [tile] and res.coverage < 0.9
    assert (res.image[~res.valid] == 0).all()
    assert any("corrupt tile 19/" in rec.getMessage() for rec in caplog.records)
    # Garbage of the right name is rejected the same way; a leftover temp file is never read.
    path.write_bytes(b"<html>captive portal</html>")
    (path.parent / f".{path.name}.x1y2.tmp").write_bytes(data)
    fresh = TileStore(TileConfig(path=str(copy)), DATUM)
    assert fresh.read_tile(tile).status == "corrupt"
    assert len(XYZDirectory(copy).temp_files()) == 1


def test_memory_lru_and_negative_cache(world, monkeypatch):
    img, grid, xyz, _ = world
    store = TileStore(TileConfig(path=str(xyz), memory_cache_tiles=3), DATUM)
    reads = []
    original = store.source.read
    monkeypatch.setattr(store.source, "read", lambda t: reads.append(t) or original(t))
    store.read_patch((255.0, -117.0), 64, 0.2)
    first = len(reads)
    store.read_patch((255.0, -117.0), 64, 0.2)
    assert len(reads) == first  # warm: decoded tiles come from memory
    tiles = sorted(TileId(19, int(p.parent.name), int(p.stem)) for p in (xyz / "19").rglob("*.png"))
    for t in tiles:
        store.read_tile(t)
    assert len(store._memory) == 3 and list(store._memory)[-1] == tiles[-1]
    missing = TileId(19, 1, 1)
    store.read_tile(missing)
    store.read_tile(missing)
    assert reads.count(missing) == 1  # missing tiles are not looked up again for missing_retry_s


def test_config_from_dict_and_validation():
    cfg = from_dict(TileConfig, {"path": "/data/tiles", "url_template": "https://tiles.example/{z}/{x}/{y}.jpg",
                                 "quota_mb": 512, "zoom": 19, "retries": 2})
    assert cfg.quota_mb == 512.0 and cfg.resolved_kind == "xyz" and cfg.online
    assert from_dict(TileConfig, {"path": "a.mbtiles"}).resolved_kind == "mbtiles"
    assert from_dict(TileConfig, {"path": "a.TIF"}).resolved_kind == "geotiff"
    with pytest.raises(ValueError, match=r"config: TileConfig.url_template: missing placeholder"):
        from_dict(TileConfig, {"url_template": "https://tiles.example/{z}/{x}.png"})
    with pytest.raises(ValueError, match="TileConfig.url_template: expected an http"):
        TileConfig(url_template="file:///{z}/{x}/{y}.png")
    with pytest.raises(ValueError, match="TileConfig.min_coverage"):
        TileConfig(min_coverage=1.5)
    with pytest.raises(ValueError, match="TileConfig.concurrency"):
        TileConfig(concurrency=0)
    with pytest.raises(ValueError, match=r"config: unknown key\(s\) \['quota'\]"):
        from_dict(TileConfig, {"quota": 5})


def test_bad_patch_arguments_are_named(world):
    _, _, xyz, _ = world
    store = TileStore(TileConfig(path=str(xyz)), DATUM)
    with pytest.raises(ValueError, match="center_xy"):
        store.read_patch((1.0, 2.0, 3.0), 64, 0.2)
    with pytest.raises(ValueError, match="mpp"):
        store.read_patch((1.0, 2.0), 64, -0.2)
    with pytest.raises(ValueError, match="size_px"):
        store.read_patch((1.0, 2.0), 0, 0.2)
    with pytest.raises(ValueError, match="max_patch_tiles"):
        store.read_patch((1.0, 2.0), 4096, 2.0, zoom=19)
    with pytest.raises(ValueError, match="tile source .*not found"):
        TileStore(TileConfig(path="/nonexistent/tiles"), DATUM)
    with pytest.raises(ValueError, match="image"):
        write_xyz_pyramid(np.zeros((4, 4), np.uint8), None, DATUM, [1], "/tmp/x")
    with pytest.raises(ValueError, match="valid: JPEG"):
        encode_tile(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), bool), "jpg")
