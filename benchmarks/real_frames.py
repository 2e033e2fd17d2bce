#!/usr/bin/env python3
"""Any model on the real NYUDv2 frames of ../shared/data/nyud_real_samples: per frame and pooled scores beside
trivial baselines, a JSON record (with the machine) and a contact sheet.

    python benchmarks/real_frames.py                                   # the shipped model, torch runtime
    python benchmarks/real_frames.py --model runs/x/best.pt
    python benchmarks/real_frames.py --model model.onnx                # ONNX Runtime (backend from the suffix)
    python benchmarks/real_frames.py --frames nyu_0433 --thresholds 9  # a quick look
    python benchmarks/real_frames.py --anchor-gt-floor                 # depth with / without floor anchoring

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
With ``--anchor-gt-floor`` (floor anchoring, issue 19): the runtime also gives the labels' confidence (as the node
asks for it when anchoring) and each frame with depth and label ground truth (two of the ten) gets a camera mount from
its own ground-truth floor: ``mtlsi_core.anchoring.fit_floor_plane`` on the ground-truth 3D points of the pixels the
ground truth labels floor (NYUDv2 Kinect intrinsics at the image's size), a fresh ``FloorAnchor`` (node defaults) per
frame and ``anchor_outputs`` on the prediction: depth RMSE, abs-rel and delta1 pooled over those frames, without and
with anchoring side by side, against the issue's target (RMSE <= 0.45 m, delta1 >= 75 %). The mount from each frame's
ground-truth floor simulates a calibrated robot (a real robot knows its mount; these handheld frames do not): an
evaluation, nothing is fitted to the predictions. Writes ``real_frames_anchored_<model>.json`` (and its sheet) so the
plain run's files stay; the plain per-task scores are in it as well, unanchored.
What it may touch: it reads the frames and the model, writes only its two output files (atomically).
Exit 0 with a message where the frames folder is absent (a user's machine), 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mtlsi_core.checkpoint import atomic_write_bytes, packaged_model  # noqa: E402
from mtlsi_core.data.nyud_samples import (  # noqa: E402,F401  (names this script has always had)
    NYU, NYU_FX, NYU_WIDTH, TASKS, WALL, Frame, RealFrameScores, baseline_predictions, discover, has_frames,
    label_edges, load_ground_truth, new_metrics, seg40_to_labels, sheet_row, summarize)

DEFAULT_DATA = REPO.parent / "shared" / "data" / "nyud_real_samples"
DEFAULT_MODEL = packaged_model()  # the node's default
MOUNT_SOURCE = "mount from each frame's ground-truth floor: simulates a calibrated robot"
ANCHOR_TARGET = {"rmse_m": 0.45, "delta1_pct": 75.0}  # issue 19: depth RMSE <= 0.45 m, delta1 >= 75 %
MIN_FLOOR_PIXELS = 1000  # ground-truth floor pixels (with depth) a frame needs for a fitted floor


def frame_intrinsics(hw: tuple[int, int]) -> np.ndarray:
    """NYUDv2's Kinect RGB intrinsics (3x3) at an image of ``hw`` = (H, W) (scaled from 640x480)."""
    from mtlsi_core.data.synth import kinect_intrinsics

    return kinect_intrinsics((int(hw[0]), int(hw[1])))


