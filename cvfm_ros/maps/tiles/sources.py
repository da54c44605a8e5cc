"""Tile sources: an XYZ directory (optionally TMS), an MBTiles file, a GeoTIFF orthophoto.

Convention: every source is addressed with XYZ `TileId`s (y grows south) and returns decoded
`TileRead`s (RGB uint8); TMS rows are flipped inside the source that stores them. A source never
hides a problem: a tile is "ok", "missing" (with the reason) or "corrupt" (with what failed).
"""
from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from .codec import FORMATS, decode_tile
from .types import TileDecodeError, TileId, TileRead

log = logging.getLogger(__name__)

# Temporary files of `cvfm_ros.config.atomic_write_bytes` look like ".{name}.{random}.tmp".
TEMP_SUFFIX = ".tmp"


class TileSource(Protocol):
    """What the tile store reads from."""

    tile_size: int
    description: str

    def read(self, tile: TileId) -> TileRead: ...

    def zooms(self) -> list[int]: ...

    def close(self) -> None: ...


class XYZDirectory:
    """A folder of `{z}/{x}/{y}.{png|jpg|webp}` tiles (with `tms=True`, y counted from the south).

    Convention: also the on-disk cache that the HTTP fill writes into (see `TileCache`).
    """

    def __init__(self, root: str | os.PathLike, tms: bool = False, tile_size: int = 256, must_exist: bool = True):
        self.root = Path(root)
        if must_exist and not self.root.is_dir():
            raise ValueError(f"tile source {self.root}: expected an XYZ tile directory ({{z}}/{{x}}/{{y}}.png), "
                             "not found")
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"tile source {self.root}: expected a directory, found a file")
        self.tms = bool(tms)
        self.tile_size = int(tile_size)
        self.description = f"XYZ directory {self.root}" + (" (TMS rows)" if tms else "")

    def _row(self, tile: TileId) -> int:
        return tile.tms_row if self.tms else tile.y

    def path_for(self, tile: TileId, fmt: str) -> Path:
        """File path of `tile` stored as `fmt` (png, jpg, webp)."""
        return self.root / str(tile.z) / str(tile.x) / f"{self._row(tile)}.{fmt}"

    def find(self, tile: TileId) -> list[Path]:
        """Existing files for `tile` (normally zero or one; more if formats were mixed)."""
        folder = self.root / str(tile.z) / str(tile.x)
        row = self._row(tile)
        return [p for p in (folder / f"{row}.{fmt}" for fmt in FORMATS) if p.is_file()]

    def read(self, tile: TileId) -> TileRead:
        """Decode `tile` from disk. Convention: see `TileRead`; a file that fails decoding is "corrupt"."""
        files = self.find(tile)
        if not files:
            return TileRead(tile, "missing", reason="no file in the XYZ directory",
                            location=str(self.path_for(tile, "png")))
        path = files[0]
        try:
            # With several formats present (a format change of the server), the newest file wins.
            path = max(files, key=lambda p: p.stat().st_mtime) if len(files) > 1 else files[0]
            data = path.read_bytes()
            rgb, valid = decode_tile(data, self.tile_size)
        except FileNotFoundError:  # evicted between the lookup and the read
            return TileRead(tile, "missing", reason="removed while reading", location=str(path))
        except OSError as exc:
            return TileRead(tile, "corrupt", reason=f"unreadable: {exc}", location=str(path))
        except TileDecodeError as exc:
            return TileRead(tile, "corrupt", reason=str(exc), location=str(path))
        return TileRead(tile, "ok", rgb, valid, location=str(path))

    def zooms(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) <= 30)

    def iter_files(self, zoom: int | None = None) -> Iterator[tuple[TileId, Path]]:
        """All tile files (optionally of one zoom) as (XYZ tile id, path); skips names that are not tiles."""
        zooms = self.zooms() if zoom is None else [zoom]
        for z in zooms:
            zdir = self.root / str(z)
            if not zdir.is_dir():
                continue
            n = 1 << z
            with os.scandir(zdir) as xs:
                for xentry in xs:
                    if not (xentry.is_dir() and xentry.name.isdigit()):
                        continue
                    x = int(xentry.name)
                    with os.scandir(xentry.path) as ys:
                        for yentry in ys:
                            stem, _, ext = yentry.name.partition(".")
                            if ext not in FORMATS or not stem.isdigit() or not yentry.is_file():
                                continue
                            row = int(stem)
                            if not (0 <= x < n and 0 <= row < n):
                                continue
                            y = n - 1 - row if self.tms else row
                            yield TileId(z, x, y), Path(yentry.path)

    def temp_files(self) -> list[Path]:
        """Leftover temporary files of interrupted atomic writes (never read as tiles)."""
        if not self.root.is_dir():
            return []
        return [p for p in self.root.rglob(".*" + TEMP_SUFFIX) if p.is_file()]

    def close(self) -> None:
        pass


