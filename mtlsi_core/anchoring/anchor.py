"""Floor anchoring: the metric scale of predicted depth from the floor pixels, where the floor plane is known.

For the pixels the network labels floor with confidence >= ``min_confidence``, whose predicted normal is within
``max_normal_angle_deg`` of the plane's and which lie below the horizon (a sampling grid of at most ``max_samples``
pixels), each ratio q_i = z_floor_i / z_pred_i estimates the depth's scale. One frame's estimate:

    l_i = log q_i;  m = median(l);  sigma = 1.4826 * max(MAD(l), MAD_FLOOR)      # robust spread, log space
    inliers: |l_i - m| <= outlier_mads * sigma;  s_frame = exp(median(l_inliers))

with at least ``min_support`` support samples (else the frame keeps the last scale). Over time, in log space:

    first accepted frame:   log s = log s_frame
    then:                   step = smoothing * (log s_frame - log s),  |step| <= log(1 + max_step);  log s += step

Frame estimates outside ``scale_range`` are rejected (the last scale is kept). The scale multiplies depth (and so
the point cloud built from it); ``replace_floor`` also sets the support pixels' depth to the plane's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from mtlsi_core.anchoring.plane import HORIZON_EPS, FloorPlane, check_intrinsics
from mtlsi_core.outputs import scale_intrinsics
from mtlsi_core.tasks import TASKS, get_dataset

FLOOR_CLASS_NAMES = ("floor",)  # class names (of the labels task's dataset) whose pixels may support the scale
MAD_FLOOR = 0.005  # log-ratio spread below which MAD is not trusted (0.5 %: a perfect prediction has MAD 0)
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution is 0.6745 sigma

# AnchorState.status values
STATUSES = {
    "waiting": "no frame has given a scale yet (scale 1: depth as predicted)",
    "anchored": "this frame's floor gave the scale",
    "bounded": "this frame's floor gave the scale; its change was limited to max_step",
    "no_support": "too few floor pixels in this frame (no floor in view?): the last scale is kept",
    "out_of_range": "this frame's floor scale is outside scale_range: the last scale is kept",
    "no_intrinsics": "no camera intrinsics (camera_info): no floor depth, depth not anchored",
    "error": "anchoring this frame failed (the caller logs why): depth not anchored",
}


@dataclass(frozen=True)
class AnchorConfig:
    """Thresholds of ``FloorAnchor`` (module docstring); validated on construction."""

    min_confidence: float = 0.5  # floor label's probability (max softmax) at least this
    max_normal_angle_deg: float = 20.0  # predicted normal within this of the plane's (needs normals)
    min_support: int = 100  # support samples (on the sampling grid) for a frame to give a scale
    max_samples: int = 16384  # the sampling grid has at most this many pixels (every stride-th row and column)
    outlier_mads: float = 3.0  # inliers: |log q - median| <= this * 1.4826 MAD
    smoothing: float = 0.3  # weight of a new frame's scale (log space); 1: no smoothing
    max_step: float = 0.05  # the applied scale changes by at most this fraction per frame (after the first)
    scale_range: tuple[float, float] = (0.5, 2.0)  # frame scales outside are rejected
    replace_floor: bool = False  # also set support pixels' depth to the floor's (full resolution) ...
    replace_tolerance: float = 0.25  # ... where |scaled depth / floor depth - 1| <= this (not an obstacle on it)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"floor anchoring: {name} = {getattr(self, name)!r} {why}")

        def num(name: str) -> float:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(name, "must be a finite number")
            return float(v)

        if not 0.0 <= num("min_confidence") <= 1.0:
            raise bad("min_confidence", "must be in [0, 1]")
        if not 0.0 < num("max_normal_angle_deg") <= 180.0:
            raise bad("max_normal_angle_deg", "must be in (0, 180]")
        for name in ("min_support", "max_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(name, "must be an integer >= 1")
        if self.min_support > self.max_samples:
            raise bad("min_support", f"must not exceed max_samples = {self.max_samples}")
        if not num("outlier_mads") > 0:
            raise bad("outlier_mads", "must be > 0")
        if not 0.0 < num("smoothing") <= 1.0:
            raise bad("smoothing", "must be in (0, 1]")
        if not num("replace_tolerance") > 0:
            raise bad("replace_tolerance", "must be > 0")
        if not num("max_step") > 0:
            raise bad("max_step", "must be > 0")
        r = self.scale_range
        if not (isinstance(r, (tuple, list)) and len(r) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
                and 0 < r[0] < 1 < r[1] < math.inf):
            raise bad("scale_range", "must be (lo, hi) with 0 < lo < 1 < hi, finite")


@dataclass(frozen=True)
class AnchorState:
    """What the anchor did last (read by diagnostics from another thread: replaced whole, never mutated)."""

    status: str = "waiting"
    scale: float = 1.0  # applied to depth
    measured: float = float("nan")  # the last frame's own estimate s_frame (NaN: none)
    support: int = 0  # support samples of the last frame (on the sampling grid)
    inliers: int = 0  # of which inliers
    stride: int = 1  # the sampling grid's step (support counts are of every stride-th row and column)
    frames: int = 0  # frames that gave a scale
    replaced: int = 0  # pixels of the last frame set to the floor's depth (replace_floor)

    def values(self) -> dict[str, str]:
        """Key/values for /diagnostics (prefix ``anchor.``)."""
        return {"anchor.status": self.status, "anchor.scale": f"{self.scale:.4f}",
                "anchor.measured_scale": f"{self.measured:.4f}", "anchor.support_pixels": str(self.support),
                "anchor.inlier_pixels": str(self.inliers), "anchor.sample_stride": str(self.stride),
                "anchor.frames_anchored": str(self.frames)}


def floor_classes(dataset: str, labels_task: str = "semseg",
                  names: Collection[str] = FLOOR_CLASS_NAMES) -> tuple[int, ...]:
    """The class ids named ``names`` in the registry's class list of ``labels_task`` for ``dataset`` (NYUDv2-40:
    floor = 1); ValueError when the dataset has none of them."""
    ds = get_dataset(dataset)
    classes = ds.class_names.get(labels_task, ())
    ids = tuple(i for i, c in enumerate(classes) if c in names)
    if not ids:
        raise ValueError(f"floor anchoring: dataset {dataset!r} has no {' or '.join(map(repr, names))} class for "
                         f"task {labels_task!r} (its classes: {', '.join(classes) or 'none'})")
    return ids


def anchor_keys(tasks: Sequence[str]) -> tuple[str, str, str | None]:
    """(depth, labels, normals or None) output keys of a model's ``tasks``, from the registry (depth visual, the
    first labels task, the normals visual); ValueError when depth or labels are missing."""
    depth = [t for t in tasks if TASKS[t].visual == "depth"]
    labels = [t for t in tasks if TASKS[t].kind == "labels"]
    normals = [t for t in tasks if TASKS[t].visual == "normals"]
    if not depth or not labels:
        raise ValueError(f"floor anchoring: needs depth and labels; the model predicts {', '.join(tasks)}")
    return depth[0], labels[0], (normals[0] if normals else None)


@dataclass
class _Grid:
    stride: int
    offset: int
    col: np.ndarray  # n . r terms of the sampled columns / rows
    row: np.ndarray


class FloorAnchor:
    """The floor-anchored depth scale of one camera over time (module docstring). Not thread-safe: one thread
    updates it; ``state`` may be read from any thread."""

    def __init__(self, plane: FloorPlane, floor_ids: Collection[int], config: AnchorConfig = AnchorConfig()):
        if not isinstance(plane, FloorPlane):
            raise TypeError(f"plane must be a FloorPlane, got {type(plane).__name__}")
        self.plane = plane
        self.floor_ids = tuple(int(i) for i in floor_ids)
        if not self.floor_ids:
            raise ValueError("floor anchoring: no floor class id")
        self.config = config
        self._cos_max = math.cos(math.radians(config.max_normal_angle_deg))
        self._normal = np.asarray(plane.normal, np.float32)
        self._grids: dict[tuple, Any] = {}  # per K and size: the sampling grid, the full-resolution n . r
        self.state = AnchorState()

    def reset(self) -> None:
        self.state = AnchorState()

    def _grid(self, k: np.ndarray, hw: tuple[int, int]) -> _Grid:
        key = (tuple(k.tolist()), hw)
        g = self._grids.get(key)
        if g is None:
            if len(self._grids) > 8:
                self._grids.clear()
            stride = max(1, math.ceil(math.sqrt(hw[0] * hw[1] / self.config.max_samples)))
            off = stride // 2
            col, row = self.plane.ray_terms(k, hw)
            g = self._grids[key] = _Grid(stride, off, np.ascontiguousarray(col[off::stride]),
                                         np.ascontiguousarray(row[off::stride]))
        return g

    def _full_terms(self, k: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """n . r of every pixel, flat float64 (float32 loses the far floor near the horizon); cached per K and size."""
        key = ("full", tuple(k.tolist()), hw)
        nr = self._grids.get(key)
        if nr is None:
            if len(self._grids) > 8:
                self._grids.clear()
            col, row = self.plane.ray_terms(k, hw)
            nr = self._grids[key] = (row[:, None] + col[None, :]).reshape(-1)
        return nr

    def _is_floor(self, labels: np.ndarray) -> np.ndarray:
        """Pixels labelled with one of the floor classes (a new mask)."""
        m = labels == self.floor_ids[0]
        for c in self.floor_ids[1:]:
            m |= labels == c
        return m

    def support_mask(self, labels: np.ndarray, nr: np.ndarray, confidence: np.ndarray | None,
                     normals: np.ndarray | None) -> np.ndarray:
        """Support pixels of same-shaped (sampled or full) arrays: floor label, below the horizon (n . r < 0),
        confidence >= min_confidence, normal . n >= cos(max_normal_angle_deg)."""
        m = self._is_floor(labels)
        m &= nr < -HORIZON_EPS
        if confidence is not None:
            m &= confidence >= self.config.min_confidence
        if normals is not None:
            m &= normals @ self._normal >= self._cos_max  # one BLAS pass (per-channel products: 3-5x slower)
        return m

    def measure(self, depth: np.ndarray, labels: np.ndarray, k: Sequence[float] | np.ndarray,
                confidence: np.ndarray | None = None,
                normals: np.ndarray | None = None) -> tuple[float, int, int, int]:
        """One frame's estimate: (s_frame or NaN, support samples, inliers, stride); nothing is changed."""
        hw = depth.shape[:2]
        _check_shapes(hw, labels, confidence, normals)
        g = self._grid(check_intrinsics(k), (int(hw[0]), int(hw[1])))
        s, o = g.stride, g.offset
        sl = (slice(o, None, s), slice(o, None, s))
        nr = g.row[:, None] + g.col[None, :]
        m = self.support_mask(labels[sl], nr, None if confidence is None else confidence[sl],
                              None if normals is None else normals[sl])
        pred = depth[sl][m]
        floor = -self.plane.offset / nr[m]
        ok = np.isfinite(pred) & (pred > 0)
        if not ok.all():
            pred, floor = pred[ok], floor[ok]
        support = int(pred.size)
        if support < self.config.min_support:
            return float("nan"), support, 0, s
        lq = np.log(floor) - np.log(pred.astype(np.float64))
        med = float(np.median(lq))
        dev = np.abs(lq - med)
        sigma = MAD_TO_SIGMA * max(float(np.median(dev)), MAD_FLOOR)
        inl = lq[dev <= self.config.outlier_mads * sigma]
        if inl.size < self.config.min_support:
            return float("nan"), support, int(inl.size), s
        return float(math.exp(float(np.median(inl)))), support, int(inl.size), s

    def update(self, depth: np.ndarray, labels: np.ndarray, k: Sequence[float] | np.ndarray,
               confidence: np.ndarray | None = None, normals: np.ndarray | None = None) -> AnchorState:
        """Measure a frame (its depth as predicted, unscaled) and update the scale; returns the new state."""
        measured, support, inliers, stride = self.measure(depth, labels, k, confidence, normals)
        st, cfg = self.state, self.config
        new = replace(st, measured=measured, support=support, inliers=inliers, stride=stride, replaced=0)
        if not math.isfinite(measured):
            new = replace(new, status="no_support" if st.frames else "waiting")
        elif not cfg.scale_range[0] <= measured <= cfg.scale_range[1]:
            new = replace(new, status="out_of_range")
        elif st.frames == 0:
            new = replace(new, status="anchored", scale=measured, frames=1)
        else:
            step = cfg.smoothing * (math.log(measured) - math.log(st.scale))
            bound = math.log1p(cfg.max_step)
            status = "bounded" if abs(step) > bound else "anchored"
            step = max(-bound, min(bound, step))
            new = replace(new, status=status, scale=st.scale * math.exp(step), frames=st.frames + 1)
        self.state = new
        return new

    def skip(self, status: str) -> AnchorState:
        """Record a frame that could not be measured (e.g. ``no_intrinsics``); the scale is kept."""
        if status not in STATUSES:
            raise ValueError(f"unknown anchor status {status!r}")
        self.state = replace(self.state, status=status, measured=float("nan"), support=0, inliers=0, replaced=0)
        return self.state

    def replace_with_floor(self, depth: np.ndarray, labels: np.ndarray, k: Sequence[float] | np.ndarray,
                           confidence: np.ndarray | None = None, normals: np.ndarray | None = None) -> int:
        """Set the depth of the support pixels (full resolution) whose (scaled) depth is within ``replace_tolerance``
        of the floor's to the floor's, in place; returns how many. A pixel labelled floor that the depth puts well in
        front of the floor (an obstacle mislabelled) keeps its depth. Works on the floor-labelled pixels only."""
        hw = (int(depth.shape[0]), int(depth.shape[1]))
        _check_shapes(hw, labels, confidence, normals)
        nr_full = self._full_terms(check_intrinsics(k), hw)
        cand = self._is_floor(labels.reshape(-1))
        if confidence is not None:
            cand &= confidence.reshape(-1) >= self.config.min_confidence
        idx = np.flatnonzero(cand)  # the cheap tests first; normals only at these pixels
        nr = nr_full[idx]
        keep = nr < -HORIZON_EPS
        if normals is not None:
            keep &= np.take(normals.reshape(-1, 3), idx, axis=0) @ self._normal >= self._cos_max
        idx = idx[keep]
        floor = (-self.plane.offset / nr[keep]).astype(np.float32)
        flat = depth.reshape(-1) if depth.flags.c_contiguous else depth.flat
        close = np.abs(flat[idx] - floor) <= np.float32(self.config.replace_tolerance) * floor  # NaN depth: False
        flat[idx[close]] = floor[close].astype(depth.dtype)
        return int(np.count_nonzero(close))


