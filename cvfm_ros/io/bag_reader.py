"""Read ROS 2 bags without ROS (`read_bag`, through `rosbags`, with recovery readers for
damaged MCAP and SQLite3 storage).

`read_bag` yields `(topic, header_stamp_ns, message)` in header-stamp order (ties broken by the
order of `topics`, then by storage order), decoded with the message definitions embedded in the
bag. Readers must trust header stamps, not record times: a recorder writes a message when it
arrives, which can be well after the sensor time in its header.
"""
from __future__ import annotations

import abc
import os
import sqlite3
import struct
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from .bag_types import make_typestore


class BagMessage(NamedTuple):
    """One message read from a bag: its topic, header stamp (ns), the decoded message and its
    clock segment (0, or the count of its topic's backwards clock jumps before it; see read_bag)."""

    topic: str
    stamp_ns: int
    message: Any
    segment: int = 0


class _Source(abc.ABC):
    """A bag's raw messages, (topic, record_ns, raw CDR bytes), in an order that is the same on
    every call (record-time order for rosbags, file order for the recovery readers)."""

    description = "rosbags"

    def __init__(self) -> None:
        self.topics: dict[str, str] = {}
        self.typestore = None

    @abc.abstractmethod
    def raw(self, topics: Sequence[str]) -> Iterator[tuple[str, int, bytes]]:
        """Yield (topic, record_ns, raw CDR bytes) of `topics`."""


class _RosbagsSource(_Source):
    """The normal path: rosbags' AnyReader, types from the definitions embedded in the bag."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        from rosbags.highlevel import AnyReader

        self.path = path
        self._reader_cls = AnyReader
        self._default = make_typestore()
        with AnyReader([path], default_typestore=self._default) as reader:
            for conn in reader.connections:
                self.topics.setdefault(conn.topic, conn.msgtype)
            self.typestore = reader.typestore

    def raw(self, topics):
        with self._reader_cls([self.path], default_typestore=self._default) as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            for conn, record_ns, data in reader.messages(connections=conns):
                yield conn.topic, int(record_ns), bytes(data)


class _McapRecoverySource(_Source):
    """Recovery path for a damaged MCAP file (truncated by a crash, or no metadata.yaml):
    the mcap library's sequential reader, which yields every complete record before the damage."""

    description = "mcap stream recovery"

    def __init__(self, file: Path) -> None:
        super().__init__()
        from rosbags.typesys import get_types_from_msg

        self.file = file
        self.typestore = make_typestore()
        schemas: dict[int, str] = {}
        types: dict[str, Any] = {}
        for rec in self._records(stop_at_error=True):
            kind = type(rec).__name__
            if kind == "Schema":
                schemas[rec.id] = rec.name
                if rec.encoding == "ros2msg" and rec.data:
                    try:
                        types.update(get_types_from_msg(rec.data.decode(), rec.name))
                    except Exception:  # noqa: BLE001 - keep the built-in definition of that type
                        pass
            elif kind == "Channel":
                self.topics.setdefault(rec.topic, schemas.get(rec.schema_id, ""))
        # Types the bag defines and our store lacks (someone else's messages) come from the bag.
        known = set(self.typestore.fielddefs)
        self.typestore.register({k: v for k, v in types.items() if k not in known})

    def _records(self, stop_at_error: bool):
        from mcap.stream_reader import StreamReader

        with open(self.file, "rb") as handle:
            reader = StreamReader(handle, skip_magic=False, emit_chunks=False)
            it = reader.records
            while True:
                try:
                    rec = next(it)
                except StopIteration:
                    return
                except Exception:
                    if stop_at_error:
                        return
                    raise
                yield rec

    def raw(self, topics):
        channels: dict[int, str] = {}
        for rec in self._records(stop_at_error=False):
            kind = type(rec).__name__
            if kind == "Channel":
                channels[rec.id] = rec.topic
            elif kind == "Message":
                topic = channels.get(rec.channel_id, "")
                if topic in topics:
                    yield topic, int(rec.log_time), bytes(rec.data)


