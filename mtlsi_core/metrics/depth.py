"""Depth errors over all valid pixels of the dataset.

Source: InvPT ``evaluation/eval_depth.py`` (``DepthMeter``), following MTI-Net's survey code, which evaluates "in a
pixel-wise fashion, rather than by averaging per image as ASTMT did" (SimonVandenhende/Multi-Task-Learning-PyTorch
issue #1): squared errors are summed over every valid pixel of every image and

    RMSE = sqrt(sum (d - d*)^2 / N),   log-RMSE = sqrt(sum (log d - log d*)^2 / N),
    abs-rel = sum |d - d*| / d* / N,    sq-rel = sum (d - d*)^2 / d* / N,

N = number of valid pixels of the dataset. Valid: ground truth != 0 (InvPT's ``AddIgnoreRegions`` maps 0 to the
ignore value) and finite. As InvPT does, predictions <= 0 are replaced by 1e-9 before all errors. Extra, not in
InvPT: delta < 1.25 = share of valid pixels with max(d / d*, d* / d) < 1.25 (Eigen et al., NIPS 2014), in %.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mtlsi_core.metrics.base import Metric, as_plane, check_same_shape

_EPS_PRED = 1e-9


class DepthMetric(Metric):
    name = "depth"
    headline_key = "rmse"
    headline_name = "RMSE (m)"
    decimals = 4

    def __init__(self, task: str, dataset: Any):
        super().__init__(task, dataset)
        self.invalid = float(self.spec.ignore_value)
        self._config = {"invalid": self.invalid}

    def _zero(self) -> dict[str, Any]:
        return {"sq": 0.0, "log_sq": 0.0, "abs_rel": 0.0, "sq_rel": 0.0, "delta1": 0, "pixels": 0, "images": 0}

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = as_plane(pred, f"{self.task} prediction").astype(np.float64)
        gt = as_plane(target, f"{self.task} ground truth").astype(np.float64)
        check_same_shape(pred, gt, self.task)
        valid = np.isfinite(gt) & (gt != self.invalid)
        if np.any(gt[valid] < 0):
            raise ValueError(f"task {self.task!r}: ground truth has negative depths")
        d = pred[valid]
        if not np.all(np.isfinite(d)):
            raise ValueError(f"task {self.task!r}: prediction has non-finite values at valid pixels")
        g = gt[valid]
        d = np.where(d <= 0, _EPS_PRED, d)
        diff = d - g
        acc = self._acc
        acc["sq"] += float(np.sum(diff * diff))
        acc["log_sq"] += float(np.sum((np.log(g) - np.log(d)) ** 2))
        acc["abs_rel"] += float(np.sum(np.abs(diff) / g))
        acc["sq_rel"] += float(np.sum(diff * diff / g))
        acc["delta1"] += int(np.count_nonzero(np.maximum(d / g, g / d) < 1.25))
        acc["pixels"] += int(g.size)
        acc["images"] += 1

    def compute(self) -> dict[str, Any]:
        a = self._acc
        n = a["pixels"]
        if n == 0:
            raise ValueError(f"task {self.task!r}: no valid depth pixel was evaluated")
        return self._result({
            "rmse": float(np.sqrt(a["sq"] / n)),
            "log_rmse": float(np.sqrt(a["log_sq"] / n)),
            "abs_rel": a["abs_rel"] / n,
            "sq_rel": a["sq_rel"] / n,
            "delta1": 100.0 * a["delta1"] / n,
            "pixels": float(n),
            "images": float(a["images"]),
        })
