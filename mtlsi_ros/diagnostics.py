"""Per-camera statistics for /diagnostics: input and output rates, latency percentiles, drops by reason.

``CameraStats`` is thread-safe (subscription callbacks and the inference worker update it); ``camera_status``
turns a snapshot into a diagnostic_msgs/DiagnosticStatus. ``ThrottledLogger`` limits repeated errors per key.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

# Why a frame was not answered. Every drop is counted under exactly one reason.
DROP_REASONS = (
    "stale",            # replaced by a newer frame before inference (latest-wins mode)
    "bad_encoding",     # unknown, unsupported or 16-bit encoding; compressed depth
    "bad_size",         # zero size, step or data length that do not match
    "decode_error",     # compressed bytes that do not decode
    "too_large",        # more pixels than max_input_pixels
    "no_subscribers",   # nobody subscribes to any output of this camera
    "queue_full",       # process_every_frame: the ordered queue stayed full (node deactivated meanwhile)
    "inference_error",  # the runtime raised (out of memory, ...)
    "publish_error",    # building or publishing an output failed
    "inactive",         # arrived while the node was being deactivated
)


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._t: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._t.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._t and now - self._t[0] > self.window_s:
            self._t.popleft()

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._t) < 2:
            return 0.0
        span = max(now - self._t[0], 1e-9)
        return (len(self._t) - 1) / span if now - self._t[-1] < self.window_s else 0.0


class CameraStats:
    """Counters of one camera. ``now`` arguments are ``time.monotonic()`` seconds."""

    def __init__(self, name: str, latency_window: int = 1000, rate_window_s: float = 5.0):
        self.name = name
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self.drops: Counter[str] = Counter()
        self.last_input: float | None = None
        self.last_error = ""
        self.max_batch = 0
        self._in_rate = RateMeter(rate_window_s)
        self._out_rate = RateMeter(rate_window_s)
        self._latency_ms: deque[float] = deque(maxlen=latency_window)
        self._infer_ms: deque[float] = deque(maxlen=latency_window)
        self._publish_ms: deque[float] = deque(maxlen=latency_window)
        self._overhead_ms: deque[float] = deque(maxlen=latency_window)  # per frame: latency - inference

    def received(self, now: float) -> None:
        with self._lock:
            self.frames_in += 1
            self.last_input = now
            self._in_rate.tick(now)

    def dropped(self, reason: str, error: str = "", count: int = 1) -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        with self._lock:
            self.drops[reason] += count
            if error:
                self.last_error = f"{reason}: {error}"

    def answered(self, now: float, latency_s: float, infer_s: float, batch: int, publish_s: float = 0.0) -> None:
        """A frame's outputs went out: ``latency_s`` callback -> last publish, ``infer_s`` its batch's inference,
        ``publish_s`` building and publishing its messages."""
        with self._lock:
            self.frames_out += 1
            self._out_rate.tick(now)
            self._latency_ms.append(1000.0 * latency_s)
            self._infer_ms.append(1000.0 * infer_s)
            self._publish_ms.append(1000.0 * publish_s)
            self._overhead_ms.append(1000.0 * (latency_s - infer_s))
            self.max_batch = max(self.max_batch, batch)

    def snapshot(self, now: float) -> dict[str, float | int | str]:
        """All figures as a flat dict (values are what /diagnostics publishes)."""
        with self._lock:
            lat = np.asarray(self._latency_ms, dtype=np.float64)
            inf = np.asarray(self._infer_ms, dtype=np.float64)
            pub = np.asarray(self._publish_ms, dtype=np.float64)
            ovh = np.asarray(self._overhead_ms, dtype=np.float64)
            snap: dict[str, float | int | str] = {
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "input_rate_hz": self._in_rate.rate(now),
                "output_rate_hz": self._out_rate.rate(now),
                "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
                "inference_p50_ms": float(np.percentile(inf, 50)) if inf.size else float("nan"),
                "publish_p50_ms": float(np.percentile(pub, 50)) if pub.size else float("nan"),
                "node_overhead_p50_ms": float(np.percentile(ovh, 50)) if ovh.size else float("nan"),
                "max_batch": self.max_batch,
                "dropped_total": sum(self.drops.values()),
                "seconds_since_last_image": (now - self.last_input) if self.last_input is not None else float("inf"),
                "last_error": self.last_error,
            }
            for r in DROP_REASONS:
                snap[f"dropped.{r}"] = self.drops.get(r, 0)
            return snap


def _fmt(v: float | int | str) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def camera_status(node_name: str, camera: str, snap: dict[str, float | int | str], no_image_warn_s: float,
                  extra: dict[str, str] | None = None, anchor: object | None = None) -> DiagnosticStatus:
    """DiagnosticStatus of one camera (``camera``: its resolved namespace, e.g. /robot/front; the status's
    hardware_id): WARN when no image arrived for ``no_image_warn_s`` seconds. ``anchor``: the camera's
    ``mtlsi_core.anchoring.FloorAnchor`` (floor_anchoring): its ``anchor.*`` values (status, scale, support pixels,
    mount), and WARN while it cannot anchor (no camera_info, failures)."""
    st = DiagnosticStatus()
    st.name = f"{node_name}: camera {camera}"
    st.hardware_id = camera
    idle = float(snap["seconds_since_last_image"])
    if idle > no_image_warn_s:
        st.level = DiagnosticStatus.WARN
        st.message = ("no image received yet" if idle == float("inf")
                      else f"no image for {idle:.1f} s")
    elif int(snap["dropped_total"]) and snap["last_error"]:
        st.level = DiagnosticStatus.OK
        st.message = f"running; last drop {snap['last_error']}"
    else:
        st.level = DiagnosticStatus.OK
        st.message = "running"
    st.values = [KeyValue(key=k, value=_fmt(v)) for k, v in snap.items()]
    st.values += [KeyValue(key=k, value=v) for k, v in (extra or {}).items()]
    if anchor is not None:
        state = anchor.state
        st.values += [KeyValue(key=k, value=v) for k, v in state.values().items()]
        st.values.append(KeyValue(key="anchor.mount", value=anchor.plane.mount().describe()))
        if state.status in ANCHOR_WARN and st.level == DiagnosticStatus.OK:
            st.level = DiagnosticStatus.WARN
            st.message = f"floor anchoring: {ANCHOR_WARN[state.status]}"
    return st


# floor anchor states that make a camera's status WARN (the anchor cannot work)
ANCHOR_WARN = {"no_intrinsics": "no camera_info with intrinsics, depth not anchored",
               "error": "failed (see the log), depth not anchored"}


def runtime_values(runtime: object | None, model_path: object) -> dict[str, str]:
    """The runtime's key/values for /diagnostics: backend, device, precision, model, and which backend was asked
    for (``backend.requested``: auto or explicit) and why this one runs (``backend.reason``)."""
    if runtime is None:
        return {"model": str(model_path)}
    info = runtime.info
    values = {"backend": info.backend, "device": info.device, "precision": info.precision, "model": str(model_path)}
    sel = getattr(runtime, "selection", None)
    if sel is not None:
        values["backend.requested"] = sel.requested
        values["backend.reason"] = sel.reason
    runs = info.options.get("model") or info.options.get("engine")
    if runs:
        values["backend.model_file"] = str(runs)
    return values


def status_values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


class ThrottledLogger:
    """Log at most once per ``period_s`` per key; the next message says how many were suppressed."""

    def __init__(self, log: Callable[[str], None], period_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._log = log
        self.period_s = period_s
        self._clock = clock
        self._last: dict[object, float] = {}
        self._suppressed: Counter[object] = Counter()
        self._lock = threading.Lock()

    def __call__(self, key: object, message: str) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._suppressed[key] += 1
                return False
            self._last[key] = now
            n = self._suppressed.pop(key, 0)
        self._log(message + (f" ({n} similar messages suppressed)" if n else ""))
        return True


__all__ = ["ANCHOR_WARN", "DROP_REASONS", "CameraStats", "RateMeter", "ThrottledLogger", "camera_status",
           "runtime_values", "status_values"]
