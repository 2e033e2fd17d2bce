"""Time and peak memory of the interaction block alone: mqlfb vs mhsa vs window_xtask (and deformable).

    python benchmarks/bench_interaction.py [--sizes 224x288 448x576 896x1152] [--device cpu|cuda]
                                           [--modules mqlfb mhsa window_xtask] [--threads 2] [--case-timeout 600]

The block gets T = 4 task maps of (d = 256, H/4, W/4) (the NYUDv2 Swin-T widths, ``nyud_swin_t``), batch 1,
fp32, forward only (``torch.no_grad``). Each (module, size) case runs in its own subprocess (a crash or
timeout of one case does not end the run; a case over ``--case-timeout`` seconds is recorded as timed out).

Times: wall time per forward (median and min) and the process CPU time of the fastest pass (all threads;
on a machine shared with other jobs it is steadier than wall time). Peak memory: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the peak of the CPU allocator's bytes during one forward pass
(``torch.profiler`` memory events); both above the block's weights and inputs. FLOPs: ``FlopCounterMode``
on the meta device (no arithmetic; ``grid_sample`` is not counted). Results:
``benchmarks/results/interaction_<device>_<date>.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from mtlsi_core.tools.machine import describe, summary

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
TASKS = 4
DIM = 256


def build_block(name: str, device: str):
    from mtlsi_core.models.config import ModelConfig
    from mtlsi_core.models.interaction import build_interaction

    import torch

    cfg = ModelConfig.model_validate({"backbone": {"name": "efficientnet_lite0"}, "interaction": name, "embed_dim": DIM})
    with torch.device(device):
        return build_interaction(cfg, TASKS).eval()


def count_flops(name: str, size: tuple[int, int]) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    block = build_block(name, "meta")
    feats = [torch.empty(1, DIM, size[0] // 4, size[1] // 4, device="meta") for _ in range(TASKS)]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        block(feats)
    return counter.get_total_flops()


def run_case(name: str, size: tuple[int, int], device: str, repeats: int, budget_s: float) -> dict:
    """Runs in a subprocess: timings (ms) of one module at one size (and peak memory on CUDA)."""
    import time

    import torch

    torch.manual_seed(0)
    block = build_block(name, device)
    feats = [torch.randn(1, DIM, size[0] // 4, size[1] // 4, device=device) for _ in range(TASKS)]

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        t0 = time.perf_counter()
        block(feats)  # warm-up (one-off allocations, kernel selection)
        sync()
        warm = time.perf_counter() - t0
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        times, cpu = [], []
        while len(times) < repeats and (sum(times) + warm < budget_s or not times):
            t0, c0 = time.perf_counter(), time.process_time()
            block(feats)
            sync()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    # process CPU time (all threads) is less sensitive than wall time to other jobs on a shared machine
    out = {"load_avg_1min": os.getloadavg()[0], "times_ms": [t * 1000 for t in times],
           "median_ms": sorted(times)[len(times) // 2] * 1000, "min_ms": min(times) * 1000,
           "cpu_ms_min": min(cpu) * 1000, "warmup_ms": warm * 1000}
    if device == "cuda":
        out["peak_mem_mib"] = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
        out["peak_mem_kind"] = "torch.cuda.max_memory_allocated during the timed passes, above inputs and weights"
    else:
        out["peak_mem_mib"] = profiled_peak_mib(block, feats)
        out["peak_mem_kind"] = "peak CPU-allocator bytes during one forward pass (torch.profiler), above inputs and weights"
    return out


def profiled_peak_mib(block, feats) -> float:
    """Peak bytes held by the CPU allocator during one forward pass (torch.profiler memory events), MiB."""
    import tempfile

    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        block(feats)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    return max(totals, default=0) / 2 ** 20


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    print(json.dumps(run_case(args.case, parse_size(args.case_size), args.device, args.repeats, args.case_budget)))


def parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def spawn(extra: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("gflops", "GFLOPs"), ("median_ms", "wall time per forward, median (ms)"),
              ("cpu_ms_min", "process CPU time, fastest pass (ms)"), ("peak_mem_mib", "peak memory (MiB)")]
    panels = [(k, label) for k, label in panels if any(r.get(k) is not None for r in results)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for name in sorted({r["module"] for r in results}):
        rs = [r for r in results if r["module"] == name]
        px = [r["pixels"] / 1e6 for r in rs]
        for ax, (key, _) in zip(axes, panels):
            pts = [(x, r.get(key)) for x, r in zip(px, rs) if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
    for ax, (_, label) in zip(axes, panels):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("input megapixels (H x W)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    from mtlsi_core.checkpoint import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_title(desc: dict, tasks: int, dim: int) -> str:
    return f"interaction block (T={tasks}, d={dim}, batch 1, fp32) - {summary(desc)}, {desc.get('date', '')}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["224x288", "448x576", "896x1152"])
    ap.add_argument("--modules", nargs="+", default=["mqlfb", "mhsa", "window_xtask", "deformable"])
    ap.add_argument("--device", default="cuda" if _cuda() else "cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    ap.add_argument("--repeats", type=int, default=5, help="timed forward passes per case (fewer if over budget)")
    ap.add_argument("--case-budget", type=float, default=60.0, help="seconds of timed passes per case")
    ap.add_argument("--case-timeout", type=float, default=600.0, help="kill a case after this many seconds")
    ap.add_argument("--out", default=None, help="result stem (default results/interaction_<device>_<date>)")
    ap.add_argument("--replot", metavar="JSON", help="only redraw the PNG of an earlier results JSON")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--case-size", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        child(args)
        return 0
    if args.replot:
        report = json.loads(Path(args.replot).read_text())
        plot(report["results"], Path(args.replot).with_suffix(".png"), plot_title(report["machine"], report["tasks"],
                                                                                report["embed_dim"]))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO))
    from mtlsi_core.checkpoint import atomic_write_bytes

    desc = describe(args.device)
    stamp = dt.datetime.now().strftime("%Y%m%d_%H%M")
    stem = Path(args.out) if args.out else RESULTS / f"interaction_{args.device}_{stamp}"
    results = []
    common = ["--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats),
              "--case-budget", str(args.case_budget)]
    for size_text in args.sizes:
        size = parse_size(size_text)
        for name in args.modules:
            r = {"module": name, "input_size": list(size), "pixels": size[0] * size[1],
                 "tokens": TASKS * (size[0] // 8) * (size[1] // 8), "gflops": count_flops(name, size) / 1e9}
            r.update(spawn(["--case", name, "--case-size", size_text, *common], args.case_timeout))
            results.append(r)
            shown = (f"{r['median_ms']:10.1f} ms  {r['peak_mem_mib'] or 0:9.1f} MiB" if "median_ms" in r
                     else f"  {r['error']}")
            print(f"{name:13s} {size_text:>9s}  tokens {r['tokens']:6d}  {r['gflops']:9.2f} GFLOPs {shown}", flush=True)
    report = {"benchmark": "interaction block alone, batch 1, fp32, forward (no_grad)",
              "tasks": TASKS, "embed_dim": DIM, "machine": desc, "results": results}
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(report, indent=2).encode())
    plot(results, stem.with_suffix(".png"), plot_title(desc, TASKS, DIM))
    print(f"wrote {stem.with_suffix('.json')} and .png")
    return 0


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
