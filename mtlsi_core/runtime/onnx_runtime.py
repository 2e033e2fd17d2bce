"""ONNX Runtime backend: runs an ONNX file written by ``mtlsi-export`` (or exports a checkpoint on first use).

``model_path``: an ``.onnx`` from ``mtlsi-export --format onnx`` (its metadata says tasks, dataset, input size,
normalisation), or an mtlsi checkpoint ``.pt``, exported once into the model cache (``model_cache``: the folder
``cache_dir`` / ``$MTLSI_CACHE_DIR`` / ``~/.cache/mtlsi_ros`` that backend ``auto`` uses too, keyed by the checkpoint's
content, so a changed checkpoint is exported again; nothing is written beside the checkpoint).

Options: ``providers`` (ORT execution providers, default CPU, or CUDA then CPU for a CUDA device),
``intra_op_threads`` (default: physical cores), ``inter_op_threads`` (> 1: independent graph branches run in
parallel, ORT_PARALLEL execution; default 0: sequential), ``optimized_model_path`` (save ORT's optimised graph there),
``graph_optimization`` ("all", "extended", "basic", "disable"), ``cache_dir`` (the model cache, for exports of checkpoints),
``allow_spinning`` (default False: ORT's worker threads then sleep instead of spinning while they wait; on the
shared 2-core machine under load 5 spinning made the edge model 1.7x slower, p50 157 vs 93 ms).

Precision: an ``mtlsi-export`` graph is fp32. fp16 is applied only through the TensorRT execution provider
(``trt_fp16_enable``); otherwise fp16/bf16 requests run fp32 with a note (fp16 does not help on CPU).
``int8``: static INT8 quantisation (``quantize``, calibrated on synthetic frames, option ``calibration``: a
``quantize.CalibrationSpec`` or a dict of its fields), made once from the ``.pt`` or fp32 ``.onnx`` into the
model cache (``model_cache``, option ``cache_dir``) with the scheme exact on this CPU (``quantize.choose_scheme``: uint8
weights on x86 without VNNI); an INT8 file (``mtlsi.quantization`` in its metadata) runs as it is and reports
precision int8, with a warning where its scheme saturates this CPU's kernels.
``auxiliary``: auxiliary outputs to return (e.g. ("confidence",), see ``base``). An export holds every auxiliary output;
those not asked for are cut from the graph before the session is made (ONNX Runtime computes every node of a graph
whatever outputs a run fetches: 16-23 ms of max softmax per frame on the shipped model), and a file exported before an
auxiliary output existed runs without it (its key is absent, with a note).
Pre/post-processing uses the shared torch ops of ``processing`` on the CPU, on one torch thread unless
``OMP_WAIT_POLICY=PASSIVE`` (spinning OpenMP threads otherwise take the cores from ONNX Runtime: 3x slower).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from mtlsi_core.runtime.base import ModelFileError, Runtime, RuntimeInfo
from mtlsi_core.runtime.meta import INPUT_NAME, ModelMeta
from mtlsi_core.runtime.processing import prepare_batch
from mtlsi_core.tasks import auxiliary_outputs

log = logging.getLogger(__name__)

OPTIONS = ("providers", "intra_op_threads", "inter_op_threads", "optimized_model_path", "graph_optimization",
           "cache_dir", "allow_spinning", "calibration", "auxiliary")
_CPU, _CUDA, _TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
GRAPH_OPTIMIZATIONS = ("all", "extended", "basic", "disable")


def physical_cores() -> int:
    """Physical cores usable by this process (logical CPUs where the count of physical ones is unknown)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    try:
        import psutil

        phys = psutil.cpu_count(logical=False) or usable
    except ImportError:
        phys = usable
    return max(1, min(phys, usable))


def _graph_level(name: str):
    import onnxruntime as ort

    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    if name not in levels:
        raise ValueError(f"graph_optimization must be one of {', '.join(levels)}, got {name!r}")
    return levels[name]


