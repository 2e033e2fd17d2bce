"""Live replay: a player node that publishes a bag's messages on their topics, and a recorder node that writes
topics to a bag. Both move raw CDR bytes (rclpy publishes ``bytes`` and delivers them with ``raw=True``), so a
message is played and recorded byte for byte; publishers and subscriptions are created by type name
(``msgtypes.message_class``). Both work from Python (the tests) and from ``mtlsi-bag play`` / ``record``.

    player = BagPlayer("in_bag", context=ctx, rate=1.0, clock=True)
    recorder = BagRecorder("out_bag", ["/camera/segmentation", ...], context=ctx)
    recorder.wait_ready()                 # subscribed to every topic, each matched with a publisher
    player.wait_for_subscribers(["/camera/image"])
    player.play()                         # honours the bag's relative timing / rate
    recorder.wait_for_counts({...}); recorder.close()   # the bag appears complete, or not at all

Player QoS: reliable, keep last ``queue`` (it matches reliable and best-effort subscriptions; the node's
``process_every_frame`` input is reliable keep-all, so no frame is lost while the player paces itself). /clock:
rosgraph_msgs/Clock at the bag time of each message and ``clock_hz`` times a second in between. The recorder
subscribes to a topic once it has a publisher, reliable if every publisher offers reliable, else best effort.
Latched topics keep their durability end to end: the recorder subscribes transient local where every publisher
offers it (``/tf_static``'s do) and records that in the bag; the player publishes such topics (and ``/tf_static``
by convention) transient local, so late subscribers such as tf2 buffers still get them.

Live mapping of a node's outputs as they arrive: ``bag.live_map.LiveMapNode`` (its own module: it imports the
mapping and decoding code, which play / record do not need).
"""
from __future__ import annotations

import threading
import time
from itertools import count
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.msgtypes import message_class
from mtlsi_ros.bag.storage import BagReader, BagWriter, RawMessage

_NAMES = count()
STAMP_MODES = ("receive", "header")


def _absolute(topic: str) -> str:
    if not topic.startswith("/"):
        raise BagError(f"topic {topic!r}: give absolute topic names (starting with /)")
    return topic


class SpinThread:
    """A node spun by its own ``SingleThreadedExecutor`` on a daemon thread (the recorder's and the live mapper's):
    ``_spin_until_stopped`` runs in that thread while ``_running``; ``_stop_spinning`` joins it and shuts down."""

    node: Any
    context: Any
    errors: list[str]

    def _start_spinning(self, name: str) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        self._spin_until_stopped()

    def _error(self, text: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(text)

    def _spin_until_stopped(self) -> None:
        import rclpy

        while self._running and rclpy.ok(context=self.context):
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except Exception as e:  # shutdown races; anything else is kept for the caller
                if self._running:
                    self._error(f"{type(e).__name__}: {e}")

    def _stop_spinning(self, join_s: float) -> None:
        self._running = False
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=join_s)
        for close in (lambda: self._executor.shutdown(timeout_sec=1.0), self.node.destroy_node):
            try:
                close()
            except Exception:
                pass