def _check_shapes(hw: tuple[int, ...], labels: np.ndarray, confidence: np.ndarray | None,
                  normals: np.ndarray | None) -> None:
    for name, a, want in (("labels", labels, hw), ("confidence", confidence, hw),
                          ("normals", normals, (*hw, 3))):
        if a is not None and tuple(a.shape) != tuple(want):
            raise ValueError(f"floor anchoring: {name} has shape {tuple(a.shape)}, expected {tuple(want)} "
                             f"(the depth's size)")


def anchor_outputs(outputs: Mapping[str, np.ndarray], anchor: FloorAnchor,
                   intrinsics: Sequence[float] | np.ndarray | None, intrinsics_hw: tuple[int, int] | None = None,
                   tasks: Sequence[str] | None = None) -> AnchorState:
    """Anchor one frame's runtime outputs (``Runtime.infer``'s dict for one image) in place: update ``anchor`` from
    the frame and multiply its depth by the anchor's scale (the point cloud, built from depth, follows); with
    ``replace_floor`` also set the support pixels to the floor's depth. Returns the anchor's state.

    ``intrinsics``: the camera's 3x3 K (9 values) for an image of ``intrinsics_hw`` = (H, W) pixels (default: the
    outputs' size; K is rescaled to the outputs' size otherwise). None: no intrinsics, depth is left as predicted
    (status ``no_intrinsics``). The floor's confidence threshold applies where ``<labels>_confidence`` is present
    (ask the runtime for ``auxiliary=("confidence",)``), the normal check where the model predicts normals.
    ``tasks``: the output keys to use (default: those of ``outputs``)."""
    depth_key, labels_key, normals_key = anchor_keys(tuple(tasks) if tasks is not None else
                                                     tuple(k for k in outputs if k in TASKS))
    depth = outputs[depth_key]
    if intrinsics is None:
        return anchor.skip("no_intrinsics")
    hw = (int(depth.shape[0]), int(depth.shape[1]))
    k = check_intrinsics(intrinsics)
    if intrinsics_hw is not None and tuple(int(v) for v in intrinsics_hw) != hw:
        k = scale_intrinsics(k, [0.0] * 12, tuple(intrinsics_hw), hw)[0]
    labels = outputs[labels_key]
    confidence = outputs.get(f"{labels_key}_confidence")
    normals = outputs.get(normals_key) if normals_key else None
    state = anchor.update(depth, labels, k, confidence, normals)
    if state.scale != 1.0:
        np.multiply(depth, np.float32(state.scale), out=depth)
    if anchor.config.replace_floor and state.frames:
        n = anchor.replace_with_floor(depth, labels, k, confidence, normals)
        state = anchor.state = replace(state, replaced=n)
    return state


__all__ = ["AnchorConfig", "AnchorState", "FLOOR_CLASS_NAMES", "FloorAnchor", "STATUSES", "anchor_keys",
           "anchor_outputs", "floor_classes"]
