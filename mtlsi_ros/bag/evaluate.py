"""``mtlsi-bag eval``: metrics of a bag's output topics against ground truth, the table and JSON of ``mtlsi-eval``.

Predictions: the node's output topics ``<namespace>/<task topic>`` (``segmentation``, ``depth``, ``normals``,
``boundary`` ...), decoded by the registry (class ids; depth metres with NaN, the node's "invalid", scored as 0,
i.e. as a wrong depth; boundary mono8 / 255 or 32FC1 as probability). Ground truth, one of:

    the same bag or ``gt_bag``: topics ``<gt namespace>/<task topic>`` (``mtlsi-bag make`` writes
                          ``<camera>/gt/...``), frames paired by header stamp
    ``dataset_root`` + ``split``: the samples of the split; frames paired through the ``mtlsi.frames`` record
                          (stamp -> sample) that ``make`` stores in a directory bag and ``infer`` copies, else the
                          k-th frame (by stamp) is the k-th sample

Predictions at another resolution than the ground truth are mapped onto its grid with the task's interpolation
(``mtlsi_core.data.restore_prediction``), as ``mtlsi-eval`` does. Scores come from
``mtlsi_core.metrics.MultiTaskEvaluator``; the table is ``mtlsi-eval``'s (``format_results_table``); the JSON file
is written atomically.

Sequences (a ``/tf`` topic with the camera poses in the bag or the ground-truth bag, as ``mtlsi-bag make --sequence``
writes and ``infer`` copies): the document gains ``temporal_stability``, the frame-to-frame disagreement of depth and
labels after warping consecutive frames with the poses, for the predictions and for the ground truth (the floor,
~0); ``mtlsi_ros.bag.map.sequence_stability``, ``mtlsi_core.mapping.stability``.
"""
from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from mtlsi_core.tasks import TASKS, get_dataset, get_task
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.groundtruth import GT_NAMESPACE, decode_gt
from mtlsi_ros.bag.msgtypes import IMAGE
from mtlsi_ros.bag.storage import BagReader

PAIR_WINDOW = 256  # frames kept waiting for their partner (stamps arriving out of order)


@dataclass(frozen=True)
class EvalOptions:
    namespace: str | None = None  # of the prediction topics; None: found from the topic names
    gt_namespace: str | None = None  # None: <namespace>/gt
    dataset: str | None = None  # registry dataset of the metrics; None: recorded by make, else nyud
    tasks: Sequence[str] | None = None  # None: every task with predictions and ground truth
    max_frames: int | None = None
    name: str | None = None  # "Method" column of the table; None: the bag's name
    progress: bool = True
    stability: bool = True  # temporal stability of sequences (bags with /tf)


def _ns(namespace: str) -> str:
    return "/" + namespace.strip("/") if namespace.strip("/") else ""


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


def decode_prediction(task: str, msg: Any, where: str) -> np.ndarray:
    """An output image of the node -> the runtime's format (``mtlsi_core.runtime.base``), ready for the metric."""
    from mtlsi_ros.conversions import image_to_numpy

    spec = get_task(task)
    try:
        values = image_to_numpy(msg)
    except ValueError as e:
        raise BagError(f"{where}: {e}") from None
    if spec.kind == "labels":
        if values.dtype.kind != "u" or values.ndim != 2:
            raise BagError(f"{where}: {task} predictions must be one-channel class ids, got {msg.encoding}")
        return values
    if values.dtype.kind == "u":  # probability scaled to the integer range (mtlsi_core.outputs.cast_for_encoding)
        if spec.kind != "binary":
            raise BagError(f"{where}: {task} predictions must be a float image, got {msg.encoding}")
        return values.astype(np.float32) / np.float32(np.iinfo(values.dtype).max)
    values = values.astype(np.float32, copy=True)
    values[~np.isfinite(values)] = np.float32(spec.ignore_value)  # the node's NaN: no valid prediction there
    return values


