"""A small rclpy client of the perception node: publish frames, collect the outputs, drive the lifecycle.

Used by the node tests, ``benchmarks/bench_node.py`` and the demo::

    client = PerceptionClient(namespace="/robot", cameras=[""])
    client.wait_for_node()                      # the node subscribes to our images and we to its outputs
    header = client.publish(rgb, k=K)           # rgb: (H, W, 3) uint8; K: 3x3 intrinsics (optional)
    outs = client.wait_for(header)              # {topic: Received(msg, t_received)} for every output topic
    depth = image_to_numpy(outs["depth"].msg)   # (H, W) float32 metres, NaN = invalid
    info = outs["output/camera_info"].msg       # camera_info scaled to the outputs, same header

    life = LifecycleClient(client.node, "/robot/perception")
    life.change_state("deactivate"); life.set_parameters({"output_resolution": "network"})

The client spins its own executor in a background thread; every method is safe to call from the caller's
thread. Topics are relative to ``namespace`` + camera, as the node publishes them. Stamps are keyed in integer
nanoseconds.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from mtlsi_core.tasks import get_dataset, get_task
from mtlsi_ros.conversions import make_camera_info, numpy_to_image, rgb_to_compressed
from mtlsi_ros.publishing import CAMERA_INFO_TOPIC

_RGB_TO = {  # how publish() writes an RGB array in each input encoding
    "rgb8": lambda a: a,
    "bgr8": lambda a: a[..., ::-1],
    "rgba8": lambda a: np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=-1),
    "bgra8": lambda a: np.concatenate([a[..., ::-1], np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=-1),
    "mono8": lambda a: a.mean(axis=-1).round().astype(np.uint8),
}
_NAMES = itertools.count()


def default_topics(dataset: str = "nyud", color: bool = True, camera_info: bool = True) -> list[str]:
    """The node's output topics (relative to a camera namespace) for a dataset's tasks, from the registry."""
    topics = []
    for t in get_dataset(dataset).tasks:
        ros = get_task(t).ros
        topics.append(ros.topic)
        if color and ros.color_topic:
            topics.append(ros.color_topic)
    return topics + ([CAMERA_INFO_TOPIC] if camera_info else [])


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def _join(*parts: str) -> str:
    out = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    return ("/" + out) if parts and parts[0].startswith("/") else out


@dataclass
class Received:
    msg: Any
    t: float  # time.monotonic() when the callback got it


class PerceptionClient:
    """Publishes frames on camera topics of the node and collects its outputs keyed by (camera, topic, stamp).

    namespace          the node's namespace (its inputs and outputs are ``<namespace>/<camera>/...``)
    cameras            camera namespaces relative to ``namespace`` ('' = the namespace itself)
    topics             output topics to collect, relative to a camera (default ``default_topics()``); the node
                       only computes what somebody subscribes to, so collect only what you need
    compressed         publish sensor_msgs/CompressedImage on ``image/compressed`` instead of raw images
    context            rclpy context (default: the global one; ``rclpy.init`` must have run)
    input_reliability  QoS of the image publishers ('reliable' or 'best_effort'), ``input_depth`` their history
    output_depth       history depth of the output subscriptions (reliable)
    """

    def __init__(self, namespace: str = "", cameras: Sequence[str] = ("",), topics: Iterable[str] | None = None,
                 compressed: bool = False, context: Context | None = None, node_name: str | None = None,
                 input_reliability: str = "reliable", input_depth: int = 10, output_depth: int = 50,
                 log_size: int = 100_000):
        self.namespace = namespace if namespace.startswith("/") or not namespace else "/" + namespace
        self.cameras = [c.strip("/") for c in cameras]
        self.topics = list(topics) if topics is not None else default_topics()
        self.compressed = compressed
        self.context = context
        self.node = Node(node_name or f"perception_client_{next(_NAMES)}", context=context)
        in_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=input_depth, durability=DurabilityPolicy.VOLATILE,
                            reliability=(ReliabilityPolicy.RELIABLE if input_reliability == "reliable"
                                         else ReliabilityPolicy.BEST_EFFORT))
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=output_depth,
                             reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self._cond = threading.Condition()
        self._store: dict[tuple[str, str, int], Received] = {}
        self.log: deque[tuple[str, str, int, float]] = deque(maxlen=log_size)  # (camera, topic, stamp_ns, t)
        self.published: dict[tuple[str, int], float] = {}  # (camera, stamp_ns) -> time.monotonic() at publish
        self.diagnostics: dict[str, dict[str, str]] = {}  # hardware_id (camera namespace) -> latest values
        self._pub_img, self._pub_info, self._subs = {}, {}, []
        for cam in self.cameras:
            base = _join(self.namespace, cam)
            self._pub_img[cam] = self.node.create_publisher(
                CompressedImage if compressed else Image,
                _join(base, "image/compressed" if compressed else "image"), in_qos)
            self._pub_info[cam] = self.node.create_publisher(CameraInfo, _join(base, "camera_info"), in_qos)
            for topic in self.topics:
                mtype = CameraInfo if topic.endswith("camera_info") else Image
                self._subs.append(self.node.create_subscription(
                    mtype, _join(base, topic), self._make_cb(cam, topic), out_qos))
        self._subs.append(self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10))
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="perception_client", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------- plumbing

    def _spin(self) -> None:
        while self._running and self.context_ok():
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutdown races
                if not self._running:
                    break

    def context_ok(self) -> bool:
        return rclpy.ok(context=self.context)

    def _make_cb(self, camera: str, topic: str) -> Callable[[Any], None]:
        def cb(msg: Any) -> None:
            t = time.monotonic()
            key = (camera, topic, stamp_to_ns(msg.header.stamp))
            with self._cond:
                self._store[key] = Received(msg, t)
                self.log.append((camera, topic, key[2], t))
                self._cond.notify_all()
        return cb

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._cond:
            for st in msg.status:
                vals = {kv.key: kv.value for kv in st.values}
                vals["level"] = str(int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else st.level)
                vals["message"] = st.message
                vals["name"] = st.name
                self.diagnostics[st.hardware_id] = vals
            self._cond.notify_all()

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()

    def __enter__(self) -> "PerceptionClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------- publishing

    def make_header(self, stamp_ns: int | None = None, frame_id: str = "camera_optical_frame") -> Header:
        if stamp_ns is None:
            stamp_ns = self.node.get_clock().now().nanoseconds
        return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)

    def publish(self, rgb: np.ndarray, camera: str = "", stamp_ns: int | None = None, encoding: str = "rgb8",
                frame_id: str = "camera_optical_frame", k: Sequence[float] | np.ndarray | None = None,
                compressed_format: str = "jpeg") -> Header:
        """Publish an (H, W, 3) uint8 RGB frame (as ``encoding``, or compressed if the client is) and, with ``k``,
        a CameraInfo with the same header just before it. Returns the header (keys ``wait_for``)."""
        header = self.make_header(stamp_ns, frame_id)
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if k is not None:
            self._pub_info[camera].publish(make_camera_info(k, rgb.shape[:2], header))
        if self.compressed:
            msg = rgb_to_compressed(rgb, header, compressed_format)
        else:
            if encoding not in _RGB_TO:
                raise ValueError(f"encoding must be one of {', '.join(_RGB_TO)}, got {encoding!r}")
            msg = numpy_to_image(np.ascontiguousarray(_RGB_TO[encoding](rgb)), encoding, header)
        self.publish_msg(msg, camera)
        return header

    def publish_msg(self, msg: Image | CompressedImage | CameraInfo, camera: str = "") -> None:
        """Publish a ready-made message (e.g. a malformed one) on the camera's image or camera_info topic."""
        if isinstance(msg, CameraInfo):
            self._pub_info[camera].publish(msg)
            return
        with self._cond:
            self.published[(camera, stamp_to_ns(msg.header.stamp))] = time.monotonic()
        self._pub_img[camera].publish(msg)

    # ---------------------------------------------------------------------------------------- waiting

    def wait_for_node(self, timeout: float = 30.0, camera_info: bool = False) -> None:
        """Wait until the node subscribes to every camera's images (and, with ``camera_info``, to their camera_info)
        and publishes every collected output topic."""
        def ready() -> bool:
            return (all(p.get_subscription_count() > 0 for p in self._pub_img.values())
                    and (not camera_info or all(p.get_subscription_count() > 0 for p in self._pub_info.values()))
                    and all(s.get_publisher_count() > 0 for s in self._subs if s.topic_name != "/diagnostics"))
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                missing = [s.topic_name for s in self._subs if s.get_publisher_count() == 0]
                pubs = list(self._pub_img.values()) + (list(self._pub_info.values()) if camera_info else [])
                missing += [p.topic_name for p in pubs if p.get_subscription_count() == 0]
                raise TimeoutError(f"perception node not connected after {timeout} s; unmatched: {missing}")
            time.sleep(0.05)

    def wait_until_answering(self, timeout: float = 60.0, size: tuple[int, int] = (64, 64),
                             interval: float = 1.0) -> int:
        """Publish probe frames (grey, with camera_info, stamps of a few nanoseconds) on every camera, one each
        ``interval`` seconds, until one comes back on every collected topic; returns the probes sent. Needed before
        the first frame that must be answered: ``wait_for_node`` sees only this client's side of discovery, and the
        node drops a frame as ``no_subscribers`` (or leaves out a topic) while its publishers have not yet matched
        this client's subscriptions. The probes' outputs are removed from the store and the log afterwards."""
        h, w = size
        k = [float(w), 0.0, (w - 1) / 2.0, 0.0, float(w), (h - 1) / 2.0, 0.0, 0.0, 1.0]
        grey = np.full((h, w, 3), 128, np.uint8)
        deadline = time.monotonic() + timeout
        sent: list[tuple[str, int]] = []
        try:
            for cam in self.cameras:
                while True:
                    stamp = len(sent) + 1
                    sent.append((cam, stamp))
                    self.publish(grey, cam, stamp_ns=stamp, k=k)
                    try:
                        self.wait_for(stamp, cam, timeout=max(0.0, min(interval, deadline - time.monotonic())))
                        break
                    except TimeoutError:
                        if time.monotonic() >= deadline:
                            raise TimeoutError(f"the perception node did not answer a probe frame on camera {cam!r} "
                                               f"within {timeout} s") from None
        finally:
            probes = set(sent)
            with self._cond:
                for key in [key for key in self._store if (key[0], key[2]) in probes]:
                    del self._store[key]
                kept = [e for e in self.log if (e[0], e[2]) not in probes]
                self.log.clear()
                self.log.extend(kept)
                for key in probes:
                    self.published.pop(key, None)
        return len(sent)

    def wait_for(self, header: Header | int, camera: str = "", topics: Iterable[str] | None = None,
                 timeout: float = 10.0, pop: bool = True) -> dict[str, Received]:
        """Outputs of one frame (by header or stamp in ns) on ``topics`` (default: all collected topics).

        Raises TimeoutError naming the missing topics. ``pop`` removes them from the store (saves memory)."""
        ns = header if isinstance(header, int) else stamp_to_ns(header.stamp)
        want = list(topics) if topics is not None else self.topics
        keys = [(camera, t, ns) for t in want]
        with self._cond:
            ok = self._cond.wait_for(lambda: all(k in self._store for k in keys), timeout=timeout)
            if not ok:
                missing = [k[1] for k in keys if k not in self._store]
                raise TimeoutError(f"camera {camera!r} stamp {ns}: no {missing} within {timeout} s")
            return {k[1]: (self._store.pop(k) if pop else self._store[k]) for k in keys}

    def get(self, header: Header | int, camera: str = "", topic: str = "segmentation") -> Received | None:
        ns = header if isinstance(header, int) else stamp_to_ns(header.stamp)
        with self._cond:
            return self._store.get((camera, topic, ns))

    def answered(self, camera: str = "", topic: str | None = None) -> list[int]:
        """Stamps (ns) answered on ``topic`` (default: the first collected topic), in arrival order."""
        topic = topic or self.topics[0]
        with self._cond:
            return [s for c, t, s, _ in self.log if c == camera and t == topic]

    def clear(self) -> None:
        with self._cond:
            self._store.clear()
            self.log.clear()
            self.published.clear()

    def wait_diagnostics(self, predicate: Callable[[dict[str, str]], bool], camera: str = "",
                         timeout: float = 10.0) -> dict[str, str]:
        """Wait for the /diagnostics status of ``camera`` (hardware_id = the camera's namespace) satisfying
        ``predicate``; values are strings, plus ``level`` ('0' OK, '1' WARN, '2' ERROR), ``message``, ``name``."""
        hw = _join(self.namespace or "/", camera) or "/"
        with self._cond:
            ok = self._cond.wait_for(lambda: hw in self.diagnostics and predicate(self.diagnostics[hw]),
                                     timeout=timeout)
            if not ok:
                raise TimeoutError(f"no matching diagnostics for camera {camera!r} within {timeout} s; "
                                   f"last: {self.diagnostics.get(hw)}")
            return dict(self.diagnostics[hw])


