"""Live mapping: frames into a ``SemanticTSDF`` as they arrive, integrated on a thread of its own (no ROS).

The producer (a subscriber callback) calls ``LiveMapper.submit(item)``, which never blocks: the item goes into a
bounded ``FrameQueue`` and the call returns. The mapper's thread takes items out, turns each into
``(depth, labels, K, T_map_cam)`` with ``prepare`` (decoding, camera matrix and pose lookup: the work that can
wait) and integrates it. Two queue policies:

    latest  newest wins: at most ``capacity`` frames (default 3) wait; a frame arriving when the queue is full
            pushes out the oldest waiting one (counted in ``dropped``). The map keeps up with the present at any
            input rate, leaving frames out when integration is slower than the input. Three rather than one:
            on a shared 2-core machine the thread is sometimes late by a few frames (measured with the perception
            node on the same cores, ~12 outputs/s: capacity 1 dropped 8 % of them, capacity 3 none).
    all     process every frame: up to ``capacity`` frames (default 300: 20 s at 15 Hz, ~115 MB of 240x320 depth +
            labels) wait; only when the mapper falls that far behind is the oldest dropped (counted in ``dropped``).

``prepare`` may raise ``NotReady`` (the pose or camera matrix of the frame's stamp has not arrived yet): the frame
is tried again every few milliseconds until ``ready_wait`` seconds after it arrived, then counted in ``unposed``.
A ``ValueError`` from ``prepare`` or from the integration counts the frame in ``failed`` (the first messages are
kept in ``errors``); the thread goes on. ``extract()`` gives the map at any time (it holds the integration lock for
the marching cubes and labelling, so the thread waits that long); ``close()`` finishes the frames that wait
(``drain``) or discards them, and stops the thread.

Counts (``stats()``): every submitted frame ends up in exactly one of integrated, skipped (keyframe rule), empty (no
valid depth), dropped (queue), unposed, failed, discarded (at close without drain), or is still waiting / in work.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

import numpy as np

from mtlsi_core.mapping.tsdf import MapResult, SemanticTSDF, TSDFOptions

POLICIES = ("latest", "all")
DEFAULT_CAPACITY = {"latest": 3, "all": 300}
RETRY_S = 0.005  # between tries of a frame whose pose has not arrived yet


class NotReady(Exception):
    """``prepare`` cannot place the frame yet (no pose or camera matrix at its stamp so far)."""


class FrameQueue:
    """A bounded queue whose ``put`` never blocks (module docstring: policies)."""

    def __init__(self, policy: str = "latest", capacity: int | None = None):
        if policy not in POLICIES:
            raise ValueError(f"queue policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        capacity = DEFAULT_CAPACITY[policy] if capacity is None else int(capacity)
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self.policy, self.capacity = policy, capacity
        self._items: deque[tuple[float, Any]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.put_count = 0
        self.dropped = 0
        self.high_water = 0  # most frames waiting at once
        self.in_work = 0  # taken by get() and not yet marked done()

    def put(self, item: Any) -> bool:
        """Queue ``item`` (with its arrival time); False when a waiting frame was pushed out for it (or the queue
        is closed: then ``item`` itself is dropped)."""
        now = time.monotonic()
        with self._cond:
            self.put_count += 1
            if self._closed:
                self.dropped += 1
                return False
            pushed = len(self._items) >= self.capacity
            if pushed:
                self._items.popleft()
                self.dropped += 1
            self._items.append((now, item))
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
        return not pushed

    def get(self, timeout: float | None = None) -> tuple[float, Any] | None:
        """(arrival time, item) of the oldest waiting frame, in work until ``done()``; None once closed and empty,
        or after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout) or not self._items:
                return None
            self.in_work += 1
            return self._items.popleft()

    def done(self) -> None:
        """The frame of the last ``get()`` is finished."""
        with self._cond:
            self.in_work -= 1
            self._cond.notify_all()

    def pending(self) -> int:
        """Frames waiting or in work."""
        with self._cond:
            return len(self._items) + self.in_work

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no frame waits or is in work; False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self.in_work, timeout)

    def clear(self) -> int:
        """Remove the waiting frames; returns how many."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return n

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


def _identity(item: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return item


class LiveMapper:
    """A ``SemanticTSDF`` fed from a ``FrameQueue`` by a thread of its own (module docstring)."""

    def __init__(self, options: TSDFOptions = TSDFOptions(), *, policy: str = "latest", capacity: int | None = None,
                 prepare: Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 ready_wait: float = 0.5, name: str = "live_map"):
        if ready_wait < 0:
            raise ValueError(f"ready_wait must be >= 0 s, got {ready_wait}")
        self.tsdf = SemanticTSDF(options)
        self.queue = FrameQueue(policy, capacity)
        self.ready_wait = float(ready_wait)
        self._prepare = prepare or _identity
        self._lock = threading.Lock()  # held while a frame is integrated and while the map is extracted
        self.counts = {"integrated": 0, "skipped": 0, "empty": 0, "unposed": 0, "failed": 0, "discarded": 0}
        self.errors: list[str] = []
        self.prepare_seconds = 0.0
        self.integrate_seconds = 0.0
        self._latency: list[float] = []  # arrival -> integrated, per frame (s)
        self._first_arrival: float | None = None
        self._last_done: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Hand a frame to the mapper; never blocks. False when a waiting frame was dropped for it."""
        if self._first_arrival is None:
            self._first_arrival = time.monotonic()
        return self.queue.put(item)

    def _error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)

    def _prepared(self, arrival: float, item: Any) -> tuple | None:
        while True:
            try:
                return self._prepare(item)
            except NotReady as e:
                if time.monotonic() - arrival >= self.ready_wait or self._stop.is_set():
                    self.counts["unposed"] += 1
                    self._error(f"not placed within {self.ready_wait} s: {e}")
                    return None
                time.sleep(RETRY_S)

    def _run(self) -> None:
        while True:
            got = self.queue.get()
            if got is None:
                return
            arrival, item = got
            try:
                self._one(arrival, item)
            except Exception as e:  # the thread survives anything a frame does; the frame counts as failed
                self.counts["failed"] += 1
                self._error(str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}")  # bad frame / bug
            finally:
                self._last_done = time.monotonic()
                self.queue.done()

    def _one(self, arrival: float, item: Any) -> None:
        t0 = time.perf_counter()
        try:
            frame = self._prepared(arrival, item)  # a ValueError (a bad frame) fails it in _run
        finally:
            self.prepare_seconds += time.perf_counter() - t0
        if frame is None:
            return
        depth, labels, K, T = frame
        t1 = time.perf_counter()
        with self._lock:
            before = (self.tsdf.skipped_frames, self.tsdf.empty_frames)
            try:
                done = self.tsdf.integrate(depth, labels, K, T)
            finally:
                self.integrate_seconds += time.perf_counter() - t1
            if done:
                self.counts["integrated"] += 1
                self._latency.append(time.monotonic() - arrival)
            elif self.tsdf.skipped_frames > before[0]:
                self.counts["skipped"] += 1
            else:
                self.counts["empty"] += 1

    def pending(self) -> int:
        """Frames waiting or in work."""
        return self.queue.pending()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no frame waits or is in work; False after ``timeout``."""
        return self.queue.wait_idle(timeout)

    def extract(self) -> MapResult:
        """The map of the frames integrated so far (ValueError before the first)."""
        with self._lock:
            return self.tsdf.extract()

    def close(self, drain: bool = True, timeout: float | None = 60.0) -> None:
        """Stop taking frames; integrate the waiting ones (``drain``) or discard them; stop the thread."""
        if not drain:
            self.counts["discarded"] += self.queue.clear()
            self._stop.set()
        self.queue.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Counts (module docstring), timings and the achieved rate: integrated frames per second of wall time from
        the first arrival to the last frame done, and the latency from arrival to integrated (s)."""
        q = self.queue
        with q._cond:  # counts change only while a frame is in work: consistent with the queue's under its lock
            c = dict(self.counts)
            received, dropped, waiting = q.put_count, q.dropped, len(q._items) + q.in_work
            lat = np.asarray(self._latency, np.float64)
            first, last = self._first_arrival, self._last_done
        span = (last - first) if first is not None and last is not None else 0.0
        return {"policy": q.policy, "capacity": q.capacity, "received": received, "dropped": dropped, **c,
                "waiting": waiting, "queue_high_water": q.high_water,
                "prepare_seconds": round(self.prepare_seconds, 3), "integrate_seconds": round(self.integrate_seconds, 3),
                "wall_seconds": round(span, 3),
                "integrated_per_second": round(c["integrated"] / span, 2) if span > 0 else None,
                "latency_s": ({"median": round(float(np.median(lat)), 4), "p90": round(float(np.percentile(lat, 90)), 4),
                               "max": round(float(lat.max()), 4)} if len(lat) else None),
                "errors": list(self.errors)}


__all__ = ["DEFAULT_CAPACITY", "FrameQueue", "LiveMapper", "NotReady", "POLICIES"]
