"""Reading and writing rosbag2 bags with the ``rosbags`` library (sqlite3 and mcap storage), with clear errors.

Messages travel as CDR bytes. ``BagReader`` yields them with their topic, type, log time and per-topic index and
deserialises with ``rclpy.serialization.deserialize_message`` into the same rclpy message classes the node gets from
DDS, so offline tools run the node's own conversion code on identical objects (rosbags' own pure-Python
deserialiser would give different objects, which the node's conversions do not take). ``BagWriter.write_msg`` stores
the bytes of ``rclpy.serialization.serialize_message``, the serialiser behind the node's publishers, with the
alignment padding zeroed (``msgtypes.canonical_cdr``: rclpy leaves it uninitialised, DDS delivers zeros), so a
message written offline is byte for byte the one a subscriber of the node receives, and runs are reproducible.

Bags are written atomically: into a hidden ``.<name>.partial-<pid>`` folder beside the target, renamed onto the
target only after the storage file and ``metadata.yaml`` are complete. An interrupted run leaves the hidden folder,
never a bag that looks complete. Targets:

    out/          a rosbag2 directory (metadata.yaml + out.mcap or out.db3, ``storage`` picks; default mcap)
    out.mcap      a single MCAP file      out.db3   a single sqlite3 file (rosbag2 reads both without metadata)

A bag cut short by a crash (an MCAP file without its summary, a sqlite3 file missing pages, a directory whose
recording never wrote metadata.yaml) is read as far as it goes by ``salvage.SalvageReader``: every complete message
before the cut, with a warning naming the file and the byte where it stops (``BagReader.truncations``).
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.msgtypes import canonical_cdr, definition, message_class, normalize_type, type_name
from mtlsi_ros.bag.salvage import SalvageReader, Truncation, storage_files

log = logging.getLogger(__name__)

STORAGES = ("mcap", "sqlite3")
DEFAULT_STORAGE = "mcap"
_SUFFIX_STORAGE = {".mcap": "mcap", ".db3": "sqlite3"}
_BAG_VERSION = 9  # rosbag2 metadata version (Jazzy and newer)


# latched by convention: tf2's static broadcaster publishes with transient local durability
LATCHED_TOPICS = ("/tf_static",)


def _latched_qos() -> Any:
    """The offered QoS recorded for a latched topic: reliable, transient local, keep last 1 (rosbags' Qos)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)  # unspecified: the RMW default
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, zero, zero,
               QosLiveliness.AUTOMATIC, zero, False)


@dataclass(frozen=True)
class RawMessage:
    """One message of a bag, still CDR bytes."""

    topic: str
    msgtype: str  # pkg/msg/Name
    log_time: int  # ns, the bag's receive / write time
    data: bytes
    index: int  # position among the messages of its topic (0-based)


def _plugin(storage: str) -> Any:
    from rosbags.rosbag2 import StoragePlugin

    return {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]


def storage_for(path: str | os.PathLike, storage: str | None = None) -> tuple[str, bool]:
    """(storage plugin, single file?) for an output path: ``.mcap`` / ``.db3`` name a single file of that storage
    (``storage`` must agree); any other name is a rosbag2 directory of ``storage`` (default mcap)."""
    suffix = Path(path).suffix.lower()
    if storage is not None and storage not in STORAGES:
        raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if suffix in _SUFFIX_STORAGE:
        if storage is not None and storage != _SUFFIX_STORAGE[suffix]:
            raise BagError(f"{path}: the suffix {suffix} names {_SUFFIX_STORAGE[suffix]} storage, "
                           f"but --storage {storage} was asked")
        return _SUFFIX_STORAGE[suffix], True
    return storage or DEFAULT_STORAGE, False


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text.rstrip(".")