class _SqliteRecoverySource(_Source):
    """Recovery path for a damaged rosbag2 SQLite3 file: rows are read in insertion order with
    Python's sqlite3 until the first unreadable page."""

    description = "sqlite3 row recovery"

    def __init__(self, file: Path) -> None:
        super().__init__()
        self.file = file
        self.typestore = make_typestore()
        con = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            self._ids = {}
            for tid, name, msgtype in con.execute("SELECT id, name, type FROM topics"):
                self.topics[name] = msgtype
                self._ids[tid] = name
        finally:
            con.close()

    def raw(self, topics):
        con = sqlite3.connect(f"file:{self.file}?mode=ro", uri=True)
        try:
            for tid, record_ns, data in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
                topic = self._ids.get(tid)
                if topic in topics:
                    yield topic, int(record_ns), bytes(data)
        finally:
            con.close()


def _storage_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    for pattern in ("*.mcap", "*.db3"):
        files = sorted(path.glob(pattern))
        if files:
            return files[0]
    return None


def _open_source(path: Path, partial: bool) -> tuple[_Source, str | None]:
    """Open the bag normally; when that fails and `partial` is set, try a recovery reader."""
    if not path.exists():
        raise ValueError(f"bag {path}: no such file or directory")
    try:
        return _RosbagsSource(path), None
    except Exception as exc:  # noqa: BLE001 - rosbags raises several unrelated types here
        reason = f"{type(exc).__name__}: {exc}"
        if not partial:
            raise ValueError(f"bag {path}: cannot be read ({reason}); read_bag(..., on_error='partial') "
                             f"recovers the readable part of a damaged bag") from exc
    file = _storage_file(path)
    if file is None:
        raise ValueError(f"bag {path}: cannot be read ({reason}) and holds no .mcap or .db3 storage file")
    try:
        source: _Source = _McapRecoverySource(file) if file.suffix == ".mcap" else _SqliteRecoverySource(file)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"bag {path}: cannot be read ({reason}); recovery from {file.name} failed too "
                         f"({type(exc).__name__}: {exc})") from exc
    return source, f"normal open failed ({reason}); read with {source.description}"


def _header_peek(typestore, msgtype: str):
    """A function raw CDR bytes -> header stamp in ns, or None where the type has no header.

    Reading just the stamp avoids deserializing every image twice (once to sort, once to
    return it). In CDR a leading std_msgs/Header (or a bare Header) puts `stamp.sec` (int32)
    and `stamp.nanosec` (uint32) right after the 4-byte encapsulation header; byte 1 of that
    header gives the byte order. TFMessage starts with a uint32 sequence length, then the first transform's
    header.
    """
    from rosbags.interfaces import Nodetype

    fields = typestore.fielddefs.get(msgtype, ([], []))[1]
    first = fields[0] if fields else None
    if msgtype == "std_msgs/msg/Header" or (
            first is not None and first[1][0] == Nodetype.NAME and first[1][1] == "std_msgs/msg/Header"):
        offset = 4
    elif msgtype == "tf2_msgs/msg/TFMessage":
        offset = 8
    else:
        return lambda raw: None

    def peek(raw: bytes) -> int | None:
        if len(raw) < offset + 8:
            raise ValueError(f"{msgtype}: message of {len(raw)} bytes is too short to hold a header")
        if offset == 8:
            (count,) = struct.unpack_from("<I" if raw[1] else ">I", raw, 4)
            if count == 0:
                return None
        sec, nanosec = struct.unpack_from("<iI" if raw[1] else ">iI", raw, offset)
        return sec * 10**9 + nanosec

    return peek


class BagStream:
    """Iterator over `BagMessage(topic, stamp_ns, message)` in header-stamp order.

    Attributes: `path`; `topics` (topic -> message type, the requested ones); `counts` (readable
    messages per topic); `error` (None, or why reading stopped early / needed recovery);
    `typestore` (the rosbags type store used to decode).
    """

    def __init__(self, path: Path, source: _Source, topics: list[str], order: list[tuple[int, int, int]],
                 total: int, counts: dict[str, int], error: str | None) -> None:
        self.path = path
        self.topics = {t: source.topics[t] for t in topics}
        self.counts = counts
        self.error = error
        self.typestore = source.typestore
        self._source = source
        self._topic_list = topics
        self._order = order
        self._total = total
        self._iter: Iterator[BagMessage] | None = None
        self.segments = 1  # clock segments (read_bag's split_on_jump_s)

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> "BagStream":
        return self

    def __next__(self) -> BagMessage:
        if self._iter is None:
            self._iter = self._generate()
        return next(self._iter)

    def _generate(self) -> Iterator[BagMessage]:
        # Second pass: storage order in, header-stamp order out. A message arriving before its
        # turn waits in `pending`, so memory holds only the out-of-order stretch.
        pending: dict[int, tuple[str, bytes, int]] = {}
        next_rank = 0
        raw_iter = self._source.raw(self._topic_list)
        for seq in range(self._total):
            topic, _record_ns, raw = next(raw_iter)
            rank, stamp, segment = self._order[seq]
            pending[rank] = (topic, raw, stamp, segment)
            while next_rank in pending:
                t, r, s, g = pending.pop(next_rank)
                yield BagMessage(t, s, self.typestore.deserialize_cdr(r, self.topics[t]), g)
                next_rank += 1
        raw_iter.close()


