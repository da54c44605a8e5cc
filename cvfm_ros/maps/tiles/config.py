"""`TileConfig`: every setting of the tile cache, filled from YAML with `cvfm_ros.config.from_dict`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ...config import setting

SourceKind = Literal["auto", "xyz", "mbtiles", "geotiff"]
_GEOTIFF_SUFFIXES = (".tif", ".tiff", ".gtiff", ".geotiff")


@dataclass
class TileConfig:
    """Settings of the satellite tile cache and its optional HTTP fill.

    Convention: sizes in bytes or MiB as named, durations in seconds, zooms are XYZ zoom levels.
    `path` is the tile source: an XYZ directory (`{z}/{x}/{y}.png|jpg|webp`, `tms` flips y), an
    MBTiles file, or a GeoTIFF orthophoto (needs the optional package rasterio). An HTTP fill
    (`url_template` with `{z}`, `{x}` and `{y}` or `{-y}`) writes into `path`, which must then be an
    XYZ directory. `offline` forbids any network access whatever else is set.
    """

    path: str = setting("", "tile source: an XYZ directory ({z}/{x}/{y}.png|jpg|webp), an .mbtiles file or a "
                        "GeoTIFF; the HTTP fill writes into it (then an XYZ directory)", read_only=True)
    kind: SourceKind = setting("auto", "tile source kind (auto: from path)", read_only=True)
    tms: bool = setting(False, "the XYZ directory counts y from the south (TMS)", read_only=True)
    tile_size: int = setting(256, "tile edge in pixels", range=(16, 4096), read_only=True)
    # None picks the coarsest zoom at least as fine as the requested mpp.
    zoom: int | None = setting(None, "zoom used for patches (automatic: the coarsest at least as fine as "
                               "the matcher's resolution)", range=(0, 30), read_only=True)
    min_zoom: int = setting(0, "coarsest zoom considered", range=(0, 30), read_only=True)
    max_zoom: int = setting(19, "finest zoom considered", range=(0, 30), read_only=True)
    zoom_fallback: int = setting(2, "how many coarser zooms may fill pixels the chosen zoom lacks (0: none)",
                                 range=(0, 30), read_only=True)
    min_coverage: float = setting(0.9, "share of patch pixels that must have tile data (else NO_TILES)",
                                  range=(0.0, 1.0), read_only=True)
    max_patch_tiles: int = setting(256, "most tiles one patch may need (guards against a tiny mpp with a huge "
                                   "size)", range=(1, 1_000_000), read_only=True)
    memory_cache_tiles: int = setting(256, "decoded tiles kept in memory", range=(1, 1_000_000), read_only=True)
    quota_mb: float = setting(0.0, "disk quota of the XYZ cache in MiB, least recently used tiles evicted "
                              "first (0: no quota)", range=(0.0, 1e9), read_only=True)
    url_template: str = setting("", "HTTP fill: an http(s) URL with {z}, {x} and {y} or {-y} (empty: none)",
                                read_only=True)
    offline: bool = setting(False, "forbid any network access whatever else is set", read_only=True)
    fetch_on_miss: bool = setting(False, "fetch a missing tile over HTTP while localizing (else prefetch only)",
                                  read_only=True)
    user_agent: str = setting("cvfm_ros/0.1 (satellite tile prefetch for robot localization)",
                              "HTTP User-Agent (tile servers require one that names the application)", read_only=True)
    connect_timeout_s: float = setting(3.05, "HTTP connect timeout, seconds", range=(0.01, 600.0), read_only=True)
    read_timeout_s: float = setting(10.0, "HTTP timeout between bytes, seconds", range=(0.01, 600.0), read_only=True)
    request_deadline_s: float = setting(30.0, "whole-request deadline (a trickling server is cut off), seconds",
                                        range=(0.01, 3600.0), read_only=True)
    retries: int = setting(3, "HTTP retries of a failed tile", range=(0, 100), read_only=True)
    backoff_s: float = setting(0.5, "first retry delay, doubling per retry, seconds", range=(0.0, 600.0), read_only=True)
    backoff_max_s: float = setting(8.0, "longest retry delay, seconds", range=(0.0, 3600.0), read_only=True)
    concurrency: int = setting(4, "parallel HTTP requests", range=(1, 64), read_only=True)
    max_tile_bytes: int = setting(4_000_000, "largest tile accepted, bytes", range=(1, 1_000_000_000), read_only=True)
    missing_retry_s: float = setting(60.0, "after a tile was found missing, how long before it is looked up "
                                     "(or fetched) again, seconds", range=(0.0, 1e6), read_only=True)

    def __post_init__(self) -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
            if isinstance(value, bool) or not ok:
                need = "a non-negative" if allow_zero else "a positive"
                raise ValueError(f"TileConfig.{name}: expected {need} number, got {value!r}")

        if self.kind not in ("auto", "xyz", "mbtiles", "geotiff"):
            raise ValueError(f"TileConfig.kind: expected auto, xyz, mbtiles or geotiff, got {self.kind!r}")
        for name in ("tile_size", "max_patch_tiles", "memory_cache_tiles", "connect_timeout_s", "read_timeout_s",
                     "request_deadline_s", "concurrency", "max_tile_bytes"):
            positive(name)
        for name in ("quota_mb", "backoff_s", "backoff_max_s", "missing_retry_s", "retries", "zoom_fallback"):
            positive(name, allow_zero=True)
        for name in ("min_zoom", "max_zoom"):
            if not 0 <= getattr(self, name) <= 30:
                raise ValueError(f"TileConfig.{name}: expected a zoom in [0, 30], got {getattr(self, name)}")
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"TileConfig.min_zoom: {self.min_zoom} is above max_zoom {self.max_zoom}")
        if self.zoom is not None and not 0 <= self.zoom <= 30:
            raise ValueError(f"TileConfig.zoom: expected a zoom in [0, 30] or null, got {self.zoom}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"TileConfig.min_coverage: expected a share in [0, 1], got {self.min_coverage}")
        if self.url_template:
            check_url_template(self.url_template, "TileConfig.url_template")

    @property
    def resolved_kind(self) -> str:
        """`kind`, with "auto" resolved from `path` (directory / .mbtiles / .tif)."""
        if self.kind != "auto":
            return self.kind
        if not self.path:
            raise ValueError("TileConfig.path: expected the tile source (XYZ directory, .mbtiles or GeoTIFF), got ''")
        suffix = Path(self.path).suffix.lower()
        if suffix == ".mbtiles":
            return "mbtiles"
        if suffix in _GEOTIFF_SUFFIXES:
            return "geotiff"
        return "xyz"

    @property
    def online(self) -> bool:
        """True when an HTTP fill is configured and allowed."""
        return bool(self.url_template) and not self.offline


def check_url_template(template: str, name: str = "url_template") -> str:
    """Return `template`, or raise ValueError unless it is an http(s) URL with {z}, {x} and {y} or {-y}."""
    parts = urlsplit(template.replace("{", "").replace("}", ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name}: expected an http:// or https:// URL, got {template!r}")
    missing = [key for key in ("{z}", "{x}") if key not in template]
    if "{y}" not in template and "{-y}" not in template:
        missing.append("{y} or {-y}")
    if missing:
        raise ValueError(f"{name}: missing placeholder(s) {', '.join(missing)} in {template!r}")
    return template