def select_providers(device: str, precision: str, requested: Sequence[Any] | None, available: Sequence[str],
                     notes: list[str]) -> list[Any]:
    """Execution providers (names or (name, options)) for a device, keeping only installed ones (with notes)."""
    try:
        dev = torch.device(device) if device else torch.device("cpu")
    except RuntimeError:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    device_id = dev.index or 0
    if requested is None:
        requested = [_CPU] if dev.type == "cpu" else [_CUDA, _CPU]
    chosen: list[Any] = []
    for p in requested:
        name, opts = (p, {}) if isinstance(p, str) else (p[0], dict(p[1]))
        if name not in available:
            msg = f"ONNX Runtime execution provider {name} is not installed (available: {', '.join(available)})"
            log.warning(msg)
            notes.append(msg)
            continue
        if name in (_CUDA, _TRT):
            opts.setdefault("device_id", device_id)
        if name == _TRT and precision == "fp16":
            opts.setdefault("trt_fp16_enable", True)
        chosen.append((name, opts) if opts else name)
    if not any((c if isinstance(c, str) else c[0]) == _CPU for c in chosen):
        chosen.append(_CPU)
    if dev.type == "cuda" and [c for c in chosen if (c if isinstance(c, str) else c[0]) != _CPU] == []:
        msg = f"device {device!r} requested but no CUDA execution provider is available: running on CPU"
        log.warning(msg)
        notes.append(msg)
    return chosen


def _is_quantized(path: Path) -> bool:
    """Whether an ONNX file is an mtlsi INT8 model (False for a missing / foreign file: the caller reports it)."""
    import onnx

    from mtlsi_core.runtime.quantize import KEY_QUANT

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return any(p.key == KEY_QUANT for p in proto.metadata_props)


def _calibration_spec(calibration: Any):
    from mtlsi_core.runtime.quantize import CalibrationSpec

    if calibration is None or isinstance(calibration, CalibrationSpec):
        return calibration
    if isinstance(calibration, dict):
        try:
            return CalibrationSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in calibration.items()})
        except TypeError as e:
            raise ValueError(f"calibration: {e}") from None
    raise ValueError(f"calibration must be a CalibrationSpec or a dict of its fields, got {calibration!r}")


def _session_model(path: Path, keep_auxiliary: Sequence[str]) -> str | bytes:
    """What to give ``ort.InferenceSession``: ``path`` itself, or the graph without the auxiliary outputs not in
    ``keep_auxiliary`` (serialised, metadata kept) when the file has any. A file onnx cannot read is passed on as it
    is, so that ONNX Runtime reports the problem."""
    import onnx
    import onnx.utils

    try:
        proto = onnx.load(str(path), load_external_data=False)
        names = [o.name for o in proto.graph.output]
        props = {p.key: p.value for p in proto.metadata_props}
        tasks = ModelMeta.from_props(props, str(path)).tasks
    except Exception:
        return str(path)
    keep_keys = auxiliary_outputs(tasks, keep_auxiliary)
    drop = [k for k in auxiliary_outputs(tasks) if k in names and k not in keep_keys]
    if not drop:
        return str(path)
    keep = [n for n in names if n not in drop]
    pruned = onnx.utils.Extractor(proto).extract_model([INPUT_NAME], keep)
    pruned.metadata_props.extend(proto.metadata_props)
    pruned.producer_name, pruned.producer_version = proto.producer_name, proto.producer_version
    log.debug("%s: running without the outputs %s", path, drop)
    return pruned.SerializeToString()


