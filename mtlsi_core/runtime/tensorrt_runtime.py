"""TensorRT backend: an engine built from the exported ONNX, cached beside it, run on a CUDA device.

``model_path``: an ``.onnx`` from ``mtlsi-export`` (the engine is built on first use), an mtlsi checkpoint
``.pt`` (its ONNX export from the model cache, ``model_cache.cached_onnx``), or an ``.engine`` built earlier (read with
its JSON sidecar, which carries the model metadata).

Engine cache: ``<onnx stem>.<precision>.<H>x<W>.trt<TensorRT version>.engine`` next to the ONNX, so a change
of precision, input size or TensorRT version selects another file. The sidecar ``<engine>.json`` records
the ONNX's sha256 and the batch profile: when either changed, or on ``force_rebuild``, the engine is rebuilt.
Builds take minutes: the build logs its start, TensorRT's optimiser phases and a heartbeat.

TensorRT is not installable on the development machines of this project (no NVIDIA GPU): there this
backend raises ``TensorRTUnavailable`` with an explanation; the cache logic is tested with a fake builder.

Options: ``force_rebuild``, ``max_batch`` (4), ``opt_batch`` (1), ``workspace_gib`` (4), ``cache_dir``
(for checkpoint exports), ``builder`` (a callable ``(onnx_path, BuildSpec) -> engine bytes``, for tests).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from mtlsi_core.checkpoint import atomic_write
from mtlsi_core.runtime.base import ModelFileError, Runtime, RuntimeInfo
from mtlsi_core.runtime.meta import INPUT_NAME, ModelMeta
from mtlsi_core.runtime.processing import prepare_batch

log = logging.getLogger(__name__)

OPTIONS = ("force_rebuild", "max_batch", "opt_batch", "workspace_gib", "cache_dir", "builder", "auxiliary")
PRECISIONS = ("fp16", "bf16", "fp32")

UNAVAILABLE_HELP = ("TensorRT is not installed: `import tensorrt` failed ({error}). The TensorRT backend needs an "
                    "NVIDIA GPU with CUDA and the `tensorrt` Python package (pip install tensorrt); it cannot be "
                    "installed on CPU-only machines. Use backend 'onnx' (ONNX Runtime) or 'torch' instead.")


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a CUDA device for it) is not available here; the message says what to do instead."""


def import_tensorrt():
    try:
        import tensorrt as trt  # noqa: PLC0415 (optional dependency)
    except Exception as e:  # ImportError, or a broken install raising OSError on its shared libraries
        raise TensorRTUnavailable(UNAVAILABLE_HELP.format(error=f"{type(e).__name__}: {e}")) from None
    return trt


def tensorrt_version() -> str | None:
    try:
        return str(import_tensorrt().__version__)
    except TensorRTUnavailable:
        return None


@dataclass(frozen=True)
class BuildSpec:
    precision: str
    input_size: tuple[int, int]
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4
    workspace_gib: float = 4.0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"TensorRT precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"batch profile must satisfy 1 <= min <= opt <= max, got "
                             f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")


Builder = Callable[[Path, BuildSpec], bytes]


