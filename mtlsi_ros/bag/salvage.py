"""Reading a bag that was cut short (a crash or power loss while recording): every complete message before the cut.

What it does: when ``rosbags`` refuses a bag (an MCAP file without its summary and end magic, a sqlite3 file whose
header counts pages that are not there), ``BagReader`` falls back to ``SalvageReader``, which reads the storage files
front to back without any index: MCAP with the ``mcap`` library's non-seeking ``StreamReader`` (record by record,
chunks broken up; the records of an uncompressed chunk cut in the middle are read up to the cut), sqlite3 with the
standard ``sqlite3`` module in immutable read-only mode (``writable_schema`` lets SQLite open a file shorter than its
header says) scanning ``messages`` in row order until the first missing page. Each cut is described by a
``Truncation`` (file, size, the byte offset where complete data stops, messages read), which ``BagReader`` logs as a
warning. A file cut inside its header, or that is no MCAP / SQLite file at all, raises ``BagError`` naming it.
What it may touch: it only reads the files; the bytes it yields are the stored CDR bytes, deserialised as usual.
Messages come in file order (the order they were written; within a chunk by log time).
"""
from __future__ import annotations

import io
import sqlite3
import struct
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from mtlsi_ros.bag.errors import BagError, read_yaml

_MCAP_MAGIC = b"\x89MCAP0\r\n"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK_OPCODE = 0x06
_HEADER_OPCODE = 0x01


@dataclass(frozen=True)
class Truncation:
    """Where one storage file of a bag stops: ``offset`` is the byte after the last complete message (or record)."""

    file: Path
    size: int  # bytes the file has
    offset: int  # complete data ends here
    messages: int  # complete messages read from this file
    detail: str  # what was cut (a chunk, a record, sqlite pages ...)

    def message(self) -> str:
        return (f"{self.file}: truncated bag (the recording was cut short): read {self.messages} complete "
                f"message(s) up to byte {self.offset} of {self.size}; {self.detail}")


@dataclass
class SalvagedConnection:
    """A topic as the bag readers describe it (the attributes of a rosbags ``Connection`` that BagReader uses)."""

    id: int
    topic: str
    msgtype: str
    msgcount: int = 0


@dataclass
class _Storage:
    """Metadata of a salvage reader (``custom`` as rosbags' ``storage.metadata.custom``)."""

    metadata: Any = None


@dataclass
class _Msg:
    topic: str
    msgtype: str
    log_time: int
    data: bytes


# ------------------------------------------------------------------------------------------------- MCAP


def _mcap_messages(path: Path, on_end: Callable[[Truncation | None], None]) -> Iterator[_Msg]:
    """The complete messages of an MCAP file in file order; ``on_end(Truncation or None)`` once the file is read."""
    from mcap.exceptions import EndOfFile, InvalidMagic, McapError, RecordLengthLimitExceeded
    from mcap.records import Channel, Chunk, Header, Message, Schema
    from mcap.stream_reader import StreamReader, breakup_chunk

    size = path.stat().st_size
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    count = 0

    def resolve(m: Any) -> _Msg:
        if m.channel_id not in channels:
            raise BagError(f"{path}: message on channel {m.channel_id}, which no channel record declares (corrupt)")
        topic, msgtype = channels[m.channel_id]
        return _Msg(topic, msgtype, int(m.log_time), bytes(m.data))

    def learn(rec: Any) -> None:
        if isinstance(rec, Schema):
            schemas[rec.id] = rec.name
        elif isinstance(rec, Channel):
            if rec.schema_id not in schemas:
                raise BagError(f"{path}: channel {rec.topic} refers to schema {rec.schema_id}, which is not in the "
                               f"file (corrupt)")
            channels[rec.id] = (rec.topic, schemas[rec.schema_id])

    with open(path, "rb") as f:
        header_seen = False
        good = 0  # byte after the last complete record
        records = StreamReader(f, skip_magic=False, emit_chunks=True, record_size_limit=max(size, 1)).records
        try:
            for rec in records:
                if isinstance(rec, Header):
                    header_seen = True
                elif isinstance(rec, Chunk):
                    inner = breakup_chunk(rec)
                    for r in inner:
                        learn(r)
                    msgs = sorted((r for r in inner if isinstance(r, Message)), key=lambda r: r.log_time)
                    for m in msgs:
                        count += 1
                        yield resolve(m)
                elif isinstance(rec, Message):
                    count += 1
                    yield resolve(rec)
                else:
                    learn(rec)
                good = f.tell()
            on_end(None)
            return
        except InvalidMagic:
            if good == 0:
                raise BagError(f"{path}: not an MCAP file (its first bytes are not the MCAP magic)") from None
            cause = "the end magic is damaged"
        except (EndOfFile, RecordLengthLimitExceeded, struct.error, EOFError):
            cause = "the file ends inside it"
        except (McapError, ValueError, OSError) as e:  # damaged rather than cut: say what the reader found
            cause = f"reading stopped with {type(e).__name__}{': ' + str(e) if str(e) else ''}"
        if not header_seen:
            raise BagError(f"{path}: truncated inside the MCAP header ({size} bytes): no message can be read")
        # What follows ``good`` is the cut record. An uncompressed chunk holds complete messages up to the cut.
        f.seek(good)
        rest = f.read()
        end, inner_msgs, what = good, [], "the last record is incomplete"
        if rest[:1] == bytes([_CHUNK_OPCODE]):
            what = "the last chunk is incomplete"
            parsed = _partial_chunk(rest)
            if parsed is not None:
                compression, records_at, data = parsed
                if compression:
                    what = f"the last chunk ({compression}-compressed) is incomplete: its messages are lost"
                else:
                    stream = io.BytesIO(data)
                    reader = StreamReader(stream, skip_magic=True, emit_chunks=True,
                                          record_size_limit=max(len(data), 1)).records
                    try:
                        for rec in reader:
                            learn(rec)
                            if isinstance(rec, Message):
                                inner_msgs.append(rec)
                            end = good + records_at + stream.tell()
                    except (McapError, struct.error, EOFError, ValueError):
                        pass
                    what = "the last chunk is incomplete: its messages up to the cut are read"
        for m in sorted(inner_msgs, key=lambda r: r.log_time):
            count += 1
            yield resolve(m)
    on_end(Truncation(path, size, end, count, f"{what} ({cause})"))


