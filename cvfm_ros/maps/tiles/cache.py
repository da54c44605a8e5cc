"""The writable XYZ tile cache: atomic tile writes, an access-time index and LRU eviction.

Convention: tiles land in an `XYZDirectory` through `cvfm_ros.config.atomic_write_bytes` (a
temporary file in the same folder, fsync, rename), so a reader sees either no tile or a complete
one; only bytes that decoded as a valid tile are ever written. With a quota, the access time of
each tile is recorded in a small sqlite index (`.cvfm_tiles_index.sqlite` in the cache root;
sqlite transactions are atomic) and the least recently used tiles are evicted first.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from ...config import atomic_write_bytes
from .codec import FORMATS, decode_tile, sniff_format
from .sources import XYZDirectory
from .types import TileId

log = logging.getLogger(__name__)

INDEX_NAME = ".cvfm_tiles_index.sqlite"
# Evicting down to this share of the quota leaves room, so that not every put evicts again.
_EVICT_TARGET = 0.95
# Access times are written to the index in batches: a patch read touches several tiles per frame.
_FLUSH_EVERY_S = 10.0
_FLUSH_EVERY_N = 256


@dataclass
class EvictionReport:
    """Tiles removed by one eviction pass and the cache size around it (bytes)."""

    evicted: list[TileId] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0


class TileCache:
    """Writes validated tiles into `directory` and keeps it under `quota_bytes` (0: no quota).

    Thread-safe: the HTTP fill writes from one thread while patch reads record accesses from others.
    """

    def __init__(self, directory: XYZDirectory, quota_bytes: int = 0, stale_temp_s: float = 3600.0):
        self.dir = directory
        self.quota_bytes = int(quota_bytes)
        self._lock = threading.RLock()
        self._pending: dict[TileId, float] = {}
        self._last_flush = time.monotonic()
        self._db: sqlite3.Connection | None = None
        self.dir.root.mkdir(parents=True, exist_ok=True)
        self.removed_temp_files = self._remove_stale_temp_files(stale_temp_s)
        if self.quota_bytes > 0:
            self._open_index()

    # -- index --------------------------------------------------------------------------------
    def _open_index(self) -> None:
        path = self.dir.root / INDEX_NAME
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS tiles (z INTEGER, x INTEGER, y INTEGER, bytes INTEGER, "
                             "last_access REAL, PRIMARY KEY (z, x, y))")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"tile cache index {path}: unusable ({exc}); delete it to rebuild from the tiles") from exc
        self.reconcile()

    @contextlib.contextmanager
    def _transaction(self):
        assert self._db is not None
        self._db.execute("BEGIN")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def reconcile(self) -> None:
        """Make the index match the files on disk (tiles copied in get their mtime as access time)."""
        if self._db is None:
            return
        on_disk: dict[TileId, tuple[int, float]] = {}
        for tile, path in self.dir.iter_files():
            try:
                st = path.stat()
            except OSError:  # removed meanwhile (eviction by another process)
                continue
            size, mtime = on_disk.get(tile, (0, 0.0))
            on_disk[tile] = (size + st.st_size, max(mtime, st.st_mtime))
        with self._lock:
            indexed = {TileId(z, x, y): (b, t) for z, x, y, b, t in self._db.execute("SELECT * FROM tiles")}
            gone = [t for t in indexed if t not in on_disk]
            rows = [(t.z, t.x, t.y, size, indexed[t][1] if t in indexed else mtime)
                    for t, (size, mtime) in on_disk.items()]
            with self._transaction() as db:
                db.executemany("DELETE FROM tiles WHERE z=? AND x=? AND y=?", [tuple(t) for t in gone])
                db.executemany("INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?, ?)", rows)

    def usage_bytes(self) -> int:
        """Bytes of tiles in the cache (from the index with a quota, else by scanning the folder)."""
        with self._lock:
            if self._db is not None:
                self.flush()
                return int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM tiles").fetchone()[0])
        return sum(p.stat().st_size for _, p in self.dir.iter_files())

    def record_access(self, tiles: list[TileId] | tuple[TileId, ...], when: float | None = None) -> None:
        """Note that `tiles` were used now (for LRU); written to the index in batches."""
        if self._db is None:
            return
        now = time.time() if when is None else when
        with self._lock:
            for tile in tiles:
                self._pending[tile] = now
            if len(self._pending) >= _FLUSH_EVERY_N or time.monotonic() - self._last_flush > _FLUSH_EVERY_S:
                self.flush()

    def flush(self) -> None:
        """Write pending access times to the index."""
        with self._lock:
            self._last_flush = time.monotonic()
            if self._db is None or not self._pending:
                return
            rows = [(t, tile.z, tile.x, tile.y) for tile, t in self._pending.items()]
            self._pending.clear()
            with self._transaction() as db:
                db.executemany("UPDATE tiles SET last_access=? WHERE z=? AND x=? AND y=?", rows)

    def last_access(self, tile: TileId) -> float | None:
        """Recorded access time of `tile` (seconds since the epoch), None when not indexed."""
        with self._lock:
            if self._db is None:
                return None
            self.flush()
            row = self._db.execute("SELECT last_access FROM tiles WHERE z=? AND x=? AND y=?", tuple(tile)).fetchone()
        return None if row is None else float(row[0])

    # -- writes -------------------------------------------------------------------------------
    def put(self, tile: TileId, data: bytes) -> EvictionReport | None:
        """Validate `data` as a tile image and store it atomically as `tile`; evict past the quota.

        Raises TileDecodeError (a ValueError) when `data` is not a valid tile; the cache is then
        unchanged (an existing file, valid or not, stays until a valid replacement arrives).
        """
        tile.validate("tile")
        decode_tile(data, self.dir.tile_size)
        fmt = sniff_format(data)
        assert fmt in FORMATS  # decode_tile accepted it
        target = self.dir.path_for(tile, fmt)
        with self._lock:
            atomic_write_bytes(target, data)
            # A server that changed format leaves the old file beside the new one: drop it only now
            # that the new tile is safely on disk.
            for other in self.dir.find(tile):
                if other != target:
                    other.unlink(missing_ok=True)
            if self._db is None:
                return None
            self._db.execute("INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?, ?)",
                             (tile.z, tile.x, tile.y, len(data), time.time()))
            self._pending.pop(tile, None)
            return self.evict_if_needed(protect={tile})

    def evict_if_needed(self, protect: set[TileId] | None = None) -> EvictionReport | None:
        """If over the quota, remove least recently used tiles until under 95 % of it."""
        with self._lock:
            if self._db is None:
                return None
            self.flush()
            total = int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM tiles").fetchone()[0])
            if total <= self.quota_bytes:
                return None
            report = EvictionReport(bytes_before=total)
            target = int(self.quota_bytes * _EVICT_TARGET)
            protect = protect or set()
            victims = []
            rows = self._db.execute("SELECT z, x, y, bytes FROM tiles ORDER BY last_access ASC, z, x, y").fetchall()
            for z, x, y, size in rows:
                if total <= target:
                    break
                tile = TileId(z, x, y)
                if tile in protect:
                    continue
                victims.append(tile)
                total -= size
            for tile in victims:
                for path in self.dir.find(tile):
                    path.unlink(missing_ok=True)
            with self._transaction() as db:
                db.executemany("DELETE FROM tiles WHERE z=? AND x=? AND y=?", [tuple(t) for t in victims])
            report.evicted, report.bytes_after = victims, total
            if victims:
                log.info("tile cache %s: evicted %d least recently used tile(s) to stay under %.1f MiB",
                         self.dir.root, len(victims), self.quota_bytes / 2**20)
            return report

    def _remove_stale_temp_files(self, older_than_s: float) -> int:
        # Temporaries younger than this may belong to a writer in another process.
        now, removed = time.time(), 0
        for path in self.dir.temp_files():
            try:
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self.flush()
                self._db.close()
                self._db = None
