"""ONNX export of ``processing.InferenceModule`` with its metadata, and verification against PyTorch.

The exported graph: input ``images`` uint8 (B, H, W, 3) at the config's static input size (batch dynamic
unless ``static_batch`` is given), one output per task named after the task, then every auxiliary output the
tasks declare (``<task>_confidence`` of labels tasks; ``processing.output_names``; layouts in ``processing``).
Files exported before an auxiliary output existed lack it; the runtimes then leave its key out.
``metadata_props`` carry a ``meta.ModelMeta`` so the ONNX / TensorRT backends need no checkpoint.

Exporters: the dynamo exporter (``torch.onnx.export(..., dynamo=True)``) first; where it fails, the
TorchScript exporter (``dynamo=False``), with the reason in ``ExportResult.notes``. Opset 18 by default
(at least 17). Every export is checked with ``onnx.checker`` and, unless ``verify=False``, run with
ONNX Runtime (CPU) on seeded random images and compared with PyTorch task by task (``TOLERANCES``);
nothing is written when either check fails.
"""
from __future__ import annotations

import copy
import hashlib
import io
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np
import torch

from mtlsi_core.checkpoint import atomic_write
from mtlsi_core.runtime.base import ModelFileError
from mtlsi_core.runtime.meta import INPUT_NAME, ModelMeta
from mtlsi_core.runtime.processing import InferenceModule, output_names
from mtlsi_core.tasks import get_task, output_spec

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")
DEFAULT_OPSET = 18
MIN_OPSET = 17
MAX_DYNAMIC_BATCH = 64  # upper bound of the dynamic batch dimension given to torch.export
# Keys that may differ between a checkpoint's stored config and the --config given at export: they do not
# change the network that runs at inference.
_IGNORED_CONFIG_KEYS = ("model.backbone.pretrained", "model.backbone.drop_path_rate", "model.backbone.freeze_stages",
                        "model.backbone.freeze_bn")  # training-only: the same network
_CHECKED_CONFIG_PREFIXES = ("model.", "data.tasks", "data.dataset", "data.mean", "data.std")


class ExportError(RuntimeError):
    """Export, checking or verification failed; the message says which step and why."""


# --------------------------------------------------------------------------------------------------
# Tolerances: ONNX Runtime (fp32) against PyTorch (fp32), keyed by the task's activation in the registry.
# --------------------------------------------------------------------------------------------------


def _label_agreement(ref: np.ndarray, out: np.ndarray) -> float:
    return float((ref == out).mean())


def _depth_rel_diff(ref: np.ndarray, out: np.ndarray) -> float:
    scale = max(1.0, float(np.abs(ref).max()))
    return float(np.abs(ref.astype(np.float64) - out).max() / scale)


def _max_abs_diff(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.abs(ref.astype(np.float64) - out).max())


def normals_angle_deg(ref: np.ndarray, out: np.ndarray, channel_axis: int = 1) -> np.ndarray:
    """Angle in degrees between unit vectors along ``channel_axis``; NaN where either is not a unit vector."""
    a = np.moveaxis(ref.astype(np.float64), channel_axis, -1)
    b = np.moveaxis(out.astype(np.float64), channel_axis, -1)
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    ang = np.degrees(np.arctan2(cross, (a * b).sum(-1)))  # well conditioned near 0, unlike arccos
    valid = (np.linalg.norm(a, axis=-1) > 0.5) & (np.linalg.norm(b, axis=-1) > 0.5)
    return np.where(valid, ang, np.nan)


def _normals_max_angle(ref: np.ndarray, out: np.ndarray) -> float:
    ang = normals_angle_deg(ref, out)
    return float(np.nanmax(ang)) if np.isfinite(ang).any() else 0.0


