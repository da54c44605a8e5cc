"""HTTP tile fill: a `requests` client with timeouts, retries, a size cap and content checks.

Convention: `fetch` never raises for network or server trouble; it returns a `FetchResult` whose
`outcome` says what happened ("ok", "missing" for 404/410/204, "failed" after the retries,
"invalid" for bytes that are not a tile image, "too_large" past `max_tile_bytes`). Only "ok"
results carry bytes, and they decoded as a tile of the expected size. Nothing here writes to disk;
`TileStore` puts "ok" bytes into the cache.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import requests
from requests.adapters import HTTPAdapter

from .codec import decode_tile
from .config import TileConfig, check_url_template
from .types import TileDecodeError, TileId

log = logging.getLogger(__name__)

FetchOutcome = Literal["ok", "missing", "failed", "invalid", "too_large"]
_MISSING_STATUS = (204, 404, 410)
_RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504)


@dataclass
class FetchResult:
    """The outcome of fetching one tile. `data` is set only when `outcome` is "ok"."""

    tile: TileId
    outcome: FetchOutcome
    data: bytes | None = None
    status_code: int | None = None
    attempts: int = 0
    reason: str = ""
    elapsed_s: float = 0.0


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class _Final(Exception):
    def __init__(self, outcome: FetchOutcome, reason: str, status_code: int | None = None):
        super().__init__(reason)
        self.outcome = outcome
        self.status_code = status_code


class HttpTileFetcher:
    """Fetches XYZ tiles from `config.url_template` with bounded concurrency.

    Convention: one `requests.Session` per worker thread (Sessions are not documented as
    thread-safe), connect/read timeouts on every request plus a per-attempt deadline against
    servers that trickle bytes, exponential backoff with jitter between attempts.
    """

    def __init__(self, config: TileConfig):
        if config.offline:
            raise ValueError("TileConfig.offline: the HTTP fetcher must not be created while offline")
        check_url_template(config.url_template)
        self.config = config
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.requests_made = 0

    def url_for(self, tile: TileId) -> str:
        """The URL of `tile` ({z}, {x}, {y}; {-y} is the TMS row)."""
        return (self.config.url_template.replace("{z}", str(tile.z)).replace("{x}", str(tile.x))
                .replace("{-y}", str(tile.tms_row)).replace("{y}", str(tile.y)))

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = self.config.user_agent
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _attempt(self, url: str) -> tuple[bytes, int]:
        cfg = self.config
        with self._lock:
            self.requests_made += 1
        start = time.monotonic()
        try:
            with self._session().get(url, timeout=(cfg.connect_timeout_s, cfg.read_timeout_s), stream=True) as resp:
                code = resp.status_code
                if code in _MISSING_STATUS:
                    raise _Final("missing", f"HTTP {code}", code)
                if code in _RETRY_STATUS:
                    raise _Retryable(f"HTTP {code}", _retry_after(resp.headers.get("Retry-After")))
                if code != 200:
                    raise _Final("failed", f"HTTP {code}", code)
                declared = resp.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > cfg.max_tile_bytes:
                    raise _Final("too_large", f"Content-Length {declared} > max_tile_bytes {cfg.max_tile_bytes}", code)
                chunks, total = [], 0
                # read1 returns what one socket read gives (iter_content would block until 64 KiB
                # arrive, so a server trickling bytes inside the read timeout could hold a request
                # for ever); the deadline is checked after every read.
                while chunk := resp.raw.read1(65536, decode_content=True):
                    total += len(chunk)
                    if total > cfg.max_tile_bytes:
                        raise _Final("too_large", f"body exceeds max_tile_bytes {cfg.max_tile_bytes}", code)
                    if time.monotonic() - start > cfg.request_deadline_s:
                        raise _Retryable(f"transfer exceeded request_deadline_s {cfg.request_deadline_s}")
                    chunks.append(chunk)
                return b"".join(chunks), code
        except requests.Timeout as exc:
            raise _Retryable(f"timeout ({type(exc).__name__})") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            raise _Retryable(f"connection error ({type(exc).__name__}: {exc})") from exc
        except requests.RequestException as exc:
            # Redirect loops, invalid URLs and the like: retrying would not help.
            raise _Final("failed", f"request error ({type(exc).__name__}: {exc})") from exc

    def fetch(self, tile: TileId) -> FetchResult:
        """Fetch and validate one tile. Convention: see the module docstring."""
        tile.validate("tile")
        cfg = self.config
        url = self.url_for(tile)
        start = time.monotonic()
        reason = ""
        attempts = 0
        for attempt in range(cfg.retries + 1):
            attempts = attempt + 1
            try:
                data, code = self._attempt(url)
            except _Final as final:
                return FetchResult(tile, final.outcome, None, final.status_code, attempts, f"{url}: {final}",
                                   time.monotonic() - start)
            except _Retryable as retry:
                reason = f"{url}: {retry}"
                if attempt < cfg.retries:
                    delay = min(cfg.backoff_max_s, cfg.backoff_s * 2**attempt)
                    if retry.retry_after_s is not None:
                        delay = min(cfg.backoff_max_s, max(delay, retry.retry_after_s))
                    # Jitter spreads the retries of parallel workers hitting the same overloaded server.
                    time.sleep(delay * (0.5 + random.random() / 2))
                continue
            try:
                decode_tile(data, cfg.tile_size)
            except TileDecodeError as exc:
                return FetchResult(tile, "invalid", None, code, attempts, f"{url}: rejected content: {exc}",
                                   time.monotonic() - start)
            return FetchResult(tile, "ok", data, code, attempts, "", time.monotonic() - start)
        return FetchResult(tile, "failed", None, None, attempts,
                           f"{reason} (gave up after {attempts} attempt(s))", time.monotonic() - start)

    def fetch_many(self, tiles: Iterable[TileId], on_result: Callable[[FetchResult], None] | None = None,
                   ) -> list[FetchResult]:
        """Fetch `tiles` with at most `config.concurrency` requests in flight.

        `on_result` runs in the calling thread as each result arrives (so writes into the cache
        happen in one thread, and the bytes of a big prefetch are not all held in memory); the
        returned list then holds the results without their bytes. Without `on_result` the list
        keeps the bytes.
        """
        results: list[FetchResult] = []
        limit = self.config.concurrency
        with self._lock:
            # One long-lived pool: its threads keep their Sessions (and open connections) between calls.
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="tile-fetch")
            pool = self._pool
        pending: set[Future] = set()

        def drain(block_until: int) -> None:
            nonlocal pending
            while len(pending) > block_until:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    result = fut.result()
                    if on_result is not None:
                        on_result(result)
                        result.data = None
                    results.append(result)

        for tile in tiles:
            pending.add(pool.submit(self.fetch, tile))
            # Bounded queue: a prefetch of many thousand tiles does not create them all at once.
            drain(2 * limit)
        drain(0)
        return results

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