class OrtRuntime(Runtime):
    def __init__(self, onnx_path: str | os.PathLike, device: str = "cpu", precision: str = "fp32",
                 providers: Sequence[Any] | None = None, intra_op_threads: int | None = None,
                 optimized_model_path: str | os.PathLike | None = None, graph_optimization: str = "all",
                 allow_spinning: bool = False, inter_op_threads: int | None = None,
                 auxiliary: Sequence[str] | None = ()):
        import onnxruntime as ort

        from mtlsi_core.runtime.base import check_auxiliary

        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}")
        path = Path(onnx_path)
        if not path.is_file():
            raise ModelFileError(f"ONNX file not found: {path}")
        self.path = path
        self._notes: list[str] = []
        chosen = select_providers(device, precision, providers, ort.get_available_providers(), self._notes)
        so = ort.SessionOptions()
        so.graph_optimization_level = _graph_level(graph_optimization)
        for name, n in (("intra_op_threads", intra_op_threads), ("inter_op_threads", inter_op_threads)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
                raise ValueError(f"{name} must be a whole number >= 0 (0: automatic), got {n!r}")
        so.intra_op_num_threads = int(intra_op_threads) if intra_op_threads else physical_cores()
        if inter_op_threads and inter_op_threads > 1:
            so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
            so.inter_op_num_threads = int(inter_op_threads)
            so.add_session_config_entry("session.inter_op.allow_spinning", "1" if allow_spinning else "0")
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        if optimized_model_path is not None:
            so.optimized_model_filepath = str(optimized_model_path)
        wanted_aux = check_auxiliary(auxiliary)
        try:
            self.session = ort.InferenceSession(_session_model(path, wanted_aux), so, providers=chosen)
        except Exception as e:  # ORT raises InvalidProtobuf / Fail / InvalidGraph ...
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it: {type(e).__name__}: {e}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        meta = ModelMeta.from_props(props, str(path))
        from mtlsi_core.runtime.quantize import quantization_of, scheme_warning

        self.quantization = quantization_of(props, str(path))
        unsafe = scheme_warning(self.quantization) if self.quantization is not None else None
        if unsafe:
            self._notes.append(f"{path.name}: {unsafe}")
            log.warning(self._notes[-1])
        super().__init__(meta.tasks, meta.dataset, meta.input_size, meta.mean, meta.std, meta.canonical_focal,
                         wanted_aux)
        self.meta = meta
        self._check_signature()
        have = {o.name for o in self.session.get_outputs()}
        lacking = [k for k in self.auxiliary_keys if k not in have]
        if lacking:
            self._notes.append(f"{path.name} was exported without the outputs {', '.join(lacking)} (an export older "
                               f"than them): they are absent; re-export the model to get them")
            log.warning(self._notes[-1])
        self.auxiliary_keys = tuple(k for k in self.auxiliary_keys if k in have)
        self.output_names = (*self.tasks, *self.auxiliary_keys)
        active = self.session.get_providers()
        on_gpu = any(p in (_CUDA, _TRT) for p in active)
        self.device = torch.device(device) if on_gpu else torch.device("cpu")
        if self.quantization is not None:
            self.precision = "int8"
        else:
            self.precision = "fp16" if (precision == "fp16" and _TRT in active) else "fp32"
        if precision == "int8" and self.quantization is None:
            self._notes.append(f"precision int8 asked but {path.name} is an fp32 graph: give the .pt checkpoint or "
                               "the fp32 .onnx to create_runtime / OrtRuntime.from_path to quantise it")
        elif precision != self.precision:
            self._notes.append(f"precision {precision} is not available with providers {', '.join(active)}: "
                               "running the fp32 graph")
        self.providers = active
        self._limit_torch_threads = (not on_gpu) and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE"
        self.intra_op_threads = so.intra_op_num_threads
        self.inter_op_threads = int(inter_op_threads or 0)
        self.graph_optimization = graph_optimization
        self.allow_spinning = bool(allow_spinning)

    def _check_signature(self) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or inputs[0].type != "tensor(uint8)":
            raise ModelFileError(f"{self.path}: expected one uint8 input {INPUT_NAME!r}, got "
                                 f"{[(i.name, i.type) for i in inputs]}")
        shape = inputs[0].shape
        if len(shape) != 4 or tuple(shape[1:]) != (*self.input_size, 3):
            raise ModelFileError(f"{self.path}: input shape {shape} does not match the metadata's input size "
                                 f"{self.input_size} (expected [B, {self.input_size[0]}, {self.input_size[1]}, 3])")
        self.static_batch = shape[0] if isinstance(shape[0], int) else None
        names = {o.name for o in self.session.get_outputs()}
        missing = [t for t in self.tasks if t not in names]
        if missing:
            raise ModelFileError(f"{self.path}: outputs for tasks {missing} are missing (outputs: {sorted(names)})")

    @classmethod
    def from_path(cls, model_path: str, device: str = "cpu", precision: str = "fp32",
                  cache_dir: str | os.PathLike | None = None, calibration: Any = None, **kw: Any) -> "OrtRuntime":
        path = Path(model_path)
        if calibration is not None and precision != "int8":
            raise ValueError("the calibration option applies to precision int8 only")
        int8 = precision == "int8" and (path.suffix in (".pt", ".pth") or not _is_quantized(path))
        if int8 or path.suffix in (".pt", ".pth"):
            # a checkpoint's ONNX export (and an INT8 model) comes from the model cache, as backend auto's does
            from mtlsi_core.runtime.model_cache import load_cached_onnx

            spec = _calibration_spec(calibration) if int8 else None
            runtime, _ = load_cached_onnx(path, "int8" if int8 else "fp32",
                                          lambda p: cls(p, device=device, precision=precision, **kw),
                                          cache_dir=cache_dir, calibration=spec)
            return runtime
        return cls(path, device=device, precision=precision, **kw)

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo("onnx", str(self.device), self.precision, self.input_size, self.tasks, self.dataset,
                           list(self._notes), {"providers": list(self.providers), "model": str(self.path),
                                               "intra_op_threads": self.intra_op_threads,
                                               "inter_op_threads": self.inter_op_threads,
                                               "graph_optimization": self.graph_optimization,
                                               "quantization": self.quantization,
                                               "allow_spinning": self.allow_spinning,
                                               "exporter": self.meta.exporter, "static_batch": self.static_batch,
                                               "auxiliary": list(self.auxiliary_keys)})

    def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
        with self._torch_threads():
            return prepare_batch(images, self.input_size, "cpu").numpy()

    @contextmanager
    def _torch_threads(self):
        """Pre/post-processing (torch ops on the CPU) on one thread where OpenMP's idle threads would spin: after a
        parallel torch op they busy-wait on the cores ONNX Runtime is about to use. Measured on the edge model
        from 480x640 (2 cores): infer 208 ms with OMP_WAIT_POLICY unset and torch's 2 threads, 77 ms with one
        thread, 61 ms with OMP_WAIT_POLICY=PASSIVE (then torch keeps its threads)."""
        if self._limit_torch_threads and torch.get_num_threads() > 1:
            n = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                yield
            finally:
                torch.set_num_threads(n)
        else:
            yield

    def infer(self, images: Sequence[np.ndarray], output_size: Any = "input",
              focal_lengths: Sequence[float | None] | None = None) -> list[dict[str, np.ndarray]]:
        with self._torch_threads():
            return super().infer(images, output_size, focal_lengths)

    def _run_chunk(self, batch: np.ndarray) -> list[np.ndarray]:
        n = batch.shape[0]
        if self.static_batch is not None and n != self.static_batch:
            pad = np.zeros((self.static_batch - n, *batch.shape[1:]), batch.dtype)
            outs = self.session.run(list(self.output_names), {INPUT_NAME: np.concatenate([batch, pad])})
            return [o[:n] for o in outs]
        return self.session.run(list(self.output_names), {INPUT_NAME: batch})

    def run(self, batch: np.ndarray) -> Mapping[str, torch.Tensor]:
        step = self.static_batch or batch.shape[0]
        chunks = [self._run_chunk(batch[i:i + step]) for i in range(0, batch.shape[0], step)]
        outs = [np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*chunks)]
        return {t: torch.from_numpy(o) for t, o in zip(self.output_names, outs)}

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