class GtFloorAnchoring:
    """Depth with and without floor anchoring (the mount from each frame's ground-truth floor), pooled."""

    def __init__(self, dataset: str):
        from mtlsi_core.anchoring import AnchorConfig, floor_classes

        self.config = AnchorConfig()
        self.pred_floor = floor_classes(dataset)  # the model's floor class ids
        self.gt_floor = floor_classes("nyud")  # the ground truth's (NYUDv2-40)
        self.pooled = {side: new_metrics(None)["depth"] for side in ("without", "with")}
        self.frames: list[dict[str, Any]] = []

    def add(self, name: str, gt: dict[str, np.ndarray], pred: dict[str, np.ndarray]) -> dict[str, Any] | None:
        """Anchor a copy of ``pred``'s depth with the floor fitted to ``gt``; score both sides. None: no depth GT."""
        from mtlsi_core.anchoring import FloorAnchor, anchor_outputs, fit_floor_plane

        if "depth" not in gt:
            return None
        row: dict[str, Any] = {"frame": name}
        if "semseg" not in gt:
            row["anchored"], row["why_not"] = False, "no label ground truth (no floor to fit)"
        else:
            floor = np.isin(gt["semseg"], self.gt_floor) & (gt["depth"] > 0)
            row["gt_floor_pixels"] = int(floor.sum())
            if row["gt_floor_pixels"] < MIN_FLOOR_PIXELS:
                row["anchored"], row["why_not"] = False, f"fewer than {MIN_FLOOR_PIXELS} ground-truth floor pixels"
        if "why_not" in row:
            self.frames.append(row)
            return row
        K = frame_intrinsics(gt["depth"].shape[:2])
        plane = fit_floor_plane(gt["depth"], floor, K)
        out = dict(pred)
        out["depth"] = pred["depth"].copy()
        st = anchor_outputs(out, FloorAnchor(plane, self.pred_floor, self.config), K)
        row.update(anchored=True, mount=plane.mount().describe(),
                   plane={"normal": [round(v, 5) for v in plane.normal], "offset_m": round(plane.offset, 4)},
                   status=st.status, scale=round(st.scale, 4), support=st.support, inliers=st.inliers)
        for side, d in (("without", pred["depth"]), ("with", out["depth"])):
            one = new_metrics(None)["depth"]
            one.update(d, gt["depth"])
            self.pooled[side].update(d, gt["depth"])
            row[side] = summarize("depth", one)
        self.frames.append(row)
        return row

    def doc(self) -> dict[str, Any]:
        used = [r["frame"] for r in self.frames if r.get("anchored")]
        pooled = {side: summarize("depth", m) for side, m in self.pooled.items()} if used else None
        met = None
        if pooled:
            w = pooled["with"]
            met = w["rmse_m"] <= ANCHOR_TARGET["rmse_m"] and w["delta1_pct"] >= ANCHOR_TARGET["delta1_pct"]
        return {"mount_source": MOUNT_SOURCE,
                "how": "floor plane fitted (RANSAC 2 cm + least squares, mtlsi_core.anchoring.fit_floor_plane) to "
                       "the ground-truth 3D points of the pixels labelled floor in the ground truth (NYUDv2 Kinect "
                       "intrinsics); a fresh FloorAnchor per frame (node defaults: confidence >= "
                       f"{self.config.min_confidence}, normals within {self.config.max_normal_angle_deg} deg); "
                       "anchor_outputs on the runtime's outputs",
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.config.__dict__.items()},
                "frames_anchored": used, "pooled": pooled, "per_frame": self.frames,
                "target": {"rmse_m_max": ANCHOR_TARGET["rmse_m"], "delta1_pct_min": ANCHOR_TARGET["delta1_pct"],
                           "applies_to": "with"},
                "target_met": met}


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
    rt = create_runtime(backend, str(args.model), device=args.device,
                        **({"auxiliary": ("confidence",)} if args.anchor_gt_floor else {}))
    tasks = [t for t in TASKS if t in rt.tasks]
    if not tasks:
        raise ValueError(f"{args.model} predicts none of {TASKS} (its tasks: {rt.tasks})")
    machine = describe(args.device, backend=backend)
    scores = RealFrameScores(tasks, args.thresholds)
    anchoring = GtFloorAnchoring(rt.dataset) if args.anchor_gt_floor and "depth" in tasks else None
    rows = []
    t0 = time.perf_counter()
    infer_s = []
    for f in frames:
        gt = load_ground_truth(f)
        img = gt["image"]
        t1 = time.perf_counter()
        pred = rt.infer([img], output_size="input", focal_lengths=[NYU_FX * img.shape[1] / NYU_WIDTH])[0]
        infer_s.append(time.perf_counter() - t1)
        entry = scores.add(f.name, gt, pred)
        entry["files"] = {k: q.name for k, q in f.gt.items()}
        rows.append(sheet_row(gt, pred, tasks))
        print(f"{f.name}: " + "  ".join(
            f"{t} {next(iter(entry['model'][t].values())):.3f} (baseline {next(iter(entry['baseline'][t].values())):.3f})"
            for t in tasks if t in entry["model"]), flush=True)
        if anchoring is not None:
            a = anchoring.add(f.name, gt, pred)
            if a is not None and a.get("anchored"):
                print(f"  {f.name} anchored ({a['mount']}; {a['status']}, scale {a['scale']:.3f}): depth RMSE "
                      f"{a['without']['rmse_m']:.3f} -> {a['with']['rmse_m']:.3f} m, delta1 "
                      f"{a['without']['delta1_pct']:.1f} -> {a['with']['delta1_pct']:.1f} %", flush=True)
            elif a is not None:
                print(f"  {f.name} not anchored: {a['why_not']}", flush=True)
    pooled_out, frames_per_task, per_frame = scores.pooled(), scores.frames_per_task(), scores.per_frame
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
    if args.anchor_gt_floor:
        doc["anchoring"] = anchoring.doc() if anchoring is not None else {
            "mount_source": MOUNT_SOURCE, "pooled": None, "target_met": None, "why_not": "the model predicts no depth"}
    out_dir = Path(args.out)
    stem = args.name or f"real_frames_{'anchored_' if args.anchor_gt_floor else ''}{args.model.stem}"
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


def format_anchoring(a: dict[str, Any]) -> str:
    """The side-by-side depth figures of ``--anchor-gt-floor``."""
    lines = [f"floor anchoring, {a['mount_source']}"]
    if not a.get("pooled"):
        return "\n".join(lines + ["no frame with depth and floor ground truth: nothing anchored"])
    p, t = a["pooled"], a["target"]
    lines += [f"depth pooled over {len(a['frames_anchored'])} frames ({', '.join(a['frames_anchored'])})",
              "| metric | without anchoring | with anchoring | target |", "|---|---|---|---|",
              f"| RMSE (m) | {p['without']['rmse_m']:.4f} | {p['with']['rmse_m']:.4f} | <= {t['rmse_m_max']} |",
              f"| abs-rel | {p['without']['abs_rel']:.4f} | {p['with']['abs_rel']:.4f} | - |",
              f"| delta1 (%) | {p['without']['delta1_pct']:.2f} | {p['with']['delta1_pct']:.2f} | "
              f">= {t['delta1_pct_min']} |",
              f"issue 19 target (RMSE <= {t['rmse_m_max']} m and delta1 >= {t['delta1_pct_min']} %, with anchoring): "
              f"{'met' if a['target_met'] else 'NOT met'}"]
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
    p.add_argument("--anchor-gt-floor", action="store_true",
                   help="also score depth with floor anchoring, the mount from each frame's ground-truth floor "
                        "(simulates a calibrated robot); writes real_frames_anchored_<model>.json")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not has_frames(args.data):
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
    if "anchoring" in doc:
        print(format_anchoring(doc["anchoring"]))
    print(f"written: {doc['files']['json']}, {doc['files']['sheet']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
