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
~0); ``mtlsi_ros.bag.stability``, ``mtlsi_core.mapping.stability``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from mtlsi_core.checkpoint import atomic_write_bytes
from mtlsi_core.data.errors import DatasetError
from mtlsi_core.data.nyud import LAYOUT, NYUDMT
from mtlsi_core.metrics import MultiTaskEvaluator
from mtlsi_core.tasks import TASKS, get_dataset, get_task
from mtlsi_core.training import scoring
from mtlsi_core.training.evaluate import format_results_table, json_default
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.frames import (FrameStream, StampJoin, decode_image, decode_keyed, find_namespace, to_gt_grid,
                                  topic_namespace)
from mtlsi_ros.bag.groundtruth import GT_NAMESPACE
from mtlsi_ros.bag.msgtypes import IMAGE
from mtlsi_ros.bag.sources import dataset_name
from mtlsi_ros.bag.stability import format_stability, sequence_stability
from mtlsi_ros.bag.storage import BagReader
from mtlsi_ros.bag.transforms import TF_TOPIC


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
    o = options
    if gt_bag is not None and dataset_root is not None:
        raise BagError("give either a ground-truth bag or a dataset folder, not both")
    if o.max_frames is not None and o.max_frames < 1:
        raise BagError(f"--max-frames must be >= 1, got {o.max_frames}")
    t0 = time.perf_counter()
    with BagReader(bag_path) as bag:
        ns = topic_namespace(o.namespace) if o.namespace is not None else find_namespace(bag)
        gt_ns = topic_namespace(o.gt_namespace) if o.gt_namespace is not None else f"{ns}/{GT_NAMESPACE}"
        pred_topics = {t: f"{ns}/{s.ros.topic}" for t, s in TASKS.items() if f"{ns}/{s.ros.topic}" in bag.topics()}
        gt_reader = BagReader(gt_bag).open() if gt_bag is not None else (bag if dataset_root is None else None)
        try:
            if gt_reader is not None:
                gt_topics = {t: f"{gt_ns}/{s.ros.topic}" for t, s in TASKS.items()
                             if f"{gt_ns}/{s.ros.topic}" in gt_reader.topics()}
                where_gt = f"{gt_reader.path} ({gt_ns}/...)"
            else:
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
        doc["temporal_stability"] = stability
        doc["table"] = table + "\n" + format_stability(stability)
    if json_out is not None:
        atomic_write_bytes(json_out, json.dumps(doc, indent=2, default=json_default).encode())
    return doc


def _stability(bag: BagReader, gt_reader: BagReader | None, ns: str, gt_ns: str, o: EvalOptions) -> dict | None:
    """Temporal stability when a bag has the poses (/tf) and the predictions have depth and segmentation."""
    pose_reader = next((r for r in (bag, gt_reader) if r is not None and TF_TOPIC in r.topics()), None)
    if pose_reader is None or not all(f"{ns}/{t}" in bag.topics() for t in ("depth", "segmentation")):
        return None
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
    preds = FrameStream(bag, {pred_topics[t]: t for t in tasks}, decode_image)
    frames = 0
    try:
        if gt_reader is not None:
            if gt_reader is bag:  # one pass over the bag: predictions and ground truth together
                keys = {pred_topics[t]: ("pred", t) for t in tasks}
                keys.update({gt_topics[t]: ("gt", t) for t in tasks})
                both = FrameStream(bag, keys, decode_keyed)
                pairs: Iterable = ((s, _side(f, "pred"), _side(f, "gt")) for s, f in both)
            else:
                gts = FrameStream(gt_reader, {gt_topics[t]: t for t in tasks}, partial(decode_image, side="gt"))
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


__all__ = ["EvalOptions", "run_bag_eval"]