def to_gt_grid(task: str, pred: np.ndarray, gt_hw: tuple[int, int]) -> np.ndarray:
    """``pred`` resized onto a ground-truth grid of ``gt_hw`` with the task's interpolation (mtlsi-eval's path)."""
    from mtlsi_core.data import restore_prediction

    h, w = pred.shape[:2]
    if (h, w) == tuple(gt_hw):
        return pred
    meta = {"input_size": (h, w), "valid_box": (0, 0, h, w), "orig_size": tuple(gt_hw)}
    return restore_prediction(task, pred, meta, undo_zoom=False)


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class FrameStream:
    """Messages of several topics of a bag grouped into frames by header stamp: yields ``(stamp_ns, {key: array})``
    once every topic of the frame arrived. Frames still incomplete when ``window`` newer ones wait, or at the end,
    are counted in ``incomplete``."""

    def __init__(self, bag: BagReader, topics: Mapping[str, Any], decode: Callable[[Any, Any, str], np.ndarray],
                 window: int = PAIR_WINDOW):
        self.bag, self.topics, self.decode, self.window = bag, dict(topics), decode, window
        self.incomplete = 0

    def __iter__(self) -> Iterator[tuple[int, dict[Any, np.ndarray]]]:
        pending: OrderedDict[int, dict[Any, np.ndarray]] = OrderedDict()
        need = len(self.topics)
        for raw in self.bag.messages(self.topics):
            msg = self.bag.deserialize(raw)
            where = f"{self.bag.path}: {raw.topic} message {raw.index}"
            stamp = _stamp(msg.header)
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


def _recorded_dataset(*bags: BagReader) -> str | None:
    for b in bags:
        name = b.custom_data().get("mtlsi.dataset")
        if name:
            return name
    return None


