"""INT8 static quantisation of an exported mtlsi ONNX model, calibrated on synthetic frames.

``quantize_onnx(fp32_onnx, int8_onnx, CalibrationSpec())`` runs ONNX Runtime's ``quantize_static`` (activations
uint8, weights int8 or uint8 as the CPU needs: ``choose_scheme``, per-channel weights by default, QDQ or QOperator
format) with a calibration reader that
renders frames of the project's own synthetic scene generator (``mtlsi_core.data.synth``, deterministic seed),
resized to the network input the way every runtime resizes camera images (``processing.prepare_batch``). No real
data is used. The mtlsi metadata of the fp32 file is copied, with the calibration recorded in
``mtlsi.quantization``, so the ``onnx`` backend runs the INT8 file like any export. The output is written
atomically (temporary file, then ``os.replace``). It touches nothing but the two files (and a temporary folder).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mtlsi_core.checkpoint import atomic_write
from mtlsi_core.runtime.base import ModelFileError
from mtlsi_core.runtime.meta import INPUT_NAME

log = logging.getLogger(__name__)

QUANT_FORMATS = ("qdq", "qoperator")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
KEY_QUANT = "mtlsi.quantization"
# What ONNX Runtime multiplies: uint8 activations x int8 weights (full range), the same with 7-bit weights
# (``reduce_range``), or uint8 x uint8. On x86 without VNNI, MLAS runs u8 x s8 with vpmaddubsw, whose int16 sum of
# two products saturates (255 * 127 * 2 > 32767): the outputs of a full-range file are then wrong, silently
# (measured: 4 % of labels agreeing with fp32 on an AVX2-only EPYC). u8 x u8 is widened to 16 bits before the
# products (vpmaddwd, 32-bit sums) and 7-bit weights cannot saturate (255 * 63 * 2 < 32767); u8 x u8 keeps 8-bit
# weights and so more of the model: shipped model, labels equal to fp32's, 92.5 % vs 89.2 % (7-bit) vs 92.7 %
# (u8 x s8 with VNNI). VNNI (vpdpbusd) and ARM's kernels sum u8 x s8 in 32 bits.
INT8_SCHEMES = ("u8s8", "u8s8_reduced", "u8u8")
VNNI_FEATURES = frozenset({"AVX512VNNI", "AVX_VNNI"})


@dataclass(frozen=True)
class CpuFacts:
    """What the INT8 scheme depends on: the architecture and whether u8 x s8 dot products sum in 32 bits (VNNI)."""

    machine: str  # platform.machine(), lower case: x86_64, amd64, aarch64, arm64...
    features: frozenset[str] = field(default_factory=frozenset)  # numpy's CPUID names (AVX2, AVX512VNNI...) + AVX_VNNI

    @property
    def x86(self) -> bool:
        return self.machine in ("x86_64", "amd64", "i386", "i686", "x86")

    @property
    def vnni(self) -> bool:
        return bool(self.features & VNNI_FEATURES)

    @classmethod
    def this_machine(cls) -> "CpuFacts":
        """This process's CPU: numpy's CPUID probe (what the process really runs on, emulators included), plus
        Linux's ``avx_vnni`` flag (AVX-VNNI without AVX-512, which numpy does not name)."""
        from numpy._core._multiarray_umath import __cpu_features__

        features = {name for name, present in __cpu_features__.items() if present}
        try:
            flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("flags")), "")
            if "avx_vnni" in flags.split() and "AVX2" in features:
                features.add("AVX_VNNI")
        except OSError:
            pass
        return cls(platform.machine().lower(), frozenset(features))


def choose_scheme(cpu: CpuFacts) -> tuple[str, str]:
    """The INT8 scheme exact on ``cpu`` and why (one line)."""
    if not cpu.x86:
        return "u8s8", f"{cpu.machine}: ONNX Runtime's u8 x s8 kernels sum in 32 bits"
    if cpu.vnni:
        return "u8s8", "x86 with VNNI: u8 x s8 products sum in 32 bits"
    return "u8u8", ("x86 without VNNI: uint8 weights, as int8 ones saturate ONNX Runtime's AVX2 u8 x s8 kernel "
                    "(u8 x u8 is widened to 16 bits first)")


