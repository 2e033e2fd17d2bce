"""Frames waiting for inference: one buffer per camera, and the batch collection across cameras.

Latest-wins mode (default): each camera holds at most one frame; a newer one replaces it (the old one is
returned so the caller counts it ``stale``). Ordered mode (``process_every_frame``): each camera holds a FIFO of
at most ``capacity`` frames; ``put`` blocks while it is full, which pushes back on a reliable publisher instead
of losing frames.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Frame:
    camera: int  # index into the node's camera list
    header: Any  # std_msgs/Header of the input, republished unchanged on every output
    rgb: np.ndarray  # (H, W, 3) uint8
    received: float  # time.monotonic() when the callback got it
    meta: dict = field(default_factory=dict)


class FrameBuffers:
    """Per-camera frame buffers shared by subscription callbacks (``put``) and the worker (``take_batch``)."""

    def __init__(self, num_cameras: int, ordered: bool = False, capacity: int = 1):
        if num_cameras < 1:
            raise ValueError("need at least one camera")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.ordered = ordered
        self.capacity = capacity if ordered else 1
        self._q: list[deque[Frame]] = [deque() for _ in range(num_cameras)]
        self._cond = threading.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, frame: Frame, timeout: float | None = None) -> Frame | None:
        """Add a frame. Latest-wins: returns the frame it replaced (or None). Ordered: waits up to ``timeout``
        seconds for room and raises ``TimeoutError`` if the queue stayed full; ``RuntimeError`` once closed."""
        q = self._q[frame.camera]
        with self._cond:
            if self._closed:
                raise RuntimeError("frame buffers are closed")
            replaced = None
            if not self.ordered:
                replaced = q.popleft() if q else None
            else:
                deadline = None if timeout is None else time.monotonic() + timeout
                while len(q) >= self.capacity and not self._closed:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"queue of camera {frame.camera} full ({self.capacity} frames)")
                    self._cond.wait(left)
                if self._closed:
                    raise RuntimeError("frame buffers are closed")
            q.append(frame)
            self._cond.notify_all()
            return replaced

    def pending(self) -> list[int]:
        with self._cond:
            return [len(q) for q in self._q]

    def take_batch(self, window_s: float, wait_s: float) -> list[Frame]:
        """Wait up to ``wait_s`` for any frame, then up to ``window_s`` more for every camera to have one; return
        at most one frame per camera (the oldest of an ordered queue), or [] on timeout / close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or any(self._q), timeout=wait_s):
                return []
            if self._closed:
                return []
            if window_s > 0:
                self._cond.wait_for(lambda: self._closed or all(self._q), timeout=window_s)
            batch = [q.popleft() for q in self._q if q]
            self._cond.notify_all()  # room for blocked producers
            return batch

    def close(self) -> list[Frame]:
        """Wake every waiter; return the frames still buffered (the caller counts them)."""
        with self._cond:
            self._closed = True
            left = [f for q in self._q for f in q]
            for q in self._q:
                q.clear()
            self._cond.notify_all()
            return left


__all__ = ["Frame", "FrameBuffers"]