def run_bag_eval(bag_path: str | os.PathLike, *, gt_bag: str | os.PathLike | None = None,
                 dataset_root: str | os.PathLike | None = None, split: str = "val",
                 options: EvalOptions = EvalOptions(), json_out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Evaluate the output topics of ``bag_path`` (module docstring); returns the JSON document (also written to
    ``json_out``)."""
    from mtlsi_core.checkpoint import atomic_write_bytes
    from mtlsi_core.metrics import MultiTaskEvaluator
    from mtlsi_core.training import scoring
    from mtlsi_core.training.evaluate import format_results_table

    o = options
    if gt_bag is not None and dataset_root is not None:
        raise BagError("give either a ground-truth bag or a dataset folder, not both")
    if o.max_frames is not None and o.max_frames < 1:
        raise BagError(f"--max-frames must be >= 1, got {o.max_frames}")
    t0 = time.perf_counter()
    with BagReader(bag_path) as bag:
        ns = _ns(o.namespace) if o.namespace is not None else find_namespace(bag)
        gt_ns = _ns(o.gt_namespace) if o.gt_namespace is not None else f"{ns}/{GT_NAMESPACE}"
        pred_topics = {t: f"{ns}/{s.ros.topic}" for t, s in TASKS.items() if f"{ns}/{s.ros.topic}" in bag.topics()}
        gt_reader = BagReader(gt_bag).open() if gt_bag is not None else (bag if dataset_root is None else None)
        try:
            if gt_reader is not None:
                gt_topics = {t: f"{gt_ns}/{s.ros.topic}" for t, s in TASKS.items()
                             if f"{gt_ns}/{s.ros.topic}" in gt_reader.topics()}
                where_gt = f"{gt_reader.path} ({gt_ns}/...)"
            else:
                from mtlsi_core.data.nyud import LAYOUT
                from mtlsi_ros.bag.sources import dataset_name

                root = Path(dataset_root)
                if not root.is_dir():
                    raise BagError(f"dataset folder not found: {root}")
                ds_name = dataset_name(root, o.dataset)
                gt_topics = {t: t for t in get_dataset(ds_name).tasks
                             if t in LAYOUT and (root / LAYOUT[t][0]).is_dir()}
                where_gt = f"{root} split {split}"
            tasks = _choose_tasks(o.tasks, pred_topics, gt_topics, bag, ns, where_gt)
            dataset = o.dataset or (_recorded_dataset(*(b for b in (bag, gt_reader) if b is not None))
                                    if dataset_root is None else dataset_name(Path(dataset_root), None)) or "nyud"
            get_dataset(dataset)
            for t in tasks:
                bag.require_topic(pred_topics[t], (IMAGE,), what="prediction")
                if gt_reader is not None:
                    gt_reader.require_topic(gt_topics[t], (IMAGE,), what="ground-truth")
            evaluator = MultiTaskEvaluator(list(tasks), dataset)
            stats = _score(bag, gt_reader, dataset_root, split, dataset, tasks, pred_topics, gt_topics, evaluator, o)
            stability = _stability(bag, gt_reader, ns, gt_ns, o) if o.stability else None
        finally:
            if gt_reader is not None and gt_reader is not bag:
                gt_reader.close()
    if stats["frames"] == 0:
        raise BagError(f"{bag_path}: no frame of the predictions could be paired with ground truth in {where_gt} "
                       f"({stats['unmatched_predictions']} prediction frame(s), "
                       f"{stats['unmatched_ground_truth']} ground-truth frame(s) without a partner)")
    metrics = evaluator.compute()
    name = o.name or Path(bag_path).name
    table = format_results_table(evaluator, metrics, None, name)
    doc = {
        "bag": str(bag_path),
        "ground_truth": str(gt_bag) if gt_bag is not None else (str(dataset_root) if dataset_root is not None
                                                                else str(bag_path)),
        "split": split if dataset_root is not None else None,
        "dataset": dataset,
        "tasks": list(tasks),
        "prediction_topics": {t: pred_topics[t] for t in tasks},
        "ground_truth_topics": {t: gt_topics[t] for t in tasks} if dataset_root is None else None,
        "num_frames": stats["frames"],
        "unmatched": {"predictions": stats["unmatched_predictions"],
                      "ground_truth": stats["unmatched_ground_truth"]},
        "headline": scoring.headline_metrics(metrics, list(tasks)),
        "metrics": metrics,
        "seconds": round(time.perf_counter() - t0, 3),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "table": table,
    }
    if stability is not None:
        from mtlsi_ros.bag.map import format_stability

        doc["temporal_stability"] = stability
        doc["table"] = table + "\n" + format_stability(stability)
    if json_out is not None:
        from mtlsi_core.training.evaluate import _json_default

        atomic_write_bytes(json_out, json.dumps(doc, indent=2, default=_json_default).encode())
    return doc


def _stability(bag: BagReader, gt_reader: BagReader | None, ns: str, gt_ns: str, o: EvalOptions) -> dict | None:
    """Temporal stability when a bag has the poses (/tf) and the predictions have depth and segmentation."""
    from mtlsi_ros.bag.transforms import TF_TOPIC

    pose_reader = next((r for r in (bag, gt_reader) if r is not None and TF_TOPIC in r.topics()), None)
    if pose_reader is None or not all(f"{ns}/{t}" in bag.topics() for t in ("depth", "segmentation")):
        return None
    from mtlsi_ros.bag.map import sequence_stability

    has_gt = gt_reader is not None and all(f"{gt_ns}/{t}" in gt_reader.topics() for t in ("depth", "segmentation"))
    return sequence_stability(bag, gt_reader if has_gt else None, ns, gt_ns, pose_reader, max_frames=o.max_frames)


def _choose_tasks(asked: Sequence[str] | None, pred: Mapping[str, str], gt: Mapping[str, str], bag: BagReader,
                  ns: str, where_gt: str) -> tuple[str, ...]:
    if asked is not None:
        for t in asked:
            get_task(t)
            if t not in pred:
                raise BagError(f"{bag.path}: no prediction topic {ns}/{get_task(t).ros.topic} for task {t!r}; "
                               f"{bag.describe_topics()}")
            if t not in gt:
                raise BagError(f"no ground truth of task {t!r} in {where_gt}")
        return tuple(asked)
    both = tuple(t for t in TASKS if t in pred and t in gt)
    if not both:
        raise BagError(f"no task has both predictions in {bag.path} ({ns}/...: {', '.join(pred) or 'none'}) and "
                       f"ground truth in {where_gt} ({', '.join(gt) or 'none'})")
    return both


def _decode_either(key: tuple[str, str], msg: Any, where: str) -> np.ndarray:
    side, task = key
    return (decode_prediction if side == "pred" else decode_gt)(task, msg, where)


def _side(frame: Mapping[tuple[str, str], np.ndarray], side: str) -> dict[str, np.ndarray]:
    return {task: v for (s, task), v in frame.items() if s == side}


def _score(bag: BagReader, gt_reader: BagReader | None, dataset_root: Any, split: str, dataset: str,
           tasks: Sequence[str], pred_topics: Mapping[str, str], gt_topics: Mapping[str, str], evaluator: Any,
           o: EvalOptions) -> dict[str, int]:
    def update(pred: Mapping[str, np.ndarray], gt: Mapping[str, np.ndarray], where: str) -> None:
        preds = {t: to_gt_grid(t, pred[t], gt[t].shape[:2]) for t in tasks}
        try:
            evaluator.update(preds, {t: gt[t] for t in tasks})
        except (ValueError, KeyError) as e:
            raise BagError(f"{where}: {e}") from None

    total = bag.message_counts().get(pred_topics[tasks[0]], 0)
    bar = tqdm(total=total if o.max_frames is None else min(total, o.max_frames), desc="eval", unit="frame",
               disable=not o.progress, leave=False, dynamic_ncols=True)
    preds = FrameStream(bag, {pred_topics[t]: t for t in tasks}, decode_prediction)
    frames = 0
    try:
        if gt_reader is not None:
            if gt_reader is bag:  # one pass over the bag: predictions and ground truth together
                keys = {pred_topics[t]: ("pred", t) for t in tasks}
                keys.update({gt_topics[t]: ("gt", t) for t in tasks})
                both = FrameStream(bag, keys, _decode_either)
                pairs: Iterable = ((s, _side(f, "pred"), _side(f, "gt")) for s, f in both)
            else:
                gts = FrameStream(gt_reader, {gt_topics[t]: t for t in tasks}, decode_gt)
                join = StampJoin(preds, gts)
                pairs = join
            for stamp, pred, gt in pairs:
                update(pred, gt, f"{bag.path}: frame stamped {stamp} ns")
                frames += 1
                bar.update(1)
                if o.max_frames is not None and frames >= o.max_frames:
                    break
            if gt_reader is bag:
                un_pred, un_gt = both.incomplete, 0
            else:
                un_pred, un_gt = join.unmatched_a + preds.incomplete, join.unmatched_b + gts.incomplete
        else:
            frames, un_pred, un_gt = _score_dataset(bag, preds, dataset_root, split, dataset, tasks, update, o, bar)
    finally:
        bar.close()
    return {"frames": frames, "unmatched_predictions": un_pred, "unmatched_ground_truth": un_gt}


def _score_dataset(bag: BagReader, preds: FrameStream, root: Any, split: str, dataset: str, tasks: Sequence[str],
                   update: Callable, o: EvalOptions, bar: Any) -> tuple[int, int, int]:
    from mtlsi_core.data.errors import DatasetError
    from mtlsi_core.data.nyud import NYUDMT

    try:
        ds = NYUDMT(root, split, tuple(tasks), None, dataset=dataset)
    except (DatasetError, KeyError) as e:
        raise BagError(f"dataset {root} split {split!r}: {e}") from None
    recorded = bag.custom_data().get("mtlsi.frames")
    by_stamp: dict[int, int] | None = None
    if recorded:
        index = {sid: i for i, sid in enumerate(ds.ids)}
        try:
            by_stamp = {int(s): index[str(n)] for s, n in json.loads(recorded) if str(n) in index}
        except (ValueError, TypeError) as e:
            raise BagError(f"{bag.path}: custom_data mtlsi.frames is malformed ({e})") from None
    frames = unmatched = 0
    used: set[int] = set()
    last = -1
    for k, (stamp, pred) in enumerate(preds):
        if by_stamp is not None:
            i = by_stamp.get(stamp)
            if i is None:
                unmatched += 1
                continue
        else:
            if stamp <= last:
                raise BagError(f"{bag.path}: frame stamps are not increasing ({stamp} ns after {last} ns): cannot "
                               f"pair frames with samples by order; use a ground-truth bag")
            last, i = stamp, k
            if i >= len(ds):
                raise BagError(f"{bag.path}: more frames than the {len(ds)} samples of {root} split {split!r}")
        try:
            gt = ds.load_raw(i)
        except DatasetError as e:
            raise BagError(f"dataset {root} sample {ds.ids[i]}: {e}") from None
        update(pred, gt, f"{bag.path}: frame stamped {stamp} ns (sample {ds.ids[i]})")
        used.add(i)
        frames += 1
        bar.update(1)
        if o.max_frames is not None and frames >= o.max_frames:
            break
    return frames, unmatched + preds.incomplete, (len(ds) - len(used)) if o.max_frames is None else 0


__all__ = ["EvalOptions", "FrameStream", "StampJoin", "decode_prediction", "find_namespace", "run_bag_eval",
           "to_gt_grid"]
