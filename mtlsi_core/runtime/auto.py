"""``backend: auto``: pick the fastest runtime this machine has, make its model file on first use, say why.

``resolve_backend(platform, model_path, device, precision)`` is pure: from the facts of a ``Platform`` (CUDA
present, TensorRT importable, ONNX Runtime importable) it returns the candidates in order of preference:

    TensorRT + a CUDA device        tensorrt on the GPU, fp16 (engine built from the cached ONNX, cached beside it)
    a CUDA device, no TensorRT      torch on the GPU, fp16, CUDA graphs
    no CUDA device (or device cpu)  onnx (ONNX Runtime) on the CPU, fp32 (int8 when precision int8 is asked)
    no ONNX Runtime either          torch on the CPU, fp32

each with a one-line reason. ``create_auto_runtime`` builds the first candidate that loads (through ``backends``, the
registry that ``create_runtime`` builds explicit backends with; a failure is logged and the next one tried, so a
broken TensorRT or export never leaves the caller without a model); the runtime's
``selection`` says what was chosen and why. ONNX files made from a checkpoint come from ``model_cache`` (a user
cache folder, keyed by content and versions, rebuilt when corrupt or stale). ``detect_platform`` gathers the facts;
tests inject their own. This module reads model files and writes only through ``model_cache``.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import torch

from mtlsi_core.runtime.backends import build_backend, get_backend
from mtlsi_core.runtime.model_cache import load_cached_onnx
from mtlsi_core.runtime.tensorrt_runtime import tensorrt_version

log = logging.getLogger(__name__)

AUTO = "auto"
# options the auto backend accepts; each is passed on to the chosen backend where that backend knows it
AUTO_OPTIONS = ("cache_dir", "intra_op_threads", "inter_op_threads", "graph_optimization", "calibration",
                "platform", "auxiliary")
GPU_PRECISIONS = ("fp16", "bf16", "fp32")


@dataclass(frozen=True)
class Platform:
    """What this machine offers (``detect_platform``; tests inject their own)."""

    has_cuda: bool
    has_tensorrt: bool
    has_onnxruntime: bool = True
    cuda_name: str = ""
    tensorrt_version: str = ""


@dataclass(frozen=True)
class Selection:
    """One runtime choice: what ``create_runtime`` is called with, and why."""

    backend: str
    device: str
    precision: str
    reason: str
    options: Mapping[str, Any] = field(default_factory=dict)
    requested: str = AUTO  # the backend that was asked for ("auto", or an explicit one)

    def describe(self) -> str:
        return f"{self.backend} on {self.device} ({self.precision}): {self.reason}"


def detect_platform() -> Platform:
    """The facts of this machine. TensorRT is imported only where a CUDA device is present."""
    has_cuda = bool(torch.cuda.is_available())
    name = torch.cuda.get_device_name(0) if has_cuda else ""
    trt_version = ""
    if has_cuda:
        trt_version = tensorrt_version() or ""
    return Platform(has_cuda=has_cuda, has_tensorrt=bool(trt_version), cuda_name=name, tensorrt_version=trt_version,
                    has_onnxruntime=importlib.util.find_spec("onnxruntime") is not None)


def _model_kind(model_path: str | os.PathLike) -> str:
    suffix = Path(model_path).suffix.lower()
    if suffix in (".pt", ".pth"):
        return "checkpoint"
    if suffix in (".onnx", ".engine"):
        return suffix[1:]
    raise ValueError(f"backend auto: cannot tell the kind of model file {model_path} (expected .pt, .onnx or .engine)")


def resolve_backend(platform: Platform, model_path: str | os.PathLike = "model.pt", device: str = "cuda",
                    precision: str = "fp16") -> list[Selection]:
    """The runtimes to try for ``model_path`` on ``platform``, best first (see the module docstring).

    ``device``: "cpu" keeps to the CPU; "cuda" / "cuda:N" uses that GPU where present. ``precision``: fp16, bf16
    or fp32 on a GPU (int8 there runs fp16); on the CPU fp32, or int8 (ONNX Runtime, static quantisation).
    """
    kind = _model_kind(model_path)
    want_gpu = device != "cpu"
    gpu = device if device.startswith("cuda") else "cuda"
    gpu_prec = precision if precision in GPU_PRECISIONS else "fp16"
    cpu_prec = "int8" if precision == "int8" else "fp32"
    out: list[Selection] = []
    if want_gpu and platform.has_cuda:
        gpu_name = f" ({platform.cuda_name})" if platform.cuda_name else ""
        if platform.has_tensorrt:
            out.append(Selection("tensorrt", gpu, gpu_prec, f"CUDA device{gpu_name} and TensorRT "
                                 f"{platform.tensorrt_version} present"))
        if kind == "checkpoint":
            why = "CUDA device" + gpu_name + (" present, TensorRT not installed" if not platform.has_tensorrt
                                              else " present (fallback if TensorRT fails)")
            out.append(Selection("torch", gpu, gpu_prec, why, {"cuda_graphs": True}))
    if kind == "engine":
        if not out:
            raise ValueError(f"backend auto: {model_path} is a TensorRT engine, which needs a CUDA device and "
                             "TensorRT; give the .pt checkpoint or the .onnx file instead")
        return out
    cpu_why = ("device 'cpu' asked" if not want_gpu else "no CUDA device") + ": "
    if platform.has_onnxruntime:
        out.append(Selection("onnx", "cpu", cpu_prec, cpu_why + "ONNX Runtime on the CPU (fastest CPU path)"
                             + (", INT8" if cpu_prec == "int8" else "")))
    if kind == "checkpoint":
        out.append(Selection("torch", "cpu", "fp32", cpu_why + ("ONNX Runtime not installed: " if not
                                                                platform.has_onnxruntime else "fallback: ")
                             + "PyTorch on the CPU"))
    if not out:
        raise ValueError(f"backend auto: nothing can run {model_path} here (no CUDA device, no ONNX Runtime)")
    return out


def _create(sel: Selection, model_path: Path, kw: Mapping[str, Any]):
    """Build one candidate; ONNX files of checkpoints come from the model cache (rebuilt once if unloadable)."""
    backend = get_backend(sel.backend)
    opts = {k: v for k, v in kw.items() if k in backend.options and k not in ("cache_dir", "calibration")}
    opts.update(sel.options)

    def load(path: Path):
        return build_backend(sel.backend, str(path), sel.device, sel.precision, **opts)

    from_cache = model_path.suffix in (".pt", ".pth") or (sel.precision == "int8" and model_path.suffix == ".onnx")
    if sel.backend == "torch" or not from_cache:
        return load(model_path), None
    return load_cached_onnx(model_path, "int8" if sel.precision == "int8" else "fp32", load,
                            cache_dir=kw.get("cache_dir"), calibration=kw.get("calibration"))


def create_auto_runtime(model_path: str | os.PathLike, device: str = "cuda", precision: str = "fp16",
                        platform: Platform | None = None, **kw: Any):
    """The first candidate of ``resolve_backend`` that loads; ``runtime.selection`` says which and why."""
    path = Path(model_path)
    candidates = resolve_backend(platform or detect_platform(), path, device, precision)
    failures: list[str] = []
    for sel in candidates:
        try:
            rt, entry = _create(sel, path, kw)
        except Exception as e:  # TensorRT build, export, quantisation ... : try the next candidate
            msg = f"{sel.backend} on {sel.device} failed: {type(e).__name__}: {' '.join(str(e).split())}"
            log.warning("backend auto: %s", msg)
            failures.append(msg)
            if sel is candidates[-1]:
                raise
            continue
        reason = sel.reason + ("" if not failures else " (after: " + "; ".join(failures) + ")")
        if entry is not None:
            reason += f"; model {'built' if entry.built else 'cached'} at {entry.path}"
        rt.selection = replace(sel, reason=reason)
        log.info("backend auto chose %s", rt.selection.describe())
        return rt
    raise AssertionError("unreachable")


__all__ = ["AUTO", "AUTO_OPTIONS", "Platform", "Selection", "create_auto_runtime", "detect_platform",
           "resolve_backend"]
