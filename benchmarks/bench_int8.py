#!/usr/bin/env python3
"""INT8 vs fp32 through ONNX Runtime on this CPU: speed of the shipped edge model and what INT8 costs in accuracy.

    python benchmarks/bench_int8.py                   # shipped model, QDQ and QOperator, 100 synthetic val frames
    python benchmarks/bench_int8.py --formats qdq --rounds 7 --val-frames 100 --threads 2

Models: the fp32 ONNX export of the checkpoint and its INT8 static quantisations (``mtlsi_core.runtime.quantize``,
per-channel weights, activations uint8, calibrated on synthetic frames with a fixed seed), made by the same model
cache the ``auto`` backend uses (a fresh folder per run unless ``--cache-dir``: the export and quantisation
times are recorded).

Speed: model only (``Runtime.run`` on a batch at the network size, batch 1) and end to end (``Runtime.infer`` from a
480x640 camera image, outputs resized back), in ``--rounds`` interleaved rounds of ``--calls`` calls per model (the
machine is shared: each round gives a median per model, the figure is the median of the round medians, the best
round is listed too); ``uptime``'s load average is recorded before and after every round.

Accuracy: ``--val-frames`` synthetic rooms (``mtlsi_core.data.synth``, seed ``--val-seed``, never the training
seed, at the training size of the checkpoint's record), and the real NYUDv2 frames of ``--real-root`` (evaluation
only; skipped when absent): mIoU, depth RMSE, normals mErr, boundary odsF per model, and INT8 minus fp32 against the
acceptable cost (1 mIoU, 3 % RMSE, 1 degree, 1 odsF); odsF over ``--edge-thresholds`` 9 thresholds by default (the
full sweep costs 8 s per 240x320 frame here), the same for both models. The real frames' boundary ground truth is the boundary map of
their 40-class labels (``seg2bmap``); depth and normals exist for 2 and 1 of them.

Writes ``benchmarks/results/int8_cpu.json`` (machine description, load averages, every figure).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
from mtlsi_core.checkpoint import packaged_model  # noqa: E402
from mtlsi_core.runtime.quantize import CALIBRATION_METHODS, CalibrationSpec  # noqa: E402

SHIPPED = packaged_model()  # the node's default
REAL_ROOT = REPO.parent / "shared" / "data" / "nyud_real_samples"
KINECT_FX = 518.8579  # NYUDv2 colour camera focal length (pixels at 640x480)
TARGET_INT8_FPS = 60.0
LIMITS = {"semseg": ("mIoU", -1.0, "abs"), "depth": ("RMSE", 0.03, "rel"), "normals": ("mErr", 1.0, "abs"),
          "edge": ("odsF", -1.0, "abs")}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def build_models(ckpt: Path, cache_dir: Path, formats: list[str], calib_frames: int, calib_method: str,
                 render_size: tuple[int, int]) -> dict[str, Any]:
    from mtlsi_core.runtime.model_cache import cached_onnx

    models: dict[str, Any] = {}
    t0 = time.perf_counter()
    fp32 = cached_onnx(ckpt, "fp32", cache_dir=cache_dir)
    models["fp32"] = {"path": str(fp32.path), "build_s": round(time.perf_counter() - t0, 1), "built": fp32.built,
                      "mb": round(fp32.path.stat().st_size / 1e6, 2)}
    for fmt in formats:
        spec = CalibrationSpec(frames=calib_frames, quant_format=fmt, method=calib_method, render_size=render_size)
        t0 = time.perf_counter()
        e = cached_onnx(ckpt, "int8", cache_dir=cache_dir, calibration=spec)
        models[f"int8_{fmt}"] = {"path": str(e.path), "build_s": round(time.perf_counter() - t0, 1), "built": e.built,
                                 "mb": round(e.path.stat().st_size / 1e6, 2), "calibration": spec.key()}
        print(f"  int8 {fmt}: {e.path.name} ({models[f'int8_{fmt}']['build_s']} s)", flush=True)
    return models


def speed(runtimes: dict[str, Any], rounds: int, calls: int, camera: tuple[int, int]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    cam = rng.integers(0, 256, (*camera, 3), dtype=np.uint8)
    out: dict[str, Any] = {n: {"model_round_p50_ms": [], "e2e_round_p50_ms": []} for n in runtimes}
    loads = []
    for name, rt in runtimes.items():  # warm up
        batch = rt.prepare([cam])
        for _ in range(3):
            rt.run(batch)
            rt.infer([cam])
    for r in range(rounds):
        loads.append({"round": r, "before": uptime()})
        for name, rt in runtimes.items():
            batch = rt.prepare([cam])
            ts = []
            for _ in range(calls):
                t = time.perf_counter()
                rt.run(batch)
                ts.append(time.perf_counter() - t)
            te = []
            for _ in range(max(3, calls // 2)):
                t = time.perf_counter()
                rt.infer([cam])
                te.append(time.perf_counter() - t)
            out[name]["model_round_p50_ms"].append(round(1000 * float(np.median(ts)), 2))
            out[name]["e2e_round_p50_ms"].append(round(1000 * float(np.median(te)), 2))
        loads[-1]["after"] = uptime()
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {v['model_round_p50_ms'][-1]:.1f} ms"
                                                         for n, v in out.items()) + f"  [{loads[-1]['after']}]",
              flush=True)
    for name, v in out.items():
        med = float(np.median(v["model_round_p50_ms"]))
        v.update(model_p50_ms=round(med, 2), model_fps=round(1000.0 / med, 1),
                 model_best_round_ms=min(v["model_round_p50_ms"]),
                 model_best_round_fps=round(1000.0 / min(v["model_round_p50_ms"]), 1),
                 e2e_p50_ms=round(float(np.median(v["e2e_round_p50_ms"])), 2))
    return {"per_model": out, "load": loads, "camera": list(camera), "rounds": rounds, "calls": calls}


def _headline(results: dict[str, Any]) -> dict[str, float]:
    from mtlsi_core.metrics.multitask import headline_values

    return {t: round(float(v), 4) for t, v in headline_values(results).items()}


def _evaluator(tasks, dataset, edge_thresholds: int):
    from mtlsi_core.metrics import MultiTaskEvaluator

    kw = {"edge": {"thresholds": edge_thresholds}} if edge_thresholds and "edge" in tasks else {}
    return MultiTaskEvaluator(tasks, dataset, **kw)


def synthetic_val(runtimes: dict[str, Any], n: int, seed: int, size: tuple[int, int],
                  edge_thresholds: int = 0) -> dict[str, Any]:
    from mtlsi_core.data.synth import frame_seed, render_scene
    from mtlsi_core.metrics import MultiTaskEvaluator

    rt0 = next(iter(runtimes.values()))
    tasks = [t for t in ("semseg", "depth", "normals", "edge") if t in rt0.tasks]
    evals = {name: _evaluator(tasks, rt0.dataset, edge_thresholds) for name in runtimes}
    agree: dict[str, list[float]] = {name: [] for name in runtimes}
    for i in range(n):
        f = render_scene(frame_seed(seed, i), size=size)
        gt = {"semseg": f.semseg, "depth": f.depth, "normals": f.normals, "edge": f.edge}
        ref = None
        for name, rt in runtimes.items():
            out = rt.infer([f.image], focal_lengths=[float(f.K[0, 0])])[0]
            pred = {t: (np.nan_to_num(out[t], nan=0.0) if t == "depth" else out[t]) for t in tasks}
            evals[name].update(pred, {t: gt[t] for t in tasks})
            if ref is None:
                ref = out
            else:
                agree[name].append(float((out["semseg"] == ref["semseg"]).mean()))
    res = {name: _headline(ev.compute()) for name, ev in evals.items()}
    return {"frames": n, "seed": seed, "size": list(size), "scores": res,
            "label_agreement_with_fp32": {k: round(float(np.mean(v)), 4) for k, v in agree.items() if v}}


def _read(path: Path, flags: int):
    import cv2

    img = cv2.imread(str(path), flags)
    if img is None:
        raise OSError(f"cannot read {path}")
    return img


def real_frames(root: Path) -> list[dict[str, Any]]:
    """The real NYUDv2 frames: rgb and whatever ground truth exists (semseg 0..39 / 255, depth m, normals)."""
    import cv2

    frames = []
    mt = root / "multitask"
    for stem, idx in (("drsleep_three", "000433"), ("drsleep_joint", "000464")):
        rgb = mt / f"{stem}_{idx}.png"
        if not rgb.is_file():
            continue
        f: dict[str, Any] = {"name": rgb.name, "image": cv2.cvtColor(_read(rgb, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)}
        seg = mt / f"{stem}_segm_gt_{idx}.png"
        if seg.is_file():
            f["semseg"] = _read(seg, cv2.IMREAD_UNCHANGED).astype(np.uint8)
        dep = mt / f"{stem}_depth_gt_{idx}.png"
        if dep.is_file():
            f["depth"] = _read(dep, cv2.IMREAD_UNCHANGED).astype(np.float32) / 5000.0
        nor = mt / f"{stem}_norm_gt_{idx}.png"
        if nor.is_file():
            v = cv2.cvtColor(_read(nor, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32)
            n = 2.0 * v / 255.0 - 1.0
            norm = np.linalg.norm(n, axis=-1, keepdims=True)
            f["normals"] = np.where(norm > 0.5, n / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
        frames.append(f)
    for rgb in sorted((root / "rgb_seg40").glob("nyu_*_rgb.png")):
        seg = rgb.with_name(rgb.name.replace("_rgb", "_seg40"))
        if not seg.is_file():
            continue
        lab = _read(seg, cv2.IMREAD_UNCHANGED).astype(np.int32)
        lab = np.where(lab == 0, 255, lab - 1).astype(np.uint8)  # 1..40 -> 0..39, 0 (unlabelled) -> 255
        frames.append({"name": rgb.name, "image": cv2.cvtColor(_read(rgb, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
                       "semseg": lab})
    for f in frames:
        if "semseg" in f:
            from mtlsi_core.metrics import seg2bmap

            edge = seg2bmap(f["semseg"]).astype(np.uint8)
            f["edge"] = edge
    return frames


def real_eval(runtimes: dict[str, Any], root: Path, edge_thresholds: int = 0) -> dict[str, Any]:
    if not root.is_dir():
        return {"skipped": f"{root} absent"}
    frames = real_frames(root)
    rt0 = next(iter(runtimes.values()))
    res: dict[str, Any] = {"frames": [f["name"] for f in frames], "scores": {}}
    counts = {t: sum(t in f for f in frames) for t in ("semseg", "depth", "normals", "edge")}
    res["frames_per_task"] = counts
    for name, rt in runtimes.items():
        evals = {t: _evaluator([t], rt0.dataset, edge_thresholds) for t in counts if counts[t] and t in rt.tasks}
        for f in frames:
            h, w = f["image"].shape[:2]
            out = rt.infer([f["image"]], focal_lengths=[KINECT_FX * w / 640.0])[0]
            for t, ev in evals.items():
                if t in f:
                    p = np.nan_to_num(out[t], nan=0.0) if t == "depth" else out[t]
                    ev.update({t: p}, {t: f[t]})
        scores: dict[str, float] = {}
        for t, ev in evals.items():
            scores.update(_headline(ev.compute()))
        res["scores"][name] = scores
    return res


def costs(scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """INT8 minus fp32 per task against the acceptable cost (worse = lower mIoU / odsF, higher RMSE / mErr)."""
    out: dict[str, Any] = {}
    ref = scores["fp32"]
    for name, s in scores.items():
        if name == "fp32":
            continue
        row = {}
        for t, (metric, limit, kind) in LIMITS.items():
            if t not in s or t not in ref:
                continue
            delta = s[t] - ref[t]
            if kind == "rel":
                rel = delta / ref[t] if ref[t] else float("inf")
                row[t] = {"metric": metric, "fp32": ref[t], "int8": s[t], "relative_change": round(rel, 4),
                          "limit": f"<= +{limit:.0%}", "ok": rel <= limit}
            elif limit < 0:  # higher is better
                row[t] = {"metric": metric, "fp32": ref[t], "int8": s[t], "change": round(delta, 4),
                          "limit": f">= {limit}", "ok": delta >= limit}
            else:
                row[t] = {"metric": metric, "fp32": ref[t], "int8": s[t], "change": round(delta, 4),
                          "limit": f"<= +{limit}", "ok": delta <= limit}
        out[name] = row
    return out


def tune(ckpt: Path, cache_dir: Path, a: argparse.Namespace, info: dict[str, Any]) -> int:
    """fp32 model-only speed per ONNX Runtime setting, interleaved rounds as ``speed``."""
    from mtlsi_core.checkpoint import atomic_write
    from mtlsi_core.runtime import create_runtime
    from mtlsi_core.runtime.model_cache import cached_onnx

    path = str(cached_onnx(ckpt, "fp32", cache_dir=cache_dir).path)
    settings = {"intra1_all": dict(intra_op_threads=1), "intra2_all": dict(intra_op_threads=2),
                "intra2_inter2_all": dict(intra_op_threads=2, inter_op_threads=2),
                "intra2_extended": dict(intra_op_threads=2, graph_optimization="extended"),
                "intra2_basic": dict(intra_op_threads=2, graph_optimization="basic")}
    runtimes = {n: create_runtime("onnx", path, device="cpu", **kw) for n, kw in settings.items()}
    h, w = (int(v) for v in a.camera.split("x"))
    sp = speed(runtimes, a.rounds, a.calls, (h, w))
    result = {"machine": info, "model": str(ckpt), "settings": settings, "speed": sp, "uptime_at_end": uptime()}
    out = Path(a.out or RESULTS / "int8_cpu_tuning.json")
    atomic_write(out, lambda f: f.write(json.dumps(result, indent=1).encode()))
    for n, v in sp["per_model"].items():
        print(f"  {n:20s} model p50 {v['model_p50_ms']:7.1f} ms ({v['model_fps']:5.1f} frames/s), best round "
              f"{v['model_best_round_ms']:.1f} ms, end to end {v['e2e_p50_ms']:.1f} ms")
    print(f"[bench_int8] wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(SHIPPED))
    p.add_argument("--formats", nargs="+", default=["qdq", "qoperator"], choices=("qdq", "qoperator"))
    p.add_argument("--calib-frames", type=int, default=24)
    p.add_argument("--calib-method", default=CalibrationSpec.method, choices=CALIBRATION_METHODS)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: physical cores)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--camera", default="480x640")
    p.add_argument("--val-frames", type=int, default=100)
    p.add_argument("--val-seed", type=int, default=777)
    p.add_argument("--real-root", default=str(REAL_ROOT))
    p.add_argument("--cache-dir", default=None, help="model cache folder (default: a fresh temporary one)")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--edge-thresholds", type=int, default=9,
                   help="odsF threshold count (0: the metric's default sweep, ~8x slower); the same for every model")
    p.add_argument("--tune", action="store_true",
                   help="instead: fp32 speed per ONNX Runtime setting (intra-op threads 1 / 2, inter-op 2, graph "
                        "optimisation all / extended / basic) -> int8_cpu_tuning.json")
    p.add_argument("--out", default=None, help="default: benchmarks/results/int8_cpu.json (--tune: int8_cpu_tuning.json)")
    a = p.parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from mtlsi_core.checkpoint import atomic_write
    from mtlsi_core.runtime import create_runtime
    from mtlsi_core.tools.machine import describe

    ckpt = Path(a.model)
    record = json.loads(ckpt.with_suffix(".json").read_text()) if ckpt.with_suffix(".json").is_file() else {}
    train_size = tuple(record.get("data", {}).get("size", (240, 320)))
    cache_dir = Path(a.cache_dir) if a.cache_dir else Path(tempfile.mkdtemp(prefix="mtlsi_int8_bench_"))
    info = describe("cpu", uptime_at_start=uptime())
    print(f"[bench_int8] {uptime()}\n[bench_int8] building models in {cache_dir}", flush=True)
    if a.tune:
        return tune(ckpt, cache_dir, a, info)
    models = build_models(ckpt, cache_dir, a.formats, a.calib_frames, a.calib_method, train_size)
    opts = {"intra_op_threads": a.threads} if a.threads else {}
    runtimes = {name: create_runtime("onnx", m["path"], device="cpu", precision="int8" if name != "fp32" else "fp32",
                                     **opts) for name, m in models.items()}
    h, w = (int(v) for v in a.camera.split("x"))
    print("[bench_int8] speed", flush=True)
    sp = speed(runtimes, a.rounds, a.calls, (h, w))
    result: dict[str, Any] = {"machine": info, "model": str(ckpt), "input_size": list(runtimes["fp32"].input_size),
                              "threads": runtimes["fp32"].info.options["intra_op_threads"], "models": models,
                              "speed": sp, "target_int8_fps": TARGET_INT8_FPS,
                              "edge_thresholds": a.edge_thresholds or "metric default"}
    best = max((n for n in runtimes if n != "fp32"), key=lambda n: sp["per_model"][n]["model_fps"], default=None)
    if best:
        result["fastest_int8"] = best
        result["int8_target_met"] = sp["per_model"][best]["model_fps"] >= TARGET_INT8_FPS
        result["int8_speedup_vs_fp32"] = round(sp["per_model"]["fp32"]["model_p50_ms"]
                                               / sp["per_model"][best]["model_p50_ms"], 3)
    if not a.skip_accuracy:
        print(f"[bench_int8] accuracy on {a.val_frames} synthetic frames at {train_size}", flush=True)
        syn = synthetic_val(runtimes, a.val_frames, a.val_seed, train_size, a.edge_thresholds)
        syn["cost"] = costs(syn["scores"])
        result["synthetic_val"] = syn
        print("[bench_int8] accuracy on the real frames", flush=True)
        real = real_eval(runtimes, Path(a.real_root), a.edge_thresholds)
        if "scores" in real:
            real["cost"] = costs(real["scores"])
        result["real_frames"] = real
    result["uptime_at_end"] = uptime()
    out = Path(a.out or RESULTS / "int8_cpu.json")
    atomic_write(out, lambda f: f.write(json.dumps(result, indent=1).encode()))
    print(json.dumps({k: result[k] for k in result if k not in ("machine", "models")}, indent=1)[:6000])
    print(f"[bench_int8] wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
