"""Live mapping: a perception node's outputs into a semantic TSDF as they arrive (``LiveMapNode``).

``LiveMapNode`` subscribes to a perception node's ``<ns>/depth`` and ``<ns>/segmentation`` (raw CDR:
the callback reads the header stamp from the bytes, pairs the two images by it and hands the pair to a
``mtlsi_core.mapping.live.LiveMapper``, whose thread decodes, places and integrates it; the callbacks never wait
for the map) and ``<ns>/output/camera_info``; poses from ``/tf`` + ``/tf_static`` (needs the ``tf2_msgs`` Python
package; it is not installed here) or from a ``PoseTable`` given (the input bag's, when a bag is played to the node):

    mapper = LiveMapNode("/camera", context=ctx, poses=read_pose_table(bag), policy="latest")
    ...                                   # frames arrive and are mapped; mapper.stats(): counts, drops, rate
    result = mapper.extract(); mapper.close()

Frames are decoded as ``mtlsi-bag map`` decodes them (``frames.decode_image``), the camera matrix is the newest
camera_info at or before the frame's stamp (scaled to the image, ``posed.InfoTable``), the pose ``map ->
header.frame_id`` at the stamp along the frame tree (``transforms.PoseTable``): the live map of a bag played in full
equals ``mtlsi-bag map``'s. A frame whose pose or camera_info has not arrived yet is retried until ``pose_wait`` s
after it arrived. Open3D's integration holds the GIL (about 5-20 ms a frame at 240x320), so a callback may start
that much later; it is not blocked by the map otherwise.
"""
from __future__ import annotations

import struct
import threading
import time
from collections import OrderedDict
from itertools import count
from typing import Any

import numpy as np

from mtlsi_core.mapping.live import LiveMapper, NotReady
from mtlsi_core.mapping.tsdf import MapResult, TSDFOptions
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.frames import PAIR_WINDOW, decode_image, topic_namespace
from mtlsi_ros.bag.live import SpinThread
from mtlsi_ros.bag.msgtypes import TF, message_class, typestore
from mtlsi_ros.bag.posed import InfoTable
from mtlsi_ros.bag.transforms import DEFAULT_MAP_FRAME, TF_STATIC_TOPIC, TF_TOPIC, PoseTable

_NAMES = count()


def cdr_stamp(data: bytes) -> int:
    """The header stamp (ns) of a serialised message whose first field is a std_msgs/Header (sensor_msgs/Image ...):
    after the 4-byte CDR encapsulation, int32 sec and uint32 nanosec in the encoding's byte order."""
    if len(data) < 12 or data[0] != 0 or data[1] not in (0, 1):
        raise BagError(f"not a CDR message with a header ({len(data)} bytes, encapsulation {bytes(data[:2]).hex()})")
    sec, nsec = struct.unpack_from("<iI" if data[1] == 1 else ">iI", data, 4)
    return sec * 1_000_000_000 + nsec


