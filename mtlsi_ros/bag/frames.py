"""Frames of a bag's image topics, as ``eval``, ``map`` and the temporal stability read them.

``decode_image`` turns one sensor_msgs/Image of the node's output topics (side ``"pred"``) or of the ground-truth
topics (side ``"gt"``, ``groundtruth``) into the array the metrics take (``mtlsi_core.runtime.base``'s format for
predictions, the dataset's target format for ground truth). ``FrameStream`` groups the messages of several topics
into frames by header stamp; ``StampJoin`` pairs two such streams by stamp; ``to_gt_grid`` maps a prediction onto
the ground truth's grid as ``mtlsi-eval`` does; ``find_namespace`` finds the node's output topics in a bag.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from mtlsi_core.data import restore_prediction
from mtlsi_core.tasks import TASKS, get_task
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.groundtruth import GT_NAMESPACE
from mtlsi_ros.bag.msgtypes import IMAGE
from mtlsi_ros.bag.storage import BagReader
from mtlsi_ros.conversions import image_to_numpy

PAIR_WINDOW = 256  # frames kept waiting for their partner (stamps arriving out of order)
SIDES = ("pred", "gt")  # the node's outputs, the ground truth


def topic_namespace(namespace: str) -> str:
    """``camera/`` -> ``/camera``; an empty namespace stays empty (topics ``/segmentation`` ...)."""
    return "/" + namespace.strip("/") if namespace.strip("/") else ""


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def find_namespace(bag: BagReader) -> str:
    """The namespace holding the node's output topics (``<ns>/segmentation`` ...), outside any ``gt`` folder."""
    found = set()
    for topic, ty in bag.topics().items():
        if ty != IMAGE or f"/{GT_NAMESPACE}/" in topic + "/":
            continue
        for spec in TASKS.values():
            suffix = "/" + spec.ros.topic
            if topic.endswith(suffix):
                found.add(topic[: -len(suffix)])
    if len(found) == 1:
        return found.pop()
    if not found:
        raise BagError(f"{bag.path}: no output topics of the perception node (.../"
                       f"{', .../'.join(s.ros.topic for s in TASKS.values())}); {bag.describe_topics()}")
    raise BagError(f"{bag.path}: output topics in several namespaces ({', '.join(sorted(found))}); choose one "
                   f"with --namespace")


def decode_image(task: str, msg: Any, where: str, side: str = "pred") -> np.ndarray:
    """An image of the node's output topic of ``task`` (``side`` "pred") or of its ground-truth topic ("gt") ->
    the array the metric takes; ``where`` names the topic and message for errors.

    Class ids (labels; ground truth of binary tasks too, ``groundtruth``) stay one-channel integers. Floats are
    float32 with NaN / inf (the node's and the ground truth's "invalid") set to the task's ignore value. A binary
    prediction in an integer encoding is a probability scaled to the integer range
    (``mtlsi_core.outputs.cast_for_encoding``) and is read back as v / max."""
    if side not in SIDES:
        raise ValueError(f"decode_image: side must be one of {SIDES}, got {side!r}")
    spec = get_task(task)
    try:
        values = image_to_numpy(msg)
    except ValueError as e:
        raise BagError(f"{where}: {e}") from None
    what = f"ground truth of {task!r}" if side == "gt" else f"{task} predictions"
    if spec.kind == "labels" or (side == "gt" and spec.kind == "binary"):
        if values.dtype.kind != "u" or values.ndim != 2:
            raise BagError(f"{where}: {what} must be a one-channel integer image, got {msg.encoding}")
        return values
    if values.dtype.kind == "u" and spec.kind == "binary":
        return values.astype(np.float32) / np.float32(np.iinfo(values.dtype).max)
    if values.dtype.kind == "u" or (side == "gt" and values.dtype.kind != "f"):
        raise BagError(f"{where}: {what} must be a float image, got {msg.encoding}")
    values = values.astype(np.float32, copy=True)
    values[~np.isfinite(values)] = np.float32(spec.ignore_value)
    return values


def decode_keyed(key: tuple[str, str], msg: Any, where: str) -> np.ndarray:
    """``decode_image`` for a ``FrameStream`` keyed by (side, task)."""
    side, task = key
    return decode_image(task, msg, where, side)


def to_gt_grid(task: str, pred: np.ndarray, gt_hw: tuple[int, int]) -> np.ndarray:
    """``pred`` resized onto a ground-truth grid of ``gt_hw`` with the task's interpolation (mtlsi-eval's path)."""
    h, w = pred.shape[:2]
    if (h, w) == tuple(gt_hw):
        return pred
    meta = {"input_size": (h, w), "valid_box": (0, 0, h, w), "orig_size": tuple(gt_hw)}
    return restore_prediction(task, pred, meta, undo_zoom=False)


class FrameStream:
    """Messages of several topics of a bag grouped into frames by header stamp: yields ``(stamp_ns, {key: array})``
    once every topic of the frame arrived. Frames still incomplete when ``window`` newer ones wait, or at the end,
    are counted in ``incomplete``."""

    def __init__(self, bag: BagReader, topics: Mapping[str, Any], decode: Callable[[Any, Any, str], Any],
                 window: int = PAIR_WINDOW):
        self.bag, self.topics, self.decode, self.window = bag, dict(topics), decode, window
        self.incomplete = 0

    def __iter__(self) -> Iterator[tuple[int, dict[Any, Any]]]:
        pending: OrderedDict[int, dict[Any, Any]] = OrderedDict()
        need = len(self.topics)
        for raw in self.bag.messages(self.topics):
            msg = self.bag.deserialize(raw)
            where = f"{self.bag.path}: {raw.topic} message {raw.index}"
            stamp = stamp_ns(msg.header)
            frame = pending.setdefault(stamp, {})
            frame[self.topics[raw.topic]] = self.decode(self.topics[raw.topic], msg, where)
            if len(frame) == need:
                del pending[stamp]
                yield stamp, frame
            elif len(pending) > self.window:
                pending.popitem(last=False)
                self.incomplete += 1
        self.incomplete += len(pending)


class StampJoin:
    """Pairs two frame streams by stamp (each roughly in stamp order); counts what stays unpaired."""

    def __init__(self, a: Iterable[tuple[int, Any]], b: Iterable[tuple[int, Any]], window: int = PAIR_WINDOW):
        self.a, self.b, self.window = a, b, window
        self.unmatched_a = 0
        self.unmatched_b = 0

    def __iter__(self) -> Iterator[tuple[int, Any, Any]]:
        its = [iter(self.a), iter(self.b)]
        pend: list[OrderedDict[int, Any]] = [OrderedDict(), OrderedDict()]
        last = [-1, -1]
        done = [False, False]
        while not all(done):
            side = 0 if not done[0] and (done[1] or last[0] <= last[1]) else 1
            item = next(its[side], None)
            if item is None:
                done[side] = True
                continue
            stamp, value = item
            last[side] = stamp
            other = pend[1 - side]
            if stamp in other:
                partner = other.pop(stamp)
                yield (stamp, value, partner) if side == 0 else (stamp, partner, value)
                continue
            pend[side][stamp] = value
            if len(pend[side]) > self.window:
                pend[side].popitem(last=False)
                self._count(side)
        for side in (0, 1):
            for _ in pend[side]:
                self._count(side)

    def _count(self, side: int) -> None:
        if side == 0:
            self.unmatched_a += 1
        else:
            self.unmatched_b += 1


__all__ = ["FrameStream", "PAIR_WINDOW", "SIDES", "StampJoin", "decode_image", "decode_keyed", "find_namespace",
           "stamp_ns", "to_gt_grid", "topic_namespace"]
