"""`TileConfig`: every setting of the tile cache, filled from YAML with `cvfm_ros.config.from_dict`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

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

    path: str = ""
    kind: SourceKind = "auto"
    tms: bool = False
    tile_size: int = 256
    # Zoom used for patches; None picks the coarsest zoom at least as fine as the requested mpp.
    zoom: int | None = None
    min_zoom: int = 0
    max_zoom: int = 19
    # How many coarser zooms may fill pixels the chosen zoom lacks (0: none).
    zoom_fallback: int = 2
    # Share of patch pixels that must have tile data; below it read_patch raises NoCoverage.
    min_coverage: float = 0.9
    # Most tiles one patch may need (guards against a tiny mpp with a huge size).
    max_patch_tiles: int = 256
    memory_cache_tiles: int = 256
    # Disk quota of the XYZ cache in MiB, least recently used tiles evicted first; 0: no quota.
    quota_mb: float = 0.0
    # HTTP fill.
    url_template: str = ""
    offline: bool = False
    fetch_on_miss: bool = False
    user_agent: str = "cvfm_ros/0.1 (satellite tile prefetch for robot localization)"
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 10.0
    request_deadline_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    concurrency: int = 4
    max_tile_bytes: int = 4_000_000
    # After a tile was found missing, how long before it is looked up (or fetched) again.
    missing_retry_s: float = 60.0

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