class LiveMapNode(SpinThread):
    """Maps the depth and segmentation of ``namespace`` (a perception node's outputs) as they arrive (module
    docstring). ``poses``: a ``PoseTable`` to look the poses up in, else /tf and /tf_static are subscribed to.
    ``policy`` / ``capacity``: the mapper's queue (``mtlsi_core.mapping.live``); ``reliable``: the QoS of the image
    and camera_info subscriptions (the node publishes reliable); ``depth``: their history depth."""

    def __init__(self, namespace: str = "/camera", *, context: Any = None, poses: PoseTable | None = None,
                 info_topic: str | None = None, map_frame: str = DEFAULT_MAP_FRAME,
                 options: TSDFOptions = TSDFOptions(), policy: str = "latest", capacity: int | None = None,
                 reliable: bool = True, depth: int = 10, pose_wait: float = 0.5, tf_topic: str = TF_TOPIC,
                 node_name: str | None = None):
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        ns = topic_namespace(namespace)
        self.depth_topic, self.seg_topic = f"{ns}/depth", f"{ns}/segmentation"
        self.info_topic = info_topic or f"{ns}/output/camera_info"
        self.map_frame, self.context = map_frame, context
        self._Image = Image
        tf_cls = None
        if poses is None:
            try:
                tf_cls = message_class(TF)
            except BagError:
                raise BagError(f"live map: no poses: subscribing to {tf_topic} needs the Python package tf2_msgs, "
                               f"which is not installed here; give the poses as a PoseTable (read_pose_table of "
                               f"the bag played to the node)") from None
            self.poses = PoseTable(tf_topic)
        else:
            self.poses = poses
        self.info = InfoTable(None, self.info_topic, limit=1000)
        self._lock = threading.Lock()  # poses, camera_info and pairing: callbacks write, the mapper reads
        self._pairs: OrderedDict[int, dict[str, bytes]] = OrderedDict()
        self.messages = {"depth": 0, "segmentation": 0, "camera_info": 0, "tf": 0}
        self.unpaired = 0  # an image whose partner did not come within PAIR_WINDOW newer stamps
        self.errors: list[str] = []
        self.mapper = LiveMapper(options, policy=policy, capacity=capacity, prepare=self._prepare,
                                 ready_wait=pose_wait)
        self.node = Node(node_name or f"mtlsi_live_map_{next(_NAMES)}", context=context)
        rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel)
        self.node.create_subscription(Image, self.depth_topic, lambda d: self._on_image("depth", d), qos, raw=True)
        self.node.create_subscription(Image, self.seg_topic, lambda d: self._on_image("segmentation", d), qos,
                                      raw=True)
        self.node.create_subscription(CameraInfo, self.info_topic, self._on_info, qos)
        if tf_cls is not None:
            self.node.create_subscription(tf_cls, tf_topic, lambda d: self._on_tf(d, False),
                                          QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100), raw=True)
            self.node.create_subscription(tf_cls, TF_STATIC_TOPIC, lambda d: self._on_tf(d, True),
                                          QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                                                     durability=DurabilityPolicy.TRANSIENT_LOCAL), raw=True)
        self._start_spinning("live_map_spin")

    # callbacks (executor thread): cheap, never wait for the map
    def _on_image(self, kind: str, data: bytes) -> None:
        try:
            stamp = cdr_stamp(data)
        except BagError as e:
            self._error(f"{kind}: {e}")
            return
        with self._lock:
            self.messages[kind] += 1
            frame = self._pairs.setdefault(stamp, {})
            frame[kind] = data
            if len(frame) < 2:
                while len(self._pairs) > PAIR_WINDOW:
                    self._pairs.popitem(last=False)
                    self.unpaired += 1
                return
            del self._pairs[stamp]
        self.mapper.submit((stamp, frame["depth"], frame["segmentation"]))

    def _on_info(self, msg: Any) -> None:
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        try:
            with self._lock:
                self.messages["camera_info"] += 1
                self.info.add(stamp, msg.k, (int(msg.height), int(msg.width)), f"{self.info_topic} at {stamp} ns")
        except BagError as e:
            self._error(str(e))

    def _on_tf(self, data: bytes, static: bool) -> None:
        try:
            msg: Any = typestore().deserialize_cdr(data, TF)
            with self._lock:
                self.messages["tf"] += 1
                for ts in msg.transforms:
                    tr, ro = ts.transform.translation, ts.transform.rotation
                    q = np.array([ro.x, ro.y, ro.z, ro.w], np.float64)
                    t = np.array([tr.x, tr.y, tr.z], np.float64)
                    if not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-6 or not np.all(np.isfinite(t)):
                        raise BagError(f"transform {ts.header.frame_id} -> {ts.child_frame_id} is invalid")
                    if static:
                        self.poses.add_static(ts.header.frame_id, ts.child_frame_id, t, q / np.linalg.norm(q))
                    else:
                        st = int(ts.header.stamp.sec) * 1_000_000_000 + int(ts.header.stamp.nanosec)
                        self.poses.add(ts.header.frame_id, ts.child_frame_id, st, t, q / np.linalg.norm(q))
        except Exception as e:
            self._error(f"{TF_STATIC_TOPIC if static else TF_TOPIC}: {type(e).__name__}: {e}")

    # the mapper's thread
    def _prepare(self, item: tuple[int, bytes, bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        from rclpy.serialization import deserialize_message

        stamp, depth_data, seg_data = item
        where = f"frame of {self.depth_topic} stamped {stamp} ns"
        dmsg = deserialize_message(depth_data, self._Image)
        smsg = deserialize_message(seg_data, self._Image)
        try:
            depth = decode_image("depth", dmsg, f"{self.depth_topic} at {stamp} ns", "pred")
            labels = decode_image("semseg", smsg, f"{self.seg_topic} at {stamp} ns", "pred")
        except BagError as e:
            raise ValueError(str(e)) from None
        if depth.shape[:2] != labels.shape[:2]:
            raise ValueError(f"at stamp {stamp} ns {self.depth_topic} is {depth.shape[0]}x{depth.shape[1]} but "
                             f"{self.seg_topic} is {labels.shape[0]}x{labels.shape[1]}: depth and labels must be "
                             f"the same size")
        try:
            with self._lock:
                K = self.info.lookup(stamp, depth.shape[:2], where)
                T = self.poses.lookup(self.map_frame, dmsg.header.frame_id, stamp, where)
        except BagError as e:
            raise NotReady(str(e)) from None
        return depth, labels, K, T

    def wait_for_frames(self, frames: int, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until ``frames`` depth + segmentation pairs arrived and the mapper is idle; returns ``stats()``;
        TimeoutError with the stats otherwise."""
        deadline = time.monotonic() + timeout
        while self.mapper.queue.put_count < frames:
            if time.monotonic() > deadline:
                raise TimeoutError(f"live map: {frames} frames not received within {timeout} s: {self.stats()}")
            time.sleep(0.02)
        if not self.mapper.wait_idle(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"live map: frames still in work after {timeout} s: {self.stats()}")
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """The mapper's counts and rates (``LiveMapper.stats``) with the messages received and the unpaired."""
        with self._lock:
            extra = {"messages": dict(self.messages), "unpaired": self.unpaired, "node_errors": list(self.errors)}
        return {**self.mapper.stats(), **extra}

    def extract(self) -> MapResult:
        return self.mapper.extract()

    def close(self, drain: bool = True) -> None:
        """Stop listening; integrate the frames that wait (``drain``) or discard them."""
        self._stop_spinning(join_s=10.0)
        self.mapper.close(drain=drain)

    def __enter__(self) -> "LiveMapNode":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["LiveMapNode", "cdr_stamp"]
