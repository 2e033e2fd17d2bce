"""Surface-normal angular errors over all valid pixels of the dataset.

Source: InvPT ``evaluation/eval_normals.py`` (``NormalsMeter``) and ATRC ``MeanErrorInAngle``: both vectors are
normalised, the angle is taken with atan2 and the mean is over every valid pixel of the dataset (sum / count, not a
mean of per-image means). They use 2 atan2(|p - g|, |p + g|); we use atan2(|p x g|, p . g), the same angle for unit
vectors (and as accurate at 0 and 180 degrees). A zero prediction vector gets 90 degrees, which is what the peers'
``normalize_tensor`` (zero stays zero) gives. Valid pixels: ground-truth vector finite and not zero.

Extras over the same pixels (the usual NYUv2 normal metrics, e.g. Eigen & Fergus, ICCV 2015): median, RMSE and the
share of pixels with error < 11.25, 22.5, 30 degrees (in %). Mean, RMSE and the shares are exact sums. The median
comes from a histogram of the errors with ``median_bin_deg`` wide bins (default 0.01 degree, 18000 bins): the
middle rank(s) are located in their bins (ranks spread evenly inside a bin; the mean of the two middle ones for an
even count, as ``np.median``), so it is within one bin width of the exact median (a dataset-sized array of errors
is not kept, so shards can be merged).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mtlsi_core.metrics.base import Metric, check_same_shape

THRESHOLDS_DEG = (11.25, 22.5, 30.0)


def angular_error_deg(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Angle in degrees between (..., 3) vectors after normalising both; a zero prediction gives 90 degrees."""
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    pn = np.linalg.norm(p, axis=-1, keepdims=True)
    gn = np.linalg.norm(g, axis=-1, keepdims=True)
    p = np.divide(p, pn, out=np.zeros_like(p), where=pn > 0)
    g = np.divide(g, gn, out=np.zeros_like(g), where=gn > 0)
    cross = np.linalg.norm(np.cross(p, g), axis=-1)
    dot = np.sum(p * g, axis=-1)
    ang = np.degrees(np.arctan2(cross, dot))
    return np.where(pn[..., 0] > 0, ang, 90.0)


class NormalsMetric(Metric):
    name = "normals"
    headline_key = "mean"
    headline_name = "mErr (deg)"
    decimals = 2

    def __init__(self, task: str, dataset: Any, median_bin_deg: float = 0.01):
        if not 0.0 < float(median_bin_deg) <= 1.0:
            raise ValueError(f"median_bin_deg must lie in (0, 1], got {median_bin_deg}")
        self.bin = float(median_bin_deg)
        self.nbins = int(np.ceil(180.0 / self.bin))
        super().__init__(task, dataset)
        self._config = {"median_bin_deg": self.bin}

    def _zero(self) -> dict[str, Any]:
        return {"sum": 0.0, "sum_sq": 0.0, "below": np.zeros(len(THRESHOLDS_DEG), np.int64),
                "hist": np.zeros(self.nbins, np.int64), "pixels": 0, "images": 0}

    @staticmethod
    def _as_vectors(arr: Any, what: str) -> np.ndarray:
        a = np.asarray(arr)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"{what}: expected an (H, W, 3) array, got shape {a.shape}")
        return a

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = self._as_vectors(pred, f"{self.task} prediction")
        gt = self._as_vectors(target, f"{self.task} ground truth")
        check_same_shape(pred, gt, self.task)
        valid = np.all(np.isfinite(gt), axis=-1) & np.any(gt != 0, axis=-1)
        p = pred[valid]
        if not np.all(np.isfinite(p)):
            raise ValueError(f"task {self.task!r}: prediction has non-finite values at valid pixels")
        err = angular_error_deg(p, gt[valid])
        acc = self._acc
        acc["sum"] += float(err.sum())
        acc["sum_sq"] += float(np.sum(err * err))
        acc["below"] += np.array([np.count_nonzero(err < t) for t in THRESHOLDS_DEG], np.int64)
        idx = np.minimum((err / self.bin).astype(np.int64), self.nbins - 1)
        acc["hist"] += np.bincount(idx, minlength=self.nbins)
        acc["pixels"] += int(err.size)
        acc["images"] += 1

    def _ranked(self, k: int) -> float:
        """Estimate of the k-th smallest error (1-based): inside its bin, ranks are spread evenly."""
        hist = self._acc["hist"]
        cum = np.cumsum(hist)
        b = int(np.searchsorted(cum, k, side="left"))
        before = int(cum[b - 1]) if b > 0 else 0
        return (b + (k - before - 0.5) / hist[b]) * self.bin

    def _median(self) -> float:
        n = int(self._acc["hist"].sum())
        if n % 2:
            return self._ranked((n + 1) // 2)
        return 0.5 * (self._ranked(n // 2) + self._ranked(n // 2 + 1))

    def compute(self) -> dict[str, Any]:
        a = self._acc
        n = a["pixels"]
        if n == 0:
            raise ValueError(f"task {self.task!r}: no valid normal pixel was evaluated")
        values = {
            "mean": a["sum"] / n,
            "median": self._median(),
            "rmse": float(np.sqrt(a["sum_sq"] / n)),
            "pixels": float(n),
            "images": float(a["images"]),
        }
        for t, c in zip(THRESHOLDS_DEG, a["below"]):
            values[f"within_{t:g}"] = 100.0 * float(c) / n
        return self._result(values)
