"""The satellite tile cache: sources, HTTP fill, LRU disk quota and metric patch reads.

A GNSS-denied robot caches Web Mercator imagery before the mission; for every camera frame the
localizer reads a north-up metric patch around its prior pose with `TileStore.read_patch`.

- `TileConfig`: all settings (works with `cvfm_ros.config.from_dict`).
- `TileStore(config, datum)`: `read_patch`, `read_tile`, `check`, `prefetch`.
- Sources: `XYZDirectory` (with TMS option), `MBTilesSource`, `GeoTiffSource` (needs rasterio).
- `write_xyz_pyramid`: publish a metric orthophoto as real XYZ tiles.
- `tiles_in_bbox`, `tiles_around`, `tiles_along_route`, `load_route`: tile sets of an area.
"""
from .area import load_route, tiles_along_route, tiles_around, tiles_in_bbox
from .cache import TileCache
from .codec import decode_tile, encode_tile
from .config import TileConfig
from .http import FetchResult, HttpTileFetcher
from .pyramid import PyramidStats, write_xyz_pyramid
from .sources import GeoTiffSource, MBTilesSource, XYZDirectory, open_source
from .store import PatchResult, PrefetchReport, TileCheck, TileStore
from .types import NoCoverage, TileDecodeError, TileId, TileRead

__all__ = [
    "FetchResult", "GeoTiffSource", "HttpTileFetcher", "MBTilesSource", "NoCoverage", "PatchResult",
    "PrefetchReport", "PyramidStats", "TileCache", "TileCheck", "TileConfig", "TileDecodeError", "TileId",
    "TileRead", "TileStore", "XYZDirectory", "decode_tile", "encode_tile", "load_route", "open_source",
    "tiles_along_route", "tiles_around", "tiles_in_bbox", "write_xyz_pyramid",
]