@dataclass(frozen=True)
class CalibrationSpec:
    """How an INT8 model is calibrated; every field is part of its cache key."""

    frames: int = 24  # synthetic calibration frames
    seed: int = 20261130  # seed of the synthetic scenes (``synth.frame_seed(seed, i)``)
    render_size: tuple[int, int] = (240, 320)  # rendered at this size, then resized to the network input
    # percentile ignores the rare extreme activations that minmax stretches the 8-bit range for. Shipped model, 8
    # synthetic rooms (seed 4242, not the calibration's), labels equal to fp32's with 7-bit / 8-bit int8 weights:
    # minmax 84.1 / 85.6 %, percentile 99.999 85.7 / 86.3 %, 99.99 86.6 / 89.5 %, 99.9 89.2 / 92.7 % (uint8
    # weights: 92.5 %) (2026-12-07); entropy gave minmax's figures
    method: str = "percentile"
    percentile: float = 99.9  # of the activations' histogram kept in range (method percentile only)
    quant_format: str = "qdq"
    per_channel: bool = True
    scheme: str = "auto"  # one of INT8_SCHEMES, or auto: choose_scheme for the CPU that quantises (and so runs) it
    op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm")  # quantised operators; the rest stays fp32
    # MatMuls of two activations (attention's QK^T and AV) stay fp32: quantised, ORT fuses their softmax into a
    # QLinearSoftmax that was 3x slower than Softmax here, and int8 activation x activation products cost accuracy
    matmul_const_b_only: bool = True

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"calibration frames must be >= 1, got {self.frames}")
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {self.method!r}")
        if self.quant_format not in QUANT_FORMATS:
            raise ValueError(f"quant_format must be one of {', '.join(QUANT_FORMATS)}, got {self.quant_format!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile!r}")
        if self.scheme not in ("auto", *INT8_SCHEMES):
            raise ValueError(f"scheme must be auto or one of {', '.join(INT8_SCHEMES)}, got {self.scheme!r}")
        if not self.op_types:
            raise ValueError("op_types must name at least one operator type to quantise")
        if len(self.render_size) != 2 or min(self.render_size) < 32:
            raise ValueError(f"render_size must be (H, W) with sides >= 32, got {self.render_size!r}")

    def resolved(self, cpu: CpuFacts | None = None) -> "CalibrationSpec":
        """This spec with ``scheme`` auto replaced by the one ``choose_scheme`` picks for ``cpu`` (default: this one)."""
        if self.scheme != "auto":
            return self
        return replace(self, scheme=choose_scheme(cpu or CpuFacts.this_machine())[0])

    def key(self) -> dict[str, Any]:
        """The cache key's fields: the resolved scheme is one of them (an auto spec keys by this CPU's choice)."""
        d = asdict(self.resolved())
        d["render_size"] = [int(v) for v in self.render_size]
        d["op_types"] = list(self.op_types)
        return d


def calibration_batches(spec: CalibrationSpec, input_size: tuple[int, int]) -> Iterator[np.ndarray]:
    """(1, H, W, 3) uint8 batches at the network size: synthetic rooms, deterministic for ``spec``."""
    from mtlsi_core.data.synth import frame_seed, render_scene
    from mtlsi_core.runtime.processing import prepare_batch

    for i in range(spec.frames):
        frame = render_scene(frame_seed(spec.seed, i), size=spec.render_size)
        yield prepare_batch([frame.image], input_size, "cpu").numpy()


class _SynthReader:
    """ONNX Runtime CalibrationDataReader over ``calibration_batches`` (subclassed at import time below)."""

    def __init__(self, spec: CalibrationSpec, input_size: tuple[int, int]):
        self._it = calibration_batches(spec, input_size)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {INPUT_NAME: batch}


