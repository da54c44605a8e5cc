"""`TileStore`: metric aerial patches read from Web Mercator tiles, with caching and the HTTP fill.

Convention (docs/CONVENTIONS.md): a patch is north-up, W x H pixels centred on (cx, cy) in
`map` with `mpp` metres per pixel, pixel (u, v) at x = cx + (u - (W-1)/2)*mpp,
y = cy - (v - (H-1)/2)*mpp (OpenCV pixel centres). Every output pixel goes map -> lat/lon ->
Web Mercator pixel at the chosen zoom and is sampled bilinearly (cv2.remap) from a mosaic of the
tiles it needs; tiles are never treated as metric. Pixels without tile data are flagged in
`PatchResult.valid` and counted out of `coverage`, never passed off as imagery.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from ..geodesy import Datum, as_float_array, latlon_to_world_px, meters_per_pixel, zoom_for_mpp
from .cache import TileCache
from .codec import decode_tile
from .config import TileConfig
from .http import FetchResult, HttpTileFetcher
from .sources import XYZDirectory, open_source
from .types import NoCoverage, TileId, TileRead

log = logging.getLogger(__name__)


@dataclass
class PatchResult:
    """A north-up metric aerial patch and how much of it is real tile data.

    image: (H, W, 3) uint8 RGB; pixels where `valid` is False are 0 and carry no data.
    valid: (H, W) bool, True where tile data covered the pixel.
    cx, cy, mpp: georeference in `map` (AerialPatch convention).
    coverage: share of pixels with tile data, in [0, 1].
    zoom: the zoom chosen for the requested mpp; zoom_share: share of pixels filled per zoom
    (coarser zooms fill what the chosen zoom lacks, up to `TileConfig.zoom_fallback` levels).
    missing_tiles / corrupt_tiles: tiles of the chosen zoom the patch needed and did not get.
    """

    image: np.ndarray
    valid: np.ndarray
    cx: float
    cy: float
    mpp: float
    coverage: float
    zoom: int
    zoom_share: dict[int, float] = field(default_factory=dict)
    missing_tiles: list[TileId] = field(default_factory=list)
    corrupt_tiles: list[TileId] = field(default_factory=list)
    fetched_tiles: list[TileId] = field(default_factory=list)

    @property
    def status(self) -> str:
        """"ok" (every pixel has data), "partial" or "empty"."""
        if self.coverage >= 1.0:
            return "ok"
        return "partial" if self.coverage > 0.0 else "empty"

    def to_aerial_patch(self) -> Any:
        """The patch as a `cvfm_ros.geometry.AerialPatch` (image (3, H, W) uint8 torch tensor)."""
        import torch

        from ...geometry import AerialPatch

        return AerialPatch(torch.from_numpy(np.ascontiguousarray(self.image.transpose(2, 0, 1))),
                           self.cx, self.cy, self.mpp)


@dataclass
class TileCheck:
    """Status of a set of tiles in the store: per zoom, how many are present, missing, corrupt."""

    present: Counter = field(default_factory=Counter)
    missing: dict[int, list[TileId]] = field(default_factory=dict)
    corrupt: dict[int, list[tuple[TileId, str]]] = field(default_factory=dict)

    def zooms(self) -> list[int]:
        return sorted(set(self.present) | set(self.missing) | set(self.corrupt))

    @property
    def complete(self) -> bool:
        return not any(self.missing.values()) and not any(self.corrupt.values())

    def summary(self) -> dict[str, Any]:
        """Plain data per zoom (for JSON and the CLI)."""
        out = {}
        for z in self.zooms():
            present, missing, corrupt = self.present[z], len(self.missing.get(z, [])), len(self.corrupt.get(z, []))
            total = present + missing + corrupt
            out[str(z)] = {"tiles": total, "present": present, "missing": missing, "corrupt": corrupt,
                           "coverage": present / total if total else 1.0}
        return out


@dataclass
class PrefetchReport:
    """What one prefetch did, per zoom: tiles already valid, fetched, and the failures by kind."""

    already: Counter = field(default_factory=Counter)
    fetched: Counter = field(default_factory=Counter)
    corrupt_replaced: Counter = field(default_factory=Counter)
    failures: dict[str, list[FetchResult]] = field(default_factory=dict)
    evicted: int = 0
    requests: int = 0
    bytes_fetched: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        zooms = sorted(set(self.already) | set(self.fetched)
                       | {r.tile.z for rs in self.failures.values() for r in rs})
        per_zoom = {}
        for z in zooms:
            entry = {"already": self.already[z], "fetched": self.fetched[z],
                     "corrupt_replaced": self.corrupt_replaced[z]}
            for kind, results in self.failures.items():
                entry[kind] = sum(1 for r in results if r.tile.z == z)
            per_zoom[str(z)] = entry
        return {"zooms": per_zoom, "evicted": self.evicted, "requests": self.requests,
                "bytes_fetched": self.bytes_fetched, "elapsed_s": round(self.elapsed_s, 3)}


class TileStore:
    """Reads tiles from one source (XYZ / MBTiles / GeoTIFF), with a decoded in-memory LRU, an
    optional HTTP fill into the XYZ cache, and metric patch resampling.

    Thread-safe for concurrent `read_patch` / `read_tile` calls.
    """

    def __init__(self, config: TileConfig, datum: Datum):
        if not isinstance(config, TileConfig):
            raise ValueError(f"config: expected a TileConfig, got {type(config).__name__}")
        if not isinstance(datum, Datum):
            raise ValueError(f"datum: expected a cvfm_ros.maps.geodesy.Datum, got {type(datum).__name__}")
        self.config = config
        self.datum = datum
        kind = config.resolved_kind
        if config.url_template and kind != "xyz":
            raise ValueError(f"TileConfig.path: an HTTP fill (url_template) writes into an XYZ directory, "
                             f"but {config.path!r} is a {kind} source")
        writable = config.online or config.quota_mb > 0
        self.source = open_source(config.path, kind, config.tms, config.tile_size, must_exist=not writable)
        self.cache: TileCache | None = None
        self.fetcher: HttpTileFetcher | None = None
        if isinstance(self.source, XYZDirectory) and writable:
            self.cache = TileCache(self.source, int(config.quota_mb * 2**20))
        if config.online:
            self.fetcher = HttpTileFetcher(config)
        self._lock = threading.RLock()
        self._memory: OrderedDict[TileId, TileRead] = OrderedDict()
        # Tiles found missing or corrupt, with the time: not looked up again before missing_retry_s.
        self._negative: dict[TileId, tuple[float, TileRead]] = {}
        self._reported_corrupt: set[TileId] = set()
        self._zooms: list[int] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        if self.fetcher is not None:
            self.fetcher.close()
        if self.cache is not None:
            self.cache.close()
        self.source.close()

    def __enter__(self) -> "TileStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- zooms --------------------------------------------------------------------------------
    def available_zooms(self) -> list[int]:
        """Zooms the store can serve: the source's within [min_zoom, max_zoom]; all of those when
        missing tiles are fetched on demand (online with fetch_on_miss)."""
        if self.fetcher is not None and self.config.fetch_on_miss:
            return list(range(self.config.min_zoom, self.config.max_zoom + 1))
        if self._zooms is None:
            self._zooms = [z for z in self.source.zooms() if self.config.min_zoom <= z <= self.config.max_zoom]
        return self._zooms

    def choose_zoom(self, lat_deg: float, mpp: float) -> int:
        """The zoom used for a patch at `mpp` metres per pixel around latitude `lat_deg`.

        Convention: `TileConfig.zoom` if set; else the coarsest available zoom whose tiles are at
        least as fine as `mpp`, or the finest available when none is that fine (with no tiles at
        all: the ideal zoom within [min_zoom, max_zoom]).
        """
        if self.config.zoom is not None:
            return self.config.zoom
        ideal = zoom_for_mpp(lat_deg, mpp, self.config.tile_size)
        zooms = self.available_zooms()
        if not zooms:
            # An empty cache: name the tiles of the right zoom as missing rather than fail vaguely.
            return min(max(ideal, self.config.min_zoom), self.config.max_zoom)
        finer = [z for z in zooms if z >= ideal]
        return min(finer) if finer else max(zooms)

    # -- tiles --------------------------------------------------------------------------------
    def read_tile(self, tile: TileId, fetch: bool | None = None) -> TileRead:
        """One decoded tile, from memory, the source, or (online, `fetch`) the tile server.

        Convention: `TileRead` (RGB uint8). `fetch` None follows `TileConfig.fetch_on_miss`.
        A corrupt file is reported once (logged), never used, and replaced only by a valid fetch.
        """
        tile = TileId(*(int(v) for v in tile)).validate("tile")
        return self._read_tiles([tile], fetch)[0][tile]

    def _read_tiles(self, tiles: Sequence[TileId], fetch: bool | None) -> tuple[dict[TileId, TileRead], set[TileId]]:
        """Reads of `tiles`, and the subset that was fetched from the server during this call."""
        fetch = self.config.fetch_on_miss if fetch is None else fetch
        now = time.monotonic()
        out: dict[TileId, TileRead] = {}
        todo: list[TileId] = []
        with self._lock:
            for tile in tiles:
                hit = self._memory.get(tile)
                if hit is not None:
                    self._memory.move_to_end(tile)
                    out[tile] = hit
                    continue
                neg = self._negative.get(tile)
                if neg is not None and now - neg[0] < self.config.missing_retry_s:
                    out[tile] = neg[1]
                    continue
                todo.append(tile)
        to_fetch: list[TileId] = []
        for tile in todo:
            read = self.source.read(tile)
            if read.status == "corrupt":
                self._report_corrupt(read)
            if read.ok:
                self._remember(read)
            elif fetch and self.fetcher is not None:
                to_fetch.append(tile)
            else:
                self._remember(read)
            out[tile] = read
        fetched: set[TileId] = set()
        if to_fetch:
            for result in self.fetcher.fetch_many(to_fetch):  # type: ignore[union-attr]
                read = self._accept_fetch(result, previous=out[result.tile])
                self._remember(read)
                out[result.tile] = read
                if read.ok:
                    fetched.add(result.tile)
        if self.cache is not None:
            self.cache.record_access([t for t, r in out.items() if r.ok])
        return out, fetched

    def _accept_fetch(self, result: FetchResult, previous: TileRead) -> TileRead:
        if result.outcome == "ok" and result.data is not None:
            assert self.cache is not None
            try:
                self.cache.put(result.tile, result.data)
            except OSError as exc:
                # A full or read-only disk must not cost the frame its imagery: use the validated
                # bytes from memory and say why the cache did not keep them.
                log.warning("tile %s fetched but not cached (%s); using it from memory", result.tile, exc)
                rgb, valid = decode_tile(result.data, self.config.tile_size)
                url = self.fetcher.url_for(result.tile) if self.fetcher is not None else ""
                return TileRead(result.tile, "ok", rgb, valid, reason="not cached", location=url)
            return self.source.read(result.tile)
        reason = f"{previous.reason}; fetch {result.outcome}: {result.reason}" if previous.reason else result.reason
        return TileRead(result.tile, previous.status if previous.status == "corrupt" else "missing",
                        reason=reason, location=previous.location)

    def _remember(self, read: TileRead) -> None:
        with self._lock:
            if read.ok:
                self._negative.pop(read.tile, None)
                self._memory[read.tile] = read
                self._memory.move_to_end(read.tile)
                while len(self._memory) > self.config.memory_cache_tiles:
                    self._memory.popitem(last=False)
            else:
                self._memory.pop(read.tile, None)
                self._negative[read.tile] = (time.monotonic(), read)

    def _report_corrupt(self, read: TileRead) -> None:
        with self._lock:
            if read.tile in self._reported_corrupt:
                return
            self._reported_corrupt.add(read.tile)
        log.warning("corrupt tile %s at %s: %s (not used; only a valid download replaces it)", read.tile,
                    read.location, read.reason)

    def forget(self) -> None:
        """Drop the in-memory tiles and the remembered missing/corrupt ones (after a prefetch)."""
        with self._lock:
            self._memory.clear()
            self._negative.clear()
            self._zooms = None

    # -- patches ------------------------------------------------------------------------------
    def read_patch(self, center_xy: Sequence[float] | np.ndarray, size_px: int | tuple[int, int], mpp: float,
                   min_coverage: float | None = None, zoom: int | None = None) -> PatchResult:
        """A north-up metric patch centred on `center_xy` (map metres) resampled from the tiles.

        center_xy: (2,) map (x, y) in metres. size_px: W = H, or (W, H). mpp: metres per pixel.
        min_coverage: required share of pixels with tile data (None: `TileConfig.min_coverage`).
        zoom: force a zoom (None: `choose_zoom`).
        Returns PatchResult with image (H, W, 3) uint8 RGB and valid (H, W) bool.
        Convention: see the module docstring. Raises NoCoverage (carrying the partial result)
        when coverage < min_coverage; ValueError for bad arguments.
        """
        centre = as_float_array("center_xy", center_xy)
        if centre.shape != (2,):
            raise ValueError(f"center_xy: expected shape (2,) map (x, y) metres, got {centre.shape}")
        width, height = _size(size_px)
        mpp = float(as_float_array("mpp", mpp))
        if not mpp > 0:
            raise ValueError(f"mpp: expected positive metres per pixel, got {mpp}")
        min_coverage = self.config.min_coverage if min_coverage is None else float(min_coverage)
        if not 0.0 <= min_coverage <= 1.0:
            raise ValueError(f"min_coverage: expected a share in [0, 1], got {min_coverage}")
        cx, cy = float(centre[0]), float(centre[1])

        lat_c = float(self.datum.map_to_geodetic(cx, cy)[0])
        if zoom is not None and (isinstance(zoom, bool) or not isinstance(zoom, (int, np.integer))
                                 or not 0 <= zoom <= 30):
            raise ValueError(f"zoom: expected an integer zoom in [0, 30] or None, got {zoom!r}")
        z0 = self.choose_zoom(lat_c, mpp) if zoom is None else int(zoom)
        t = self.config.tile_size
        self._check_tile_budget(cx, cy, width, height, mpp, z0)
        xs = cx + (np.arange(width) - (width - 1) / 2.0) * mpp
        ys = cy - (np.arange(height) - (height - 1) / 2.0) * mpp
        lat, lon, _ = self.datum.map_to_geodetic(xs[None, :], ys[:, None])
        u0, v0 = latlon_to_world_px(lat, lon, z0, t)
        image = np.zeros((height, width, 3), np.uint8)
        valid = np.zeros((height, width), bool)
        result = PatchResult(image, valid, cx, cy, mpp, 0.0, z0)
        zooms = [z0] + [z0 - k for k in range(1, self.config.zoom_fallback + 1) if z0 - k >= 0]
        have = set(self.available_zooms())
        zooms = [z0] + [z for z in zooms[1:] if z in have]
        for z in zooms:
            need = ~valid
            if not need.any():
                break
            # Global pixels scale by 2 per zoom level about the world's corner (-0.5, -0.5).
            scale = 2.0 ** (z - z0)
            u = (u0 + 0.5) * scale - 0.5
            v = (v0 + 0.5) * scale - 0.5
            filled = self._sample_zoom(z, u, v, need, mpp, lat_c, image, valid, result, primary=(z == z0))
            if filled:
                result.zoom_share[z] = filled / valid.size
        result.coverage = float(valid.mean())
        if result.coverage < min_coverage:
            raise NoCoverage(self._no_coverage_reason(result, min_coverage, lat_c, float(lon[height // 2, width // 2])),
                             result)
        return result

    def _check_tile_budget(self, cx: float, cy: float, width: int, height: int, mpp: float, zoom: int) -> None:
        # From the patch outline, before any per-pixel work: a typo in size_px or mpp must not
        # cost seconds of geodesy first.
        s = np.linspace(0.0, 1.0, 17)
        hx, hy = (width - 1) / 2.0 * mpp, (height - 1) / 2.0 * mpp
        along_x, along_y = cx - hx + 2 * hx * s, cy - hy + 2 * hy * s
        ex = np.concatenate([along_x, along_x, np.full_like(s, cx - hx), np.full_like(s, cx + hx)])
        ey = np.concatenate([np.full_like(s, cy - hy), np.full_like(s, cy + hy), along_y, along_y])
        u, v = self.datum.map_to_world_px(ex, ey, zoom, self.config.tile_size)
        t = self.config.tile_size
        count = ((math.floor((u.max() + 1.5) / t) - math.floor((u.min() - 0.5) / t) + 1)
                 * (math.floor((v.max() + 1.5) / t) - math.floor((v.min() - 0.5) / t) + 1))
        if count > self.config.max_patch_tiles:
            raise ValueError(f"size_px/mpp: the {width}x{height} px patch at {mpp:g} m/px needs {count} tiles at "
                             f"zoom {zoom}, more than TileConfig.max_patch_tiles={self.config.max_patch_tiles}")

    def _sample_zoom(self, z: int, u: np.ndarray, v: np.ndarray, need: np.ndarray, mpp: float, lat_c: float,
                     image: np.ndarray, valid: np.ndarray, result: PatchResult, primary: bool) -> int:
        t = self.config.tile_size
        n = 1 << z
        uu, vv = u[need], v[need]
        # One pixel of margin: bilinear sampling reads the neighbour of the last pixel centre.
        tx0, tx1 = int(math.floor((uu.min() - 1 + 0.5) / t)), int(math.floor((uu.max() + 1 + 0.5) / t))
        ty0, ty1 = int(math.floor((vv.min() - 1 + 0.5) / t)), int(math.floor((vv.max() + 1 + 0.5) / t))
        count = (tx1 - tx0 + 1) * (ty1 - ty0 + 1)
        if count > self.config.max_patch_tiles:
            raise ValueError(f"size_px/mpp: the patch needs {count} tiles at zoom {z}, more than "
                             f"TileConfig.max_patch_tiles={self.config.max_patch_tiles}")
        ids = [(tx, ty) for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1)]
        # Columns wrap around the antimeridian; rows beyond the poles do not exist.
        wanted = [TileId(z, tx % n, ty) for tx, ty in ids if 0 <= ty < n]
        reads, fetched = self._read_tiles(wanted, None)
        mosaic = np.zeros(((ty1 - ty0 + 1) * t, (tx1 - tx0 + 1) * t, 3), np.uint8)
        mask = np.zeros(mosaic.shape[:2], np.uint8)
        for tx, ty in ids:
            if not 0 <= ty < n:
                continue
            read = reads[TileId(z, tx % n, ty)]
            if primary and not read.ok:
                (result.corrupt_tiles if read.status == "corrupt" else result.missing_tiles).append(read.tile)
            if primary and read.tile in fetched:
                result.fetched_tiles.append(read.tile)
            if not read.ok:
                continue
            r0, c0 = (ty - ty0) * t, (tx - tx0) * t
            mosaic[r0:r0 + t, c0:c0 + t] = read.rgb
            mask[r0:r0 + t, c0:c0 + t] = 255 if read.valid is None else np.where(read.valid, 255, 0)
        if not mask.any():
            return 0
        # Subtracting the mosaic origin in float64 first: global pixels at zoom 19+ exceed float32's
        # integer precision (2**24).
        mu = u - tx0 * t
        mv = v - ty0 * t
        tile_mpp = float(meters_per_pixel(lat_c, z, t))
        factor = int(mpp / tile_mpp)
        if factor >= 2:
            # Far coarser output than the tiles: average first (INTER_AREA) so bilinear sampling
            # does not alias.
            h2, w2 = mosaic.shape[0] // factor, mosaic.shape[1] // factor
            mosaic = cv2.resize(mosaic, (w2, h2), interpolation=cv2.INTER_AREA)
            mask = np.where(cv2.resize(mask, (w2, h2), interpolation=cv2.INTER_AREA) == 255, 255, 0).astype(np.uint8)
            mu = (mu + 0.5) / factor - 0.5
            mv = (mv + 0.5) / factor - 0.5
        map_x, map_y = mu.astype(np.float32), mv.astype(np.float32)
        sampled = cv2.remap(mosaic, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ok = cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) == 255
        new = ok & need
        image[new] = sampled[new]
        valid |= new
        return int(new.sum())

    def _no_coverage_reason(self, result: PatchResult, min_coverage: float, lat: float, lon: float) -> str:
        parts = [f"tile coverage {result.coverage:.1%} < required {min_coverage:.0%} for the "
                 f"{result.image.shape[1]}x{result.image.shape[0]} px patch at {result.mpp:g} m/px around map "
                 f"({result.cx:.1f}, {result.cy:.1f}) = lat {lat:.6f} lon {lon:.6f}, zoom {result.zoom}"]
        if result.missing_tiles:
            shown = ", ".join(str(t) for t in result.missing_tiles[:6])
            more = f" and {len(result.missing_tiles) - 6} more" if len(result.missing_tiles) > 6 else ""
            parts.append(f"missing tiles {shown}{more}")
        if result.corrupt_tiles:
            parts.append("corrupt tiles " + ", ".join(str(t) for t in result.corrupt_tiles[:6]))
        if self.fetcher is None:
            hint = "offline" if self.config.offline else "no url_template"
            parts.append(f"source {self.source.description} ({hint}): pre-cache the area with "
                         "`cvfm-ros tiles prefetch` before the mission")
        return "; ".join(parts)

    # -- coverage and prefetch ----------------------------------------------------------------
    def check(self, tiles: Iterable[TileId]) -> TileCheck:
        """Decode each of `tiles` from the source (no network): present, missing or corrupt.

        Convention: XYZ tile ids; bypasses the memory cache so the files on disk are checked.
        """
        report = TileCheck()
        for tile in tiles:
            read = self.source.read(tile)
            if read.ok:
                report.present[tile.z] += 1
            elif read.status == "corrupt":
                report.corrupt.setdefault(tile.z, []).append((tile, f"{read.location}: {read.reason}"))
            else:
                report.missing.setdefault(tile.z, []).append(tile)
        return report

    def prefetch(self, tiles: Iterable[TileId], progress: Callable[[int, int], None] | None = None) -> PrefetchReport:
        """Fill the XYZ cache with `tiles` from the tile server (tiles already valid are kept).

        Corrupt files are re-fetched and replaced only by valid tiles. Raises ValueError when the
        store is offline or has no url_template. `progress(done, total)` is called as tiles finish.
        Convention: XYZ tile ids; writes go through `TileCache.put` (validated, atomic, quota).
        """
        if self.fetcher is None or self.cache is None:
            why = "offline is set" if self.config.offline else "no url_template is configured"
            raise ValueError(f"TileConfig: cannot prefetch, {why}")
        start = time.monotonic()
        report = PrefetchReport()
        tiles = list(dict.fromkeys(TileId(*t).validate("tiles") for t in tiles))
        todo: list[TileId] = []
        corrupt: set[TileId] = set()
        for tile in tiles:
            read = self.source.read(tile)
            if read.ok:
                report.already[tile.z] += 1
            else:
                if read.status == "corrupt":
                    corrupt.add(tile)
                    self._report_corrupt(read)
                todo.append(tile)
        done = len(tiles) - len(todo)
        if progress is not None:
            progress(done, len(tiles))
        requests_before = self.fetcher.requests_made

        def on_result(result: FetchResult) -> None:
            nonlocal done
            done += 1
            if result.outcome == "ok" and result.data is not None:
                report.bytes_fetched += len(result.data)
                eviction = self.cache.put(result.tile, result.data)  # type: ignore[union-attr]
                if eviction is not None:
                    report.evicted += len(eviction.evicted)
                report.fetched[result.tile.z] += 1
                if result.tile in corrupt:
                    report.corrupt_replaced[result.tile.z] += 1
            else:
                report.failures.setdefault(result.outcome, []).append(result)
            if progress is not None:
                progress(done, len(tiles))

        self.fetcher.fetch_many(todo, on_result)
        self.cache.flush()
        report.requests = self.fetcher.requests_made - requests_before
        report.elapsed_s = time.monotonic() - start
        self.forget()
        return report


def _size(size_px: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size_px, (int, np.integer)) and not isinstance(size_px, bool):
        w = h = int(size_px)
    elif isinstance(size_px, (tuple, list)) and len(size_px) == 2 and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size_px):
        w, h = int(size_px[0]), int(size_px[1])
    else:
        raise ValueError(f"size_px: expected an int or a (W, H) pair of ints, got {size_px!r}")
    if not (0 < w <= 8192 and 0 < h <= 8192):
        raise ValueError(f"size_px: expected sizes in [1, 8192] pixels, got {w}x{h}")
    return w, h