def engine_path(onnx_path: str | os.PathLike, precision: str, input_size: tuple[int, int], trt_version: str) -> Path:
    """``<onnx stem>.<precision>.<H>x<W>.trt<version>.engine`` beside the ONNX."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.{precision}.{int(input_size[0])}x{int(input_size[1])}.trt{trt_version}.engine")


def sidecar_path(engine: str | os.PathLike) -> Path:
    return Path(f"{engine}.json")


class EngineCache:
    """Finds, validates and (re)builds the engine of one ONNX file for one build spec."""

    def __init__(self, onnx_path: str | os.PathLike, spec: BuildSpec, trt_version: str, builder: Builder,
                 heartbeat_s: float = 30.0):
        self.onnx_path = Path(onnx_path)
        self.spec = spec
        self.trt_version = trt_version
        self.builder = builder
        self.heartbeat_s = heartbeat_s
        self.path = engine_path(self.onnx_path, spec.precision, spec.input_size, trt_version)
        self.sidecar = sidecar_path(self.path)
        self._onnx_sha: str | None = None

    def onnx_sha256(self) -> str:
        if self._onnx_sha is None:
            from mtlsi_core.runtime.export import sha256_file

            self._onnx_sha = sha256_file(self.onnx_path)
        return self._onnx_sha

    def key(self) -> dict[str, Any]:
        s = self.spec
        return {"precision": s.precision, "input_size": [int(v) for v in s.input_size], "tensorrt": self.trt_version,
                "onnx_sha256": self.onnx_sha256(), "batch": [s.min_batch, s.opt_batch, s.max_batch]}

    def stale_reason(self) -> str | None:
        """Why the cached engine cannot be used (None: it can)."""
        if not self.path.is_file():
            return f"no engine at {self.path}"
        try:
            side = json.loads(self.sidecar.read_text())
            old = side["key"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"engine sidecar {self.sidecar} missing or unreadable"
        new = self.key()
        changed = [k for k in new if old.get(k) != new[k]]
        if changed:
            return "changed since the last build: " + ", ".join(f"{k} {old.get(k)!r} -> {new[k]!r}" for k in changed)
        return None

    def get(self, force_rebuild: bool = False) -> Path:
        """The engine path, building it first when missing, stale or ``force_rebuild``."""
        if not self.onnx_path.is_file():
            raise ModelFileError(f"ONNX file not found: {self.onnx_path}")
        reason = "force_rebuild requested" if force_rebuild else self.stale_reason()
        if reason is None:
            log.info("using cached TensorRT engine %s", self.path)
            return self.path
        self.build(reason)
        return self.path

    def build(self, reason: str) -> None:
        from mtlsi_core.runtime.export import read_onnx_meta

        meta = read_onnx_meta(self.onnx_path)
        s = self.spec
        log.warning("building TensorRT engine %s from %s (%s, %dx%d, batch %d..%d, TensorRT %s) because %s; "
                    "this usually takes several minutes", self.path.name, self.onnx_path, s.precision,
                    *s.input_size, s.min_batch, s.max_batch, self.trt_version, reason)
        t0 = time.monotonic()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(self.heartbeat_s):
                log.info("still building TensorRT engine %s (%.0f s elapsed)", self.path.name, time.monotonic() - t0)

        beat = threading.Thread(target=heartbeat, name="trt-build-heartbeat", daemon=True)
        beat.start()
        try:
            data = self.builder(self.onnx_path, s)
        except Exception as e:
            log.error("building TensorRT engine %s failed after %.0f s: %s", self.path.name, time.monotonic() - t0, e)
            raise
        finally:
            done.set()
            beat.join()
        if not data:
            raise RuntimeError(f"TensorRT builder returned an empty engine for {self.onnx_path}")
        seconds = time.monotonic() - t0
        atomic_write(self.path, lambda f: f.write(bytes(data)))
        side = {"key": self.key(), "meta": json.loads(meta.to_json()), "onnx": str(self.onnx_path.resolve()),
                "build_seconds": round(seconds, 1), "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write(self.sidecar, lambda f: f.write(json.dumps(side, indent=1, sort_keys=True).encode()))
        log.warning("built TensorRT engine %s in %.0f s (%.1f MB)", self.path, seconds, len(data) / 1e6)


# --------------------------------------------------------------------------------------------------
# The real builder (TensorRT Python API, TensorRT 10 and 8.6)
# --------------------------------------------------------------------------------------------------


def _trt_logger(trt: Any):
    levels = {trt.Logger.INTERNAL_ERROR: logging.CRITICAL, trt.Logger.ERROR: logging.ERROR,
              trt.Logger.WARNING: logging.WARNING, trt.Logger.INFO: logging.INFO, trt.Logger.VERBOSE: logging.DEBUG}

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            log.log(levels.get(severity, logging.INFO), "TensorRT: %s", msg)

    return _Logger()


def _progress_monitor(trt: Any):
    if not hasattr(trt, "IProgressMonitor"):  # TensorRT < 10
        return None

    class _Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._last = 0.0

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                log.info("TensorRT build phase: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            now = time.monotonic()
            if now - self._last > 10.0:
                self._last = now
                log.info("TensorRT build: %s step %d", phase_name, step + 1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            log.debug("TensorRT build phase done: %s", phase_name)

    return _Progress()


def build_engine(onnx_path: Path, spec: BuildSpec) -> bytes:
    """Parse the ONNX and build a serialized engine with TensorRT (fp16/bf16 flags, a batch profile)."""
    trt = import_tensorrt()
    logger = _trt_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.workspace_gib * (1 << 30)))
    if spec.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif spec.precision == "bf16":
        if not hasattr(trt.BuilderFlag, "BF16"):
            raise TensorRTUnavailable(f"TensorRT {trt.__version__} has no bf16 support (needs >= 9)")
        config.set_flag(trt.BuilderFlag.BF16)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    h, w = spec.input_size
    inp = network.get_input(0)
    if inp.shape[0] == -1:
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, (spec.min_batch, h, w, 3), (spec.opt_batch, h, w, 3), (spec.max_batch, h, w, 3))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path} (see the TensorRT log above)")
    return bytes(serialized)


# --------------------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------------------


def _torch_dtype(trt: Any, dt: Any) -> torch.dtype:
    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT32": torch.int32,
             "INT64": torch.int64, "INT8": torch.int8, "UINT8": torch.uint8, "BOOL": torch.bool}
    for name, tdt in table.items():
        if hasattr(trt.DataType, name) and dt == getattr(trt.DataType, name):
            return tdt
    raise TypeError(f"unsupported TensorRT data type {dt}")


def read_engine_meta(engine: str | os.PathLike) -> ModelMeta:
    side = sidecar_path(engine)
    try:
        d = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{engine}: its metadata sidecar {side} is missing or unreadable ({e}); rebuild the "
                             "engine with `mtlsi-export --format engine`") from None
    if "meta" not in d:
        raise ModelFileError(f"{side}: no 'meta' entry")
    return ModelMeta.from_json(json.dumps(d["meta"]), str(side))


class TensorRTRuntime(Runtime):
    def __init__(self, engine_file: str | os.PathLike, meta: ModelMeta, device: str = "cuda", precision: str = "fp16",
                 notes: Sequence[str] = (), auxiliary: Sequence[str] | None = ()):
        trt = import_tensorrt()
        super().__init__(meta.tasks, meta.dataset, meta.input_size, meta.mean, meta.std, meta.canonical_focal,
                         auxiliary)
        self.trt = trt
        self.meta = meta
        self.path = Path(engine_file)
        self.precision = precision
        self._notes = list(notes)
        dev = torch.device(device)
        self.device = dev if dev.index is not None else torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(self.device)
        self._logger = _trt_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        try:
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        except OSError as e:
            raise ModelFileError(f"cannot read TensorRT engine {self.path}: {e}") from None
        if self.engine is None:
            raise ModelFileError(f"{self.path}: TensorRT cannot deserialize this engine (corrupt, or built with "
                                 f"another TensorRT version / GPU; rebuild with force_rebuild)")
        self.context = self.engine.create_execution_context()
        # every output of the engine needs a buffer (an engine from a current export always computes the auxiliary
        # outputs: GPU cost not measured, a few element-wise passes over the logits); run returns the tasks and the
        # auxiliary outputs asked for
        io = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.engine_outputs = tuple(n for n in io if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        lacking = [k for k in self.auxiliary_keys if k not in self.engine_outputs]
        if lacking:
            self._notes.append(f"{self.path.name} was built without the outputs {', '.join(lacking)} (from an export "
                               "older than them): they are absent; re-export and rebuild to get them")
            log.warning(self._notes[-1])
        self.auxiliary_keys = tuple(k for k in self.auxiliary_keys if k in self.engine_outputs)
        self.output_names = (*self.tasks, *self.auxiliary_keys)
        shape = tuple(self.engine.get_tensor_shape(INPUT_NAME))
        if shape[0] == -1:
            self.max_batch = int(self.engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])
        else:
            self.max_batch = int(shape[0])
        self.static_batch = None if shape[0] == -1 else int(shape[0])
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, model_path: str, device: str = "cuda", precision: str = "fp16", force_rebuild: bool = False,
                  max_batch: int = 4, opt_batch: int = 1, workspace_gib: float = 4.0,
                  cache_dir: str | os.PathLike | None = None, builder: Builder | None = None,
                  auxiliary: Sequence[str] | None = ()) -> "TensorRTRuntime":
        trt = import_tensorrt()
        if torch.device(device).type != "cuda" or not torch.cuda.is_available():
            raise TensorRTUnavailable(f"TensorRT runs on CUDA devices only; device {device!r} requested and CUDA "
                                      f"{'is' if torch.cuda.is_available() else 'is not'} available. Use backend "
                                      "'onnx' or 'torch' on CPU.")
        if precision not in PRECISIONS:
            raise ValueError(f"TensorRT precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        path = Path(model_path)
        if path.suffix == ".engine":
            if not path.is_file():
                raise ModelFileError(f"TensorRT engine not found: {path}")
            return cls(path, read_engine_meta(path), device, precision, auxiliary=auxiliary)
        if path.suffix in (".pt", ".pth"):  # its ONNX export from the model cache, as every backend's
            from mtlsi_core.runtime.model_cache import cached_onnx

            path = cached_onnx(path, "fp32", cache_dir=cache_dir).path
        from mtlsi_core.runtime.export import read_onnx_meta

        meta = read_onnx_meta(path)
        spec = BuildSpec(precision, meta.input_size, 1, opt_batch, max_batch, workspace_gib)
        cache = EngineCache(path, spec, str(trt.__version__), builder or build_engine)
        engine = cache.get(force_rebuild=force_rebuild)
        return cls(engine, meta, device, precision, auxiliary=auxiliary)

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo("tensorrt", str(self.device), self.precision, self.input_size, self.tasks, self.dataset,
                           list(self._notes), {"engine": str(self.path), "tensorrt": str(self.trt.__version__),
                                               "max_batch": self.max_batch, "auxiliary": list(self.auxiliary_keys)})

    def prepare(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        return prepare_batch(images, self.input_size, self.device)

    def _run_chunk(self, x: torch.Tensor, stream: torch.cuda.Stream) -> dict[str, torch.Tensor]:
        n = x.shape[0]
        if self.static_batch is not None and n != self.static_batch:
            x = torch.cat([x, x.new_zeros((self.static_batch - n, *x.shape[1:]))])
        x = x.contiguous()
        ctx = self.context
        ctx.set_input_shape(INPUT_NAME, tuple(x.shape))
        ctx.set_tensor_address(INPUT_NAME, x.data_ptr())
        outs = {}
        for t in self.engine_outputs:
            out = torch.empty(tuple(ctx.get_tensor_shape(t)), dtype=_torch_dtype(self.trt, self.engine.get_tensor_dtype(t)),
                              device=self.device)
            ctx.set_tensor_address(t, out.data_ptr())
            outs[t] = out
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution failed for a batch of {n} ({self.path})")
        return {t: outs[t][:n] for t in self.output_names}

    def run(self, batch: torch.Tensor) -> Mapping[str, torch.Tensor]:
        with self._lock:
            stream = torch.cuda.current_stream(self.device)
            chunks = [self._run_chunk(batch[i:i + self.max_batch], stream)
                      for i in range(0, batch.shape[0], self.max_batch)]
            stream.synchronize()
        return {t: torch.cat([c[t] for c in chunks]) if len(chunks) > 1 else chunks[0][t] for t in self.output_names}

    def close(self) -> None:
        self.context = self.engine = None  # type: ignore[assignment]
        torch.cuda.empty_cache()
