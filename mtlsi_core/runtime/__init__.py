"""Inference runtimes behind one interface (see ``base.Runtime``): PyTorch, ONNX Runtime, TensorRT, and ``auto``.

    rt = create_runtime("auto", "best.pt")              # the default backend: the fastest this machine has
    rt = create_runtime("onnx", "model.onnx", device="cpu")
    outputs = rt.infer([rgb0, rgb1], output_size="input")
    rt.selection                                         # auto: what was chosen and why (auto.Selection)

=========  ===========================================  ==============================================
backend    model_path                                   options (**kw)
=========  ===========================================  ==============================================
auto       .pt, .onnx (.engine with TensorRT)           cache_dir, intra_op_threads, inter_op_threads,
           (see ``auto``: TensorRT, else torch on CUDA,  graph_optimization, calibration, platform
           else ONNX Runtime on the CPU; cached files)
torch      mtlsi checkpoint (.pt)                       compile, channels_last, cuda_graphs
onnx       .onnx from mtlsi-export, or a .pt (exported  providers, intra_op_threads, inter_op_threads,
           once into the model cache); int8:            optimized_model_path, graph_optimization, cache_dir,
           quantised once into the model cache          allow_spinning, calibration
tensorrt   .onnx, .pt (ONNX from the model cache) or a  force_rebuild, max_batch, opt_batch, workspace_gib,
           built .engine (engine cached beside the      cache_dir, builder
           ONNX)
=========  ===========================================  ==============================================

Every backend (and auto) also takes ``auxiliary``: auxiliary outputs to return, e.g. ("confidence",) for
``<labels task>_confidence`` (see ``base``; off by default: not free on the CPU).
CUDA requested where absent runs on CPU with a warning and a note in ``info.notes`` (torch, onnx);
TensorRT has no CPU path and raises ``TensorRTUnavailable`` with an explanation.

Structure: ``backends`` is the registry of the concrete backends (runtime class, options); ``create_runtime`` builds
an explicit backend through it and hands ``auto`` to ``auto.create_auto_runtime``, which chooses the candidates
(``auto.resolve_backend``) and builds them through the same registry. Imports run one way: this module -> ``auto``
-> ``backends`` -> the runtime modules.
"""
from __future__ import annotations

from typing import Any

from mtlsi_core.runtime.auto import AUTO, AUTO_OPTIONS, Selection, create_auto_runtime
from mtlsi_core.runtime.backends import REGISTRY, build_backend
from mtlsi_core.runtime.base import ModelFileError, OutputSize, Runtime, RuntimeInfo, check_images

DEFAULT_BACKEND = AUTO
BACKENDS = (DEFAULT_BACKEND, *REGISTRY)
PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # int8: ONNX Runtime only (static quantisation)


def backend_options(backend: str) -> tuple[str, ...]:
    """The extra keyword options a backend accepts."""
    if backend == DEFAULT_BACKEND:
        return AUTO_OPTIONS
    if backend not in REGISTRY:
        raise ValueError(f"unknown runtime backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return REGISTRY[backend].options


def runtime_options(backend: str, **values: Any) -> dict[str, Any]:
    """The entries of ``values`` that ``backend`` accepts, without the None ones (for callers such as the node that
    hold settings of every backend)."""
    allowed = backend_options(backend)
    return {k: v for k, v in values.items() if k in allowed and v is not None}


def create_runtime(backend: str = DEFAULT_BACKEND, model_path: str | None = None, device: str | None = None,
                   precision: str | None = None, **kw: Any) -> Runtime:
    """Build a runtime from a model file (see the table above). Unknown backends or options are errors naming
    the choices; a missing or corrupt model file raises an error naming the file. Every runtime has a
    ``selection`` (``auto.Selection``): for ``auto`` what was chosen and why, else the explicit request.

    Defaults: ``auto`` uses a GPU where there is one (device "cuda", precision fp16 there, fp32 on the CPU);
    the explicit backends run on "cpu" in fp32 unless told otherwise (as before)."""
    if model_path is None or str(model_path) == "":
        raise ValueError("create_runtime: model_path is required (a .pt checkpoint, .onnx or .engine file)")
    allowed = backend_options(backend)
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(f"runtime backend {backend!r} has no option(s) {', '.join(unknown)}; "
                         f"its options: {', '.join(allowed)}")
    if backend == DEFAULT_BACKEND:
        return create_auto_runtime(str(model_path), device=device or "cuda", precision=precision or "fp16", **kw)
    rt = build_backend(backend, str(model_path), device or "cpu", precision or "fp32", **kw)
    info = rt.info
    rt.selection = Selection(info.backend, info.device, info.precision, f"backend {backend!r} set explicitly",
                             requested=backend)
    return rt


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "PRECISIONS", "ModelFileError", "OutputSize", "Runtime", "RuntimeInfo",
           "backend_options", "check_images", "create_runtime", "runtime_options"]
