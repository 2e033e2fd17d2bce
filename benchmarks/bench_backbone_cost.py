#!/usr/bin/env python3
"""Does EfficientNet-Lite2 pay on a CPU node? Forward time and parameters of the whole MTLSI-Net (the synthetic
config's head) with each backbone, at the network input size, 1 torch thread, batch 1 and 8.

    OMP_NUM_THREADS=1 python benchmarks/bench_backbone_cost.py                  # lite0 vs lite2, 224x288
    python benchmarks/bench_backbone_cost.py --backbones efficientnet_lite0 --reps 5   # a quick look

What it does: builds ``--config``'s model (random weights: the cost does not depend on them) with each backbone
and times ``--reps`` eval-mode forwards (after ``--warmup``) per batch size with ``torch.inference_mode`` and, as
the node runs it, the ONNX export in ONNX Runtime (uint8 NHWC input, ``--onnx-threads`` intra-op threads); the
backbones take turns rep by rep, so that a change of load hits them alike. Reports median / min milliseconds per
forward and per frame, parameters (backbone / head) and the fp32 / fp16 weight size. The machine
(``mtlsi_core.tools.machine``) and ``uptime`` before and after are saved beside the figures: timings under load are
noisy, the minimum is the closest to an idle machine. Writes ``benchmarks/results/backbone_cost_cpu.json``
(atomically). What it may touch: only that file.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mtlsi_core.checkpoint import atomic_write_bytes  # noqa: E402
from mtlsi_core.config import load_config  # noqa: E402
from mtlsi_core.tools.machine import describe, summary  # noqa: E402


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def build(config: str, backbone: str, size: tuple[int, int]) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """The model (eval, no coarse outputs: as the runtimes run it), its config and its parameter counts."""
    from mtlsi_core.models import build_model

    cfg = load_config(config, [f"model.backbone.name={backbone}", "model.backbone.pretrained=false",
                               f"data.input_size=[{size[0]}, {size[1]}]"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.return_coarse = False
    n_bb = sum(p.numel() for p in model.backbone.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    row = {"backbone": backbone, "params_backbone_M": round(n_bb / 1e6, 3),
           "params_head_M": round((n_all - n_bb) / 1e6, 3), "params_total_M": round(n_all / 1e6, 3), "weights_fp32_MiB": round(4 * n_all / 2**20, 2),
           "weights_fp16_MiB": round(2 * n_all / 2**20, 2), "batches": {}}
    return model, cfg, row


def ort_session(model: torch.nn.Module, cfg: Any, tmp: Path, threads: int) -> Callable[[np.ndarray], Any]:
    """The network exported as the node runs it (uint8 NHWC in, ONNX Runtime, graph optimisation all)."""
    import onnxruntime as ort

    from mtlsi_core.runtime.export import export_onnx

    path = tmp / f"{cfg.model.backbone.name}.onnx"
    export_onnx(model, cfg, path, verify=False, auxiliary=())
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})


def interleaved(fns: dict[str, Callable[[], Any]], reps: int, warmup: int) -> dict[str, np.ndarray]:
    """Milliseconds of each function, the functions taking turns rep by rep (a load change hits them alike)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times[k].append(1000 * (time.perf_counter() - t0))
    return {k: np.asarray(v) for k, v in times.items()}


def figures(ms: np.ndarray, batch: int) -> dict[str, float]:
    return {"reps": int(ms.size), "median_ms": round(float(np.median(ms)), 2), "min_ms": round(float(ms.min()), 2),
            "median_ms_per_frame": round(float(np.median(ms)) / batch, 2),
            "min_ms_per_frame": round(float(ms.min()) / batch, 2)}