class MBTilesSource:
    """A read-only MBTiles file (sqlite; `tiles(zoom_level, tile_column, tile_row, tile_data)`).

    Convention: MBTiles rows are TMS (counted from the south); `read` takes XYZ ids.
    """

    def __init__(self, path: str | os.PathLike, tile_size: int = 256):
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"tile source {self.path}: MBTiles file not found")
        self.tile_size = int(tile_size)
        self.description = f"MBTiles {self.path}"
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, check_same_thread=False)
            rows = self._db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
            names = {row[0] for row in rows}
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"tile source {self.path}: not an MBTiles (sqlite) file ({exc})") from exc
        if "tiles" not in names:
            self._db.close()
            raise ValueError(f"tile source {self.path}: not an MBTiles file (no 'tiles' table or view)")
        self.metadata: dict[str, str] = {}
        if "metadata" in names:
            self.metadata = {str(k): str(v) for k, v in self._db.execute("SELECT name, value FROM metadata")}

    def read(self, tile: TileId) -> TileRead:
        location = f"{self.path}: zoom_level={tile.z} tile_column={tile.x} tile_row={tile.tms_row}"
        with self._lock:
            row = self._db.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                (tile.z, tile.x, tile.tms_row),
            ).fetchone()
        if row is None or row[0] is None:
            return TileRead(tile, "missing", reason="no row in the MBTiles file", location=location)
        try:
            rgb, valid = decode_tile(row[0], self.tile_size)
        except TileDecodeError as exc:
            return TileRead(tile, "corrupt", reason=str(exc), location=location)
        return TileRead(tile, "ok", rgb, valid, location=location)

    def zooms(self) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._db.execute("SELECT DISTINCT zoom_level FROM tiles ORDER BY zoom_level")]

    def iter_tiles(self, zoom: int | None = None) -> Iterator[TileId]:
        query = "SELECT zoom_level, tile_column, tile_row FROM tiles"
        with self._lock:
            rows = (self._db.execute(query + " WHERE zoom_level=?", (zoom,)) if zoom is not None
                    else self._db.execute(query)).fetchall()
        for z, x, row in rows:
            yield TileId(int(z), int(x), (1 << int(z)) - 1 - int(row))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class GeoTiffSource:
    """A georeferenced orthophoto (GeoTIFF) served as Web Mercator tiles rendered on demand.

    Convention: each tile pixel centre goes lat/lon -> the raster's CRS (pyproj) -> raster pixel
    (OpenCV centres) and is resampled bilinearly; raster nodata / mask becomes invalid pixels.
    Needs the optional package rasterio, imported here only.
    """

    def __init__(self, path: str | os.PathLike, tile_size: int = 256):
        self.path = Path(path)
        try:
            import rasterio  # the optional extra
        except ImportError as exc:
            raise ImportError(
                f"tile source {self.path}: GeoTIFF sources need the optional package rasterio "
                "(pip install rasterio); XYZ directories and MBTiles work without it"
            ) from exc
        if not self.path.is_file():
            raise ValueError(f"tile source {self.path}: GeoTIFF file not found")
        import pyproj

        self.tile_size = int(tile_size)
        self.description = f"GeoTIFF {self.path}"
        self._lock = threading.Lock()
        try:
            self._ds = rasterio.open(self.path)
        except rasterio.errors.RasterioIOError as exc:
            raise ValueError(f"tile source {self.path}: not a readable GeoTIFF ({exc})") from exc
        if self._ds.crs is None:
            raise ValueError(f"tile source {self.path}: the GeoTIFF has no coordinate reference system")
        if self._ds.count not in (1, 3, 4):
            raise ValueError(f"tile source {self.path}: expected 1 (grey), 3 (RGB) or 4 (RGBA) bands, "
                             f"got {self._ds.count}")
        self._to_crs = pyproj.Transformer.from_crs("EPSG:4326", self._ds.crs.to_wkt(), always_xy=True)
        self._inverse = ~self._ds.transform
        # Native ground resolution, measured on the ellipsoid between two neighbouring pixel centres.
        to_ll = pyproj.Transformer.from_crs(self._ds.crs.to_wkt(), "EPSG:4326", always_xy=True)
        c, r = self._ds.width / 2.0, self._ds.height / 2.0
        (x0, y0), (x1, y1) = _affine(self._ds.transform, c, r), _affine(self._ds.transform, c + 1.0, r)
        lon0, lat0 = to_ll.transform(x0, y0)
        lon1, lat1 = to_ll.transform(x1, y1)
        self.native_mpp = float(pyproj.Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)[2])
        self.centre_lat = float(lat0)

    def zooms(self) -> list[int]:
        from ..geodesy import zoom_for_mpp

        top = zoom_for_mpp(self.centre_lat, self.native_mpp, self.tile_size)
        return list(range(max(0, top - 8), top + 1))

    def read(self, tile: TileId) -> TileRead:
        import cv2
        from rasterio.windows import Window

        from ..geodesy import world_px_to_latlon

        t = self.tile_size
        g = np.arange(t, dtype=np.float64)
        uu, vv = np.meshgrid(tile.x * t + g, tile.y * t + g)
        lat, lon = world_px_to_latlon(uu, vv, tile.z, t)
        with self._lock:
            xs, ys = self._to_crs.transform(lon, lat)
        cols, rows = _affine(self._inverse, np.asarray(xs), np.asarray(ys))
        cols, rows = np.asarray(cols) - 0.5, np.asarray(rows) - 0.5  # OpenCV pixel centres
        c0, c1 = math.floor(np.nanmin(cols)) - 1, math.ceil(np.nanmax(cols)) + 2
        r0, r1 = math.floor(np.nanmin(rows)) - 1, math.ceil(np.nanmax(rows)) + 2
        c0, r0 = max(c0, 0), max(r0, 0)
        c1, r1 = min(c1, self._ds.width), min(r1, self._ds.height)
        location = f"{self.path}: window cols {c0}:{c1} rows {r0}:{r1}"
        if c1 <= c0 or r1 <= r0:
            return TileRead(tile, "missing", reason="outside the GeoTIFF", location=location)
        window = Window(c0, r0, c1 - c0, r1 - r0)
        # Decimated read for coarse zooms (rasterio uses overviews when present).
        step = max(1, int((c1 - c0) // (2 * t)), int((r1 - r0) // (2 * t)))
        shape = (max(1, (r1 - r0) // step), max(1, (c1 - c0) // step))
        try:
            with self._lock:
                bands = self._ds.read(window=window, out_shape=(self._ds.count, *shape))
                mask = self._ds.dataset_mask(window=window, out_shape=shape)
        except Exception as exc:  # rasterio raises its own error types for damaged files
            return TileRead(tile, "corrupt", reason=f"GeoTIFF read failed: {exc}", location=location)
        sx, sy = (c1 - c0) / shape[1], (r1 - r0) / shape[0]
        map_x = ((cols + 0.5 - c0) / sx - 0.5).astype(np.float32)
        map_y = ((rows + 0.5 - r0) / sy - 0.5).astype(np.float32)
        img = np.moveaxis(bands, 0, -1)
        if img.dtype != np.uint8:
            raise ValueError(f"tile source {self.path}: expected 8-bit bands, got {img.dtype}")
        img = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[:, :, :3]
        rgb = cv2.remap(np.ascontiguousarray(img), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        m = cv2.remap(np.where(mask > 0, 255, 0).astype(np.uint8), map_x, map_y, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        inside = (cols >= -0.5) & (cols <= self._ds.width - 0.5) & (rows >= -0.5) & (rows <= self._ds.height - 0.5)
        valid = (m == 255) & inside
        if not valid.any():
            return TileRead(tile, "missing", reason="no data in the GeoTIFF here", location=location)
        return TileRead(tile, "ok", rgb, None if valid.all() else valid, location=location)

    def close(self) -> None:
        with self._lock:
            self._ds.close()


def _affine(transform, x, y):
    # Coefficients written out: works with every `affine` version (its `*` operator is deprecated
    # in favour of `@` in 3.x, which 2.x lacks for points) and on whole numpy arrays.
    a, b, c, d, e, f = tuple(transform)[:6]
    return a * x + b * y + c, d * x + e * y + f


def open_source(path: str, kind: str = "auto", tms: bool = False, tile_size: int = 256,
                must_exist: bool = True) -> XYZDirectory | MBTilesSource | GeoTiffSource:
    """Open the tile source at `path` of `kind` ("auto": by suffix; a directory is XYZ).

    Convention: every source takes XYZ tile ids; `tms` only applies to XYZ directories.
    """
    from .config import TileConfig

    kind = TileConfig(path=path, kind=kind).resolved_kind  # type: ignore[arg-type]
    if kind == "mbtiles":
        return MBTilesSource(path, tile_size)
    if kind == "geotiff":
        return GeoTiffSource(path, tile_size)
    return XYZDirectory(path, tms=tms, tile_size=tile_size, must_exist=must_exist)
