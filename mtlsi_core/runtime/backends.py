"""The concrete inference backends by name: the runtime class that builds one from a model file, and the options it
accepts. ``create_runtime`` (explicit backends) and ``auto`` (its candidates) both build through ``build_backend``;
neither knows the other's internals.

    torch     TorchRuntime.from_checkpoint   an mtlsi checkpoint (.pt)
    onnx      OrtRuntime.from_path           .onnx, or a .pt exported once into the model cache
    tensorrt  TensorRTRuntime.from_path      .onnx, .pt (its ONNX from the model cache) or a built .engine
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mtlsi_core.runtime.base import Runtime
from mtlsi_core.runtime.onnx_runtime import OPTIONS as ONNX_OPTIONS, OrtRuntime
from mtlsi_core.runtime.tensorrt_runtime import OPTIONS as TENSORRT_OPTIONS, TensorRTRuntime
from mtlsi_core.runtime.torch_runtime import OPTIONS as TORCH_OPTIONS, TorchRuntime


@dataclass(frozen=True)
class Backend:
    name: str
    build: Callable[..., Runtime]  # (model_path, device=, precision=, **options) -> Runtime
    options: tuple[str, ...]  # the keyword options ``build`` accepts beyond device and precision


REGISTRY: dict[str, Backend] = {b.name: b for b in (
    Backend("torch", TorchRuntime.from_checkpoint, tuple(TORCH_OPTIONS)),
    Backend("onnx", OrtRuntime.from_path, tuple(ONNX_OPTIONS)),
    Backend("tensorrt", TensorRTRuntime.from_path, tuple(TENSORRT_OPTIONS)),
)}


def get_backend(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown runtime backend {name!r}; the concrete backends: {', '.join(REGISTRY)}") from None


def build_backend(name: str, model_path: str, device: str, precision: str, **options: Any) -> Runtime:
    """One runtime of backend ``name`` (its options checked by the backend itself)."""
    return get_backend(name).build(str(model_path), device=device, precision=precision, **options)


__all__ = ["Backend", "REGISTRY", "build_backend", "get_backend"]