@dataclass(frozen=True)
class Tolerance:
    metric: str
    limit: float
    measure: Callable[[np.ndarray, np.ndarray], float]
    at_least: bool  # True: value must be >= limit (agreement); False: value must be <= limit (difference)

    def ok(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit


TOLERANCES: Mapping[str, Tolerance] = {
    "argmax": Tolerance("pixel agreement", 0.999, _label_agreement, True),
    "depth": Tolerance("max |diff| / max(1 m, max depth)", 1e-3, _depth_rel_diff, False),
    "unit_normals": Tolerance("max angle (deg)", 0.1, _normals_max_angle, False),
    "sigmoid": Tolerance("max |diff| (probability)", 1e-3, _max_abs_diff, False),
    "softmax_fg": Tolerance("max |diff| (probability)", 1e-3, _max_abs_diff, False),
    "max_softmax": Tolerance("max |diff| (probability)", 1e-4, _max_abs_diff, False),
}


def compare_outputs(task: str, ref: np.ndarray, out: np.ndarray,
                    tolerances: Mapping[str, Tolerance] = TOLERANCES) -> dict[str, Any]:
    """Compare one output's values (same layout) under the tolerance of its activation; ``task``: a task or an
    auxiliary output key (``<task>_confidence``)."""
    spec, aux = output_spec(task)
    activation = aux.activation if aux else spec.activation
    if activation not in tolerances:
        raise KeyError(f"no comparison tolerance for activation {activation!r} of task {task!r}")
    tol = tolerances[activation]
    if ref.shape != out.shape:
        return {"metric": "shape", "value": f"{out.shape} != {ref.shape}", "limit": "equal", "ok": False}
    value = tol.measure(ref, out)
    return {"metric": tol.metric, "value": value, "limit": tol.limit, "ok": tol.ok(value)}


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    path: Path
    exporter: str
    opset: int
    dynamic_batch: bool
    seconds: float
    verification: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> compare_outputs result
    notes: list[str] = field(default_factory=list)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _export_dynamo(module: torch.nn.Module, example: torch.Tensor, tasks: Sequence[str], opset: int,
                   dynamic_batch: bool):
    kw: dict[str, Any] = {}
    if dynamic_batch:
        kw["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},)
    prog = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                             output_names=list(tasks), verbose=False, optimize=True, **kw)
    return prog.model_proto


def _export_torchscript(module: torch.nn.Module, example: torch.Tensor, tasks: Sequence[str], opset: int,
                        dynamic_batch: bool):
    import onnx

    axes = {name: {0: "batch"} for name in (INPUT_NAME, *tasks)} if dynamic_batch else None
    buf = io.BytesIO()
    with warnings.catch_warnings():  # tracer notes on Python-side shape logic and constant folding: expected here
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=list(tasks), dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


_EXPORT_FUNCS = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


def _ort_outputs(model_bytes: bytes, images: np.ndarray, tasks: Sequence[str]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    outs = sess.run(list(tasks), {INPUT_NAME: images})
    return dict(zip(tasks, outs))


def verify_against_torch(model_bytes: bytes, module: InferenceModule, input_size: tuple[int, int],
                         batches: Sequence[int], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Run the ONNX model (ORT, CPU) and ``module`` on seeded random images; compare per task (worst batch)."""
    gen = np.random.default_rng(seed)
    report: dict[str, dict[str, Any]] = {}
    for b in batches:
        images = gen.integers(0, 256, size=(b, *input_size, 3), dtype=np.uint8)
        with torch.inference_mode():
            ref = module(torch.from_numpy(images))
        got = _ort_outputs(model_bytes, images, module.output_names)
        for t, r in zip(module.output_names, ref):
            res = compare_outputs(t, r.numpy(), got[t])
            res["batch"] = b
            res["reference_std"] = float(r.float().std())  # ~0 would make the comparison trivial
            prev = report.get(t)
            if prev is None or (prev["ok"] and not res["ok"]) or (res["ok"] == prev["ok"] and _worse(t, res, prev)):
                report[t] = res
    return report


def _worse(task: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    spec, aux = output_spec(task)
    tol = TOLERANCES[aux.activation if aux else spec.activation]
    if not isinstance(a["value"], float) or not isinstance(b["value"], float):
        return False
    return a["value"] < b["value"] if tol.at_least else a["value"] > b["value"]


def export_onnx(model: torch.nn.Module, cfg: Any, path: str | os.PathLike, *, exporter: str = "auto",
                opset: int = DEFAULT_OPSET, static_batch: int | None = None, source: Mapping[str, Any] | None = None,
                verify: bool = True, seed: int = 0, auxiliary: Collection[str] | None = None) -> ExportResult:
    """Export ``model`` (built from ``cfg``) wrapped in ``InferenceModule`` to ``path`` (written atomically).

    ``auxiliary``: the auxiliary outputs to include (``tasks.AuxOutput`` names); None: all (the default), () none
    (the graph of files exported before auxiliary outputs existed)."""
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    if static_batch is not None and static_batch < 1:
        raise ValueError(f"static_batch must be >= 1, got {static_batch}")
    path = Path(path)
    meta = ModelMeta.from_config(cfg, source=source, auxiliary=auxiliary)
    module = InferenceModule(copy.deepcopy(model).float().cpu().eval(), meta.tasks, meta.mean, meta.std,
                             auxiliary=auxiliary).eval()
    dynamic = static_batch is None
    example = torch.from_numpy(np.random.default_rng(seed).integers(
        0, 256, size=(2 if dynamic else static_batch, *meta.input_size, 3), dtype=np.uint8))

    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    notes: list[str] = []
    proto, used = None, ""
    t0 = time.perf_counter()
    for name in order:
        log.info("exporting %s (%s, %dx%d) with the %s exporter, opset %d", meta.name, ", ".join(meta.tasks),
                 *meta.input_size, name, opset)
        try:
            with torch.no_grad():
                proto = _EXPORT_FUNCS[name](module, example, module.output_names, opset, dynamic)
            used = name
            break
        except Exception as e:  # exporter failures come in many types
            msg = f"{name} exporter failed: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            log.warning(msg)
            notes.append(msg)
    if proto is None:
        raise ExportError(f"cannot export {meta.name} to {path}: " + "; ".join(notes))

    meta = meta.with_exporter(used)
    del proto.metadata_props[:]
    for k, v in meta.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name, proto.producer_version = "mtlsi-export", f"torch {torch.__version__}"
    if proto.ByteSize() >= 2**31:
        raise ExportError(f"{path}: the model is over 2 GiB, which needs ONNX external data (not supported)")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise ExportError(f"{path}: onnx.checker rejected the {used} export: {type(e).__name__}: {e}") from None
    data = proto.SerializeToString()

    report: dict[str, dict[str, Any]] = {}
    if verify:
        batches = (1, 3) if dynamic else (int(static_batch),)
        try:
            report = verify_against_torch(data, module, meta.input_size, batches, seed=seed)
        except Exception as e:
            raise ExportError(f"{path}: ONNX Runtime could not run the {used} export: {type(e).__name__}: {e}") from None
        bad = {t: r for t, r in report.items() if not r["ok"]}
        if bad:
            detail = "; ".join(f"{t}: {r['metric']} {r['value']} (limit {r['limit']}, batch {r['batch']})"
                               for t, r in bad.items())
            raise ExportError(f"{path}: ONNX Runtime outputs differ from PyTorch beyond tolerance: {detail}")
    atomic_write(path, lambda f: f.write(data))
    seconds = time.perf_counter() - t0
    log.info("wrote %s (%.1f MB, %s exporter, %.1f s)", path, len(data) / 1e6, used, seconds)
    return ExportResult(path, used, opset, dynamic, seconds, report, notes)


# --------------------------------------------------------------------------------------------------
# Models to export, and reading exported files
# --------------------------------------------------------------------------------------------------


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_mismatches(stored: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """Keys where ``given`` would build a different network (or normalise differently) than ``stored``."""
    a, b = _flatten(stored), _flatten(given)
    keys = sorted(k for k in set(a) | set(b)
                  if k.startswith(_CHECKED_CONFIG_PREFIXES) and k not in _IGNORED_CONFIG_KEYS)
    return [f"{k}: checkpoint {a.get(k)!r} vs config {b.get(k)!r}" for k in keys
            if _normalise(a.get(k)) != _normalise(b.get(k))]


def _normalise(v: Any) -> Any:
    return [_normalise(x) for x in v] if isinstance(v, (list, tuple)) else v


def load_for_export(checkpoint: str | os.PathLike, config: str | os.PathLike | None = None,
                    overrides: Sequence[str] = ()) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """(model, config, source) for exporting a checkpoint.

    Without ``config`` the checkpoint's stored config is used. With it (and/or ``overrides``), the network
    must be the stored one: only the input size (and training-only keys) may differ; otherwise
    ExportError lists the differing keys.
    """
    from mtlsi_core.config import apply_overrides, config_from_dict, load_config
    from mtlsi_core.models import load_model_from_checkpoint

    model, stored = load_model_from_checkpoint(checkpoint)
    cfg = stored
    if config is not None:
        cfg = load_config(config, overrides)
    elif overrides:
        cfg = config_from_dict(apply_overrides(stored.to_dict(), overrides), source=f"{checkpoint} (stored config)")
    if cfg is not stored:
        diff = config_mismatches(stored.to_dict(), cfg.to_dict())
        if diff:
            raise ExportError(f"config {config or '(overrides)'} does not describe the network in {checkpoint}:\n  "
                              + "\n  ".join(diff))
        cfg = config_from_dict(apply_overrides(cfg.to_dict(), ["model.backbone.pretrained=false"]))
    source = {"checkpoint": str(Path(checkpoint).resolve()), "sha256": sha256_file(checkpoint)}
    return model, cfg, source


def spread_outputs(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Re-draw the output heads' 1x1 weights at std 1 and set the depth bias to 2 m, in place.

    A freshly initialised MTLSINet predicts one class nearly everywhere and depth 0 (clamped), which makes
    label and depth comparisons trivial; with this its outputs vary over the image (for export checks).
    """
    gen = torch.Generator().manual_seed(seed)
    heads = getattr(model, "output_decoders", None) or getattr(model, "preliminary", {})
    with torch.no_grad():
        for task, dec in heads.items():
            dec.head.weight.copy_(torch.randn(dec.head.weight.shape, generator=gen))
            if get_task(task).activation == "depth" and dec.head.bias is not None:  # clamped at 0 otherwise
                dec.head.bias.fill_(2.0)
    return model


def random_model(cfg: Any, seed: int = 0, varied: bool = False) -> tuple[torch.nn.Module, Any]:
    """A randomly initialised network of ``cfg`` (backbone weights off), for speed measurements;
    ``varied``: with ``spread_outputs`` applied."""
    from mtlsi_core.config import apply_overrides, config_from_dict
    from mtlsi_core.models import build_model

    cfg = config_from_dict(apply_overrides(cfg.to_dict(), ["model.backbone.pretrained=false"]), source=cfg.name)
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    return (spread_outputs(model) if varied else model), cfg


def read_onnx_meta(path: str | os.PathLike) -> ModelMeta:
    """The mtlsi metadata of an exported ONNX file; ModelFileError naming the file on any problem."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelFileError(f"{path} is not a valid ONNX file: {type(e).__name__}: {e}") from None
    return ModelMeta.from_props({p.key: p.value for p in proto.metadata_props}, str(path))
