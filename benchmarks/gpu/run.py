#!/usr/bin/env python3
"""The one-shot GPU measurement: one command on a lent GPU machine, every figure of the GPU targets in one JSON.

    python3 benchmarks/gpu/run.py [--out DIR] [--wheels .gpu_wheels] [--budget-s 465] [--stages ...]
    python3 benchmarks/gpu/run.py --dry-run      # the same steps on this CPU at tiny sizes (CI runs it)

Stages, each in its own process with its own time budget (a stage that fails or runs out of time records its
error and partial results, and the next one starts); the whole run ends within ``--budget-s`` (default 465 s):

install        wheels from ``--wheels`` (``benchmarks/gpu/prepare.py`` made them here) into a venv that sees the
               image's packages (torch is never reinstalled: ``--no-deps``, and the venv reads the image's
               site-packages); skipped when everything is importable already (``--dry-run`` on a dev machine)
env            machine, GPU, library versions, what is installed
model_eager    Swin-T (``nyud_swin_t``, random init: no download) at 448x576 fp16, batch 1 and 4, eager and with
               CUDA graphs: model-only (``Runtime.run``, synchronised) p50/p99/frames/s, and ``Runtime.infer`` from
               480x640 camera images (end to end in the runtime)
edge           the shipped model (``mtlsi_core/weights/synth_edge_lite0.pt``) on the GPU, eager and CUDA graphs,
               batch 1 and 4, model-only and from 480x640 camera images
node           the perception node in its own process over DDS (shared-memory profile), one frame at a time:
               image publish -> last main output (p50/p99) for Swin-T 448x576 fp16 and the shipped model at
               480x640, with the same network's model-only figure interleaved (``benchmarks/bench_node.py``'s
               driver); skipped, saying so, when the ROS wheels were left out
model_compile  Swin-T as model_eager with ``torch.compile`` and ``torch.compile`` + CUDA graphs (last: compiling
               takes the longest; it gets the time that is left)

Results: ``$OUT/gpu_results.json`` (written after every stage) and ``$OUT/gpu_log.txt`` (each stage's output);
``--out`` defaults to ``$OUT`` when set, else ``benchmarks/results/``. ``--dry-run`` uses the CPU, the edge
config instead of Swin-T (Swin-T takes 15 s to build on a 2-core CPU), 64x64 networks, 48x64 camera images,
a few iterations, batch 1 only except in model_eager, only the compile+CUDA-graphs variant with
``torch.compile``'s ``eager`` backend, and writes to a temporary folder unless ``--out``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULT_FILE = "gpu_results.json"
LOG_FILE = "gpu_log.txt"
VENV = Path(tempfile.gettempdir()) / "mtlsi_gpu_venv"
NEEDED = {"pydantic": "pydantic", "efficientnet_lite_pytorch": "efficientnet-lite-pytorch"}
TARGETS = {"swin_t_448x576_fp16_b1_model_only_fps": ">= 250 (one H200)", "node_e2e_p50_ms_swin_t_448x576_fp16": "< 10"}
# stage: (budget on the GPU, s; budget in the dry run, s)
BUDGETS = {"install": (60, 60), "env": (30, 30), "model_eager": (80, 60), "edge": (45, 45), "node": (110, 90),
           "model_compile": (180, 90)}
ORDER = ["install", "env", "model_eager", "edge", "node", "model_compile"]


def plan(dry: bool) -> dict[str, dict]:
    """What each stage measures; the dry run: same steps, CPU, tiny."""
    dev = "cpu" if dry else "cuda"
    model = {"config": "nyud_edge_lite0" if dry else "nyud_swin_t", "size": [64, 64] if dry else None,
             "device": dev, "precision": "fp32" if dry else "fp16", "batches": [1, 2] if dry else [1, 4],
             "iters": 2 if dry else 100, "warmup": 1 if dry else 10, "camera": [48, 64] if dry else [480, 640]}
    # the dry run keeps every code path but not every repetition: one batch size where the path is the same, and
    # one compiled variant (with CUDA graphs: both options) since tracing alone takes ~20 s on a 2-core CPU
    one = {"batches": [1]} if dry else {}
    return {
        "env": {"device": dev},
        "model_eager": {**model, "variants": ["eager", "cudagraphs"]},
        "model_compile": {**model, **one,
                          "variants": ["compile+cudagraphs"] if dry else ["compile", "compile+cudagraphs"],
                          "compile": {"backend": "eager"} if dry else True},
        "edge": {**model, **one, "config": None, "size": None, "checkpoint": "shipped",
                 "variants": ["eager", "cudagraphs"]},
        # the node as users get it (backend auto: TensorRT, else torch fp16 + CUDA graphs); the dry run names torch,
        # since auto on the CPU would first export an ONNX file of the random model (~20 s)
        "node": {"device": dev, "backend": "torch" if dry else "auto", "frames": 2 if dry else 100, "cases": [
            {"name": "swin_t" if not dry else "edge_random", "config": model["config"], "size": model["size"],
             "camera": model["size"] or [448, 576], "precision": model["precision"]},
            {"name": "shipped", "checkpoint": "shipped", "camera": [48, 64] if dry else [480, 640],
             "precision": model["precision"]}]},
    }


# ------------------------------------------------------------------------------------------------ stages (child)

def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _stats(times_s: list[float]) -> dict:
    import numpy as np

    a = np.asarray(times_s) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()),
            "n": int(a.size)}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def stage_env(spec: dict, out: dict, save) -> None:
    import importlib.metadata as md

    import torch

    from mtlsi_core.tools.machine import describe

    out["machine"] = describe(spec["device"])
    out["cuda_available"] = torch.cuda.is_available()
    out["python"] = sys.executable
    pkgs = {}
    for name in ("torch", "pydantic", "pydantic-core", "efficientnet-lite-pytorch", "ros-rclpy", "ros-fastdds",
                 "onnxruntime", "transformers", "numpy", "opencv-python-headless"):
        try:
            pkgs[name] = md.version(name)
        except md.PackageNotFoundError:
            pkgs[name] = None
    out["packages"] = pkgs
    try:
        out["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        out["nvidia_smi"] = f"unavailable: {e}"
    if spec["device"].startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available to torch on this machine")


def _runtime(spec: dict, variant: str):
    from mtlsi_core.runtime.torch_runtime import TorchRuntime

    opts = {"cuda_graphs": "cudagraphs" in variant,
            "compile": spec.get("compile", True) if variant.startswith("compile") else False}
    if spec.get("checkpoint"):
        path = _checkpoint(spec)
        return TorchRuntime.from_checkpoint(path, device=spec["device"], precision=spec["precision"], **opts), path
    from mtlsi_core.config import load_config
    from mtlsi_core.runtime.export import random_model

    overrides = ["model.backbone.pretrained=false"]
    if spec.get("size"):
        overrides.append(f"data.input_size=[{spec['size'][0]},{spec['size'][1]}]")
    model, cfg = random_model(load_config(spec["config"], overrides), seed=0)
    rt = TorchRuntime(model, cfg.data.tasks, cfg.data.dataset, cfg.data.input_size, cfg.data.mean, cfg.data.std,
                      device=spec["device"], precision=spec["precision"], canonical_focal=cfg.data.canonical_focal,
                      **opts)
    return rt, f"{spec['config']} (random init)"


def _checkpoint(spec: dict) -> str:
    if spec.get("checkpoint") == "shipped":
        from mtlsi_core.checkpoint import packaged_model

        return str(packaged_model())
    return spec["checkpoint"]


def stage_model(spec: dict, out: dict, save) -> None:
    """Model-only and in-runtime end-to-end timings per variant and batch; results saved after every cell."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    out["cells"] = []
    for variant in spec["variants"]:
        t0 = time.perf_counter()
        try:
            rt, model = _runtime(spec, variant)
        except Exception as e:
            out["cells"].append({"variant": variant, "failed": f"setup: {type(e).__name__}: {e}"})
            save()
            continue
        setup_s = time.perf_counter() - t0
        out.setdefault("model", model)
        out["input_size"] = list(rt.input_size)
        for b in spec["batches"]:
            cell: dict[str, Any] = {"variant": variant, "batch": b, "precision": rt.info.precision,
                                    "notes": list(rt.info.notes), "setup_s": round(setup_s, 2)}
            out["cells"].append(cell)
            try:
                imgs = [rng.integers(0, 256, (*rt.input_size, 3), dtype=np.uint8) for _ in range(b)]
                cams = [rng.integers(0, 256, (*spec["camera"], 3), dtype=np.uint8) for _ in range(b)]
                batch = rt.prepare(imgs)
                t0 = time.perf_counter()
                rt.run(batch)  # compilation / graph capture
                _sync(spec["device"])
                cell["first_call_s"] = round(time.perf_counter() - t0, 3)
                save()
                for _ in range(spec["warmup"]):
                    rt.run(batch)
                iters = max(2, spec["iters"] // b)
                times = []
                for _ in range(iters):
                    _sync(spec["device"])
                    t0 = time.perf_counter()
                    rt.run(batch)  # synchronous: its outputs are ready tensors
                    _sync(spec["device"])
                    times.append(time.perf_counter() - t0)
                cell["model_only"] = _stats(times)
                cell["model_only_fps"] = b / (cell["model_only"]["mean_ms"] / 1000.0)
                rt.infer(cams)
                times = []
                for _ in range(iters):
                    t0 = time.perf_counter()
                    rt.infer(cams, output_size="input")  # numpy out: synchronised by the copy
                    times.append(time.perf_counter() - t0)
                cell["end_to_end_from_camera"] = {"camera_hw": spec["camera"], **_stats(times)}
                if spec["device"].startswith("cuda") and torch.cuda.is_available():
                    cell["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
            except Exception as e:
                cell["failed"] = f"{type(e).__name__}: {e}"
            save()
            print(f"[{spec.get('config') or 'shipped'}] {variant} b={b}: " +
                  (f"model-only p50 {cell['model_only']['p50_ms']:.2f} ms, {cell['model_only_fps']:.1f} frames/s; "
                   f"from camera p50 {cell['end_to_end_from_camera']['p50_ms']:.2f} ms"
                   if "model_only" in cell and "end_to_end_from_camera" in cell else cell.get("failed", "?")),
                  flush=True)
        rt.close()
        del rt
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def stage_node(spec: dict, out: dict, save) -> None:
    try:
        import rclpy  # noqa: F401
    except ImportError as e:
        out["skipped"] = f"ROS is not installed ({e}): prepare.py --no-ros left the ROS wheels out"
        return
    import yaml
    from rclpy.context import Context

    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_node
    import bench_transport
    from mtlsi_ros.client import PerceptionClient, default_topics

    folder = Path(tempfile.mkdtemp(prefix="mtlsi_gpu_node_"))
    out["cases"] = []
    topics = default_topics("nyud", color=False)
    for i, case in enumerate(spec["cases"]):
        res: dict[str, Any] = {"name": case["name"], "camera_hw": case["camera"], "precision": case["precision"]}
        out["cases"].append(res)
        node = ctx = runtime = None
        try:
            if case.get("checkpoint"):
                ckpt = _checkpoint(case)
            else:
                import torch

                from mtlsi_core.checkpoint import atomic_torch_save, make_checkpoint
                from mtlsi_core.config import load_config
                from mtlsi_core.runtime.export import random_model

                overrides = ["model.backbone.pretrained=false"]
                if case.get("size"):
                    overrides.append(f"data.input_size=[{case['size'][0]},{case['size'][1]}]")
                model, cfg = random_model(load_config(case["config"], overrides), seed=0)
                ckpt = str(folder / f"{case['name']}.pt")
                atomic_torch_save(make_checkpoint(model.state_dict(), cfg.to_dict(),
                                                  meta={"note": "random weights (benchmark)"}), ckpt)
                del model
            res["model"] = ckpt
            params = folder / f"params_{case['name']}.yaml"
            params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
                "model_path": ckpt, "backend": spec["backend"], "device": spec["device"],
                "precision": case["precision"],
                "batch_window_ms": 0.0}}}))
            domain = 150 + (os.getpid() + i) % 50
            os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost_shm.xml"))
            node = bench_transport._start_node(params, domain, folder, case["name"])
            res["node_log"] = str(node.log_path)
            ctx = Context()
            rclpy.init(context=ctx, domain_id=domain)
            node.wait_active(timeout=180)
            from mtlsi_core.runtime import create_runtime

            runtime = create_runtime(spec["backend"], ckpt, device=spec["device"], precision=case["precision"])
            res["model_only_runtime"] = f"{runtime.info.backend} on {runtime.info.device} ({runtime.info.precision})"
            hw = tuple(case["camera"])
            with PerceptionClient("/bench", context=ctx, topics=topics) as client:
                client.wait_for_node(60)
                bench_transport.prime(client, hw, topics, timeout=60.0)
                e2e, model_only = bench_node.interleaved_latency(client, runtime, hw, spec["frames"], topics)
                diag = client.wait_diagnostics(lambda v: int(v["frames_out"]) > 0)
            res.update(end_to_end=e2e, model_only_infer=model_only,
                       overhead_end_to_end_p50_ms=e2e["p50_ms"] - model_only["p50_ms"],
                       overhead_end_to_end_paired_p50_ms=e2e.get("paired_overhead_p50_ms"),
                       node_diagnostics={k: diag.get(k) for k in ("backend", "device", "precision", "backend.reason",
                                                                   "latency_p50_ms",
                                                                   "inference_p50_ms", "publish_p50_ms",
                                                                   "node_overhead_p50_ms", "frames_out")})
            print(f"[node {case['name']}] e2e p50 {e2e['p50_ms']:.2f} ms p99 {e2e['p99_ms']:.2f} ms; model-only "
                  f"(infer) p50 {model_only['p50_ms']:.2f} ms", flush=True)
        except Exception as e:
            res["failed"] = f"{type(e).__name__}: {e}"
            if node is not None and node.log_path.is_file():
                res["node_log_tail"] = node.log_path.read_text(errors="replace")[-2000:]
        finally:
            if runtime is not None:
                runtime.close()
            if node is not None:
                node.stop()
            if ctx is not None:
                rclpy.try_shutdown(context=ctx)
            save()


