"""Mean intersection-over-union for label tasks (semseg, human_parts).

Source: InvPT ``evaluation/eval_semseg.py`` / ``eval_human_parts.py`` (``SemsegMeter`` / ``HumanPartsMeter``, "the
macro way in ATRC"), which sum per-class TP, FP and FN over the whole dataset, counting only pixels whose ground
truth is not the ignore value (255), and then take

    IoU_c = TP_c / max(TP_c + FP_c + FN_c, 1e-8),   mIoU = mean over ALL classes of the dataset.

So a class never present in the ground truth and never predicted counts with IoU 0 (it is not dropped); ATRC's
``MeanIoU`` does the same (0/0 -> NaN -> 0). We keep the dataset-level confusion matrix, which gives the same sums.
On small subsets this pulls mIoU down; ``miou_present`` (the mean over classes with TP + FP + FN > 0) is reported
as an extra and is not the peers' figure.

``skip_images_without_foreground``: InvPT's ``AddIgnoreRegions`` turns the part labels of an image without any
part annotation (only 0 = background and 255) into 255, so such images do not count; the registry sets this for
human_parts (``TaskSpec.metric_kwargs``). Where the loader already does it the flag changes nothing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mtlsi_core.metrics.base import Metric, as_plane, check_same_shape


class MeanIoU(Metric):
    name = "miou"
    headline_key = "miou"
    headline_name = "mIoU (%)"
    decimals = 2

    def __init__(self, task: str, dataset: Any, skip_images_without_foreground: bool = False):
        self.num_classes = 0
        super().__init__(task, dataset)
        self.num_classes = self.spec.num_channels(self.dataset)
        self.ignore = int(self.spec.ignore_value)
        self.skip_empty = bool(skip_images_without_foreground)
        self._config = {"num_classes": self.num_classes, "ignore": self.ignore, "skip_empty": self.skip_empty}
        self.reset()

    def _zero(self) -> dict[str, Any]:
        return {"confusion": np.zeros((self.num_classes, self.num_classes), np.int64), "images": 0, "skipped": 0}

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = as_plane(pred, f"{self.task} prediction")
        target = as_plane(target, f"{self.task} ground truth")
        check_same_shape(pred, target, self.task)
        for arr, what in ((pred, "prediction"), (target, "ground truth")):
            if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
                raise ValueError(f"task {self.task!r}: {what} must hold integer class ids, got dtype {arr.dtype}")
        n = self.num_classes
        gt = target.astype(np.int64, copy=False)
        pr = pred.astype(np.int64, copy=False)
        valid = gt != self.ignore
        if self.skip_empty and not np.any(valid & (gt != 0)):
            self._acc["skipped"] += 1
            return
        gt_v, pr_v = gt[valid], pr[valid]
        if gt_v.size and (gt_v.min() < 0 or gt_v.max() >= n):
            bad = np.unique(gt_v[(gt_v < 0) | (gt_v >= n)])[:10]
            raise ValueError(f"task {self.task!r}: ground-truth labels {bad.tolist()} outside 0..{n - 1} "
                             f"(and not the ignore value {self.ignore})")
        if pr_v.size and (pr_v.min() < 0 or pr_v.max() >= n):
            bad = np.unique(pr_v[(pr_v < 0) | (pr_v >= n)])[:10]
            raise ValueError(f"task {self.task!r}: predicted labels {bad.tolist()} outside 0..{n - 1}")
        self._acc["confusion"] += np.bincount(gt_v * n + pr_v, minlength=n * n).reshape(n, n)
        self._acc["images"] += 1

    def iou_per_class(self) -> np.ndarray:
        cm = self._acc["confusion"].astype(np.float64)
        tp = np.diag(cm)
        fp = cm.sum(axis=0) - tp
        fn = cm.sum(axis=1) - tp
        return tp / np.maximum(tp + fp + fn, 1e-8)

    def compute(self) -> dict[str, Any]:
        cm = self._acc["confusion"]
        iou = self.iou_per_class()
        present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
        total = cm.sum()
        values = {
            "miou": 100.0 * float(iou.mean()),
            "miou_present": 100.0 * float(iou[present].mean()) if present.any() else 0.0,
            "pixel_acc": 100.0 * float(np.trace(cm) / total) if total else 0.0,
            "images": float(self._acc["images"]),
            "images_skipped": float(self._acc["skipped"]),
        }
        names = self.dataset.class_names.get(self.task, ())
        for c in range(self.num_classes):
            label = names[c] if c < len(names) else str(c)
            values[f"iou/{label}"] = 100.0 * float(iou[c])
        return self._result(values)
