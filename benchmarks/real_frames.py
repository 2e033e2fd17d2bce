#!/usr/bin/env python3
"""Any model on the real NYUDv2 frames of ../shared/data/nyud_real_samples: per frame and pooled scores beside
trivial baselines, a JSON record (with the machine) and a contact sheet.

    python benchmarks/real_frames.py                                   # the shipped model, torch runtime
    python benchmarks/real_frames.py --model runs/x/best.pt
    python benchmarks/real_frames.py --model model.onnx                # ONNX Runtime (backend from the suffix)
    python benchmarks/real_frames.py --frames nyu_0433 --thresholds 9  # a quick look

What it does: runs the model through ``mtlsi_core.runtime.create_runtime`` exactly as the node does (camera image
in, outputs at the camera's size, NYUDv2's focal length 518.86 px given, so the runtime's focal-length correction
makes depth metric), on every frame that has each ground truth: depth (uint16 / 5000 m) and surface normals
(rotated into the optical frame; (127, 127, 127) = no normal) where ``multitask/`` has them, 40-class labels from
``multitask/`` (0..39, 255 ignore) or ``rgb_seg40/`` (1..40, 0 unlabelled: minus 1, 0 -> 255), boundaries from
the label maps' edges (a pixel whose label differs from its right or lower neighbour; pixels of unlabelled regions
ignored). Frames present in both folders (nyu_0433) are scored once. Scores per frame and pooled over all frames
(the metrics' own dataset-level pooling): depth RMSE, abs-rel, delta1; normals mErr; mIoU over the classes present
in the ground truth (and the project metric's mIoU over classes in ground truth or prediction), pixel accuracy; odsF
(SEISM/InvPT protocol of ``mtlsi_core.metrics.boundary``). Baselines beside them: each frame's own mean ground-truth
depth as a constant, each frame's dominant normal (the normalised mean of its ground-truth normals) as a constant,
'wall' everywhere, no boundaries. Writes ``benchmarks/results/real_frames_<model>.json`` and ``..._sheet.png``
(input | ground truth | prediction per task; the PNG holds thumbnails of the real frames: keep it out of git).
What it may touch: it reads the frames and the model, writes only its two output files (atomically).
Exit 0 with a message where the frames folder is absent (a user's machine), 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mtlsi_core.checkpoint import atomic_write_bytes  # noqa: E402
from mtlsi_core.metrics import BoundaryMetric, DepthMetric, MeanIoU, NormalsMetric  # noqa: E402
from mtlsi_core.tasks import get_dataset  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "nyud_real_samples"
DEFAULT_MODEL = REPO / "mtlsi_core" / "weights" / "synth_edge_lite0.pt"
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    from mtlsi_core.runtime import create_runtime
    from mtlsi_core.tools.machine import describe, summary
    from mtlsi_core.viz import contact_sheet

    frames = discover(args.data)
    if args.frames:
        unknown = sorted(set(args.frames) - {f.name for f in frames})
        if unknown:
            raise ValueError(f"no frame(s) {unknown} in {args.data} (have: {', '.join(f.name for f in frames)})")
        frames = [f for f in frames if f.name in set(args.frames)]
    if not frames:
        raise ValueError(f"no frames found in {args.data}")
    backend = args.backend or ("onnx" if args.model.suffix == ".onnx" else "torch")
    rt = create_runtime(backend, str(args.model), device=args.device)
    tasks = [t for t in TASKS if t in rt.tasks]
    if not tasks:
        raise ValueError(f"{args.model} predicts none of {TASKS} (its tasks: {rt.tasks})")
    machine = describe(args.device, backend=backend)
    pooled = {p: new_metrics(args.thresholds) for p in ("model", "baseline")}
    per_frame: list[dict[str, Any]] = []
    rows = []
    t0 = time.perf_counter()
    infer_s = []
    for f in frames:
        gt = load_ground_truth(f)
        img = gt["image"]
        t1 = time.perf_counter()
        pred = rt.infer([img], output_size="input", focal_lengths=[NYU_FX * img.shape[1] / NYU_WIDTH])[0]
        infer_s.append(time.perf_counter() - t1)
        base = baseline_predictions(gt)
        entry: dict[str, Any] = {"frame": f.name, "files": {k: p.name for k, p in f.gt.items()}}
        for who, p in (("model", pred), ("baseline", base)):
            entry[who] = {}
            for t in tasks:
                if t not in gt:
                    continue
                one = new_metrics(args.thresholds)[t]
                one.update(p[t], gt[t])
                pooled[who][t].update(p[t], gt[t])
                entry[who][t] = summarize(t, one)
        per_frame.append(entry)
        rows.append(sheet_row(gt, pred, tasks))
        print(f"{f.name}: " + "  ".join(
            f"{t} {next(iter(entry['model'][t].values())):.3f} (baseline {next(iter(entry['baseline'][t].values())):.3f})"
            for t in tasks if t in entry["model"]), flush=True)
    pooled_out = {who: {t: summarize(t, m) for t, m in ms.items() if t in tasks and _has_data(m)}
                  for who, ms in pooled.items()}
    frames_per_task = {t: [e["frame"] for e in per_frame if t in e["model"]] for t in tasks}
    doc = {
        "what": "real NYUDv2 frames (../shared/data/nyud_real_samples), runtime as the node runs it",
        "model": str(args.model), "backend": backend, "runtime_info": _info(rt),
        "canonical_focal": rt.canonical_focal, "focal_length_px_at_640": NYU_FX,
        "tasks": tasks, "frames_per_task": frames_per_task,
        "boundary_thresholds": "SEISM/HED 101" if args.thresholds is None else args.thresholds,
        "baselines": {"depth": "each frame's own mean ground-truth depth, constant",
                      "normals": "each frame's dominant normal (normalised mean of its GT normals), constant",
                      "semseg": "'wall' everywhere", "edge": "no boundaries"},
        "metric_notes": {"mIoU_gt_classes": "mean IoU over the classes present in the ground truth (pooled)",
                         "mIoU_present": "the project metric's miou_present: classes in ground truth or prediction",
                         "edge": "ground truth = label-map edges, unlabelled pixels ignored"},
        "pooled": pooled_out, "per_frame": per_frame,
        "inference_ms_median": round(1000 * float(np.median(infer_s)), 1),
        "seconds": round(time.perf_counter() - t0, 1), "machine": machine, "machine_summary": summary(machine),
    }
    out_dir = Path(args.out)
    stem = args.name or f"real_frames_{args.model.stem}"
    json_path, png_path = out_dir / f"{stem}.json", out_dir / f"{stem}_sheet.png"
    atomic_write_bytes(json_path, json.dumps(doc, indent=2).encode())
    titles = ["input"] + [f"{t} {k}" for t in tasks for k in ("GT", "pred")]
    sheet = contact_sheet(rows, titles, tile_hw=tuple(args.tile))
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the contact sheet")
    atomic_write_bytes(png_path, buf.tobytes())
    doc["files"] = {"json": str(json_path), "sheet": str(png_path)}
    return doc


def _has_data(m: Any) -> bool:
    acc = m._acc
    return bool(acc.get("images", 0))


def _info(rt: Any) -> dict[str, Any]:
    i = rt.info
    return {"backend": i.backend, "device": i.device, "precision": i.precision, "input_size": list(i.input_size),
            "notes": list(i.notes)}


def format_pooled(doc: dict[str, Any]) -> str:
    lines = [f"pooled over the frames with each ground truth ({doc['machine_summary']})",
             "| task | frames | metric | model | baseline |", "|---|---|---|---|---|"]
    for t in doc["tasks"]:
        if t not in doc["pooled"]["model"]:
            continue
        for k, v in doc["pooled"]["model"][t].items():
            if k in ("pixels", "classes_in_gt"):
                continue
            b = doc["pooled"]["baseline"][t].get(k)
            lines.append(f"| {t} | {len(doc['frames_per_task'][t])} | {k} | {v:.4g} | "
                         f"{'-' if b is None else f'{b:.4g}'} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint (.pt) or .onnx (default: shipped)")
    p.add_argument("--backend", choices=("torch", "onnx"), help="default: onnx for .onnx files, else torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"real frames folder (default {DEFAULT_DATA})")
    p.add_argument("--frames", nargs="+", help="only these frames (e.g. nyu_0433)")
    p.add_argument("--thresholds", type=int, help="boundary thresholds (default: SEISM/HED's 101)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="output folder")
    p.add_argument("--name", help="output file stem (default real_frames_<model stem>)")
    p.add_argument("--tile", type=int, nargs=2, default=(120, 160), metavar=("H", "W"), help="contact sheet tile")
    p.add_argument("--threads", type=int, help="torch threads")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.data / "multitask").is_dir() and not (args.data / "rgb_seg40").is_dir():
        print(f"real_frames: no real NYUDv2 frames at {args.data} (multitask/ or rgb_seg40/): skipped")
        return 0
    if not args.model.is_file():
        print(f"real_frames: error: model file not found: {args.model}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        doc = run(args)
    except ValueError as e:
        print(f"real_frames: error: {e}", file=sys.stderr)
        return 2
    print(format_pooled(doc))
    print(f"written: {doc['files']['json']}, {doc['files']['sheet']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
