"""Posed frames of a bag: depth and labels of one stamp with the camera's intrinsics and pose, as ``map`` and the
temporal stability (``stability``) read them.

Inputs: ``<ns>/depth`` (32FC1 metres along the optical z axis, NaN invalid) and ``<ns>/segmentation`` (class ids),
the node's outputs or the ground truth (``<ns>/gt/...``), grouped by header stamp (``frames.FrameStream``);
intrinsics from ``<ns>/output/camera_info`` (else ``<ns>/camera_info`` or the parent namespace's camera_info, scaled
to the image's size), at the frame's stamp or the newest before it; the pose ``map -> header.frame_id`` from a
``transforms.PoseTable`` at the frame's stamp.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from mtlsi_core.outputs import scale_intrinsics
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.frames import FrameStream, decode_keyed, find_namespace, stamp_ns, topic_namespace
from mtlsi_ros.bag.groundtruth import GT_NAMESPACE
from mtlsi_ros.bag.msgtypes import CAMERA_INFO, IMAGE
from mtlsi_ros.bag.storage import BagReader
from mtlsi_ros.bag.transforms import PoseTable


@dataclass
class PosedFrame:
    stamp: int
    frame_id: str
    depth: np.ndarray  # metres, 0 = invalid
    labels: np.ndarray
    K: np.ndarray
    T: np.ndarray  # T_map_cam


class InfoTable:
    """camera_info of a topic by stamp: the exact stamp, else the newest before it (as the node pairs them). Read
    from ``bag``'s ``topic``, or filled message by message with ``add`` (live mapping: ``bag`` None, ``limit``
    bounds how many stamps are kept, the oldest going first)."""

    def __init__(self, bag: BagReader | None, topic: str, limit: int | None = None):
        self.topic, self.source = topic, str(bag.path) if bag is not None else topic
        self.limit = limit
        self.stamps: list[int] = []
        self.items: list[tuple[np.ndarray, tuple[int, int]]] = []
        if bag is not None:
            for raw in bag.messages([topic]):
                msg = bag.deserialize(raw)
                self.add(stamp_ns(msg.header), msg.k, (int(msg.height), int(msg.width)),
                         f"{bag.path}: {topic} message {raw.index}")

    def add(self, stamp: int, k: Any, hw: tuple[int, int], where: str) -> None:
        """The camera matrix ``k`` (9 values) of an image of ``hw`` at ``stamp``; a later one at the same stamp
        replaces it. BagError naming ``where`` for a matrix without a focal length."""
        k = np.asarray(k, np.float64).reshape(3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.all(np.isfinite(k)):
            raise BagError(f"{where}: camera matrix without a focal length")
        i = bisect.bisect_left(self.stamps, stamp)
        if i < len(self.stamps) and self.stamps[i] == stamp:
            self.items[i] = (k, tuple(hw))
            return
        self.stamps.insert(i, stamp)
        self.items.insert(i, (k, tuple(hw)))
        if self.limit is not None and len(self.stamps) > self.limit:
            del self.stamps[0], self.items[0]

    def lookup(self, stamp: int, hw: tuple[int, int], where: str) -> np.ndarray:
        i = bisect.bisect_right(self.stamps, stamp) - 1
        if i < 0:
            raise BagError(f"{self.source}: no {self.topic} at or before stamp {stamp} ns ({where})")
        k, src_hw = self.items[i]
        if src_hw != tuple(hw):
            p = np.concatenate([k, np.zeros((3, 1))], axis=1).reshape(-1)
            k = np.asarray(scale_intrinsics(k.reshape(-1), p, src_hw, hw)[0], np.float64).reshape(3, 3)
        return k


def find_info(readers: list[BagReader], topics: list[str]) -> InfoTable:
    """The camera_info of the first of ``topics`` that one of ``readers`` has."""
    for t in topics:
        for r in readers:
            if t in r.topics() and r.topics()[t] == CAMERA_INFO:
                return InfoTable(r, t)
    raise BagError(f"no camera_info for the intrinsics: none of {', '.join(topics)} in "
                   f"{', '.join(str(r.path) for r in readers)}")


def _decode_posed(key: tuple[str, str], msg: Any, where: str) -> tuple[np.ndarray, str]:
    """(array, header frame_id) of a prediction ("pred") or ground-truth ("gt") image."""
    return decode_keyed(key, msg, where), msg.header.frame_id


def pose_frames(reader: BagReader, side: str, depth_topic: str, seg_topic: str, info: InfoTable, poses: PoseTable,
                map_frame: str, max_frames: int | None) -> Iterator[PosedFrame]:
    """The frames of ``reader`` with both ``depth_topic`` and ``seg_topic``, posed in ``map_frame``."""
    keys = {depth_topic: (side, "depth"), seg_topic: (side, "semseg")}
    stream = FrameStream(reader, keys, _decode_posed)
    for n, (stamp, frame) in enumerate(stream):
        if max_frames is not None and n >= max_frames:
            return
        (depth, fid), (labels, _) = frame[(side, "depth")], frame[(side, "semseg")]
        if depth.shape[:2] != labels.shape[:2]:
            raise BagError(f"{reader.path}: at stamp {stamp} ns {depth_topic} is {depth.shape[0]}x{depth.shape[1]} but "
                           f"{seg_topic} is {labels.shape[0]}x{labels.shape[1]}: depth and labels must be the same "
                           f"size")
        where = f"frame of {depth_topic} stamped {stamp} ns"
        K = info.lookup(stamp, depth.shape[:2], where)
        T = poses.lookup(map_frame, fid, stamp, where)
        yield PosedFrame(stamp, fid, depth, labels, K, T)


@dataclass
class BagTopics:
    """Where a bag's posed inputs are: readers and topic names of the predictions and ground truth."""

    pred: BagReader
    ns: str
    gt: BagReader | None
    gt_ns: str
    pose_reader: BagReader

    def pred_topics(self) -> tuple[str, str]:
        return f"{self.ns}/depth", f"{self.ns}/segmentation"

    def gt_topics(self) -> tuple[str, str]:
        return f"{self.gt_ns}/depth", f"{self.gt_ns}/segmentation"

    def pred_info(self) -> InfoTable:
        parent = self.ns.rsplit("/", 1)[0]  # e.g. ground truth under <camera>/gt mapped as "predictions"
        return find_info([self.pred, self.pose_reader], [f"{self.ns}/output/camera_info", f"{self.ns}/camera_info",
                                                         f"{parent}/camera_info"])

    def gt_info(self) -> InfoTable:
        cam = self.gt_ns[: -len(f"/{GT_NAMESPACE}")] if self.gt_ns.endswith(f"/{GT_NAMESPACE}") else self.gt_ns
        return find_info([r for r in (self.gt, self.pred) if r is not None], [f"{cam}/camera_info"])


def locate(bag: BagReader, pose_reader: BagReader, namespace: str | None, gt_namespace: str | None) -> BagTopics:
    """The node's depth and segmentation topics of ``bag`` (``namespace``, else found) and the ground truth's, in
    ``bag`` or ``pose_reader``, where one of them has it."""
    ns = topic_namespace(namespace) if namespace is not None else find_namespace(bag)
    for t in (f"{ns}/depth", f"{ns}/segmentation"):
        bag.require_topic(t, (IMAGE,), what="prediction")
    gt_ns = topic_namespace(gt_namespace) if gt_namespace is not None else f"{ns}/{GT_NAMESPACE}"
    gt = None
    for r in (bag, pose_reader):
        if all(t in r.topics() for t in (f"{gt_ns}/depth", f"{gt_ns}/segmentation")):
            gt = r
            break
    return BagTopics(bag, ns, gt, gt_ns, pose_reader)


__all__ = ["BagTopics", "InfoTable", "PosedFrame", "find_info", "locate", "pose_frames"]