class BagReader:
    """A bag opened for reading (a rosbag2 directory, or a single .mcap / .db3 file); use as a context manager.

    Errors (``BagError``, one line): the path does not exist, is not a bag, is corrupt or cut inside its header (name
    the file), a topic is missing (lists the bag's topics) or has an unexpected type, a message does not deserialise
    (names the topic and message index). A bag cut short is read up to the cut: ``truncations`` says where each
    storage file stops, and a warning is logged for each.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._reader: Any = None
        self.truncations: list[Truncation] = []

    # ------------------------------------------------------------------------------------------ open / close

    def open(self) -> "BagReader":
        from rosbags.rosbag2 import Reader

        p = self.path
        if not p.exists():
            raise BagError(f"{p}: no such bag (file or directory not found)")
        if p.is_file() and p.suffix.lower() not in _SUFFIX_STORAGE:
            raise BagError(f"{p}: not a bag (expected a rosbag2 directory, a .mcap or a .db3 file)")
        files, custom, has_meta = storage_files(p)
        if p.is_dir() and not has_meta:
            if not files:
                raise BagError(f"{p}: not a rosbag2 bag (a directory without metadata.yaml)")
            self._reader = self._salvage(files, custom, "it has no metadata.yaml (the recording did not finish)")
            return self
        try:
            reader = Reader(p)
            reader.open()
        except Exception as e:  # rosbags ReaderError, sqlite / YAML / OS errors of a damaged bag
            if not files:
                raise BagError(f"{p}: cannot open the bag, truncated or corrupt ({_describe(e)})") from None
            self._reader = self._salvage(files, custom, f"its index cannot be read ({_describe(e)})")
            return self
        self._reader = reader
        return self

    def _salvage(self, files: list[Path], custom: dict[str, str], why: str) -> SalvageReader:
        """Read ``files`` front to back (a bag cut short); BagError if not even that works."""
        try:
            reader = SalvageReader(files, custom).open()
        except BagError as e:  # names the storage file: keep it when it is not the bag path itself
            detail = str(e).removeprefix(f"{self.path}: ")
            raise BagError(f"{self.path}: cannot open the bag, truncated or corrupt ({detail})") from None
        self.truncations = list(reader.truncations)
        if not self.truncations:  # complete storage files whose index or metadata is what is missing or damaged
            log.warning(f"{self.path}: {why}; read its {sum(c.msgcount for c in reader.connections)} message(s) "
                        f"front to back")
        for t in self.truncations:
            log.warning(t.message())
        return reader

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    def __enter__(self) -> "BagReader":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ metadata

    @property
    def reader(self) -> Any:
        if self._reader is None:
            raise BagError(f"{self.path}: bag is not open")
        return self._reader

    def topics(self) -> dict[str, str]:
        """{topic: message type} of every topic (a topic with several types maps to the first)."""
        out: dict[str, str] = {}
        for c in self.reader.connections:
            out.setdefault(c.topic, c.msgtype)
        return out

    def latched_topics(self) -> set[str]:
        """Topics to replay latched (transient local durability): those whose recorded publishers offered it (the
        rosbag2 connection's ``offered_qos_profiles``), and ``/tf_static`` by convention."""
        from rosbags.interfaces import QosDurability

        out = {t for t in self.topics() if t in LATCHED_TOPICS}
        for c in self.reader.connections:
            profiles = getattr(getattr(c, "ext", None), "offered_qos_profiles", None) or ()
            if any(getattr(q, "durability", None) == QosDurability.TRANSIENT_LOCAL for q in profiles):
                out.add(c.topic)
        return out

    def message_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + int(c.msgcount)
        return counts

    def custom_data(self) -> dict[str, str]:
        """rosbag2 ``custom_data`` of a directory bag (single files carry none)."""
        meta = getattr(self.reader.storage, "metadata", None)
        return dict(getattr(meta, "custom", None) or {})

    def describe_topics(self) -> str:
        topics = self.topics()
        if not topics:
            return "it has no topics"
        return "its topics: " + ", ".join(f"{t} ({ty})" for t, ty in sorted(topics.items()))

    def require_topic(self, topic: str, types: Sequence[str] | None = None, what: str = "") -> str:
        """The type of ``topic``; BagError listing the bag's topics if it is absent, or naming the type if it is
        not one of ``types``."""
        topics = self.topics()
        label = f"{what} topic" if what else "topic"
        if topic not in topics:
            raise BagError(f"{self.path}: no {label} {topic}; {self.describe_topics()}")
        if types is not None and topics[topic] not in types:
            raise BagError(f"{self.path}: {label} {topic} has type {topics[topic]}, which is not supported here "
                           f"(expected {' or '.join(types)})")
        return topics[topic]

    # ------------------------------------------------------------------------------------------ messages

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
        """Messages of ``topics`` (default: all) in log-time order. A storage error while reading (a damaged
        chunk or page) becomes a BagError naming the last message read."""
        reader = self.reader
        wanted = None if topics is None else set(topics)
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        counters: dict[str, int] = {}
        last = "before the first message"
        it = reader.messages(connections=conns)
        while True:
            try:
                conn, t, data = next(it)
            except StopIteration:
                return
            except Exception as e:
                raise BagError(f"{self.path}: truncated or corrupt data {last} ({_describe(e)})") from None
            i = counters.get(conn.topic, 0)
            counters[conn.topic] = i + 1
            last = f"after {conn.topic} message {i}"
            yield RawMessage(conn.topic, conn.msgtype, int(t), bytes(data), i)

    def deserialize(self, raw: RawMessage) -> Any:
        """The rclpy message of ``raw``; BagError naming the topic and message index if the bytes are malformed."""
        from rclpy.serialization import deserialize_message

        cls = message_class(raw.msgtype)
        try:
            return deserialize_message(raw.data, cls)
        except Exception as e:
            raise BagError(f"{self.path}: {raw.topic} message {raw.index}: cannot deserialise {len(raw.data)} "
                           f"bytes as {raw.msgtype} ({_describe(e)})") from None


def serialize(msg: Any) -> tuple[str, bytes]:
    """(type name, CDR bytes) of an rclpy message: rclpy's serialiser (the node's publishers use it), alignment
    padding zeroed (``msgtypes.canonical_cdr``) so that the same message always gives the same bytes."""
    from rclpy.serialization import serialize_message

    name = type_name(msg)
    return name, canonical_cdr(serialize_message(msg), name)


def open_bag(path: str | os.PathLike) -> BagReader:
    """``with open_bag(path) as bag: ...``"""
    return BagReader(path)


class BagWriter:
    """A bag written atomically (see the module docstring). ``write`` is thread-safe.

    ``overwrite``: replace an existing target (only once the new bag is complete); otherwise an existing target is
    an error. Use as a context manager: leaving with an exception aborts and removes the partial bag.
    """

    def __init__(self, path: str | os.PathLike, storage: str | None = None, overwrite: bool = False,
                 custom_data: dict[str, str] | None = None):
        self.target = Path(path)
        self.storage, self.single_file = storage_for(self.target, storage)
        self.overwrite = overwrite
        self.custom_data = dict(custom_data or {})
        self._tmp: Path | None = None
        self._writer: Any = None
        self._conns: dict[str, Any] = {}
        self._types: dict[str, str] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def open(self) -> "BagWriter":
        from rosbags.rosbag2 import Writer

        t = self.target
        if (t.exists() or t.is_symlink()) and not self.overwrite:
            raise BagError(f"{t} exists already; choose another output or allow overwriting (--force)")
        if not t.parent.is_dir():
            raise BagError(f"{t}: the folder {t.parent} does not exist")
        self._tmp = t.parent / f".{t.name}.partial-{os.getpid()}"
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        self._tmp.mkdir()
        inner = self._tmp / (t.stem if self.single_file else t.name)
        try:
            self._writer = Writer(inner, version=_BAG_VERSION, storage_plugin=_plugin(self.storage))
            for k, v in self.custom_data.items():
                self._writer.set_custom_data(k, v)
            self._writer.open()
        except Exception as e:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise BagError(f"{t}: cannot create the bag ({_describe(e)})") from None
        return self

    def set_custom_data(self, key: str, value: str) -> None:
        """A rosbag2 ``custom_data`` entry (directory bags keep it in metadata.yaml); before ``close``."""
        with self._lock:
            self.custom_data[key] = value
            if self._writer is not None:
                self._writer.set_custom_data(key, value)

    def add_topic(self, topic: str, msgtype: str, latched: bool | None = None) -> None:
        """Declare ``topic`` with ``msgtype`` (done by ``write`` on first use; a second type is an error).
        ``latched``: its publishers offered transient local durability, recorded as the connection's offered QoS so
        that players (``mtlsi-bag play``, ``ros2 bag play``) replay it latched; None: only ``/tf_static``."""
        msgtype = normalize_type(msgtype)
        with self._lock:
            self._add(topic, msgtype, latched)

    def _add(self, topic: str, msgtype: str, latched: bool | None = None) -> Any:
        conn = self._conns.get(topic)
        if conn is not None:
            if self._types[topic] != msgtype:
                raise BagError(f"{self.target}: topic {topic} already carries {self._types[topic]}, not {msgtype}")
            return conn
        if self._writer is None:
            raise BagError(f"{self.target}: bag is not open")
        msgdef, rihs01 = definition(msgtype)
        latched = topic in LATCHED_TOPICS if latched is None else latched
        conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01,
                                           offered_qos_profiles=[_latched_qos()] if latched else ())
        self._conns[topic], self._types[topic], self.counts[topic] = conn, msgtype, 0
        return conn

    def write(self, topic: str, msgtype: str, log_time: int, data: bytes) -> None:
        """Append CDR ``data`` of ``msgtype`` on ``topic`` at ``log_time`` (ns)."""
        with self._lock:
            conn = self._add(topic, normalize_type(msgtype))
            self._writer.write(conn, int(log_time), data)
            self.counts[topic] += 1

    def write_msg(self, topic: str, msg: Any, log_time: int) -> None:
        """Serialise an rclpy message (as its publisher would, padding zeroed: ``msgtypes.canonical_cdr``) and
        append it."""
        name, data = serialize(msg)
        self.write(topic, name, log_time, data)

    def close(self) -> Path:
        """Finish the bag and move it onto the target; returns the target path."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is None:
                raise BagError(f"{self.target}: bag is not open")
            tmp = self._tmp
            try:
                writer.close()
                inner = tmp / (self.target.stem if self.single_file else self.target.name)
                ext = "mcap" if self.storage == "mcap" else "db3"
                src = inner / f"{inner.name}.{ext}" if self.single_file else inner
                self._replace(src)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return self.target

    def _replace(self, src: Path) -> None:
        t = self.target
        old = None
        if t.exists() or t.is_symlink():  # overwrite: move the old one aside first, drop it once the new one is in
            old = t.parent / f".{t.name}.old-{os.getpid()}"
            os.replace(t, old)
        os.replace(src, t)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the partial bag (nothing appears at the target)."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                try:
                    writer.abort()
                except Exception:
                    pass
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "BagWriter":
        return self.open()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["BagReader", "BagWriter", "DEFAULT_STORAGE", "RawMessage", "STORAGES", "open_bag", "serialize",
           "storage_for"]
