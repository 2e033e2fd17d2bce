"""Camera poses on ``/tf`` and ``/tf_static`` (tf2_msgs/msg/TFMessage) in bags: written by ``mtlsi-bag make`` for
sequences, looked up by stamp for ``map`` and ``eval``.

The Python package ``tf2_msgs`` is not among the ROS wheels here, so TFMessage is (de)serialised with the rosbags
typestore (``msgtypes.typestore``), which also gives the connection's definition; the CDR bytes are the same.

A pose is ``T_parent_child`` (4x4): the child frame's axes and origin in the parent frame (geometry_msgs/Transform:
translation = the child's origin, rotation = the quaternion (x, y, z, w) of the rotation matrix whose columns are the
child's axes), so ``p_parent = T @ p_child``. ``PoseTable`` holds the frame tree as tf2 does (each frame has at
most one parent; the edges of ``/tf_static`` hold at every stamp) and looks up ``parent -> child`` at a stamp along
the tree, through their nearest common ancestor (``map -> odom -> base_link -> camera_link -> camera_optical_frame``
as a robot's bag has it, or the inverse direction): every dynamic edge at that exact stamp, else the
interpolation of the two around it (within ``max_gap_ns``: translation linear, rotation spherical-linear), else an
error naming the edge, the stamp and the lookup it serves. Quaternions, rotation matrices and the spherical-linear
interpolation are ``scipy.spatial.transform``'s ``Rotation`` and ``Slerp``. Frames without a chain between them are
an error naming both and the tree.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.msgtypes import TF, typestore
from mtlsi_ros.bag.storage import BagReader

TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
DEFAULT_MAP_FRAME = "map"
MAX_GAP_NS = 200_000_000  # interpolate between poses at most this far apart (0.2 s)


def tf_message_cdr(stamp_ns: int, parent: str, child: str, T: np.ndarray) -> bytes:
    """CDR bytes of a TFMessage holding one TransformStamped ``parent -> child`` = ``T`` at ``stamp_ns``."""
    store = typestore()
    ty = store.types
    q = Rotation.from_matrix(np.asarray(T, np.float64)[:3, :3]).as_quat(canonical=True)  # (x, y, z, w), w >= 0
    t = np.asarray(T, np.float64)[:3, 3]
    ts = ty["geometry_msgs/msg/TransformStamped"](
        header=ty["std_msgs/msg/Header"](stamp=ty["builtin_interfaces/msg/Time"](
            sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)), frame_id=parent),
        child_frame_id=child,
        transform=ty["geometry_msgs/msg/Transform"](
            translation=ty["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2])),
            rotation=ty["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))))
    return bytes(store.serialize_cdr(ty[TF](transforms=[ts]), TF))


@dataclass
class PoseTable:
    """The frame tree of a bag's /tf and /tf_static, looked up by stamp (module docstring)."""

    source: str
    stamps: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    poses: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)  # (t, q)
    static: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # (t, q), any stamp
    parent_of: dict[str, str] = field(default_factory=dict)

    def _link(self, parent: str, child: str) -> tuple[str, str]:
        key = (parent.lstrip("/"), child.lstrip("/"))
        if key[0] == key[1]:
            raise BagError(f"{self.source}: a transform from frame {key[0]} to itself")
        if key[1] not in self.parent_of and key[1] in self._chain(key[0]):
            raise BagError(f"{self.source}: {key[0]} -> {key[1]} closes a loop ({' <- '.join(self._chain(key[0]))}): "
                           "transforms must form a tree")
        known = self.parent_of.setdefault(key[1], key[0])
        if known != key[0]:
            raise BagError(f"{self.source}: frame {key[1]} has two parents on /tf or /tf_static ({known} and "
                           f"{key[0]}): transforms must form a tree")
        return key

    def add(self, parent: str, child: str, stamp: int, t: np.ndarray, q: np.ndarray) -> None:
        key = self._link(parent, child)
        if key in self.static:
            raise BagError(f"{self.source}: {key[0]} -> {key[1]} is on both /tf and /tf_static")
        st, ps = self.stamps.setdefault(key, []), self.poses.setdefault(key, [])
        i = bisect.bisect_left(st, stamp)
        if i < len(st) and st[i] == stamp:
            ps[i] = (t, q)
            return
        st.insert(i, stamp)
        ps.insert(i, (t, q))

    def add_static(self, parent: str, child: str, t: np.ndarray, q: np.ndarray) -> None:
        key = self._link(parent, child)
        if key in self.stamps:
            raise BagError(f"{self.source}: {key[0]} -> {key[1]} is on both /tf and /tf_static")
        self.static[key] = (t, q)  # a later static transform replaces an earlier one, as tf2's latched topic does

    def describe(self) -> str:
        if not self.stamps and not self.static:
            return "it holds no transform"
        edges = [f"{p} -> {c} ({len(s)} stamps)" for (p, c), s in sorted(self.stamps.items())]
        edges += [f"{p} -> {c} (static)" for (p, c) in sorted(self.static)]
        return "it has " + ", ".join(edges)

    def _chain(self, frame: str) -> list[str]:
        """``frame``, its parent, its grandparent ... up to the root of its tree."""
        chain = [frame]
        while chain[-1] in self.parent_of and len(chain) <= len(self.parent_of):
            chain.append(self.parent_of[chain[-1]])
        return chain

    def _edge(self, key: tuple[str, str], stamp: int, at: str, max_gap_ns: int) -> np.ndarray:
        """T_parent_child of one edge of the tree at ``stamp``."""
        if key in self.static:
            t, q = self.static[key]
        else:
            st, ps = self.stamps[key], self.poses[key]
            i = bisect.bisect_left(st, stamp)
            if i < len(st) and st[i] == stamp:
                t, q = ps[i]
            elif 0 < i < len(st) and st[i] - st[i - 1] <= max_gap_ns:
                a = (stamp - st[i - 1]) / (st[i] - st[i - 1])
                (t0, q0), (t1, q1) = ps[i - 1], ps[i]
                t, q = (1 - a) * t0 + a * t1, Slerp([0.0, 1.0], Rotation.from_quat([q0, q1]))(a).as_quat()
            else:
                raise BagError(f"{self.source}: {TF_TOPIC} has no transform {key[0]} -> {key[1]} at stamp {stamp} ns"
                               f"{at} (its stamps run from {st[0]} to {st[-1]} ns, {len(st)} of them)")
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat(q).as_matrix()
        T[:3, 3] = t
        return T

    def lookup(self, parent: str, child: str, stamp: int, where: str = "", max_gap_ns: int = MAX_GAP_NS) -> np.ndarray:
        """T_parent_child at ``stamp`` (ns) along the frame tree; BagError naming the transform (and ``where``) when
        there is none."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        at = f" ({where})" if where else ""
        if parent == child:
            return np.eye(4)
        up_child, up_parent = self._chain(child), self._chain(parent)
        common = next((f for f in up_child if f in up_parent), None)
        if common is None:
            how = (f"{child}'s chain: {' <- '.join(reversed(up_child))}; {parent}'s chain: "
                   f"{' <- '.join(reversed(up_parent))}")
            raise BagError(f"{self.source}: {TF_TOPIC} / {TF_STATIC_TOPIC} have no transform {parent} -> {child}{at} "
                           f"({how}); {self.describe()}")

        def from_common(chain: list[str]) -> np.ndarray:
            T = np.eye(4)
            for f in chain[:chain.index(common)]:  # from the frame up: T_common_frame = ... @ T_grandparent_parent @ T
                T = self._edge((self.parent_of[f], f), stamp, at, max_gap_ns) @ T
            return T

        return np.linalg.inv(from_common(up_parent)) @ from_common(up_child)


def read_pose_table(bag: BagReader, topic: str = TF_TOPIC, static_topic: str | None = TF_STATIC_TOPIC) -> PoseTable:
    """Every transform on ``topic`` (and on ``static_topic`` where the bag has it) of ``bag``; BagError if the bag
    has neither (naming it and the bag's topics), a message does not decode or a rotation is invalid."""
    has_static = static_topic is not None and static_topic in bag.topics()
    if not has_static:
        bag.require_topic(topic, (TF,), what="pose")
    store = typestore()
    table = PoseTable(str(bag.path))
    topics = [t for t in (topic, static_topic if has_static else None) if t is not None and t in bag.topics()]
    for t in topics:
        bag.require_topic(t, (TF,), what="pose")
    for raw in bag.messages(topics):
        try:
            msg: Any = store.deserialize_cdr(raw.data, raw.msgtype)
        except Exception as e:
            raise BagError(f"{bag.path}: {raw.topic} message {raw.index}: cannot deserialise it as {TF} "
                           f"({' '.join(str(e).split())})") from None
        for ts in msg.transforms:
            st = int(ts.header.stamp.sec) * 1_000_000_000 + int(ts.header.stamp.nanosec)
            tr, ro = ts.transform.translation, ts.transform.rotation
            q = np.array([ro.x, ro.y, ro.z, ro.w], np.float64)
            tv = np.array([tr.x, tr.y, tr.z], np.float64)
            if not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-6 or not np.all(np.isfinite(tv)):
                raise BagError(f"{bag.path}: {raw.topic} message {raw.index}: transform {ts.header.frame_id} -> "
                               f"{ts.child_frame_id} is invalid (translation {tv.tolist()}, rotation {q.tolist()})")
            if raw.topic == topic:
                table.add(ts.header.frame_id, ts.child_frame_id, st, tv, q / np.linalg.norm(q))
            else:
                table.add_static(ts.header.frame_id, ts.child_frame_id, tv, q / np.linalg.norm(q))
    if not table.stamps and not table.static:
        raise BagError(f"{bag.path}: pose topic {' / '.join(topics)} has no transforms")
    return table


__all__ = ["DEFAULT_MAP_FRAME", "PoseTable", "TF_STATIC_TOPIC", "TF_TOPIC", "read_pose_table", "tf_message_cdr"]
