#!/usr/bin/env python3
"""The performance record of the inference runtimes: model-only and end-to-end latency / throughput per backend,
precision, input size and batch, and the whole network with each interaction style side by side.

    python benchmarks/bench_runtime.py                       # CPU: edge config, torch + onnx, then the side-by-side
    python benchmarks/bench_runtime.py --device cuda          # GPU: Swin-T 448x576, torch eager/compile/CUDA graphs,
                                                              #      onnx (CUDA EP where installed), tensorrt fp16
    python benchmarks/bench_runtime.py --config nyud_edge_lite0 --sizes 224x288 --backends onnx --batches 1 --iters 30

Figures (random weights: speed does not depend on them):

* model-only: ``Runtime.run`` on a batch already on the device at the network size (normalisation, network,
  activations; for torch on CUDA synchronised) -- p50 / p99 / mean latency per batch, throughput = batch / mean;
* end to end: ``Runtime.infer`` on camera-sized uint8 images (``--camera 480x640``) with outputs resized back to
  the camera size and copied to numpy -- the runtime's share of the node's latency (the node adds ROS transport,
  measured by benchmarks/bench_node.py);
* memory: CUDA ``torch.cuda.max_memory_allocated`` during the cell (TensorRT's own workspace is not included);
  CPU: peak resident set size sampled every 10 ms during the cell, minus the RSS before it (the process runs one
  group only, see below) -- an approximation that includes allocator caching.

Each (config, interaction, size, backend) group runs in its own subprocess (clean memory figures; a crash or a
timeout of one group does not end the run). The machine (CPU model, cores, GPU, library versions, date) and the
load average before and after each group are in the JSON: on the shared 2-core machine other jobs compete.
Results: ``benchmarks/results/runtime_<device>[_<tag>].json`` and ``.png``.

``--export-check`` instead exports the config (random weights) with each exporter, with the ONNX Runtime vs
PyTorch verification, and records time, file size and the per-task differences in ``runtime_export_cpu.json``.

Targets (issue 6): one H100, Swin-T 448x576, fp16, batch 1: >= 150 frames/s model-only and node end-to-end p50
< 15 ms (the node figure comes from bench_node.py; this script reports the runtime's end-to-end p50 as a lower
bound); the 2-core CPU, edge config at its size through ONNX Runtime, batch 1: >= 10 frames/s.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mtlsi_core.tools.machine import describe
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
CHILD_MARK = "@@BENCH_RESULT@@"

TARGET_GPU_FPS = 150.0
TARGET_GPU_E2E_MS = 15.0
TARGET_CPU_FPS = 10.0


# --------------------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------------------


def machine(device: str) -> dict[str, Any]:
    import onnxruntime as ort

    from mtlsi_core.runtime.tensorrt_runtime import tensorrt_version

    return describe(device, ort_providers=ort.get_available_providers(), tensorrt=tensorrt_version())


# --------------------------------------------------------------------------------------------------
# One group, in a child process
# --------------------------------------------------------------------------------------------------


class RssPeak:
    """Peak RSS of this process while the context is open, sampled by a thread every ``period`` seconds."""

    def __init__(self, period: float = 0.01):
        import psutil

        self.proc, self.period = psutil.Process(), period
        self.base = self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> "RssPeak":
        self.base = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def percentile_ms(times: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(times) * 1e3, q))


def build_config(name: str, size: tuple[int, int] | None, interaction: str | None):
    from mtlsi_core.config import load_config

    overrides = ["model.backbone.pretrained=false"]
    if size is not None:
        overrides.append(f"data.input_size=[{size[0]},{size[1]}]")
    if interaction is not None:
        overrides.append(f"model.interaction={interaction}")
    return load_config(name, overrides)


def onnx_for(model, cfg, workdir: Path, exporter: str) -> Path:
    """The group's ONNX export, reused from ``workdir`` when it was made from the same config and seed."""
    from mtlsi_core.runtime.export import export_onnx, read_onnx_meta

    h, w = cfg.data.input_size
    path = workdir / f"{cfg.name}_{cfg.model.interaction}_{h}x{w}.onnx"
    if path.is_file():
        try:
            meta = read_onnx_meta(path)
            if meta.config == cfg.to_dict() and meta.source == {"random_init": 0}:
                return path
        except Exception:
            pass
    export_onnx(model, cfg, path, exporter=exporter, source={"random_init": 0}, verify=False)
    return path