def _partial_chunk(rest: bytes) -> tuple[str, int, bytes] | None:
    """(compression, offset of the records from the chunk's opcode, the records present) of a chunk record cut
    short, or None if even its header is incomplete."""
    # opcode u8, record length u64, start u64, end u64, uncompressed size u64, crc u32, compression (u32 + bytes),
    # records length u64, records
    at = 1 + 8 + 8 + 8 + 8 + 4
    if len(rest) < at + 4:
        return None
    (n,) = struct.unpack_from("<I", rest, at)
    at += 4
    if len(rest) < at + n + 8:
        return None
    compression = rest[at:at + n].decode("utf-8", "replace")
    at += n + 8
    return compression, at, rest[at:]


# ------------------------------------------------------------------------------------------------- sqlite3


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro&immutable=1"
    con = sqlite3.connect(uri, uri=True)
    # A file shorter than the page count in its header is "malformed" unless the schema may be inconsistent;
    # with it SQLite opens the pages that are there (nothing is written: the file is opened read-only).
    con.execute("PRAGMA writable_schema=ON")
    return con


def _sqlite_messages(path: Path, on_end: Callable[[Truncation | None], None]) -> Iterator[_Msg]:
    """The complete messages of a rosbag2 sqlite3 file in row-id (write) order: those whose pages are in the file.

    Rows are scanned in id order; where the scan meets a missing page (a page of a table grows at the end of the file,
    so leaves of early rows can lie past the cut) the next ids are looked up one by one, and the scan resumes at the
    first row found. The look-ups stop after ``page_size // 8`` ids in a row without a row (more than one leaf page can
    hold), which ends the table.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(100)
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise BagError(f"{path}: truncated inside the SQLite header ({size} bytes) or not a SQLite file: "
                       f"no message can be read")
    page_size = struct.unpack_from(">H", head, 16)[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack_from(">I", head, 28)[0]
    con = _sqlite_connect(path)
    cols = "SELECT id, topic_id, timestamp, data FROM messages"
    try:
        try:
            topics = {int(i): (str(n), str(t)) for i, n, t in con.execute("SELECT id, name, type FROM topics")}
        except sqlite3.DatabaseError as e:
            raise BagError(f"{path}: cannot read the topics table of the sqlite3 bag ({e}); the file is cut or "
                           f"damaged before it") from None

        def valid(row: Any, after: int) -> bool:  # pages past the end of the file read as zeros: not messages
            rid, tid, stamp, data = row
            return (isinstance(rid, int) and rid > after and tid in topics and isinstance(stamp, int)
                    and isinstance(data, bytes))

        count, last_id, lost, damaged = 0, 0, 0, False
        max_misses = max(page_size // 8, 64)
        while True:
            # scan from last_id until the end of the table or a missing page
            try:
                for row in con.execute(f"{cols} WHERE id > ? ORDER BY id", (last_id,)):
                    if not valid(row, last_id):
                        raise sqlite3.DatabaseError("zero-filled page")
                    last_id = row[0]
                    count += 1
                    yield _Msg(*topics[row[1]], int(row[2]), row[3])
                break
            except sqlite3.DatabaseError:
                damaged = True
            # look the next ids up one at a time until one is there
            probe, misses, found = last_id + 1, 0, False
            while misses < max_misses:
                try:
                    row = con.execute(f"{cols} WHERE id = ?", (probe,)).fetchone()
                except sqlite3.DatabaseError:
                    row = None
                if row is not None and valid(row, last_id):
                    lost += probe - last_id - 1
                    last_id = row[0]
                    count += 1
                    found = True
                    yield _Msg(*topics[row[1]], int(row[2]), row[3])
                    break
                probe += 1
                misses += 1
            if not found:
                break
    finally:
        con.close()
    expected = pages * page_size
    if not damaged and size >= expected:
        on_end(None)
        return
    detail = (f"the header counts {pages} pages of {page_size} bytes ({expected} bytes); rows after id {last_id}"
              + (f" and {lost} row(s) before it" if lost else "") + " were in the missing pages")
    on_end(Truncation(path, size, size, count, detail))


# ------------------------------------------------------------------------------------------------- the reader


_READERS = {".mcap": _mcap_messages, ".db3": _sqlite_messages}


def storage_files(path: Path) -> tuple[list[Path], dict[str, str], bool]:
    """(storage files in order, custom_data, has metadata.yaml) of a bag path: a single .mcap / .db3, or a rosbag2
    directory (the files its metadata.yaml lists, else every .mcap / .db3 in it by split index)."""
    if path.is_file():
        return ([path] if path.suffix.lower() in _READERS else []), {}, False
    meta = path / "metadata.yaml"
    if meta.is_file():
        try:
            doc = read_yaml(meta, "bag metadata")
            info = doc.get("rosbag2_bagfile_information", {}) if isinstance(doc, dict) else {}
            rel = [path / r for r in (info.get("relative_file_paths") or [])]
            custom = {str(k): str(v) for k, v in (info.get("custom_data") or {}).items()}
        except (BagError, AttributeError):
            rel, custom = [], {}
        files = [f for f in rel if f.is_file() and f.suffix.lower() in _READERS]
        if files:
            return files, custom, True
    else:
        custom = {}

    def split_index(p: Path) -> tuple[int, str]:
        tail = p.stem.rsplit("_", 1)[-1]
        return (int(tail) if tail.isdigit() else -1, p.name)

    files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() in _READERS), key=split_index)
    return files, custom, meta.is_file()


class SalvageReader:
    """The storage files of a bag read front to back (see the module docstring); the subset of rosbags' ``Reader``
    that ``BagReader`` uses: ``connections``, ``messages(connections=...)``, ``storage.metadata.custom``, ``close``.

    ``open`` reads every file once (topics, counts, where each one stops); ``truncations`` lists the cuts.
    """

    def __init__(self, files: Sequence[Path], custom: dict[str, str] | None = None):
        if not files:
            raise BagError("no storage files to read")
        self.files = [Path(f) for f in files]
        self.connections: list[SalvagedConnection] = []
        self.truncations: list[Truncation] = []
        self.storage = _Storage(type("Meta", (), {"custom": dict(custom or {})})())

    def _iter(self, on_end: Callable[[Path, Truncation | None], None]) -> Iterator[_Msg]:
        for f in self.files:
            yield from _READERS[f.suffix.lower()](f, lambda t, f=f: on_end(f, t))

    def open(self) -> "SalvageReader":
        by_topic: dict[str, SalvagedConnection] = {}
        cuts: list[Truncation] = []
        for m in self._iter(lambda f, t: cuts.append(t) if t is not None else None):
            conn = by_topic.get(m.topic)
            if conn is None:
                conn = by_topic[m.topic] = SalvagedConnection(len(by_topic) + 1, m.topic, m.msgtype)
            conn.msgcount += 1
        if not by_topic and cuts:
            raise BagError(f"{cuts[0].file}: no complete message before the cut "
                           f"({cuts[0].size} bytes; {cuts[0].detail})")
        self.connections = list(by_topic.values())
        self.truncations = cuts
        return self

    def messages(self, connections: Sequence[Any] | None = None) -> Iterator[tuple[SalvagedConnection, int, bytes]]:
        wanted = None if connections is None else {c.topic for c in connections}
        by_topic = {c.topic: c for c in self.connections}
        for m in self._iter(lambda f, t: None):
            if (wanted is None or m.topic in wanted) and m.topic in by_topic:
                yield by_topic[m.topic], m.log_time, m.data

    def close(self) -> None:
        pass


__all__ = ["SalvageReader", "SalvagedConnection", "Truncation", "storage_files"]
