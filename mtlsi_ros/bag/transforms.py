"""Camera poses on ``/tf`` (tf2_msgs/msg/TFMessage) in bags: written by ``mtlsi-bag make`` for sequences, looked up
by stamp for ``map`` and ``eval``.

The Python package ``tf2_msgs`` is not among the ROS wheels here, so TFMessage is (de)serialised with the rosbags
typestore (``msgtypes.typestore``), which also gives the connection's definition; the CDR bytes are the same.

A pose is ``T_parent_child`` (4x4): the child frame's axes and origin in the parent frame (geometry_msgs/Transform:
translation = the child's origin, rotation = the quaternion (x, y, z, w) of the rotation matrix whose columns are the
child's axes), so ``p_parent = T @ p_child``. ``PoseTable`` looks up ``parent -> child`` at a stamp: the transform
with that exact stamp, else the spherical-linear interpolation of the two around it (within ``max_gap_ns``), else an
error naming the transform and the stamp. Only direct ``parent -> child`` transforms are used (no chains).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.msgtypes import TF, typestore
from mtlsi_ros.bag.storage import BagReader

TF_TOPIC = "/tf"
DEFAULT_MAP_FRAME = "map"
MAX_GAP_NS = 200_000_000  # interpolate between poses at most this far apart (0.2 s)


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion (x, y, z, w), w >= 0."""
    R = np.asarray(R, np.float64)
    t = np.trace(R)
    if t > 0:
        s = 2.0 * np.sqrt(t + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def quaternion_to_rotation(q: np.ndarray) -> np.ndarray:
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def tf_message_cdr(stamp_ns: int, parent: str, child: str, T: np.ndarray) -> bytes:
    """CDR bytes of a TFMessage holding one TransformStamped ``parent -> child`` = ``T`` at ``stamp_ns``."""
    store = typestore()
    ty = store.types
    q = rotation_to_quaternion(T[:3, :3])
    t = np.asarray(T, np.float64)[:3, 3]
    ts = ty["geometry_msgs/msg/TransformStamped"](
        header=ty["std_msgs/msg/Header"](stamp=ty["builtin_interfaces/msg/Time"](
            sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)), frame_id=parent),
        child_frame_id=child,
        transform=ty["geometry_msgs/msg/Transform"](
            translation=ty["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2])),
            rotation=ty["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))))
    return bytes(store.serialize_cdr(ty[TF](transforms=[ts]), TF))


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    th = np.arccos(d)
    return (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)


@dataclass
class PoseTable:
    """Transforms ``parent -> child`` of a bag's /tf by stamp (module docstring)."""

    source: str
    stamps: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    poses: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)  # (t, q)

    def add(self, parent: str, child: str, stamp: int, t: np.ndarray, q: np.ndarray) -> None:
        key = (parent.lstrip("/"), child.lstrip("/"))
        st, ps = self.stamps.setdefault(key, []), self.poses.setdefault(key, [])
        i = bisect.bisect_left(st, stamp)
        if i < len(st) and st[i] == stamp:
            ps[i] = (t, q)
            return
        st.insert(i, stamp)
        ps.insert(i, (t, q))

    def describe(self) -> str:
        if not self.stamps:
            return "it holds no transform"
        return "it has " + ", ".join(f"{p} -> {c} ({len(s)} stamps)" for (p, c), s in sorted(self.stamps.items()))

    def lookup(self, parent: str, child: str, stamp: int, where: str = "", max_gap_ns: int = MAX_GAP_NS) -> np.ndarray:
        """T_parent_child at ``stamp`` (ns); BagError naming the transform (and ``where``) when there is none."""
        key = (parent.lstrip("/"), child.lstrip("/"))
        at = f" ({where})" if where else ""
        if key not in self.stamps:
            raise BagError(f"{self.source}: {TF_TOPIC} has no transform {key[0]} -> {key[1]}{at}; {self.describe()}")
        st, ps = self.stamps[key], self.poses[key]
        i = bisect.bisect_left(st, stamp)
        if i < len(st) and st[i] == stamp:
            t, q = ps[i]
        elif 0 < i < len(st) and st[i] - st[i - 1] <= max_gap_ns:
            a = (stamp - st[i - 1]) / (st[i] - st[i - 1])
            (t0, q0), (t1, q1) = ps[i - 1], ps[i]
            t, q = (1 - a) * t0 + a * t1, _slerp(q0, q1, a)
        else:
            raise BagError(f"{self.source}: {TF_TOPIC} has no transform {key[0]} -> {key[1]} at stamp {stamp} ns{at} "
                           f"(its stamps run from {st[0]} to {st[-1]} ns, {len(st)} of them)")
        T = np.eye(4)
        T[:3, :3] = quaternion_to_rotation(q)
        T[:3, 3] = t
        return T


def read_pose_table(bag: BagReader, topic: str = TF_TOPIC) -> PoseTable:
    """Every transform on ``topic`` of ``bag``; BagError if the bag has no such topic (naming it and the bag's
    topics) or a message does not decode."""
    bag.require_topic(topic, (TF,), what="pose")
    store = typestore()
    table = PoseTable(str(bag.path))
    for raw in bag.messages([topic]):
        try:
            msg: Any = store.deserialize_cdr(raw.data, raw.msgtype)
        except Exception as e:
            raise BagError(f"{bag.path}: {topic} message {raw.index}: cannot deserialise it as {TF} "
                           f"({' '.join(str(e).split())})") from None
        for ts in msg.transforms:
            st = int(ts.header.stamp.sec) * 1_000_000_000 + int(ts.header.stamp.nanosec)
            tr, ro = ts.transform.translation, ts.transform.rotation
            q = np.array([ro.x, ro.y, ro.z, ro.w], np.float64)
            if not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-6:
                raise BagError(f"{bag.path}: {topic} message {raw.index}: transform {ts.header.frame_id} -> "
                               f"{ts.child_frame_id} has an invalid rotation {q.tolist()}")
            table.add(ts.header.frame_id, ts.child_frame_id, st, np.array([tr.x, tr.y, tr.z], np.float64),
                      q / np.linalg.norm(q))
    if not table.stamps:
        raise BagError(f"{bag.path}: pose topic {topic} has no transforms")
    return table


__all__ = ["DEFAULT_MAP_FRAME", "PoseTable", "TF_TOPIC", "quaternion_to_rotation", "read_pose_table",
           "rotation_to_quaternion", "tf_message_cdr"]