def measure(config: str, backbones: Sequence[str], size: tuple[int, int], batches: Sequence[int], reps: int,
            warmup: int, onnx_threads: int = 0) -> list[dict[str, Any]]:
    import tempfile

    built = {b: build(config, b, size) for b in backbones}
    rows = {b: r for b, (_, _, r) in built.items()}
    for batch in batches:
        x = torch.randn(batch, 3, *size)

        def fwd(m: torch.nn.Module) -> Callable[[], Any]:
            def run() -> Any:
                with torch.inference_mode():
                    return m(x)
            return run

        res = interleaved({b: fwd(m) for b, (m, _, _) in built.items()}, reps, warmup)
        for b, ms in res.items():
            rows[b]["batches"][str(batch)] = figures(ms, batch)
            print(f"torch {b} batch {batch}: median {np.median(ms):.1f} ms, min {ms.min():.1f} ms", flush=True)
    if onnx_threads:
        with tempfile.TemporaryDirectory() as tmp:
            sessions = {b: ort_session(m, cfg, Path(tmp), onnx_threads) for b, (m, cfg, _) in built.items()}
            for b in backbones:
                rows[b]["onnxruntime"] = {"intra_op_threads": onnx_threads, "batches": {}}
            for batch in batches:
                xu = np.random.default_rng(0).integers(0, 256, (batch, *size, 3), dtype=np.uint8)
                res = interleaved({b: (lambda s=s: s(xu)) for b, s in sessions.items()}, reps, warmup)
                for b, ms in res.items():
                    rows[b]["onnxruntime"]["batches"][str(batch)] = figures(ms, batch)
                    print(f"onnxruntime {b} batch {batch}: median {np.median(ms):.1f} ms, min {ms.min():.1f} ms",
                          flush=True)
    return [rows[b] for b in backbones]


def verdict(rows: list[dict[str, Any]], node_ms: float) -> str:
    by = {r["backbone"]: r for r in rows}
    if not {"efficientnet_lite0", "efficientnet_lite2"} <= set(by):
        return "needs both efficientnet_lite0 and efficientnet_lite2"
    lines = []
    for kind in ("torch", "onnxruntime"):
        src = {k: (r["batches"] if kind == "torch" else r.get("onnxruntime", {}).get("batches")) for k, r in by.items()}
        if not src["efficientnet_lite0"] or not src["efficientnet_lite2"]:
            continue
        a, b = src["efficientnet_lite0"]["1"], src["efficientnet_lite2"]["1"]
        lines.append(f"{kind} batch 1, best of the reps: lite2 {b['min_ms']:.1f} ms vs lite0 {a['min_ms']:.1f} ms "
                     f"(+{b['min_ms'] - a['min_ms']:.1f} ms, x{b['min_ms'] / a['min_ms']:.2f}; node budget "
                     f"~{node_ms:g} ms/frame at 480x640 including pre/post-processing)")
    p0, p2 = by["efficientnet_lite0"]["params_total_M"], by["efficientnet_lite2"]["params_total_M"]
    lines.append(f"parameters {p2:.2f} M vs {p0:.2f} M; fp32 weights {by['efficientnet_lite2']['weights_fp32_MiB']} "
                 f"vs {by['efficientnet_lite0']['weights_fp32_MiB']} MiB")
    return "; ".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config", default="synth_edge_lite0", help="config whose head is measured")
    p.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnet_lite2"])
    p.add_argument("--size", type=int, nargs=2, default=(224, 288), metavar=("H", "W"))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--onnx-threads", type=int, default=1,
                   help="also time the ONNX export in ONNX Runtime with this many intra-op threads (0: skip)")
    p.add_argument("--node-ms", type=float, default=50.0, help="the node's per-frame target (ms)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "backbone_cost_cpu.json"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    machine = describe("cpu")
    load_before = uptime()
    rows = measure(args.config, args.backbones, tuple(args.size), args.batches, args.reps, args.warmup,
                   args.onnx_threads)
    doc = {"what": "MTLSI-Net forward, eval mode, inference_mode, random weights", "config": args.config,
           "input_size": list(args.size), "threads": args.threads, "results": rows,
           "verdict": verdict(rows, args.node_ms), "uptime_before": load_before, "uptime_after": uptime(),
           "machine": machine, "machine_summary": summary(machine),
           "command": "python benchmarks/bench_backbone_cost.py "
                      + " ".join(argv if argv is not None else sys.argv[1:])}
    atomic_write_bytes(Path(args.out), json.dumps(doc, indent=2).encode())
    print(doc["verdict"])
    print(f"load: before '{load_before}', after '{doc['uptime_after']}'; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