def make_runtime(spec: dict[str, Any], model, cfg, precision: str, variant: str):
    backend, device = spec["backend"], spec["device"]
    if backend == "torch":
        from mtlsi_core.runtime.torch_runtime import TorchRuntime

        kw = {"compile": "compile" in variant, "cuda_graphs": "cudagraphs" in variant,
              "channels_last": "channels_last" in variant}
        return TorchRuntime(copy.deepcopy(model), cfg.data.tasks, cfg.data.dataset, cfg.data.input_size, cfg.data.mean, cfg.data.std,
                            device=device, precision=precision, **kw)
    if backend == "tensorrt":
        from mtlsi_core.runtime.tensorrt_runtime import import_tensorrt

        import_tensorrt()  # before a long export that would be of no use
    onnx_path = onnx_for(model, cfg, Path(spec["workdir"]), spec["exporter"])
    if backend == "onnx":
        from mtlsi_core.runtime.onnx_runtime import OrtRuntime

        return OrtRuntime(onnx_path, device=device, precision=precision)
    from mtlsi_core.runtime.tensorrt_runtime import TensorRTRuntime

    return TensorRTRuntime.from_path(str(onnx_path), device=device, precision=precision, max_batch=max(spec["batches"]))


def time_calls(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run_group(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    from mtlsi_core.runtime.export import random_model

    torch.manual_seed(0)
    cfg = build_config(spec["config"], tuple(spec["size"]) if spec["size"] else None, spec["interaction"])
    model, cfg = random_model(cfg, seed=0)
    params = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    group = {k: spec[k] for k in ("config", "interaction", "backend", "device")}
    group.update(input_size=list(cfg.data.input_size), interaction=cfg.model.interaction, params_m=params / 1e6,
                 head_params_m=head / 1e6, load_average_before=list(os.getloadavg()), cells=[])
    rng = np.random.default_rng(0)
    cam = tuple(spec["camera"])
    is_cuda = spec["device"].startswith("cuda") and torch.cuda.is_available()
    for precision in spec["precisions"]:
        for variant in spec["variants"]:
            try:
                t0 = time.perf_counter()
                rt = make_runtime(spec, model, cfg, precision, variant)
                setup_s = time.perf_counter() - t0
            except Exception as e:  # TensorRT missing, export failure ...
                group["cells"].append({"precision": precision, "variant": variant,
                                       "skipped": f"{type(e).__name__}: {e}"})
                continue
            for b in spec["batches"]:
                iters = max(3, spec["iters"] // b)
                net_imgs = [rng.integers(0, 256, (*cfg.data.input_size, 3), dtype=np.uint8) for _ in range(b)]
                cam_imgs = [rng.integers(0, 256, (*cam, 3), dtype=np.uint8) for _ in range(b)]
                cell: dict[str, Any] = {"precision": rt.info.precision, "requested_precision": precision,
                                        "variant": variant, "batch": b, "iters": iters, "notes": rt.info.notes,
                                        "setup_s": round(setup_s, 2)}
                try:
                    batch = rt.prepare(net_imgs)
                    t0 = time.perf_counter()
                    rt.run(batch)  # first call: compilation, CUDA graph capture, ORT/TensorRT lazy init
                    cell["first_call_s"] = round(time.perf_counter() - t0, 3)
                    for _ in range(spec["warmup"]):
                        rt.run(batch)
                    if is_cuda:
                        torch.cuda.reset_peak_memory_stats()
                        mem0 = torch.cuda.memory_allocated()
                    with RssPeak() as rss:
                        model_t = time_calls(lambda: rt.run(batch), iters)
                        rt.infer(cam_imgs)  # warm the camera-size path (resize kernels, output groups)
                        e2e_t = time_calls(lambda: rt.infer(cam_imgs, output_size="input"), iters)
                    mean = float(np.mean(model_t))
                    cell.update(
                        model_p50_ms=percentile_ms(model_t, 50), model_p99_ms=percentile_ms(model_t, 99),
                        model_mean_ms=mean * 1e3, model_fps=b / mean,
                        e2e_p50_ms=percentile_ms(e2e_t, 50), e2e_p99_ms=percentile_ms(e2e_t, 99),
                        e2e_fps=b / float(np.mean(e2e_t)),
                        rss_peak_mb=rss.peak / 2**20, rss_delta_mb=(rss.peak - rss.base) / 2**20)
                    if is_cuda:
                        cell.update(cuda_peak_mb=torch.cuda.max_memory_allocated() / 2**20,
                                    cuda_peak_delta_mb=(torch.cuda.max_memory_allocated() - mem0) / 2**20)
                except Exception as e:
                    cell["failed"] = f"{type(e).__name__}: {e}"
                group["cells"].append(cell)
                print(f"  {spec['backend']:8s} {cfg.model.interaction:12s} {cfg.data.input_size} {precision}/{variant} "
                      f"b={b}: " + (f"model p50 {cell.get('model_p50_ms', float('nan')):.1f} ms, "
                                    f"{cell.get('model_fps', float('nan')):.1f} f/s; e2e p50 "
                                    f"{cell.get('e2e_p50_ms', float('nan')):.1f} ms" if "failed" not in cell
                                    else cell["failed"]), file=sys.stderr, flush=True)
            rt.close()
            if is_cuda:
                torch.cuda.empty_cache()
    group["load_average_after"] = list(os.getloadavg())
    return group


# --------------------------------------------------------------------------------------------------
# The parent: plan, run groups in subprocesses, targets, JSON, plot
# --------------------------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "failed": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(CHILD_MARK):
            return json.loads(line[len(CHILD_MARK):])
    return {**spec, "failed": f"child exited with status {proc.returncode} without a result"}


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    cuda = args.device.startswith("cuda")
    config = args.config or ("nyud_swin_t" if cuda else "nyud_edge_lite0")
    sizes = [parse_size(s) for s in args.sizes] if args.sizes else [None]
    backends = args.backends or (["torch", "onnx", "tensorrt"] if cuda else ["torch", "onnx"])
    precisions = {"torch": args.precisions or (["fp16", "bf16", "fp32"] if cuda else ["fp32", "bf16"]),
                  "onnx": args.precisions or ["fp32"],
                  "tensorrt": args.precisions or ["fp16", "fp32"]}
    torch_variants = args.variants or (["eager", "compile", "compile+cudagraphs"] if cuda else
                                       ["eager", "channels_last"] + (["compile"] if args.compile else []))
    base = {"config": config, "device": args.device, "batches": args.batches, "iters": args.iters,
            "warmup": args.warmup, "camera": list(parse_size(args.camera)), "workdir": str(args.workdir),
            "exporter": args.exporter}
    groups = []
    for size in sizes:
        for backend in backends:
            groups.append({**base, "kind": "matrix", "backend": backend, "interaction": None,
                           "size": list(size) if size else None, "precisions": precisions[backend],
                           "variants": torch_variants if backend == "torch" else ["default"]})
    if not args.no_side_by_side:
        side_sizes = [parse_size(s) if s != "config" else None for s in args.side_sizes] if args.side_sizes else \
            ([None] if cuda else [None, (448, 576)])
        for size in side_sizes:
            for inter in ("mqlfb", "mhsa", "window_xtask"):
                groups.append({**base, "kind": "side_by_side", "backend": "torch", "interaction": inter,
                               "size": list(size) if size else None, "precisions": ["fp16" if cuda else "fp32"],
                               "variants": ["eager"], "batches": [1],
                               "iters": max(3, args.iters // (4 if size == (448, 576) and not cuda else 1))})
    return groups


def targets(groups: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    def find(pred):
        best = None
        for g in groups:
            for c in g.get("cells", []):
                if "model_fps" in c and pred(g, c) and (best is None or c["model_fps"] > best[1]["model_fps"]):
                    best = (g, c)
        return best

    out = []
    gpu = find(lambda g, c: g["config"] == "nyud_swin_t" and g["input_size"] == [448, 576] and c["batch"] == 1
               and c["precision"] == "fp16" and g["device"].startswith("cuda") and g.get("kind") == "matrix")
    out.append({"name": "Swin-T 448x576 fp16 batch 1, model-only, one H100", "target": f">= {TARGET_GPU_FPS:.0f} frames/s",
                "measured_fps": gpu[1]["model_fps"] if gpu else None,
                "where": f"{gpu[0]['backend']}/{gpu[1]['variant']}" if gpu else None,
                "met": (gpu[1]["model_fps"] >= TARGET_GPU_FPS) if gpu else None,
                "note": None if gpu else "not measured: needs --device cuda on an H100 (no GPU on this machine)"})
    out.append({"name": "node end-to-end p50, Swin-T 448x576 fp16, one H100", "target": f"< {TARGET_GPU_E2E_MS:.0f} ms",
                "runtime_e2e_p50_ms": gpu[1]["e2e_p50_ms"] if gpu else None, "met": None,
                "note": "the node's figure is measured by benchmarks/bench_node.py; this is the runtime's share "
                        "(infer from a camera image, outputs resized back), a lower bound" if gpu else
                        "not measured: needs a GPU"})
    cpu = find(lambda g, c: g["config"] == "nyud_edge_lite0" and g["backend"] == "onnx" and c["batch"] == 1
               and g["device"] == "cpu" and g.get("kind") == "matrix" and g.get("size") is None)
    out.append({"name": "edge config (nyud_edge_lite0, 224x288) via ONNX Runtime, batch 1, this CPU",
                "target": f">= {TARGET_CPU_FPS:.0f} frames/s",
                "measured_fps": cpu[1]["model_fps"] if cpu else None,
                "measured_p50_ms": cpu[1]["model_p50_ms"] if cpu else None,
                "e2e_fps_480x640": cpu[1]["e2e_fps"] if cpu else None,
                "met": (cpu[1]["model_fps"] >= TARGET_CPU_FPS) if cpu else None,
                "load_average_during": cpu[0]["load_average_before"] if cpu else None,
                "note": None if cpu else "not measured in this run"})
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = [(g, c) for g in result["groups"] if g.get("kind") == "matrix" for c in g.get("cells", [])
              if "model_fps" in c]
    side = [(g, c) for g in result["groups"] if g.get("kind") == "side_by_side" for c in g.get("cells", [])
            if "model_fps" in c]
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5), gridspec_kw={"height_ratios": [1.2, 1]})
    gs = axes[0, 0].get_gridspec()
    for ax in axes[0]:
        ax.remove()
    top = fig.add_subplot(gs[0, :])
    labels = [f"{g['backend']} {c['precision']} {c['variant']}\n{g['input_size'][0]}x{g['input_size'][1]} b{c['batch']}"
              for g, c in matrix]
    x = list(range(len(matrix)))
    top.bar([i - 0.2 for i in x], [c["model_fps"] for _, c in matrix], width=0.4, color="tab:blue",
            label="model-only throughput (frames/s); text: latency p50 / p99 per batch")
    top.bar([i + 0.2 for i in x], [c["e2e_fps"] for _, c in matrix], width=0.4, color="tab:orange",
            label=f"end to end from {result['camera'][0]}x{result['camera'][1]} camera images (frames/s)")
    for i, (_, c) in enumerate(matrix):
        top.text(i - 0.2, c["model_fps"], f"{c['model_p50_ms']:.0f}\n{c['model_p99_ms']:.0f} ms", ha="center",
                 va="bottom", fontsize=6)
        top.text(i + 0.2, c["e2e_fps"], f"{c['e2e_p50_ms']:.0f}\n{c['e2e_p99_ms']:.0f} ms", ha="center",
                 va="bottom", fontsize=6)
    for t in result["targets"]:
        if t.get("measured_fps") is not None:
            top.axhline(float(t["target"].split()[1]), color="red", ls="--", lw=1)
            top.text(len(matrix) - 0.5, float(t["target"].split()[1]), t["target"], color="red", fontsize=8,
                     ha="right", va="bottom")
    top.set_xticks(list(x), labels, fontsize=7)
    top.set_ylabel("frames / s")
    top.margins(y=0.12)
    top.legend(fontsize=8, loc="upper left")
    m = result["machine"]
    top.set_title(f"{result['config']} on {m.get('gpu') or m['cpu_model']} ({m['physical_cores']} cores), "
                  f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, {m['date'][:10]}, "
                  f"load {m['load_average_at_start'][0]:.1f}", fontsize=9)
    if side:
        names = [f"{g['interaction']}\n{g['input_size'][0]}x{g['input_size'][1]}" for g, _ in side]
        colours = {"mqlfb": "tab:green", "mhsa": "tab:red", "window_xtask": "tab:purple"}
        cols = [colours.get(g["interaction"], "grey") for g, _ in side]
        mem_key = "cuda_peak_delta_mb" if "cuda_peak_delta_mb" in side[0][1] else "rss_delta_mb"
        mem_title = ("CUDA peak memory above baseline (MB)" if mem_key.startswith("cuda")
                     else "peak RSS above baseline (MB)")
        for ax, (key, title, fmt) in zip(axes[1], (("model_p50_ms", "model-only latency p50 (ms), batch 1", "{:.1f}"),
                                                    (mem_key, mem_title, "{:.1f}"),
                                                    ("head_params_m", "head parameters (M; total in brackets)",
                                                     "{:.3f}"))):
            vals = [g[key] if key.endswith("params_m") else c[key] for g, c in side]
            ax.bar(range(len(side)), vals, color=cols)
            ax.set_xticks(range(len(side)), names, fontsize=7)
            ax.set_title(f"side by side: {title}", fontsize=9)
            ax.margins(y=0.15)
            for i, ((g, _), v) in enumerate(zip(side, vals)):
                text = fmt.format(v) + (f"\n({g['params_m']:.2f})" if key == "head_params_m" else "")
                ax.text(i, v, text, ha="center", va="bottom", fontsize=7)
    else:
        for ax in axes[1]:
            ax.set_axis_off()
    fig.tight_layout()
    from mtlsi_core.checkpoint import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def export_check(args: argparse.Namespace) -> int:
    """Export with each exporter (verification on) and record the measured differences."""
    from mtlsi_core.checkpoint import atomic_write_bytes
    from mtlsi_core.runtime.export import ExportError, export_onnx, random_model

    config = args.config or "nyud_edge_lite0"
    cfg = build_config(config, parse_size(args.sizes[0]) if args.sizes else None, None)
    model, cfg = random_model(cfg, seed=0, varied=True)  # output heads spread so that no comparison is trivial
    out: dict[str, Any] = {"benchmark": "bench_runtime --export-check", "weights": "random, output heads spread", "machine": machine("cpu"), "config": config,
                           "input_size": list(cfg.data.input_size), "exports": []}
    for exporter in ("dynamo", "torchscript"):
        path = args.workdir / f"check_{config}_{exporter}.onnx"
        rec: dict[str, Any] = {"exporter": exporter, "load_average_before": list(os.getloadavg())}
        try:
            res = export_onnx(model, cfg, path, exporter=exporter, source={"random_init": 0})
            rec.update(seconds=round(res.seconds, 1), megabytes=round(path.stat().st_size / 1e6, 2),
                       opset=res.opset, verification=res.verification, notes=res.notes)
        except ExportError as e:
            rec["failed"] = str(e)
        print(json.dumps(rec), file=sys.stderr)
        out["exports"].append(rec)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "runtime_export_cpu.json", json.dumps(out, indent=1).encode())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--config", help="config name (default: nyud_swin_t on CUDA, nyud_edge_lite0 on CPU)")
    p.add_argument("--sizes", nargs="*", help="network sizes HxW (default: the config's)")
    p.add_argument("--backends", nargs="*", choices=("torch", "onnx", "tensorrt"))
    p.add_argument("--precisions", nargs="*", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--variants", nargs="*", help="torch variants: eager, compile, compile+cudagraphs, cudagraphs, "
                                                 "channels_last, compile+channels_last ...")
    p.add_argument("--compile", action="store_true", help="CPU: add the torch.compile variant (minutes to compile)")
    p.add_argument("--batches", nargs="*", type=int, default=[1, 4])
    p.add_argument("--iters", type=int, default=40, help="timed calls per cell at batch 1 (divided by the batch; "
                                                         "p99 of few calls is close to their maximum)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--camera", default="480x640", help="camera image size for the end-to-end figures")
    p.add_argument("--side-sizes", nargs="*", help="sizes of the side-by-side ('config' = the config's)")
    p.add_argument("--no-side-by-side", action="store_true")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "torchscript"))
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mtlsi_bench_runtime",
                   help="where ONNX exports and engines are kept between runs")
    p.add_argument("--group-timeout", type=float, default=900.0)
    p.add_argument("--tag", default="")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--export-check", action="store_true", help="record export times and ORT-vs-torch differences")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.export_check:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return export_check(args)

    if args.child:
        print(CHILD_MARK + json.dumps(run_group(json.loads(args.child))), flush=True)
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    groups = plan(args)
    result: dict[str, Any] = {"benchmark": "bench_runtime", "device": args.device, "machine": machine(args.device),
                              "config": groups[0]["config"], "camera": list(parse_size(args.camera)),
                              "command": " ".join([Path(sys.executable).name, *sys.argv]), "groups": []}
    print(f"{len(groups)} groups on {result['machine'].get('gpu') or result['machine']['cpu_model']}, "
          f"load {result['machine']['load_average_at_start']}", file=sys.stderr)
    for spec in groups:
        print(f"[{spec['kind']}] {spec['backend']} {spec['interaction'] or ''} {spec['size'] or 'config size'}",
              file=sys.stderr, flush=True)
        g = run_child(spec, args.group_timeout)
        g["kind"] = spec["kind"]
        g["size"] = spec["size"]
        g.setdefault("input_size", spec["size"])
        result["groups"].append(g)
    result["targets"] = targets(result["groups"], args.device)
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    dev = "cuda" if args.device.startswith("cuda") else "cpu"
    stem = f"runtime_{dev}" + (f"_{args.tag}" if args.tag else "")
    from mtlsi_core.checkpoint import atomic_write_bytes

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / f"{stem}.json", json.dumps(result, indent=1).encode())
    plot(result, args.out / f"{stem}.png")
    for t in result["targets"]:
        print(json.dumps(t), file=sys.stderr)
    print(f"wrote {args.out / (stem + '.json')} and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
