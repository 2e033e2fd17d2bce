#!/usr/bin/env python3
"""INT8 against fp32 on two kinds of x86 CPU: this one, and an AVX2-only one without VNNI (emulated).

    python benchmarks/int8_cpu_kinds.py [--model shipped|PATH] [--frames 6] [--calib-frames 24] [--no-emulate]

ONNX Runtime multiplies uint8 activations by int8 weights with different instructions on different CPUs: with VNNI
(AVX512-VNNI, AVX-VNNI) the products are summed in 32 bits; on AVX2 alone ``vpmaddubsw`` sums pairs of products in
16 bits and saturates with full-range weights (``mtlsi_core.runtime.quantize``). This script quantises the model
with each scheme (``u8s8`` full range, ``u8s8_reduced`` 7-bit weights, ``u8u8``), runs every file on the same
synthetic rooms (not the calibration's) and reports, per CPU kind, the share of segmentation labels equal to fp32's
and the depth correlation, beside the scheme ``choose_scheme`` picks for that kind.

The second kind is this machine's own binaries under ``qemu-x86_64 -cpu Haswell-v4`` (Debian's ``qemu-user``:
AVX2 and FMA, no AVX-512 and no VNNI, as numpy's CPUID probe inside it confirms); only ONNX Runtime and numpy run
there (``--worker``), so it takes minutes, not hours. ``--no-emulate`` (or no qemu) measures this CPU only.

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


def worker(folder: Path) -> dict:
    """Run ``fp32.onnx`` and each scheme's file on ``inputs.npy`` with ONNX Runtime alone; compare with fp32."""
    import onnxruntime as ort
    from numpy._core._multiarray_umath import __cpu_features__ as cpu

    xs = np.load(folder / "inputs.npy")
    outs = {}
    for name in ("fp32", *SCHEMES):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(folder / f"{name}.onnx"), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        outs[name] = [dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: xs[i:i + 1]})))
                      for i in range(len(xs))]
    res = {"cpu_features": {k: bool(cpu.get(k)) for k in ("AVX2", "FMA3", "AVX512F", "AVX512VNNI")}}
    for name in SCHEMES:
        agree = [float((o["semseg"] == e["semseg"]).mean()) for o, e in zip(outs[name], outs["fp32"])]
        corr = [float(np.corrcoef(o["depth"].ravel(), e["depth"].ravel())[0, 1])
                for o, e in zip(outs[name], outs["fp32"])]
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
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS / "int8_cpu_kinds.json")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return 0
    qemu = shutil.which("qemu-x86_64")
    with tempfile.TemporaryDirectory(prefix="mtlsi_int8_kinds_") as tmp:
        folder = Path(tmp)
        info = prepare(folder, args.model, args.frames, args.calib_frames)
        python = os.path.realpath(sys.executable)  # the interpreter itself (a venv's link or a shim is not emulated)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        runs = {"this_cpu": [python, __file__, "--worker", str(folder)]}
        if qemu and not args.no_emulate and platform.machine() in ("x86_64", "AMD64"):
            runs["avx2_only_emulated"] = [qemu, "-cpu", EMULATED_CPU, *runs["this_cpu"]]
        results = {}
        for kind, cmd in runs.items():
            t0 = time.perf_counter()
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[kind] = {**json.loads(out.stdout.strip().splitlines()[-1]),
                             "seconds": round(time.perf_counter() - t0, 1)}
            print(kind, json.dumps(results[kind]), flush=True)
    from mtlsi_core.tools.machine import describe, save_result

    chosen = chosen_schemes()
    verdict = {}
    for kind, scheme in (("this_cpu", chosen["this_cpu"]), ("avx2_only_emulated", chosen["avx2_only"])):
        if kind in results:
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