def read_bag(path: str | os.PathLike, topics: Sequence[str] | None = None, *,
             on_error: Literal["raise", "partial"] = "raise", split_on_jump_s: float | None = None) -> BagStream:
    """Open a rosbag2 bag (directory, or a bare .mcap / .db3 file) and index `topics` (None: all).

    Returns a `BagStream`: an iterator of `BagMessage(topic, stamp_ns, message)` where stamp_ns
    is the header stamp (messages without a header use their record time; a TFMessage uses its
    first transform's stamp), ordered by stamp, ties by the order of `topics`, then storage order.
    Messages are decoded with the definitions stored in the bag (our MatchReport included).

    Errors: a missing path, unreadable bag or topic absent from the bag raises ValueError naming
    it. With on_error="partial" a damaged bag (truncated MCAP, corrupt SQLite pages, missing
    metadata.yaml) yields every message readable before the damage and `stream.error` says why
    it stopped (a warning is issued too).

    Clock jumps: sorting by header stamp would interleave two runs recorded one after the other
    with restarted clocks (sim time reset, a bag of bags). With `split_on_jump_s`, a topic whose
    header stamp goes back by more than that (in recording order) starts a new segment; messages
    are ordered by (segment, stamp) and carry `segment`, and `stream.segments` counts them.
    """
    if on_error not in ("raise", "partial"):
        raise ValueError(f"on_error: expected 'raise' or 'partial', got {on_error!r}")
    path = Path(path)
    partial = on_error == "partial"
    source, error = _open_source(path, partial)
    wanted = list(dict.fromkeys(topics)) if topics is not None else sorted(source.topics)
    missing = [t for t in wanted if t not in source.topics]
    if missing:
        raise ValueError(f"bag {path}: no topic {', '.join(repr(t) for t in missing)}; "
                         f"it has {sorted(source.topics)}")
    peeks = {t: _header_peek(source.typestore, source.topics[t]) for t in wanted}
    rank_of_topic = {t: i for i, t in enumerate(wanted)}
    keys: list[tuple[int, int, int, int]] = []
    counts = {t: 0 for t in wanted}
    segment_of = {t: 0 for t in wanted}
    newest: dict[str, int] = {}
    jump_ns = None if split_on_jump_s is None else int(split_on_jump_s * 1e9)
    # First pass: header stamps only, to know the output order before decoding anything.
    try:
        for seq, (topic, record_ns, raw) in enumerate(source.raw(wanted)):
            stamp = peeks[topic](raw)
            stamp = record_ns if stamp is None else stamp
            if jump_ns is not None and topic in newest and stamp < newest[topic] - jump_ns:
                segment_of[topic] += 1
                newest[topic] = stamp
            newest[topic] = max(newest.get(topic, stamp), stamp)
            keys.append((segment_of[topic], stamp, rank_of_topic[topic], seq))
            counts[topic] += 1
    except Exception as exc:  # noqa: BLE001 - storage back-ends raise many types
        where = f"after {len(keys)} readable messages"
        reason = f"{type(exc).__name__}: {exc}"
        if not partial:
            raise ValueError(f"bag {path}: unreadable {where} ({reason}); read_bag(..., on_error='partial') "
                             f"returns the readable part") from exc
        error = f"{error}; " if error else ""
        error += f"stopped {where}: {reason}"
    if error:
        warnings.warn(f"bag {path}: {error}", RuntimeWarning, stacklevel=2)
    order = [(0, 0, 0)] * len(keys)
    for rank, (segment, stamp, _, seq) in enumerate(sorted(keys)):
        order[seq] = (rank, stamp, segment)
    stream = BagStream(path, source, wanted, order, len(keys), counts, error)
    stream.segments = 1 + max(segment_of.values(), default=0)
    return stream
