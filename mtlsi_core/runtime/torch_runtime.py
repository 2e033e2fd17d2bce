"""PyTorch runtime: pre-processing, network, activation and resizing all on the device.

Options (``create_runtime("torch", ckpt, device, precision, **options)``):

    compile        False | True | a ``torch.compile`` mode ("default", "max-autotune-no-cudagraphs", ...) | a dict
                   of ``torch.compile`` keyword arguments (e.g. {"backend": "aot_eager"}); always dynamic=False
    channels_last  run convolutions in NHWC memory format
    cuda_graphs    capture the network once per batch size in a CUDA graph and replay it (CUDA only;
                   ignored with a note on CPU). Combine with ``compile`` for the lowest latency.
    auxiliary      auxiliary outputs to compute, e.g. ("confidence",) (see ``base``); default none

Precision: fp32, bf16 (autocast, CPU and CUDA) and fp16 (autocast, CUDA; CPU runs fp32 with a note).
"""
from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from mtlsi_core.runtime.base import Runtime, RuntimeInfo
from mtlsi_core.runtime.processing import InferenceModule, prepare_batch, resize_prediction

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OPTIONS = ("compile", "channels_last", "cuda_graphs", "auxiliary")

__all__ = ["OPTIONS", "TorchRuntime", "check_precision", "resize_prediction", "resolve_device"]


def resolve_device(device: str, notes: list[str]) -> torch.device:
    """'cuda' falls back to CPU (with a note) where CUDA is absent."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = f"device {device!r} requested but CUDA is not available: running on CPU"
        log.warning(msg)
        notes.append(msg)
        return torch.device("cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return dev


def check_precision(precision: str) -> str:
    if precision not in _DTYPES:
        raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
    return precision


def _compile_options(compile: bool | str | Mapping[str, Any]) -> dict[str, Any] | None:
    if compile is False or compile is None:
        return None
    if compile is True:
        opts: dict[str, Any] = {"mode": "default"}
    elif isinstance(compile, str):
        opts = {"mode": compile}
    elif isinstance(compile, Mapping):
        opts = dict(compile)
    else:
        raise ValueError(f"compile must be a bool, a torch.compile mode or a dict of options, got {compile!r}")
    opts.setdefault("dynamic", False)  # the network size is static; batch sizes recompile once each
    return opts


class _CudaGraphed:
    """Replays ``fn`` from a CUDA graph captured once per input batch size (static input/output buffers)."""

    def __init__(self, fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], amp: Callable[[], Any],
                 warmup: int = 3):
        self.fn, self.amp, self.warmup = fn, amp, warmup
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, ...]]] = {}

    def _capture(self, x: torch.Tensor):
        static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode(), self.amp():
            for _ in range(self.warmup):  # compiles / autotunes before capture
                self.fn(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode(), self.amp():
            static_out = self.fn(static_in)
        log.info("captured a CUDA graph for input %s", tuple(x.shape))
        return graph, static_in, static_out

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = tuple(x.shape)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out  # overwritten by the next replay: the caller copies out under the runtime's lock


class TorchRuntime(Runtime):
    def __init__(self, model: torch.nn.Module, tasks: Sequence[str], dataset: str, input_size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], device: str = "cpu", precision: str = "fp32",
                 channels_last: bool = False, compile: bool | str | Mapping[str, Any] = False,
                 cuda_graphs: bool = False, canonical_focal: float | None = None,
                 auxiliary: Sequence[str] | None = ()):
        super().__init__(tasks, dataset, input_size, mean, std, canonical_focal, auxiliary)
        check_precision(precision)
        self._notes: list[str] = []
        self.device = resolve_device(device, self._notes)
        if self.device.type == "cpu" and precision == "fp16":
            self._notes.append("fp16 on CPU is slow and inexact: using fp32")
            precision = "fp32"
        self.precision = precision
        self.channels_last = bool(channels_last)
        model = model.eval().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.module = InferenceModule(model, self.tasks, self.mean, self.std, channels_last=self.channels_last,
                                      auxiliary=self.auxiliary)
        self.output_names = self.module.output_names  # tasks, then auxiliary_keys
        self.module = self.module.to(self.device).eval()
        self.compile_options = _compile_options(compile)
        fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] = self.module
        if self.compile_options is not None:
            fn = torch.compile(self.module, **self.compile_options)
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        if cuda_graphs and not self.cuda_graphs:
            self._notes.append("CUDA graphs need a CUDA device: not used")
        if self.cuda_graphs:
            fn = _CudaGraphed(fn, self._amp)
        self._fn = fn
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", precision: str = "fp32", **kw: Any) -> "TorchRuntime":
        from mtlsi_core.models import load_model_from_checkpoint

        model, cfg = load_model_from_checkpoint(path)
        return cls(model, cfg.data.tasks, cfg.data.dataset, cfg.data.input_size, cfg.data.mean, cfg.data.std,
                   device=device, precision=precision, canonical_focal=cfg.data.canonical_focal, **kw)

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo("torch", str(self.device), self.precision, self.input_size, self.tasks, self.dataset,
                           list(self._notes), {"compile": self.compile_options, "channels_last": self.channels_last,
                                               "cuda_graphs": self.cuda_graphs, "torch": torch.__version__,
                                               "auxiliary": list(self.auxiliary_keys)})

    def _amp(self):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    def prepare(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        return prepare_batch(images, self.input_size, self.device)

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        with self._amp():
            outs = self._fn(batch)
        return dict(zip(self.output_names, outs))

    def run(self, batch: torch.Tensor) -> Mapping[str, torch.Tensor]:
        if self._fn is None:
            raise RuntimeError("the torch runtime was closed")
        with self._lock:
            out = self._forward(batch)
            if self.cuda_graphs:
                out = {t: v.clone() for t, v in out.items()}
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        return out

    @torch.inference_mode()
    def infer(self, images: Sequence[np.ndarray], output_size: Any = "input",
              focal_lengths: Sequence[float | None] | None = None) -> list[dict[str, np.ndarray]]:
        return super().infer(images, output_size, focal_lengths)

    def close(self) -> None:
        self.model.to("cpu")
        self._fn = self.module = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