STAGES = {"env": stage_env, "model_eager": stage_model, "model_compile": stage_model, "edge": stage_model,
          "node": stage_node}


def child(name: str, spec: dict, result_path: Path) -> int:
    out: dict[str, Any] = {}

    def save() -> None:
        _write(result_path, out)

    try:
        STAGES[name](spec, out, save)
    finally:
        save()
    failed = [c for c in out.get("cells", []) + out.get("cases", []) if "failed" in c]
    return 3 if failed else 0


# ------------------------------------------------------------------------------------------------ parent

def importable(python: str, modules: list[str]) -> list[str]:
    """The modules of ``modules`` that ``python`` cannot import."""
    code = ("import importlib.util, sys\n"
            "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))")
    r = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return list(modules)
    return r.stdout.split()


def unpack(archive: Path, into: Path) -> list[Path]:
    """``prepare.py``'s ``wheels.tar.xz`` -> the wheels again (each folder zipped back into its .whl, same files)."""
    into.mkdir(parents=True, exist_ok=True)
    wheels: dict[str, zipfile.ZipFile] = {}
    try:
        with tarfile.open(archive, "r:xz") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                wheel, _, inner = m.name.partition("/")
                if (not wheel.endswith(".whl") or "/" in wheel or not inner or inner.startswith("/")
                        or ".." in inner.split("/")):
                    raise RuntimeError(f"{archive}: unexpected member {m.name!r}")
                if wheel not in wheels:
                    wheels[wheel] = zipfile.ZipFile(into / wheel, "w", zipfile.ZIP_STORED)
                info = zipfile.ZipInfo(inner, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (m.mode & 0o777) << 16
                wheels[wheel].writestr(info, tar.extractfile(m).read())
    finally:
        for z in wheels.values():
            z.close()
    return sorted(into / w for w in wheels)


def install(args: argparse.Namespace, log) -> tuple[str, dict]:
    """The Python to run the stages with: this one if it has everything, else a venv with the wheels installed."""
    want = list(NEEDED) + ["rclpy"]
    missing = importable(sys.executable, want)
    info: dict[str, Any] = {"python": sys.executable, "missing_before": missing}
    if not missing and not args.force_install:
        info["skipped"] = "everything needed is importable already"
        return sys.executable, info
    archive = Path(args.wheels) / "wheels.tar.xz"
    if archive.is_file():
        t0 = time.monotonic()
        wheels = unpack(archive, Path(tempfile.mkdtemp(prefix="mtlsi_wheels_")))
        info["unpacked_s"] = round(time.monotonic() - t0, 1)
    else:
        wheels = sorted(Path(args.wheels).glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"missing {missing} and no wheels in {args.wheels} (run benchmarks/gpu/prepare.py on the "
                           f"dev machine and carry the folder)")
    venv = Path(args.venv)
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    site_dir = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    # The image's python may itself be a venv, whose packages (torch!) --system-site-packages does not reach:
    # name its site folders in a .pth, so the new venv sees exactly the packages this interpreter sees.
    import site
    parents = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    Path(site_dir, "_mtlsi_parent_site.pth").write_text("\n".join(parents) + "\n")
    # --no-deps: nothing but these wheels is installed (torch is never touched). --prefix (not --target): the ROS
    # wheels put their message packages in the data scheme (<prefix>/lib/python3.12/site-packages), and their
    # bootstrapper's .pth must land in the venv's site folder, where it runs at start-up; this pip, the image's,
    # installs into the venv, which needs none of its own.
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
           "--disable-pip-version-check", "--no-warn-script-location", "--prefix", str(venv), "--find-links",
           str(wheels[0].parent), *map(str, wheels)]
    r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError(f"pip install of {len(wheels)} wheels failed (status {r.returncode}); see {LOG_FILE}")
    info.update(python=str(py), venv=str(venv), wheels=[w.name for w in wheels])
    still = importable(str(py), want)
    info["missing_after"] = still
    torch_check = subprocess.run([str(py), "-c", "import torch; print(torch.__version__, torch.__file__)"],
                                 capture_output=True, text=True, timeout=120)
    info["torch_in_venv"] = torch_check.stdout.strip() or torch_check.stderr.strip()[-500:]
    parent_torch = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__, torch.__file__)"],
                                  capture_output=True, text=True, timeout=120)
    info["torch_of_image"] = parent_torch.stdout.strip() or parent_torch.stderr.strip()[-500:]
    if [m for m in still if m != "rclpy"]:
        raise RuntimeError(f"still missing after the install: {still}")
    return str(py), info