class LifecycleClient:
    """Drive a lifecycle node through its services (``<node>/change_state``, ``get_state``, ``set_parameters``)."""

    def __init__(self, node: Node, target: str):
        self.node = node
        self.target = target.rstrip("/")
        self._change = node.create_client(ChangeState, f"{self.target}/change_state")
        self._get = node.create_client(GetState, f"{self.target}/get_state")
        self._set = node.create_client(SetParameters, f"{self.target}/set_parameters")

    def _call(self, client: Any, request: Any, timeout: float) -> Any:
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available within {timeout} s")
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"service {client.srv_name} did not answer within {timeout} s")
        return future.result()

    def get_state(self, timeout: float = 10.0) -> str:
        return self._call(self._get, GetState.Request(), timeout).current_state.label

    def change_state(self, transition: str, timeout: float = 120.0) -> bool:
        """``transition``: configure, cleanup, activate, deactivate, shutdown (from any primary state). Returns the
        service's success."""
        ids = {"configure": Transition.TRANSITION_CONFIGURE, "cleanup": Transition.TRANSITION_CLEANUP,
               "activate": Transition.TRANSITION_ACTIVATE, "deactivate": Transition.TRANSITION_DEACTIVATE}
        req = ChangeState.Request()
        if transition == "shutdown":  # one transition per primary state: let the node pick it by label
            req.transition.label = "shutdown"
        elif transition in ids:
            req.transition.id = ids[transition]
        else:
            raise ValueError(f"transition must be one of {', '.join(ids)}, shutdown")
        return bool(self._call(self._change, req, timeout).success)

    def set_parameters(self, values: dict[str, Any], timeout: float = 10.0) -> list[bool]:
        req = SetParameters.Request()
        req.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        return [r.successful for r in self._call(self._set, req, timeout).results]


__all__ = ["LifecycleClient", "PerceptionClient", "Received", "default_topics", "ns_to_stamp", "stamp_to_ns"]