class BagPlayer:
    """Publishes the messages of a bag (optionally ``topics`` only) on their topics, in log-time order, at
    ``rate`` times the recorded speed. ``context``: the rclpy context (``rclpy.init`` must have run)."""

    def __init__(self, bag: str | Path, *, context: Any = None, rate: float = 1.0, clock: bool = False,
                 clock_hz: float = 20.0, topics: Sequence[str] | None = None, queue: int = 100,
                 node_name: str | None = None):
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        if not rate > 0:
            raise BagError(f"--rate must be > 0, got {rate}")
        if clock and not clock_hz > 0:
            raise BagError(f"clock rate must be > 0 Hz, got {clock_hz}")
        if queue < 1:
            raise BagError(f"queue must be >= 1, got {queue}")
        self.path, self.rate, self.clock, self.clock_hz = Path(bag), float(rate), clock, float(clock_hz)
        self._bag = BagReader(self.path).open()
        try:
            all_topics = self._bag.topics()
            if topics is not None:
                for t in topics:
                    self._bag.require_topic(t)
            self.topics = {t: ty for t, ty in all_topics.items() if topics is None or t in topics}
            classes = {t: message_class(ty) for t, ty in self.topics.items()}  # BagError for unknown types
            self.latched = self._bag.latched_topics() & set(self.topics)
        except BaseException:
            self._bag.close()
            raise
        self.node = Node(node_name or f"mtlsi_bag_player_{next(_NAMES)}", context=context)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=queue, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        # latched topics (/tf_static, or recorded as transient local) are replayed latched: a late subscriber such as
        # a tf2 buffer still gets them, and transient-local subscribers match at all
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=queue, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.publishers = {t: self.node.create_publisher(cls, t, latched if t in self.latched else qos)
                           for t, cls in classes.items()}
        self._clock_pub = self.node.create_publisher(Clock, "/clock", QoSProfile(depth=1)) if clock else None
        self._Clock = Clock
        self._stop = threading.Event()
        self.published: dict[str, int] = {t: 0 for t in self.topics}

    def wait_for_subscribers(self, topics: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        """Wait until each of ``topics`` (default: all played topics) has a subscriber; TimeoutError naming the
        topics without one."""
        topics = list(topics) if topics is not None else list(self.publishers)
        for t in topics:
            if t not in self.publishers:
                raise BagError(f"{self.path}: topic {t} is not played; played topics: {', '.join(self.publishers)}")
        deadline = time.monotonic() + timeout
        while True:
            missing = [t for t in topics if self.publishers[t].get_subscription_count() == 0]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscriber on {', '.join(missing)} within {timeout} s")
            time.sleep(0.05)

    def _publish_clock(self, ns: int) -> None:
        from builtin_interfaces.msg import Time

        self._clock_pub.publish(self._Clock(clock=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)))

    def play(self) -> dict[str, Any]:
        """Publish every message at its time (relative to the first, divided by ``rate``); returns counts and the
        wall time taken. ``stop()`` from another thread ends it early."""
        t_wall0 = time.monotonic()
        t_bag0: int | None = None
        period = 1.0 / self.clock_hz if self.clock else None
        last_clock = -1e9
        raw: RawMessage
        for raw in self._bag.messages(list(self.topics)):
            if t_bag0 is None:
                t_bag0 = raw.log_time
            due = t_wall0 + (raw.log_time - t_bag0) / 1e9 / self.rate
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= due:
                    break
                if period is not None and now - last_clock >= period:
                    self._publish_clock(t_bag0 + int((now - t_wall0) * self.rate * 1e9))
                    last_clock = now
                wait = due - now if period is None else min(due - now, period)
                self._stop.wait(max(wait, 0.0))
            if self._stop.is_set():
                break
            if self._clock_pub is not None:
                self._publish_clock(raw.log_time)
                last_clock = time.monotonic()
            self.publishers[raw.topic].publish(raw.data)
            self.published[raw.topic] += 1
        return {"bag": str(self.path), "published": dict(self.published),
                "seconds": round(time.monotonic() - t_wall0, 3)}

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        try:
            self.node.destroy_node()
        finally:
            self._bag.close()

    def __enter__(self) -> "BagPlayer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class BagRecorder(SpinThread):
    """Subscribes to ``topics`` (absolute names) and writes every message, as received, to the bag ``out`` with
    its receive time (node clock) or its header stamp (``stamp="header"``) as log time. Spins its own executor
    thread. ``close()`` finishes the bag (atomic); ``abort()`` drops it."""

    def __init__(self, out: str | Path, topics: Sequence[str], *, context: Any = None, stamp: str = "receive",
                 storage: str | None = None, overwrite: bool = False, depth: int = 1000,
                 node_name: str | None = None):
        from rclpy.node import Node

        if stamp not in STAMP_MODES:
            raise BagError(f"stamp must be one of {', '.join(STAMP_MODES)}, got {stamp!r}")
        if not topics:
            raise BagError("give at least one topic to record")
        self.topics = [_absolute(t) for t in topics]
        self.stamp, self.depth, self.context = stamp, depth, context
        # The writer lives in the spin thread (sqlite3 connections are bound to their thread): it is opened,
        # written and closed there; the constructor waits for the open to report a bad output path.
        self.writer = BagWriter(out, storage=storage, overwrite=overwrite)
        self.node = Node(node_name or f"mtlsi_bag_recorder_{next(_NAMES)}", context=context)
        self.subscriptions: dict[str, Any] = {}
        self.types: dict[str, str] = {}
        self.counts: dict[str, int] = {t: 0 for t in self.topics}
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._timer = self.node.create_timer(0.1, self._discover)
        self._finish = "abort"  # what the spin thread does with the bag when it stops: "close" or "abort"
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._close_error: BaseException | None = None
        self._start_spinning("bag_recorder")
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            self.node.destroy_node()
            raise self._open_error

    def _spin(self) -> None:
        try:
            self.writer.open()
        except BaseException as e:
            self._open_error, self._running = e, False
            self._opened.set()
            return
        self._opened.set()
        try:
            self._spin_until_stopped()
        finally:
            try:
                if self._finish == "close":
                    self.writer.close()
                else:
                    self.writer.abort()
            except BaseException as e:
                self._close_error = e

    def _discover(self) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        todo = [t for t in self.topics if t not in self.subscriptions]
        if not todo:
            return
        known = dict(self.node.get_topic_names_and_types())
        for topic in todo:
            types = known.get(topic)
            if not types:
                continue
            typename = types[0]
            pubs = self.node.get_publishers_info_by_topic(topic)
            reliable = bool(pubs) and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
            # latched publishers (every one offers transient local, as /tf_static's do): subscribe transient local
            # too, so that what they published before the recorder came is recorded, and mark the topic latched
            latched = bool(pubs) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.depth,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
                             reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
            try:
                cls = message_class(typename)
            except BagError as e:
                self._error(f"{topic}: {e}")
                continue
            self.writer.add_topic(topic, typename, latched=latched)
            self.types[topic] = typename
            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, lambda data, t=topic, c=cls: self._on_message(t, c, data), qos, raw=True)

    def _on_message(self, topic: str, cls: type, data: bytes) -> None:
        if self.stamp == "header":
            from rclpy.serialization import deserialize_message

            header = getattr(deserialize_message(data, cls), "header", None)
            if header is None:
                raise BagError(f"{topic}: {self.types[topic]} has no header; record with receive stamps")
            t = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        else:
            t = self.node.get_clock().now().nanoseconds
        self.writer.write(topic, self.types[topic], t, data)
        with self._cond:
            self.counts[topic] += 1
            self._cond.notify_all()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every topic is subscribed and matched with at least one publisher."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [t for t in self.topics
                       if t not in self.subscriptions or self.subscriptions[t].get_publisher_count() == 0]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"recorder: no publisher matched on {', '.join(missing)} within {timeout} s")
            time.sleep(0.05)

    def wait_for_counts(self, counts: Mapping[str, int], timeout: float = 60.0) -> dict[str, int]:
        """Wait until each topic of ``counts`` has at least that many messages; TimeoutError with the counts."""
        with self._cond:
            ok = self._cond.wait_for(lambda: all(self.counts.get(t, 0) >= n for t, n in counts.items()), timeout)
            if not ok:
                short = {t: f"{self.counts.get(t, 0)}/{n}" for t, n in counts.items() if self.counts.get(t, 0) < n}
                raise TimeoutError(f"recorder: after {timeout} s still short of messages: {short}")
            return dict(self.counts)

    def _stop(self, finish: str) -> None:
        self._finish = finish
        self._stop_spinning(join_s=60.0)

    def close(self) -> Path:
        """Stop recording and finish the bag; returns its path."""
        self._stop("close")
        if self._close_error is not None:
            raise self._close_error
        return self.writer.target

    def abort(self) -> None:
        """Stop recording and drop the bag."""
        self._stop("abort")

    def __enter__(self) -> "BagRecorder":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["BagPlayer", "BagRecorder", "STAMP_MODES"]
