"""HTTP tile fill against a real loopback server: retries, timeouts, validation, atomicity, quota."""
import os
import time

import numpy as np
import pytest

from cvfm_ros.maps.tiles import TileConfig, TileId, TileStore, XYZDirectory, encode_tile, write_xyz_pyramid
from cvfm_ros.maps.tiles.cache import INDEX_NAME
from tiles_support import DATUM, orthophoto, send, stall, start_server, trickle, stop_server


@pytest.fixture(scope="module")
def server_root(tmp_path_factory):
    img, grid = orthophoto(size=600)
    root = tmp_path_factory.mktemp("server")
    write_xyz_pyramid(img, grid, DATUM, [18, 19], root)
    return root


@pytest.fixture
def server(server_root, monkeypatch):
    # Only loopback traffic: no proxy may intercept the test's requests.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    srv = start_server(server_root)
    yield srv
    stop_server(srv)


def _tiles(root, zoom=19):
    return sorted(TileId(zoom, int(p.parent.name), int(p.stem)) for p in (root / str(zoom)).rglob("*.png"))


def _cfg(cache, url, **kw):
    base = dict(path=str(cache), url_template=url, retries=2, backoff_s=0.01, backoff_max_s=0.05,
                connect_timeout_s=1.0, read_timeout_s=1.0, concurrency=3)
    base.update(kw)
    return TileConfig(**base)


def _path(tile):
    return f"/{tile.z}/{tile.x}/{tile.y}.png"


def test_prefetch_success_is_byte_exact_and_atomic(server, server_root, tmp_path):
    tiles = _tiles(server_root)
    with TileStore(_cfg(tmp_path / "cache", server.url), DATUM) as store:
        report = store.prefetch(tiles)
        assert report.fetched[19] == len(tiles) and not report.failures and report.requests == len(tiles)
        for t in tiles:
            assert (tmp_path / "cache" / "19" / str(t.x) / f"{t.y}.png").read_bytes() == \
                (server_root / "19" / str(t.x) / f"{t.y}.png").read_bytes()
        again = store.prefetch(tiles)
        assert again.already[19] == len(tiles) and again.requests == 0
    assert not XYZDirectory(tmp_path / "cache").temp_files()
    # Offline afterwards, the cache reads exactly like the server's own folder.
    offline = TileStore(TileConfig(path=str(tmp_path / "cache"), offline=True), DATUM)
    direct = TileStore(TileConfig(path=str(server_root)), DATUM)
    a, b = offline.read_patch((250.0, -120.0), 128, 0.2), direct.read_patch((250.0, -120.0), 128, 0.2)
    assert a.coverage == 1.0 and np.array_equal(a.image, b.image)


def test_404_is_reported_missing_and_not_retried(server, server_root, tmp_path):
    absent = TileId(19, 1, 1)
    with TileStore(_cfg(tmp_path / "cache", server.url), DATUM) as store:
        report = store.prefetch([absent])
        [failure] = report.failures["missing"]
        assert failure.status_code == 404 and failure.attempts == 1 and server.count(_path(absent)) == 1
        assert store.check([absent]).missing == {19: [absent]}


def test_500_then_success_is_retried(server, server_root, tmp_path):
    tile = _tiles(server_root)[0]
    body = (server_root / "19" / str(tile.x) / f"{tile.y}.png").read_bytes()
    server.behaviour[_path(tile)] = lambda h, n: send(h, 500, b"oops", "text/plain") if n == 1 else send(h, 200, body)
    with TileStore(_cfg(tmp_path / "cache", server.url), DATUM) as store:
        result = store.fetcher.fetch(tile)
        assert result.outcome == "ok" and result.attempts == 2 and result.data == body
        # Retries are bounded: a server that always fails gives up after retries + 1 attempts.
        server.behaviour[_path(tile)] = lambda h, n: send(h, 503, b"busy", "text/plain")
        failed = store.fetcher.fetch(tile)
        assert failed.outcome == "failed" and failed.attempts == 3 and "HTTP 503" in failed.reason


def test_stalled_server_times_out_in_bounded_time(server, server_root, tmp_path):
    tile = _tiles(server_root)[0]
    server.behaviour[_path(tile)] = stall(server)
    cfg = _cfg(tmp_path / "cache", server.url, read_timeout_s=0.3, retries=1)
    with TileStore(cfg, DATUM) as store:
        start = time.monotonic()
        report = store.prefetch([tile])
        elapsed = time.monotonic() - start
    [failure] = report.failures["failed"]
    assert "timeout" in failure.reason.lower() and failure.attempts == 2
    assert 0.5 < elapsed < 3.0
    assert not (tmp_path / "cache" / "19" / str(tile.x) / f"{tile.y}.png").exists()


