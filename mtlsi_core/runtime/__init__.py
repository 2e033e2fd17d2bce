"""Inference runtimes behind one interface (see ``base.Runtime``): PyTorch, ONNX Runtime, TensorRT.

    rt = create_runtime("onnx", "model.onnx", device="cpu")
    outputs = rt.infer([rgb0, rgb1], output_size="input")

=========  ===========================================  ==============================================
backend    model_path                                   options (**kw)
=========  ===========================================  ==============================================
torch      mtlsi checkpoint (.pt)                       compile, channels_last, cuda_graphs
onnx       .onnx from mtlsi-export, or a .pt (exported  providers, intra_op_threads, optimized_model_path,
           once to a cached .onnx beside it)            graph_optimization, cache_dir, allow_spinning
tensorrt   .onnx, .pt or a built .engine (engine        force_rebuild, max_batch, opt_batch, workspace_gib,
           cached beside the ONNX)                      cache_dir, builder
=========  ===========================================  ==============================================

CUDA requested where absent runs on CPU with a warning and a note in ``info.notes`` (torch, onnx);
TensorRT has no CPU path and raises ``TensorRTUnavailable`` with an explanation.
"""
from __future__ import annotations

import importlib
from typing import Any

from mtlsi_core.runtime.base import ModelFileError, OutputSize, Runtime, RuntimeInfo, check_images

# backend -> (module, class, factory classmethod)
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "torch": ("mtlsi_core.runtime.torch_runtime", "TorchRuntime", "from_checkpoint"),
    "onnx": ("mtlsi_core.runtime.onnx_runtime", "OrtRuntime", "from_path"),
    "tensorrt": ("mtlsi_core.runtime.tensorrt_runtime", "TensorRTRuntime", "from_path"),
}
BACKENDS = tuple(_BACKENDS)


def backend_options(backend: str) -> tuple[str, ...]:
    """The extra keyword options a backend accepts."""
    if backend not in _BACKENDS:
        raise ValueError(f"unknown runtime backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return tuple(importlib.import_module(_BACKENDS[backend][0]).OPTIONS)


def create_runtime(backend: str, model_path: str, device: str = "cpu", precision: str = "fp32", **kw: Any) -> Runtime:
    """Build a runtime from a model file (see the table above). Unknown backends or options are errors naming
    the choices; a missing or corrupt model file raises an error naming the file."""
    allowed = backend_options(backend)
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(f"runtime backend {backend!r} has no option(s) {', '.join(unknown)}; "
                         f"its options: {', '.join(allowed)}")
    module, cls_name, factory = _BACKENDS[backend]
    cls = getattr(importlib.import_module(module), cls_name)
    return getattr(cls, factory)(str(model_path), device=device, precision=precision, **kw)


__all__ = ["BACKENDS", "ModelFileError", "OutputSize", "Runtime", "RuntimeInfo", "backend_options", "check_images",
           "create_runtime"]