def run_stage(name: str, spec: dict, python: str, budget: float, tmp: Path, log, env: dict) -> dict:
    result_path = tmp / f"{name}.json"
    cmd = [python, str(Path(__file__).resolve()), "--stage", name, "--spec", json.dumps(spec),
           "--stage-result", str(result_path)]
    t0 = time.monotonic()
    log.write(f"\n===== stage {name} (budget {budget:.0f} s) =====\n".encode())
    log.flush()
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rec: dict[str, Any] = {"budget_s": round(budget, 1)}
    try:
        rc = proc.wait(timeout=budget)
        rec["status"] = "ok" if rc == 0 else ("partly failed" if rc == 3 else f"failed (exit status {rc})")
    except subprocess.TimeoutExpired:
        rec["status"] = f"timed out after {budget:.0f} s (partial results kept)"
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(10)
                break
            except (subprocess.TimeoutExpired, ProcessLookupError):
                continue
    rec["seconds"] = round(time.monotonic() - t0, 1)
    try:
        rec["result"] = json.loads(result_path.read_text())
    except (OSError, ValueError):
        rec["result"] = None
    return rec


def summary(results: dict) -> list[str]:
    lines = []
    st = results["stages"]
    for name in ("model_eager", "model_compile", "edge"):
        for c in ((st.get(name) or {}).get("result") or {}).get("cells", []):
            if "model_only" in c and "end_to_end_from_camera" in c:
                lines.append(f"{name:14s} {c['variant']:18s} b={c['batch']} {c['precision']}: model-only p50 "
                             f"{c['model_only']['p50_ms']:.2f} ms ({c['model_only_fps']:.0f} frames/s), "
                             f"from camera p50 "
                             f"{c['end_to_end_from_camera']['p50_ms']:.2f} ms")
            else:
                lines.append(f"{name:14s} {c.get('variant')} b={c.get('batch')}: {c.get('failed', 'no figure')}")
    node = (st.get("node") or {}).get("result") or {}
    if "skipped" in node:
        lines.append(f"node           skipped: {node['skipped']}")
    for c in node.get("cases", []):
        if "end_to_end" in c:
            hw = f"{c['camera_hw'][0]}x{c['camera_hw'][1]}"
            lines.append(f"node           {c['name']:18s} {hw} {c['precision']}: e2e p50 "
                         f"{c['end_to_end']['p50_ms']:.2f} ms, p99 {c['end_to_end']['p99_ms']:.2f} ms "
                         f"(model-only infer p50 {c['model_only_infer']['p50_ms']:.2f} ms)")
        else:
            lines.append(f"node           {c['name']}: {c.get('failed', 'no figure')}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="the same steps on the CPU at tiny sizes")
    ap.add_argument("--out", type=Path, default=None, help="result folder (default $OUT, else benchmarks/results)")
    ap.add_argument("--wheels", type=Path, default=REPO / ".gpu_wheels")
    ap.add_argument("--venv", type=Path, default=VENV)
    ap.add_argument("--force-install", action="store_true", help="install the wheels even if all is importable")
    ap.add_argument("--budget-s", type=float, default=None, help="the whole run (default 465 GPU, 300 dry run)")
    ap.add_argument("--stages", nargs="+", default=ORDER, choices=ORDER)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--stage-result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage:
        return child(args.stage, json.loads(args.spec), args.stage_result)

    t_start = time.monotonic()
    budget = args.budget_s or (300.0 if args.dry_run else 465.0)
    deadline = t_start + budget
    if args.out is None:
        args.out = (Path(tempfile.mkdtemp(prefix="mtlsi_gpu_dry_")) if args.dry_run else
                    Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO / "benchmarks" / "results")
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mtlsi_gpu_stages_"))
    specs = plan(args.dry_run)
    results: dict[str, Any] = {"benchmark": "gpu_oneshot", "dry_run": args.dry_run, "targets": TARGETS,
                               "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv)),
                               "budget_s": budget, "load_average_at_start": list(os.getloadavg()), "stages": {}}
    result_file = args.out / (RESULT_FILE if not args.dry_run or args.out != REPO / "benchmarks" / "results"
                              else "gpu_dryrun_results.json")
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0",
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_WAIT_POLICY=env.get("OMP_WAIT_POLICY", "PASSIVE"),
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p]))
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost_shm.xml"))
    python = sys.executable
    with open(args.out / LOG_FILE, "wb") as log:
        for name in ORDER:
            if name not in args.stages:
                continue
            left = deadline - time.monotonic() - 5.0
            own = BUDGETS[name][1 if args.dry_run else 0]
            if name == ORDER[-1]:
                own = max(own, left)  # the last stage gets what is left
            stage_budget = min(own, left)
            if stage_budget < 10:
                results["stages"][name] = {"status": f"not run: {left:.0f} s of the run's budget left"}
            elif name == "install":
                t0 = time.monotonic()
                try:
                    python, info = install(args, log)
                    results["stages"][name] = {"status": "ok", "result": info}
                except Exception as e:
                    results["stages"][name] = {"status": f"failed: {type(e).__name__}: {e}"}
                results["stages"][name]["seconds"] = round(time.monotonic() - t0, 1)
            else:
                results["stages"][name] = run_stage(name, specs[name], python, stage_budget, tmp, log, env)
            results["stages"][name]["load_average_after"] = list(os.getloadavg())
            print(f"stage {name}: {results['stages'][name]['status']} "
                  f"({results['stages'][name].get('seconds', 0)} s)", flush=True)
            results["seconds"] = round(time.monotonic() - t_start, 1)
            _write(result_file, results)
    results["summary"] = summary(results)
    results["seconds"] = round(time.monotonic() - t_start, 1)
    _write(result_file, results)
    print("\n".join(results["summary"]))
    print(f"wrote {result_file} and {args.out / LOG_FILE} in {results['seconds']:.0f} s")
    bad = [n for n, s in results["stages"].items() if s.get("status") != "ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
