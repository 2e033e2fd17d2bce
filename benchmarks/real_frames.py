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
    scores = RealFrameScores(tasks, args.thresholds)
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
    print(f"written: {doc['files']['json']}, {doc['files']['sheet']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
