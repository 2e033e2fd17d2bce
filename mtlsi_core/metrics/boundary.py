"""Boundary detection: odsF / oisF (and AP) following the SEISM / BSDS protocol, in Python.

Sources. The peers run the MATLAB SEISM toolbox (``jponttuset/seism``: ``src/scripts/eval_method.m``,
``src/measures/eval_cont.m``, ``src/piotr_edges/edgesEvalImg.m``, ``src/scripts/gather_measure.m``,
``general_ods.m``, ``general_ois.m``, ``general_ap.m``) with BSDS's ``correspondPixels`` (Martin, Fowlkes & Malik,
TPAMI 2004) and maxDist 0.0075 (PASCAL) / 0.011 (NYUD). Two reading protocols are in use (``protocol=``):

- ``"invpt"`` (default): InvPT and TaskPrompter (``prismformore/Multi-Task-Transformer`` READMEs: "Thresholds for
  HED (under seism/parameters/HED.txt) are used. read_one_cont_png is used as IO function in SEISM"):
  non-maximum suppression of the map (``mtlsi_core.metrics.edge_nms``), then 101 thresholds 0.001, 0.01 .. 0.99,
  0.999 with p > t;
- ``"mti-net"``: MTI-Net (``SimonVandenhende/Multi-Task-Learning-PyTorch`` ``evaluation/eval_edge.py`` +
  ``evaluation/seism/read_one_png.m``): no NMS, 99 thresholds 0.01 .. 0.99 with p >= t.

Per image:

1. the prediction is stored as an 8-bit PNG by the peers (``uint8(255 * p)``, truncating) and read back as
   v / 255; ``quantize=True`` (default) reproduces that;
2. (invpt) NMS; for each threshold the map is binarised and thinned (``bwmorph(.., 'thin', Inf)``; here Guo-Hall,
   ``mtlsi_core.metrics.thinning``);
3. the ground-truth boundary map is thinned too (SEISM thins ``seg2bmap`` of its label map; the loaders give
   either that, ``--protocol paper``, or the project's own boundary map; see "Ground truth" below);
4. predicted and ground-truth pixels are put in one-to-one correspondence within the tolerance
   maxDist x image diagonal (``DatasetSpec.boundary_max_dist``; pairs with dy^2 + dx^2 <= (maxDist diag)^2, as
   ``correspondPixels``), giving cntP = cntR = number of matched pairs, sumP = predicted pixels, sumR =
   ground-truth pixels.

``correspondPixels`` sets up a min-cost assignment in which a pixel left unmatched costs an outlier cost of
100 x maxDist, far above any matched pair (at most maxDist), so its exact optimum would have the largest possible
number of matched pairs. We compute that maximum exactly, as the size of a maximum-cardinality matching of the
"within tolerance" bipartite graph (a unit-capacity max flow: Dinic, ``scipy.sparse.csgraph.maximum_flow``; the
tests check it against a min-cost assignment with outlier costs). BSDS's own solver does not always reach it: its
graph is sparsified with random outlier edges and its C++ seeds the random generator from the clock
(``correspondPixels``' ``Random`` / ``srand(time)``), so its counts vary slightly from run to run and can fall
short of the maximum. Our exact matching can therefore find up to about 0.02 % more matches than SEISM on the same
maps (odsF differences of the order of 0.01 points, measured against the peers' code), never fewer; the figures
are equal to SEISM's within that, not bit for bit.

Ground truth: the metric thins the boundary map it is given (``thin_gt``). Which map that is depends on the
evaluation protocol (``mtlsi_core.metrics.protocol``): SEISM scores ``thin(seg2bmap(X))`` with X the NYUD edge
PNG read as a label map or the PASCAL-Context label map (``--protocol paper``); the project's default gives the
dataset's own boundary map (docs/evaluation_protocol.md measures the difference).

Aggregation (SEISM):
- odsF: counts summed over images per threshold, R = cntR / sumR, P = cntP / sumP, F = 2PR / (P + R); odsF is the
  maximum over thresholds (first maximum; no interpolation between thresholds, unlike BSDS's ``collect_eval_bdry``).
- oisF: for each image the threshold of its best F (first maximum of the per-image F of ``eval_cont``); the counts
  at those thresholds are summed over images and give one P, R, F.
- AP: area under the dataset P-R curve, sampled at recall 0, 0.01, .., 1 by linear interpolation over the distinct
  recall values (``general_ap``; ties in recall keep the first threshold, like MATLAB's ``unique``).
Degenerate counts follow SEISM: no ground-truth pixel -> R = 1, P = 0; no predicted pixel -> R = 0, P = 1; F = 0
when P + R = 0.

Not reproduced: the separate NMS pass of the SAK / MTDP_Lib repositories (``nms_process.m``, other filter
radii) and BSDS's own ``collect_eval_bdry`` aggregation.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from mtlsi_core.metrics.base import Metric, probability_and_binary_gt
from mtlsi_core.metrics.edge_nms import edge_nms
from mtlsi_core.metrics.thinning import thin

# SEISM parameters/HED.txt: 0.001, 0.01, 0.02, .., 0.99, 0.999
HED_THRESHOLDS = tuple([0.001] + [round(0.01 * k, 2) for k in range(1, 100)] + [0.999])
PROTOCOLS = {
    "invpt": {"nms": True, "thresholds": HED_THRESHOLDS, "strict": True},
    "mti-net": {"nms": False, "thresholds": 99, "strict": False},
}


def make_thresholds(thresholds: int | Sequence[float]) -> np.ndarray:
    """K -> linspace(1/(K+1), 1 - 1/(K+1), K) (BSDS/SEISM ``edgesEvalImg``); a sequence is used as given (sorted)."""
    if isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        k = int(thresholds)
        if k < 1:
            raise ValueError(f"the number of thresholds must be >= 1, got {k}")
        return np.linspace(1.0 / (k + 1), 1.0 - 1.0 / (k + 1), k)
    t = np.asarray(thresholds, np.float64).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or t.min() <= 0 or t.max() > 1:
        raise ValueError(f"thresholds must be numbers in (0, 1], got {thresholds!r}")
    if np.unique(t).size != t.size:
        raise ValueError(f"thresholds must be distinct, got {thresholds!r}")
    return np.sort(t)


def seg2bmap(labels: np.ndarray) -> np.ndarray:
    """Boundary map of a label map as SEISM/BSDS ``seg2bmap`` draws it: a pixel is on a boundary when its label differs
    from its east, south or south-east neighbour (last row: east only; last column: south only)."""
    s = np.asarray(labels)
    if s.ndim != 2:
        raise ValueError(f"seg2bmap: expected an (H, W) label map, got shape {s.shape}")
    b = np.zeros(s.shape, bool)
    b[:, :-1] |= s[:, :-1] != s[:, 1:]
    b[:-1, :] |= s[:-1, :] != s[1:, :]
    b[:-1, :-1] |= s[:-1, :-1] != s[1:, 1:]
    b[-1, :-1] = s[-1, :-1] != s[-1, 1:]
    b[:-1, -1] = s[:-1, -1] != s[1:, -1]
    b[-1, -1] = False
    return b


def _row_spans(radius: float) -> list[tuple[int, int]]:
    """(dy, m) for each row offset of the disk dy^2 + dx^2 <= radius^2: |dx| <= m there."""
    r2 = radius * radius
    spans = []
    for dy in range(-int(np.floor(radius)), int(np.floor(radius)) + 1):
        rem = r2 - dy * dy
        m = int(np.floor(np.sqrt(max(rem, 0.0))))
        while (m + 1) * (m + 1) <= rem:
            m += 1
        while m > 0 and m * m > rem:
            m -= 1
        spans.append((dy, m))
    return spans


def match_count(pred: np.ndarray, gt: np.ndarray, radius: float, reachable: np.ndarray | None = None) -> int:
    """Size of a maximum one-to-one matching between the pixels of two binary maps, pairs allowed where
    dy^2 + dx^2 <= radius^2. ``reachable`` (optional, bool) marks pixels within ``radius`` of some ``gt`` pixel; it
    only saves work."""
    pred = np.asarray(pred, bool)
    gt = np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"match_count: shapes differ {pred.shape} vs {gt.shape}")
    if reachable is not None:
        pred = pred & reachable
    py, px = np.nonzero(pred)
    gy, gx = np.nonzero(gt)
    if py.size == 0 or gy.size == 0:
        return 0
    h, w = gt.shape
    gkey = gy * w + gx  # ascending (row-major order of np.nonzero)
    rows_l, cols_l = [], []
    for dy, half in _row_spans(radius):
        ty = py + dy
        ok = (ty >= 0) & (ty < h)
        lo = np.searchsorted(gkey, ty * w + np.maximum(px - half, 0), side="left")
        hi = np.searchsorted(gkey, ty * w + np.minimum(px + half, w - 1), side="right")
        n = np.where(ok, hi - lo, 0)
        total = int(n.sum())
        if total == 0:
            continue
        rid = np.repeat(np.arange(py.size), n)
        start = np.repeat(lo - (np.cumsum(n) - n), n)  # gt id = lo + rank within the pixel's range
        rows_l.append(rid)
        cols_l.append(start + np.arange(total))
    if not rows_l:
        return 0
    rows, cols = np.concatenate(rows_l), np.concatenate(cols_l)
    return _max_matching(py.size, gy.size, rows, cols)


def _max_matching(n_pred: int, n_gt: int, rows: np.ndarray, cols: np.ndarray) -> int:
    """Maximum-cardinality bipartite matching as a unit-capacity max flow (source -> pred -> gt -> sink), solved with
    Dinic's algorithm (``scipy.sparse.csgraph.maximum_flow``). SciPy's ``maximum_bipartite_matching`` is not used:
    its Hopcroft-Karp search can take exponential time on the layered graphs that boundary pixels form
    (scipy/scipy issue #26147)."""
    sink = n_pred + n_gt + 1
    src = np.concatenate([np.zeros(n_pred, np.int64), 1 + rows, 1 + n_pred + np.arange(n_gt)])
    dst = np.concatenate([1 + np.arange(n_pred), 1 + n_pred + cols, np.full(n_gt, sink)])
    graph = csr_matrix((np.ones(src.size, np.int32), (src, dst)), shape=(sink + 1, sink + 1))
    return int(maximum_flow(graph, 0, sink, method="dinic").flow_value)


def read_back(prob: np.ndarray, quantize: bool, single: bool) -> np.ndarray:
    """The map as SEISM sees it: ``uint8(255 p)`` read back as v / 255, in single (``im2single``, the NMS path) or
    double precision (``double(imread) / 255``)."""
    p = np.clip(np.asarray(prob, np.float32), 0.0, 1.0)
    if quantize:
        v = np.floor(p * np.float32(255.0))
        return v.astype(np.float32) / np.float32(255.0) if single else v.astype(np.float64) / 255.0
    return p if single else p.astype(np.float64)


def image_counts(prob: np.ndarray, gt: np.ndarray, thresholds: np.ndarray, max_dist: float, *,
                 quantize: bool = True, nms: bool = False, strict: bool = False,
                 ignore_value: float | None = 255, thin_gt: bool = True) -> dict[str, np.ndarray]:
    """Per-threshold (cntR, sumR, cntP, sumP) of one image. ``max_dist`` is the fraction of the image diagonal;
    ``strict`` binarises with p > t instead of p >= t."""
    g = np.asarray(gt)
    p = read_back(prob, quantize, single=nms)
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(f"image_counts: expected two (H, W) maps of one size, got {p.shape} and {g.shape}")
    valid = np.ones(g.shape, bool) if ignore_value is None else g != ignore_value
    p = np.where(valid, p, p.dtype.type(0))
    if nms:
        p = edge_nms(p)
    thresholds = np.asarray(thresholds).astype(p.dtype)  # MATLAB compares single maps in single precision
    gt_b = valid & (g == 1)
    gt_b = thin(gt_b) if thin_gt else gt_b
    radius = float(max_dist) * float(np.hypot(*g.shape))
    sum_r = int(np.count_nonzero(gt_b))
    reachable = distance_transform_edt(~gt_b) <= radius if sum_r else None
    k = thresholds.size
    cnt, sum_p = np.zeros(k, np.int64), np.zeros(k, np.int64)
    prev_mask, prev = None, (0, 0)
    for i, t in enumerate(thresholds):
        mask = p > t if strict else p >= t
        if prev_mask is not None and np.array_equal(mask, prev_mask):
            cnt[i], sum_p[i] = prev
            continue
        bmap = thin(mask)
        sp = int(np.count_nonzero(bmap))
        c = match_count(bmap, gt_b, radius, reachable) if sp and sum_r else 0
        cnt[i], sum_p[i] = c, sp
        prev_mask, prev = mask, (c, sp)
    return {"cntR": cnt, "sumR": np.full(k, sum_r, np.int64), "cntP": cnt.copy(), "sumP": sum_p}


def prf_image(cnt_r: np.ndarray, sum_r: np.ndarray, cnt_p: np.ndarray, sum_p: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, R, F) with SEISM ``eval_cont`` / ``general_ois`` conventions (no GT -> R 1, P 0; else no prediction ->
    R 0, P 1)."""
    cnt_r, sum_r, cnt_p, sum_p = (np.asarray(a, np.float64) for a in (cnt_r, sum_r, cnt_p, sum_p))
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = np.where(sum_r == 0, 1.0, np.where(sum_p == 0, 0.0, cnt_r / sum_r))
        prec = np.where(sum_r == 0, 0.0, np.where(sum_p == 0, 1.0, cnt_p / sum_p))
        f = np.where(prec + rec == 0, 0.0, 2 * prec * rec / (prec + rec))
    return prec, rec, f


def prf_dataset(cnt_r: np.ndarray, sum_r: np.ndarray, cnt_p: np.ndarray, sum_p: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, R, F) per threshold from dataset sums with SEISM ``gather_measure`` conventions."""
    cnt_r, sum_r, cnt_p, sum_p = (np.asarray(a, np.float64) for a in (cnt_r, sum_r, cnt_p, sum_p))
    rec = np.zeros_like(sum_r)
    prec = np.zeros_like(sum_r)
    a = (sum_r == 0) & (cnt_p == 0)
    rec[a], prec[a] = 1.0, 0.0
    b = (sum_p == 0) & (cnt_r == 0)
    rec[b], prec[b] = 0.0, 1.0
    c = (sum_p != 0) & (cnt_r != 0)
    rec[c] = cnt_r[c] / sum_r[c]
    prec[c] = cnt_p[c] / sum_p[c]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(prec + rec == 0, 0.0, 2 * prec * rec / (prec + rec))
    return prec, rec, f


def average_precision(prec: np.ndarray, rec: np.ndarray) -> float:
    """SEISM ``general_ap``: mean of the P-R curve interpolated at recall 0, 0.01, .., 1 (points outside the recall
    range count 0)."""
    rec = np.asarray(rec, np.float64)
    prec = np.asarray(prec, np.float64)
    uniq, first = np.unique(rec, return_index=True)
    if uniq.size < 2:
        return 0.0
    q = np.linspace(0.0, 1.0, 101)
    inside = (q >= uniq[0]) & (q <= uniq[-1])
    return float(np.interp(q[inside], uniq, prec[first]).sum() / 100.0)


class BoundaryMetric(Metric):
    name = "boundary"
    headline_key = "odsf"
    headline_name = "odsF (%)"
    decimals = 2

    def __init__(self, task: str, dataset: Any, protocol: str = "invpt",
                 thresholds: int | Sequence[float] | None = None, nms: bool | None = None,
                 strict: bool | None = None, max_dist: float | None = None, quantize: bool = True,
                 thin_gt: bool = True):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown boundary protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        preset = PROTOCOLS[protocol]
        self.protocol = protocol
        self.thresholds = make_thresholds(preset["thresholds"] if thresholds is None else thresholds)
        self.nms = bool(preset["nms"] if nms is None else nms)
        self.strict = bool(preset["strict"] if strict is None else strict)
        super().__init__(task, dataset)
        self.max_dist = float(self.dataset.boundary_max_dist if max_dist is None else max_dist)
        if not 0.0 < self.max_dist < 1.0:
            raise ValueError(f"max_dist is a fraction of the image diagonal in (0, 1), got {self.max_dist}")
        self.quantize = bool(quantize)
        self.thin_gt = bool(thin_gt)
        self.ignore = float(self.spec.ignore_value)
        self._config = {"thresholds": self.thresholds.tolist(), "max_dist": self.max_dist, "nms": self.nms,
                        "strict": self.strict, "quantize": self.quantize, "thin_gt": self.thin_gt}

    def _zero(self) -> dict[str, Any]:
        k = self.thresholds.size
        z = {name: np.zeros(k, np.int64) for name in ("cntR", "sumR", "cntP", "sumP")}
        z.update({f"ois_{name}": 0 for name in ("cntR", "sumR", "cntP", "sumP")})
        z["images"] = 0
        return z

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        p, g, _ = probability_and_binary_gt(pred, target, self.task, self.ignore)
        counts = image_counts(p, g, self.thresholds, self.max_dist, quantize=self.quantize, nms=self.nms,
                              strict=self.strict, ignore_value=self.ignore, thin_gt=self.thin_gt)
        acc = self._acc
        for name, arr in counts.items():
            acc[name] += arr
        _, _, f = prf_image(counts["cntR"], counts["sumR"], counts["cntP"], counts["sumP"])
        best = int(np.argmax(f))
        for name, arr in counts.items():
            acc[f"ois_{name}"] += int(arr[best])
        acc["images"] += 1

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dataset (P, R, F) per threshold."""
        a = self._acc
        return prf_dataset(a["cntR"], a["sumR"], a["cntP"], a["sumP"])

    def compute(self) -> dict[str, Any]:
        a = self._acc
        if a["images"] == 0:
            raise ValueError(f"task {self.task!r}: no image was evaluated")
        prec, rec, f = self.curve()
        k = int(np.argmax(f))
        op, orc, of = prf_image(np.array([a["ois_cntR"]]), np.array([a["ois_sumR"]]),
                                np.array([a["ois_cntP"]]), np.array([a["ois_sumP"]]))
        return self._result({
            "odsf": 100.0 * float(f[k]),
            "ods_threshold": float(self.thresholds[k]),
            "ods_precision": 100.0 * float(prec[k]),
            "ods_recall": 100.0 * float(rec[k]),
            "oisf": 100.0 * float(of[0]),
            "ois_precision": 100.0 * float(op[0]),
            "ois_recall": 100.0 * float(orc[0]),
            "ap": 100.0 * average_precision(prec, rec),
            "images": float(a["images"]),
        })
