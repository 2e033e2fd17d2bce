"""The real NYUDv2 frames of a ``nyud_real_samples`` folder: discovery, ground truth in the metrics' conventions,
trivial baselines, pooled scores and contact-sheet rows.

``benchmarks/real_frames.py`` scores a model through the runtime with it, the demo scores the node's answers over
DDS with it. The folder (``../shared/data/nyud_real_samples`` on the development machines; its README gives the
files and their licences) is absent on a user's machine: callers check ``has_frames`` and skip. Evaluation only:
nothing trains on these frames. This module reads the folder and writes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from mtlsi_core.metrics import BoundaryMetric, DepthMetric, MeanIoU, NormalsMetric
from mtlsi_core.tasks import get_dataset

NYU = get_dataset("nyud")
NYU_FX = float(NYU.focal_length)  # at 640 px wide
NYU_WIDTH = 640
WALL = 0  # NYUD-40 class 0
TASKS = ("depth", "normals", "semseg", "edge")


@dataclass
class Frame:
    name: str  # nyu_NNNN (1-based index in the 1449 labelled frames)
    rgb: Path
    gt: dict[str, Path] = field(default_factory=dict)  # "depth", "normals", "labels" (0..39/255), "seg40" (1..40/0)


def discover(root: Path) -> list[Frame]:
    """Frames with their ground-truth files, sorted by name; one entry per NYUDv2 frame."""
    frames: dict[str, Frame] = {}
    mt = root / "multitask"
    if mt.is_dir():
        for rgb in sorted(mt.glob("drsleep_*_0*.png")):
            stem, idx = rgb.stem.rsplit("_", 1)
            if not idx.isdigit() or "_gt_" in rgb.name:
                continue
            name = f"nyu_{int(idx):04d}"
            f = frames.setdefault(name, Frame(name, rgb))
            for key, part in (("depth", "depth_gt"), ("normals", "norm_gt"), ("labels", "segm_gt")):
                p = mt / f"{stem}_{part}_{idx}.png"
                if p.is_file():
                    f.gt[key] = p
    s40 = root / "rgb_seg40"
    if s40.is_dir():
        for rgb in sorted(s40.glob("nyu_*_rgb.png")):
            name = rgb.name[: -len("_rgb.png")]
            lab = s40 / f"{name}_seg40.png"
            f = frames.setdefault(name, Frame(name, rgb))
            if lab.is_file() and "labels" not in f.gt:
                f.gt["seg40"] = lab
    return [frames[k] for k in sorted(frames)]


def _read(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise ValueError(f"cannot read {path}")
    return img


def seg40_to_labels(seg40: np.ndarray) -> np.ndarray:
    """rgb_seg40 convention (1..40, 0 unlabelled) -> the multitask one (0..39, 255 ignore)."""
    if seg40.max(initial=0) > 40:
        raise ValueError(f"40-class label map holds values up to {int(seg40.max())}; expected 0..40")
    return np.where(seg40 == 0, 255, seg40.astype(np.int32) - 1).astype(np.uint8)


def label_edges(labels: np.ndarray, ignore: int = 255) -> np.ndarray:
    """Boundary ground truth of a label map: 1 where a pixel's label differs from its right or lower neighbour,
    0 elsewhere, ``ignore`` on unlabelled pixels."""
    lab = np.asarray(labels)
    e = np.zeros(lab.shape, np.uint8)
    e[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    e[:-1, :] |= lab[:-1, :] != lab[1:, :]
    e[lab == ignore] = ignore
    return e


def load_ground_truth(frame: Frame) -> dict[str, np.ndarray]:
    """{"image": RGB uint8, task: ground truth in the metrics' conventions} for the tasks this frame has."""
    out: dict[str, np.ndarray] = {"image": cv2.cvtColor(_read(frame.rgb, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)}
    if "depth" in frame.gt:
        d = _read(frame.gt["depth"], cv2.IMREAD_UNCHANGED)
        if d.dtype != np.uint16 or d.ndim != 2:
            raise ValueError(f"{frame.gt['depth']}: expected a uint16 depth PNG, got {d.dtype} {d.shape}")
        out["depth"] = d.astype(np.float32) / 5000.0
    if "normals" in frame.gt:
        from mtlsi_core.data.nyud import decode_normals

        v = cv2.cvtColor(_read(frame.gt["normals"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        n = decode_normals(v.astype(np.float32) * (2.0 / 255.0) - 1.0, frame.gt["normals"])
        out["normals"] = (n @ np.asarray(NYU.normals_to_optical, np.float32).T).astype(np.float32)
    if "labels" in frame.gt:
        out["semseg"] = _read(frame.gt["labels"], cv2.IMREAD_UNCHANGED)
    elif "seg40" in frame.gt:
        out["semseg"] = seg40_to_labels(_read(frame.gt["seg40"], cv2.IMREAD_UNCHANGED))
    if "semseg" in out:
        out["edge"] = label_edges(out["semseg"])
    shape = out["image"].shape[:2]
    for t in TASKS:
        if t in out and out[t].shape[:2] != shape:
            raise ValueError(f"{frame.name}: {t} ground truth is {out[t].shape[:2]}, the image {shape}")
    return out


def baseline_predictions(gt: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The trivial predictors, for the tasks the frame has ground truth for (see the module docstring)."""
    shape = gt["image"].shape[:2]
    out: dict[str, np.ndarray] = {}
    if "depth" in gt:
        d = gt["depth"]
        out["depth"] = np.full(shape, float(d[d > 0].mean()), np.float32)
    if "normals" in gt:
        n = gt["normals"]
        m = n[np.any(n != 0, axis=-1)].mean(axis=0)
        out["normals"] = np.broadcast_to((m / np.linalg.norm(m)).astype(np.float32), (*shape, 3)).copy()
    if "semseg" in gt:
        out["semseg"] = np.full(shape, WALL, np.uint8)
    if "edge" in gt:
        out["edge"] = np.zeros(shape, np.float32)
    return out


def new_metrics(thresholds: Any) -> dict[str, Any]:
    return {"depth": DepthMetric("depth", NYU), "normals": NormalsMetric("normals", NYU),
            "semseg": MeanIoU("semseg", NYU), "edge": BoundaryMetric("edge", NYU, thresholds=thresholds)}


def _semseg_figures(m: Any, r: dict[str, Any]) -> dict[str, float]:
    cm = m._acc["confusion"]
    in_gt = cm.sum(axis=1) > 0
    return {"mIoU_gt_classes": 100.0 * float(m.iou_per_class()[in_gt].mean()) if in_gt.any() else 0.0,
            "mIoU_present": r["miou_present"], "pixel_acc": r["pixel_acc"], "classes_in_gt": int(in_gt.sum()),
            "iou_wall": r["iou/wall"], "iou_floor": r["iou/floor"]}


# task -> (accumulator's compute() output -> the reported figures); the first figure is the headline
REPORT = {
    "depth": lambda m, r: {"rmse_m": r["rmse"], "abs_rel": r["abs_rel"], "delta1_pct": r["delta1"],
                           "pixels": r["pixels"]},
    "normals": lambda m, r: {"mErr_deg": r["mean"], "median_deg": r["median"], "within_30_pct": r["within_30"],
                             "pixels": r["pixels"]},
    "semseg": _semseg_figures,
    "edge": lambda m, r: {"odsF": r["odsf"], "oisF": r["oisf"], "ap": r["ap"]},
}


def summarize(task: str, m: Any) -> dict[str, float]:
    """The reported figures of one task's accumulator, rounded."""
    return {k: round(float(v), 4) for k, v in REPORT[task](m, m.compute()).items()}


def _tile_missing(shape: tuple[int, int]) -> np.ndarray:
    t = np.full((*shape, 3), 200, np.uint8)
    cv2.putText(t, "no GT", (10, shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (90, 90, 90), 3, cv2.LINE_AA)
    return t


def sheet_row(gt: dict[str, np.ndarray], pred: dict[str, np.ndarray], tasks: Sequence[str]) -> list[np.ndarray]:
    """input | GT | prediction for each task (grey 'no GT' tile where the frame has none)."""
    from mtlsi_core.viz import colorize_depth, colorize_labels, colorize_normals, colorize_probability

    shape = gt["image"].shape[:2]
    row = [gt["image"]]
    for t in tasks:
        if t == "depth":
            ref = gt.get("depth", pred["depth"])
            v = ref[ref > 0]
            lo, hi = (float(np.percentile(v, 2)), float(np.percentile(v, 98))) if v.size else (0.0, 1.0)
            vis = lambda a: colorize_depth(a, lo, hi)  # noqa: E731  (one range for GT and prediction)
        else:
            vis = {"normals": colorize_normals, "semseg": colorize_labels, "edge": colorize_probability}[t]
        g = gt.get(t)
        if t == "edge" and g is not None:  # one-pixel lines vanish in a thumbnail: thickened for display only
            g = cv2.dilate((g == 1).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
        row.append(vis(g) if g is not None else _tile_missing(shape))
        row.append(vis(pred[t]))
    return row


def has_frames(root: str | Path | None) -> bool:
    """Whether ``root`` holds real frames (``multitask/`` or ``rgb_seg40/``)."""
    return root is not None and ((Path(root) / "multitask").is_dir() or (Path(root) / "rgb_seg40").is_dir())


def has_data(m: Any) -> bool:
    return bool(m._acc.get("images", 0))


def median_scaled(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` times median(gt) / median(pred) over the pixels with ground truth: the structure of the depth map
    without its scale (Eigen et al. 2014's scale-invariant reading of monocular depth)."""
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    if not valid.any():
        return pred
    return pred * np.float32(np.median(gt[valid]) / max(float(np.median(pred[valid])), 1e-6))


def _scaled_keys(d: dict[str, float]) -> dict[str, float]:
    return {f"{k}_median_scaled": v for k, v in d.items() if k in ("rmse_m", "abs_rel", "delta1_pct")}


class RealFrameScores:
    """Per-frame and pooled figures of predictions (and of the trivial baselines) against each frame's ground truth.

    ``add(name, gt, pred)`` scores one frame for the ``tasks`` it has ground truth for and returns its entry;
    ``pooled()`` gives the figures over every frame added (the metrics' own dataset-level pooling)."""

    def __init__(self, tasks: Sequence[str], thresholds: Any = None):
        self.tasks, self.thresholds = list(tasks), thresholds
        self._pooled = {who: new_metrics(thresholds) for who in ("model", "baseline")}
        self._scaled = new_metrics(thresholds)["depth"]  # the model's depth scaled per frame by the true median
        self.per_frame: list[dict[str, Any]] = []

    def add(self, name: str, gt: dict[str, np.ndarray], pred: dict[str, np.ndarray]) -> dict[str, Any]:
        entry: dict[str, Any] = {"frame": name}
        for who, p in (("model", pred), ("baseline", baseline_predictions(gt))):
            entry[who] = {}
            for t in self.tasks:
                if t not in gt:
                    continue
                one = new_metrics(self.thresholds)[t]
                one.update(p[t], gt[t])
                self._pooled[who][t].update(p[t], gt[t])
                entry[who][t] = summarize(t, one)
        if "depth" in self.tasks and "depth" in gt:
            scaled = median_scaled(pred["depth"], gt["depth"])
            one = new_metrics(self.thresholds)["depth"]
            one.update(scaled, gt["depth"])
            self._scaled.update(scaled, gt["depth"])
            entry["model"]["depth"].update(_scaled_keys(summarize("depth", one)))
        self.per_frame.append(entry)
        return entry

    def pooled(self) -> dict[str, dict[str, dict[str, float]]]:
        out = {who: {t: summarize(t, m) for t, m in ms.items() if t in self.tasks and has_data(m)}
               for who, ms in self._pooled.items()}
        if "depth" in out["model"] and has_data(self._scaled):
            out["model"]["depth"].update(_scaled_keys(summarize("depth", self._scaled)))
        return out

    def frames_per_task(self) -> dict[str, list[str]]:
        return {t: [e["frame"] for e in self.per_frame if t in e["model"]] for t in self.tasks}