def test_trickling_server_is_cut_at_the_request_deadline(server, server_root, tmp_path):
    """A server that sends a byte at a time inside the read timeout cannot hold a prefetch: each
    attempt ends at request_deadline_s (issue 12, item 17)."""
    tile = _tiles(server_root)[0]
    server.behaviour[_path(tile)] = trickle(server)
    cfg = _cfg(tmp_path / "cache", server.url, read_timeout_s=1.0, request_deadline_s=0.5, retries=1)
    with TileStore(cfg, DATUM) as store:
        start = time.monotonic()
        report = store.prefetch([tile])
        elapsed = time.monotonic() - start
    server.release.set()
    [failure] = report.failures["failed"]
    assert "request_deadline_s" in failure.reason and failure.attempts == 2
    assert elapsed < 4.0
    assert not (tmp_path / "cache" / "19" / str(tile.x) / f"{tile.y}.png").exists()


def test_garbage_and_oversize_responses_are_rejected_and_not_cached(server, server_root, tmp_path):
    garbage, big, chunked, truncated = _tiles(server_root)[:4]
    body = (server_root / "19" / str(truncated.x) / f"{truncated.y}.png").read_bytes()
    server.behaviour[_path(garbage)] = lambda h, n: send(h, 200, b"<html>login required</html>" * 10, "text/html")
    server.behaviour[_path(big)] = lambda h, n: send(h, 200, b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000)
    server.behaviour[_path(chunked)] = lambda h, n: send(h, 200, b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000, length=False)
    server.behaviour[_path(truncated)] = lambda h, n: send(h, 200, body[: len(body) // 2])
    with TileStore(_cfg(tmp_path / "cache", server.url, max_tile_bytes=200_000), DATUM) as store:
        report = store.prefetch([garbage, big, chunked, truncated])
    invalid = {r.tile: r for r in report.failures["invalid"]}
    too_large = {r.tile: r for r in report.failures["too_large"]}
    assert set(invalid) == {garbage, truncated} and "not a PNG" in invalid[garbage].reason
    assert "truncated" in invalid[truncated].reason
    assert set(too_large) == {big, chunked}
    assert "Content-Length" in too_large[big].reason and "body exceeds" in too_large[chunked].reason
    assert all(r.attempts == 1 for r in [*invalid.values(), *too_large.values()])
    cache = tmp_path / "cache"
    assert not list(cache.rglob("*.png")) and not XYZDirectory(cache).temp_files()


def test_offline_switch_makes_no_request(server, server_root, tmp_path):
    cfg = _cfg(tmp_path / "cache", server.url, offline=True, fetch_on_miss=True, min_coverage=0.0)
    (tmp_path / "cache").mkdir()
    with TileStore(cfg, DATUM) as store:
        assert store.fetcher is None
        result = store.read_patch((250.0, -120.0), 64, 0.2)
        assert result.coverage == 0.0 and result.missing_tiles
        with pytest.raises(ValueError, match="offline"):
            store.prefetch(_tiles(server_root)[:1])
    time.sleep(0.05)
    assert server.requests == []


def test_fetch_on_miss_and_corrupt_tile_refetched(server, server_root, tmp_path, caplog):
    cache = tmp_path / "cache"
    centre = (250.0, -120.0)
    u, v = DATUM.map_to_world_px(*centre, 19)
    tile = TileId(19, int((u + 0.5) // 256), int((v + 0.5) // 256))
    good = (server_root / "19" / str(tile.x) / f"{tile.y}.png").read_bytes()
    target = cache / "19" / str(tile.x) / f"{tile.y}.png"
    target.parent.mkdir(parents=True)
    target.write_bytes(good[:1000])  # corrupt: a cut-off copy
    # A server that fails keeps the corrupt tile out of use and on disk until a valid one comes.
    server.behaviour[_path(tile)] = lambda h, n: send(h, 500, b"down", "text/plain")
    cfg = _cfg(cache, server.url, fetch_on_miss=True, retries=0, min_coverage=0.0, zoom_fallback=0)
    with TileStore(cfg, DATUM) as store:
        res = store.read_patch(centre, 64, 0.2)
        assert res.corrupt_tiles == [tile] and res.coverage < 1.0
    assert target.read_bytes() == good[:1000]
    del server.behaviour[_path(tile)]
    with TileStore(_cfg(cache, server.url, fetch_on_miss=True), DATUM) as store:
        res = store.read_patch(centre, 64, 0.2)
        assert res.coverage == 1.0 and tile in res.fetched_tiles and not res.corrupt_tiles
    assert target.read_bytes() == good
    # Prefetch also replaces corrupt tiles, and counts them.
    target.write_bytes(b"garbage")
    with TileStore(_cfg(cache, server.url), DATUM) as store:
        report = store.prefetch([tile])
    assert report.corrupt_replaced[19] == 1 and target.read_bytes() == good


def test_interrupted_write_leaves_no_trusted_tile(server, server_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    tile = _tiles(server_root)[0]
    import cvfm_ros.config as config

    def crash(src, dst):
        raise OSError("simulated power loss before rename")

    monkeypatch.setattr(config.os, "replace", crash)
    with TileStore(_cfg(cache, server.url), DATUM) as store:
        with pytest.raises(OSError, match="power loss"):
            store.prefetch([tile])
        assert store.read_tile(tile, fetch=False).status == "missing"
    assert not list(cache.rglob("*.png")) and not XYZDirectory(cache).temp_files()
    monkeypatch.undo()
    # A temp file left by a killed process (no cleanup ran) is ignored by readers and removed
    # once stale.
    stale = cache / "19" / str(tile.x) / f".{tile.y}.png.abcd.tmp"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\x89PNG partial")
    with TileStore(_cfg(cache, server.url), DATUM) as store:
        assert store.read_tile(tile, fetch=False).status == "missing" and stale.exists()  # young: maybe in use
    old = time.time() - 7200
    os.utime(stale, (old, old))
    with TileStore(_cfg(cache, server.url), DATUM) as store:
        assert store.cache.removed_temp_files == 1 and not stale.exists()


def test_quota_evicts_least_recently_used_first(server, tmp_path):
    # Six tiles of equal-statistics noise (PNG sizes within a fraction of a percent).
    rng = np.random.default_rng(5)
    root = tmp_path / "server"
    tiles = [TileId(19, 84035 + i % 3, 183118 + i // 3) for i in range(6)]
    for t in tiles:
        path = root / "19" / str(t.x) / f"{t.y}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_tile(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)))
    server.root = root
    size = max(p.stat().st_size for p in root.rglob("*.png"))
    first, later = tiles[:4], tiles[4:]
    quota = int(4.5 * size)
    cache = tmp_path / "cache"
    with TileStore(_cfg(cache, server.url, quota_mb=quota / 2**20, concurrency=1), DATUM) as store:
        assert store.prefetch(first).evicted == 0
        # Access history: first[1] is the least recently used, then first[2], first[3]; first[0]
        # is read now, which makes it the most recent.
        for i, t in enumerate(first):
            store.cache.record_access([t], when=1000.0 + i)
        store.read_tile(first[0])
        store.cache.flush()
        assert store.cache.last_access(first[0]) > 1e9
        report = store.prefetch(later)
        usage = store.cache.usage_bytes()
    # Six tiles against a quota of 4.5: two go, the two least recently used.
    assert report.evicted == 2 and usage <= quota
    present = {t for t in tiles if XYZDirectory(cache).find(t)}
    assert set(tiles) - present == {first[1], first[2]}
    assert (cache / INDEX_NAME).is_file()
    # A new session sees the same usage (the index survives) and stays within the quota.
    with TileStore(_cfg(cache, server.url, quota_mb=quota / 2**20), DATUM) as store:
        assert store.cache.usage_bytes() == usage


def test_fetched_tile_is_used_when_the_disk_write_fails(server, server_root, tmp_path, monkeypatch, caplog):
    cfg = _cfg(tmp_path / "cache", server.url, fetch_on_miss=True, zoom_fallback=0)
    with TileStore(cfg, DATUM) as store:
        def disk_full(tile, data):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(store.cache, "put", disk_full)
        res = store.read_patch((250.0, -120.0), 64, 0.2)
    assert res.coverage == 1.0 and res.fetched_tiles
    assert "not cached" in caplog.text and not list((tmp_path / "cache").rglob("*.png"))


def test_tms_url_placeholder(server, server_root, tmp_path):
    tile = _tiles(server_root)[0]
    # A TMS server: {-y} is the row counted from the south.
    body = (server_root / "19" / str(tile.x) / f"{tile.y}.png").read_bytes()
    server.behaviour[f"/tms/19/{tile.x}/{tile.tms_row}.png"] = lambda h, n: send(h, 200, body)
    url = server.url.replace("{z}/{x}/{y}.png", "tms/{z}/{x}/{-y}.png")
    with TileStore(_cfg(tmp_path / "cache", url), DATUM) as store:
        assert store.fetcher.url_for(tile).endswith(f"/tms/19/{tile.x}/{tile.tms_row}.png")
        assert store.prefetch([tile]).fetched[19] == 1
