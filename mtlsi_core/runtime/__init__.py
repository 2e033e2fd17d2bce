"""Inference runtimes behind one interface (see ``base.Runtime``): PyTorch, ONNX Runtime, TensorRT."""
from __future__ import annotations

from mtlsi_core.runtime.base import OutputSize, Runtime, RuntimeInfo, check_images

BACKENDS = ("torch", "onnx", "tensorrt")


def create_runtime(backend: str, model_path: str, device: str = "cpu", precision: str = "fp32", **kw) -> Runtime:
    """Build a runtime from a model file.

    backend "torch": ``model_path`` is an mtlsi checkpoint (.pt). Unknown backends are errors naming the choices.
    """
    if backend == "torch":
        from mtlsi_core.runtime.torch_runtime import TorchRuntime

        return TorchRuntime.from_checkpoint(model_path, device=device, precision=precision, **kw)
    raise ValueError(f"unknown runtime backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "OutputSize", "Runtime", "RuntimeInfo", "check_images", "create_runtime"]