def _reader(spec: CalibrationSpec, input_size: tuple[int, int]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(_SynthReader, CalibrationDataReader):
        pass

    return Reader(spec, input_size)


def quantize_onnx(src: str | os.PathLike, dst: str | os.PathLike, spec: CalibrationSpec = CalibrationSpec()) -> Path:
    """Quantise the fp32 mtlsi ONNX ``src`` to INT8 at ``dst`` (atomically); returns ``dst``.

    Raises ModelFileError naming ``src`` when it is not an mtlsi export, RuntimeError when quantisation fails.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from mtlsi_core.runtime.export import read_onnx_meta

    src, dst = Path(src), Path(dst)
    meta = read_onnx_meta(src)
    spec = spec.resolved()
    t0 = time.perf_counter()
    log.info("quantising %s to INT8 (%s, %s, %s calibration on %d synthetic frames, per-channel %s)", src.name,
             spec.scheme, spec.quant_format, spec.method, spec.frames, spec.per_channel)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory(prefix="mtlsi_quant_", dir=dst.parent if dst.parent.is_dir() else None) as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        _pre_process(src, pre)
        exclude = _activation_matmuls(pre) if spec.matmul_const_b_only else []
        try:
            quantize_static(str(pre), str(out), _reader(spec, meta.input_size), nodes_to_exclude=exclude,
                            quant_format=QuantFormat.QDQ if spec.quant_format == "qdq" else QuantFormat.QOperator,
                            per_channel=spec.per_channel, reduce_range=spec.scheme == "u8s8_reduced",
                            activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QUInt8 if spec.scheme == "u8u8" else QuantType.QInt8,
                            calibrate_method=methods[spec.method], op_types_to_quantize=list(spec.op_types),
                            extra_options={"CalibTensorRangeSymmetric": False, "CalibPercentile": spec.percentile,
                                           "MatMulConstBOnly": bool(spec.matmul_const_b_only)},
                            calibration_providers=["CPUExecutionProvider"])
        except Exception as e:
            raise RuntimeError(f"INT8 quantisation of {src} failed: {type(e).__name__}: {e}") from None
        proto = onnx.load(str(out))
    # the metadata of the fp32 export (quantize_static does not keep all of it), plus the calibration
    source = onnx.load(str(src), load_external_data=False)
    props = {p.key: p.value for p in source.metadata_props}
    props[KEY_QUANT] = json.dumps({"precision": "int8", **spec.key()}, sort_keys=True)
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    data = proto.SerializeToString()
    atomic_write(dst, lambda f: f.write(data))
    log.info("wrote INT8 model %s (%.1f MB) in %.1f s", dst, len(data) / 1e6, time.perf_counter() - t0)
    return dst


def _pre_process(src: Path, dst: Path) -> None:
    """ORT's quantisation pre-processing (shape inference, graph optimisation) of ``src`` into ``dst``. Its symbolic
    shape inference stops on the exports' dynamic batch with resize ops (a TypeError inside ORT's tool): ONNX's own
    shape inference is used then, and the file as it is only if that fails too."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    failures = []
    for symbolic in (True, False):
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=not symbolic)
            if failures:
                log.info("quantisation pre-processing without symbolic shapes (%s)", failures[0])
            return
        except Exception as e:
            failures.append(f"{type(e).__name__}: {e}")
    log.warning("quantisation pre-processing failed (%s); quantising the export as it is", "; ".join(failures))
    shutil.copyfile(src, dst)


def _activation_matmuls(path: Path) -> list[str]:
    """Names of the MatMuls whose B input is not a constant (activation x activation), naming unnamed nodes in the
    file first (the QDQ quantiser has no switch for them: ``MatMulConstBOnly`` applies to QOperator only)."""
    import onnx

    model = onnx.load(str(path))
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    renamed = False
    names = []
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name, renamed = f"mtlsi_node_{i}", True
        if node.op_type == "MatMul" and node.input[1] not in consts:
            names.append(node.name)
    if renamed:
        onnx.save(model, str(path))
    return names


def quantization_of(props: dict[str, str], where: str) -> dict[str, Any] | None:
    """The calibration record of an INT8 file's metadata (None for an fp32 export)."""
    text = props.get(KEY_QUANT)
    if text is None:
        return None
    try:
        return dict(json.loads(text))
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{where}: {KEY_QUANT} metadata is not valid JSON: {e}") from None


def scheme_warning(quantization: dict[str, Any], cpu: CpuFacts | None = None) -> str | None:
    """A one-line warning when an INT8 file's scheme is not exact on ``cpu`` (default: this one), else None.

    Files written before the scheme was recorded are full-range u8 x s8."""
    scheme = quantization.get("scheme", "u8s8")
    cpu = cpu or CpuFacts.this_machine()
    if scheme != "u8s8" or not cpu.x86 or cpu.vnni:
        return None
    return ("its weights are full-range int8 (u8s8), which ONNX Runtime's u8 x s8 kernel saturates on this CPU "
            "(x86 without VNNI): outputs may be wrong; quantise it here instead (give the .pt or the fp32 .onnx "
            "with precision int8)")


__all__ = ["CALIBRATION_METHODS", "CalibrationSpec", "CpuFacts", "INT8_SCHEMES", "KEY_QUANT", "QUANT_FORMATS",
           "calibration_batches", "choose_scheme", "quantization_of", "quantize_onnx", "scheme_warning"]
