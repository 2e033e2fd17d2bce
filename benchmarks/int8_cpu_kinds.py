#!/usr/bin/env python3
"""INT8 against fp32 on two kinds of x86 CPU: this one, and an AVX2-only one without VNNI (emulated).

    python benchmarks/int8_cpu_kinds.py [--model shipped|PATH] [--frames 6] [--calib-frames 24] [--no-emulate]

ONNX Runtime multiplies uint8 activations by int8 weights with different instructions on different CPUs: with VNNI
(AVX512-VNNI, AVX-VNNI) the products are summed in 32 bits; on AVX2 alone ``vpmaddubsw`` sums pairs of products in
16 bits and saturates with full-range weights (``mtlsi_core.runtime.quantize``). This script quantises the model
with each scheme (``u8s8`` full range, ``u8s8_reduced`` 7-bit weights, ``u8u8``), runs the files on the same
synthetic rooms (not the calibration's) and reports, per CPU kind, the share of segmentation labels equal to this
CPU's fp32 labels and the depth correlation, beside the scheme ``choose_scheme`` picks for that kind.

The second kind is this machine's own binaries under ``qemu-x86_64 -cpu Haswell-v4`` (Debian's ``qemu-user``:
AVX2 and FMA, no AVX-512 and no VNNI, as numpy's CPUID probe inside it confirms); only ONNX Runtime and numpy run
there (``--worker``), and only the schemes of ``--emulate`` (minutes a frame). ``--no-emulate`` (or no qemu)
measures this CPU only.

Writes ``benchmarks/results/int8_cpu_kinds.json`` (machine, date, every figure).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SCHEMES = ("u8s8", "u8s8_reduced", "u8u8")
EMULATED_CPU = "Haswell-v4"
TARGET_AGREEMENT = 0.85
CPU_FLAGS = ("AVX2", "FMA3", "AVX512F", "AVX512VNNI")


def worker(folder: Path, models: list[str], tag: str) -> None:
    """Run each of ``models`` (``<name>.onnx`` in ``folder``) on ``inputs.npy`` with ONNX Runtime and numpy alone
    (what runs under the emulator); saves the labels and depth to ``<tag>_<name>.npz``."""
    import onnxruntime as ort
    from numpy._core._multiarray_umath import __cpu_features__ as cpu

    xs = np.load(folder / "inputs.npy")
    for name in models:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(folder / f"{name}.onnx"), so, providers=["CPUExecutionProvider"])
        runs = [sess.run(["semseg", "depth"], {sess.get_inputs()[0].name: xs[i:i + 1]}) for i in range(len(xs))]
        np.savez(folder / f"{tag}_{name}.npz", semseg=np.concatenate([r[0] for r in runs]),
                 depth=np.concatenate([r[1] for r in runs]))
    (folder / f"{tag}_cpu.json").write_text(json.dumps({k: bool(cpu.get(k)) for k in CPU_FLAGS}))


def compare(folder: Path, tag: str, models: list[str]) -> dict:
    """Each model's outputs under ``tag`` against this CPU's fp32: labels equal, depth correlation, per frame."""
    ref = np.load(folder / "this_cpu_fp32.npz")
    res: dict = {"cpu_features": json.loads((folder / f"{tag}_cpu.json").read_text())}
    for name in models:
        out = np.load(folder / f"{tag}_{name}.npz")
        agree = [float((a == b).mean()) for a, b in zip(out["semseg"], ref["semseg"])]
        corr = [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(out["depth"], ref["depth"])]
        res[name] = {"label_agreement": round(float(np.mean(agree)), 4), "label_agreement_min": round(min(agree), 4),
                     "depth_corr": round(float(np.mean(corr)), 4)}
    return res


def prepare(folder: Path, model: str, frames: int, calib_frames: int) -> dict:
    sys.path.insert(0, str(REPO))
    from mtlsi_core.checkpoint import packaged_model
    from mtlsi_core.data.synth import frame_seed, render_scene
    from mtlsi_core.runtime.export import read_onnx_meta
    from mtlsi_core.runtime.model_cache import cached_onnx
    from mtlsi_core.runtime.processing import prepare_batch
    from mtlsi_core.runtime.quantize import CalibrationSpec, quantize_onnx

    ckpt = packaged_model() if model == "shipped" else Path(model)
    fp32 = cached_onnx(ckpt, "fp32", cache_dir=folder / "cache").path
    shutil.copyfile(fp32, folder / "fp32.onnx")
    meta = read_onnx_meta(fp32)
    for scheme in SCHEMES:
        quantize_onnx(fp32, folder / f"{scheme}.onnx", CalibrationSpec(frames=calib_frames, scheme=scheme))
    rooms = [render_scene(frame_seed(4242, i), size=(240, 320)).image for i in range(frames)]  # not calibration's
    np.save(folder / "inputs.npy", np.concatenate([prepare_batch([r], meta.input_size, "cpu").numpy() for r in rooms]))
    return {"model": str(ckpt.name), "input_size": list(meta.input_size)}


def chosen_schemes() -> dict:
    sys.path.insert(0, str(REPO))
    from mtlsi_core.runtime.quantize import CpuFacts, choose_scheme

    here = CpuFacts.this_machine()
    avx2 = CpuFacts("x86_64", frozenset({"SSE42", "AVX", "AVX2", "FMA3"}))
    return {"this_cpu": choose_scheme(here)[0], "this_cpu_vnni": here.vnni, "avx2_only": choose_scheme(avx2)[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="shipped")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--calib-frames", type=int, default=24)
    ap.add_argument("--no-emulate", action="store_true")
    ap.add_argument("--emulate", nargs="+", default=["u8s8_reduced", "u8s8"], choices=SCHEMES,
                    help="schemes run under the emulator (each takes minutes a frame there)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-models", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--worker-tag", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS / "int8_cpu_kinds.json")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.worker_models, args.worker_tag)
        return 0
    qemu = shutil.which("qemu-x86_64")
    with tempfile.TemporaryDirectory(prefix="mtlsi_int8_kinds_") as tmp:
        folder = Path(tmp)
        info = prepare(folder, args.model, args.frames, args.calib_frames)
        python = os.path.realpath(sys.executable)  # the interpreter itself (a venv's link or a shim is not emulated)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        runs = {"this_cpu": ([], ["fp32", *SCHEMES])}
        if qemu and not args.no_emulate and platform.machine() in ("x86_64", "AMD64"):
            runs["avx2_only_emulated"] = ([qemu, "-cpu", EMULATED_CPU], list(args.emulate))
        results = {}
        for kind, (prefix, models) in runs.items():
            t0 = time.perf_counter()
            subprocess.run([*prefix, python, __file__, "--worker", str(folder), "--worker-models", *models,
                            "--worker-tag", kind], env=env, capture_output=True, text=True, check=True)
            results[kind] = {**compare(folder, kind, [m for m in models if m != "fp32"]),
                             "seconds": round(time.perf_counter() - t0, 1)}
            print(kind, json.dumps(results[kind]), flush=True)
    from mtlsi_core.tools.machine import describe, save_result

    chosen = chosen_schemes()
    verdict = {}
    for kind, scheme in (("this_cpu", chosen["this_cpu"]), ("avx2_only_emulated", chosen["avx2_only"])):
        if kind in results and scheme in results[kind]:
            agreement = results[kind][scheme]["label_agreement"]
            verdict[kind] = {"scheme": scheme, "label_agreement": agreement, "met": agreement >= TARGET_AGREEMENT}
    report = {"benchmark": "int8_cpu_kinds", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": describe("cpu"), "command": " ".join(["int8_cpu_kinds.py", *sys.argv[1:]]),
              "emulator": f"qemu-x86_64 -cpu {EMULATED_CPU}" if "avx2_only_emulated" in results else None,
              **info, "frames": args.frames, "calib_frames": args.calib_frames, "chosen": chosen,
              "target_label_agreement": TARGET_AGREEMENT, "results": results, "chosen_scheme_results": verdict}
    print(f"wrote {save_result(args.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
