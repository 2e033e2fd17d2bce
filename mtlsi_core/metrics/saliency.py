"""Maximal F-measure (maxF) for saliency.

Source: InvPT ``evaluation/eval_sal.py`` (``SaliencyMeter(threshold_step=0.05, beta_squared=0.3)``) and ATRC
``MaxF``: for every threshold t in ``torch.arange(0.05, 1, 0.05)`` (0.05 .. 0.95, 19 values, float32), a pixel is
predicted salient when p >= t; true positives, predicted positives and actual positives are summed over the
non-ignored pixels (ground truth != 255) of the whole dataset (not per image); then per threshold

    P = TP / PP,  R = TP / AP,  F = (1 + b2) P R / (b2 P + R),  b2 = 0.3,  NaN -> 0,   maxF = max_t F   (in %).

``invpt_double_sigmoid=True`` reproduces a detail of InvPT's code path: its ``get_output`` already gives the
foreground probability (x 255) and ``SaliencyMeter`` divides by 255 and then applies a sigmoid again, so it really
thresholds sigmoid(p). The default (False) thresholds p itself, as ATRC's ``MaxF`` does with logits.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtlsi_core.metrics.base import Metric, probability_and_binary_gt

# The peers' float32 thresholds, bit for bit.
MAXF_THRESHOLDS = torch.arange(0.05, 1, 0.05).numpy().astype(np.float32)
BETA_SQUARED = 0.3


class MaxFMetric(Metric):
    name = "maxf"
    headline_key = "maxf"
    headline_name = "maxF (%)"
    decimals = 2

    def __init__(self, task: str, dataset: Any, beta_squared: float = BETA_SQUARED,
                 invpt_double_sigmoid: bool = False):
        self.thresholds = MAXF_THRESHOLDS
        super().__init__(task, dataset)
        self.beta2 = float(beta_squared)
        self.double_sigmoid = bool(invpt_double_sigmoid)
        self.ignore = int(self.spec.ignore_value)
        self._config = {"beta_squared": self.beta2, "double_sigmoid": self.double_sigmoid, "ignore": self.ignore,
                        "thresholds": self.thresholds.tolist()}

    def _zero(self) -> dict[str, Any]:
        k = len(self.thresholds)
        return {"tp": np.zeros(k, np.int64), "pp": np.zeros(k, np.int64), "ap": np.zeros(k, np.int64), "images": 0}

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        p, gt, valid = probability_and_binary_gt(pred, target, self.task, self.ignore)
        g = gt[valid]
        pv = p[valid]
        if self.double_sigmoid:
            pv = (1.0 / (1.0 + np.exp(-pv))).astype(np.float32)
        pos = g == 1
        sorted_p = np.sort(pv)
        sorted_pos = np.sort(pv[pos])
        # count of p >= t for every threshold at once
        pp = pv.size - np.searchsorted(sorted_p, self.thresholds, side="left")
        tp = sorted_pos.size - np.searchsorted(sorted_pos, self.thresholds, side="left")
        self._acc["tp"] += tp.astype(np.int64)
        self._acc["pp"] += pp.astype(np.int64)
        self._acc["ap"] += np.int64(np.count_nonzero(pos))
        self._acc["images"] += 1

    def f_measures(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, F) per threshold, NaN replaced by 0 as the peers do."""
        tp = self._acc["tp"].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = tp / self._acc["pp"]
            rec = tp / self._acc["ap"]
            f = (1 + self.beta2) * prec * rec / (self.beta2 * prec + rec)
        return np.nan_to_num(prec), np.nan_to_num(rec), np.nan_to_num(f, nan=0.0)

    def compute(self) -> dict[str, Any]:
        if self._acc["images"] == 0:
            raise ValueError(f"task {self.task!r}: no image was evaluated")
        prec, rec, f = self.f_measures()
        k = int(np.argmax(f))
        return self._result({
            "maxf": 100.0 * float(f[k]),
            "threshold": float(self.thresholds[k]),
            "precision": 100.0 * float(prec[k]),
            "recall": 100.0 * float(rec[k]),
            "images": float(self._acc["images"]),
        })
