"""INT8 for the onnx backend: static quantisation calibrated on synthetic frames, cached like the fp32 export (key
with precision and calibration), run through the same runtime interface, close to fp32 (speed and the accuracy on
real and synthetic data: benchmarks/bench_int8.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from mtlsi_core.runtime import create_runtime
from mtlsi_core.runtime.auto import Platform
from mtlsi_core.runtime.quantize import (KEY_QUANT, CalibrationSpec, CpuFacts, calibration_batches, choose_scheme,
                                        scheme_warning)
from runtime_helpers import images, tiny_checkpoint, tiny_onnx

SMALL = dict(frames=3, render_size=(48, 64), seed=5)  # small calibration: the tests' budget


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory) -> Path:
    """A model cache holding the INT8 quantisation of the tiny fp32 export (made once for the module)."""
    cache = tmp_path_factory.mktemp("int8_cache")
    create_runtime("onnx", str(tiny_onnx()), precision="int8", cache_dir=cache, calibration=CalibrationSpec(**SMALL))
    return cache


@pytest.fixture(scope="module")
def int8_file(int8_cache) -> Path:
    (path,) = int8_cache.glob("*-int8-*.onnx")
    return path


def test_calibration_spec_checks_and_key():
    spec = CalibrationSpec(**SMALL)
    key = spec.key()
    assert key["frames"] == 3 and key["render_size"] == [48, 64] and key["quant_format"] == "qdq"
    assert key["per_channel"] is True and key["op_types"] == ["Conv", "MatMul", "Gemm"]
    assert key["scheme"] == choose_scheme(CpuFacts.this_machine())[0]  # the key holds this CPU's scheme, never auto
    for bad, match in (({"frames": 0}, "frames"), ({"method": "kl"}, "calibration method"),
                       ({"quant_format": "int4"}, "quant_format"), ({"render_size": (8, 8)}, "render_size"),
                       ({"op_types": ()}, "op_types"), ({"scheme": "s8s8"}, "scheme"),
                       ({"percentile": 40.0}, "percentile")):
        with pytest.raises(ValueError, match=match):
            CalibrationSpec(**bad)


def test_calibration_frames_are_synthetic_deterministic_and_at_the_network_size():
    a = list(calibration_batches(CalibrationSpec(**SMALL), (64, 96)))
    b = list(calibration_batches(CalibrationSpec(**SMALL), (64, 96)))
    c = list(calibration_batches(CalibrationSpec(**{**SMALL, "seed": 6}), (64, 96)))
    assert len(a) == 3 and all(x.shape == (1, 64, 96, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0]) and a[0].std() > 5  # a rendered room, not a blank frame


AVX2_ONLY = CpuFacts("x86_64", frozenset({"SSE42", "AVX", "AVX2", "FMA3"}))  # e.g. the AMD EPYC of issue 21
AVX512_VNNI = CpuFacts("x86_64", frozenset({"AVX2", "AVX512F", "AVX512VNNI"}))
AVX_VNNI = CpuFacts("x86_64", frozenset({"AVX2", "AVX_VNNI"}))  # Alder Lake and later: VNNI without AVX-512
ARM = CpuFacts("aarch64", frozenset({"ASIMD", "ASIMDDP"}))


def test_the_int8_scheme_is_chosen_for_the_cpu():
    assert choose_scheme(AVX2_ONLY)[0] == "u8u8" and "without VNNI" in choose_scheme(AVX2_ONLY)[1]
    assert [choose_scheme(c)[0] for c in (AVX512_VNNI, AVX_VNNI, ARM)] == ["u8s8"] * 3
    spec = CalibrationSpec(**SMALL)
    assert spec.resolved(AVX2_ONLY).scheme == "u8u8" and spec.resolved(AVX512_VNNI).scheme == "u8s8"
    assert CalibrationSpec(**SMALL, scheme="u8s8_reduced").resolved(AVX2_ONLY).scheme == "u8s8_reduced"  # kept
    # the cache key follows the CPU: a cache shared by two kinds of machine holds one file for each
    keys = {c: CalibrationSpec(**SMALL).resolved(c).key() for c in (AVX2_ONLY, AVX512_VNNI)}
    assert keys[AVX2_ONLY] != keys[AVX512_VNNI] and keys[AVX2_ONLY]["scheme"] == "u8u8"
    # a full-range file on a CPU that saturates it is named as such; files without a scheme are full range
    assert "saturates" in scheme_warning({"scheme": "u8s8"}, AVX2_ONLY) and scheme_warning({}, AVX2_ONLY)
    assert all(scheme_warning({"scheme": "u8s8"}, c) is None for c in (AVX512_VNNI, AVX_VNNI, ARM))
    assert scheme_warning({"scheme": "u8s8_reduced"}, AVX2_ONLY) is None and scheme_warning({"scheme": "u8u8"},
                                                                                           AVX2_ONLY) is None


def test_this_machines_cpu_facts_come_from_cpuid():
    from numpy._core._multiarray_umath import __cpu_features__

    cpu = CpuFacts.this_machine()
    assert cpu.machine and ("AVX2" in cpu.features) == bool(__cpu_features__.get("AVX2"))
    assert cpu.vnni >= bool(__cpu_features__.get("AVX512VNNI"))


def test_int8_agrees_with_fp32_on_the_cpu_that_runs_it(int8_file):
    """On whatever CPU runs this (an AVX2-only one saturated full-range weights: 4 % of labels agreed)."""
    from mtlsi_core.data.synth import frame_seed, render_scene

    rt, ref = create_runtime("onnx", str(int8_file)), create_runtime("onnx", str(tiny_onnx()))
    assert not [n for n in rt.info.notes if "saturates" in n]
    rooms = [render_scene(frame_seed(99, i), size=(96, 128)).image for i in range(4)]  # not the calibration's
    out, exp = rt.infer(rooms), ref.infer(rooms)
    agree = np.mean([(o["semseg"] == e["semseg"]).mean() for o, e in zip(out, exp)])
    corr = np.mean([np.corrcoef(o["depth"].ravel(), e["depth"].ravel())[0, 1] for o, e in zip(out, exp)])
    assert agree >= 0.85 and corr > 0.98, (agree, corr, CpuFacts.this_machine())


def test_quantised_file_is_int8_keeps_the_metadata_and_runs(int8_file):
    proto = onnx.load(str(int8_file))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    props = {p.key: p.value for p in proto.metadata_props}
    assert "mtlsi.meta" in props and '"frames": 3' in props[KEY_QUANT]
    # activation x activation MatMuls stay float (see CalibrationSpec.matmul_const_b_only): no DequantizeLinear feeds them
    inits = {i.name for i in proto.graph.initializer}
    dq_of = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    act_mm = [n for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] not in inits
              and dq_of.get(n.input[1]) not in inits]
    assert act_mm and all(i not in dq_of for n in act_mm for i in n.input)
    weights_q = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weights_q, "no weight was quantised"

    rt = create_runtime("onnx", str(int8_file), precision="int8")
    ref = create_runtime("onnx", str(tiny_onnx()))
    assert rt.info.precision == "int8" and rt.info.options["quantization"]["frames"] == 3
    imgs = images()
    out, exp = rt.infer(imgs), ref.infer(imgs)
    for o, e in zip(out, exp):
        assert o["semseg"].shape == e["semseg"].shape and o["normals"].shape == e["normals"].shape
        assert np.corrcoef(o["depth"].ravel(), e["depth"].ravel())[0, 1] > 0.9  # agreement: the test above
        np.testing.assert_allclose(np.linalg.norm(o["normals"], axis=-1), 1.0, atol=1e-3)
        assert 0.0 <= o["edge"].min() and o["edge"].max() <= 1.0
    # the constructor given an fp32 file and int8 runs fp32 and says so (from_path quantises it: next tests)
    from mtlsi_core.runtime.onnx_runtime import OrtRuntime

    fp = OrtRuntime(tiny_onnx(), precision="int8")
    assert fp.info.precision == "fp32" and any("int8 asked" in n for n in fp.info.notes)


def test_int8_from_a_checkpoint_is_cached_by_precision_and_calibration(tmp_path, monkeypatch):
    import mtlsi_core.runtime.export as export_mod
    from mtlsi_core.runtime.model_cache import ModelCache, model_key, sha256_file

    real = tiny_onnx()  # the fp32 export: the session's real one, copied (an export takes seconds)
    monkeypatch.setattr(export_mod, "export_onnx", lambda model, cfg, path, **kw: shutil.copyfile(real, path))
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint(), ckpt)
    cache = tmp_path / "cache"
    spec = CalibrationSpec(**SMALL)
    rt = create_runtime("onnx", str(ckpt), precision="int8", cache_dir=cache, calibration=spec)
    path = Path(rt.info.options["model"])
    assert rt.info.precision == "int8" and path.parent == cache and "-int8-" in path.name
    files = sorted(p.name for p in cache.glob("*.onnx"))
    assert len(files) == 2 and any("-fp32-" in f for f in files)  # the fp32 export it was made from, cached too
    mtime = path.stat().st_mtime_ns
    again = create_runtime("onnx", str(ckpt), precision="int8", cache_dir=cache, calibration=spec)
    assert Path(again.info.options["model"]) == path and path.stat().st_mtime_ns == mtime  # reused
    key = model_key(sha256_file(ckpt), (64, 96), "int8", extra={"calibration": spec.key()})
    assert ModelCache(cache).entry_path("model", key) == path
    other = CalibrationSpec(**{**SMALL, "frames": 2})  # another calibration: another entry
    assert ModelCache(cache).entry_path("model", {**key, "extra": {"calibration": other.key()}}) != path
    with pytest.raises(ValueError, match="calibration"):
        create_runtime("onnx", str(tiny_onnx()), calibration=spec)  # fp32: no calibration


def test_int8_from_an_fp32_onnx_and_through_auto(int8_cache, int8_file):
    mtime = int8_file.stat().st_mtime_ns
    rt = create_runtime("onnx", str(tiny_onnx()), precision="int8", cache_dir=int8_cache,
                        calibration=CalibrationSpec(**SMALL))
    assert rt.info.precision == "int8" and Path(rt.info.options["model"]) == int8_file
    assert int8_file.stat().st_mtime_ns == mtime  # the cached quantisation, not a new one
    cpu = Platform(has_cuda=False, has_tensorrt=False)
    auto = create_runtime("auto", str(tiny_onnx()), precision="int8", cache_dir=int8_cache,
                          calibration=CalibrationSpec(**SMALL), platform=cpu)
    assert (auto.info.backend, auto.info.precision) == ("onnx", "int8") and "INT8" in auto.selection.reason
    assert auto.info.options["model"] == rt.info.options["model"]  # the same cache entry


def test_int8_is_a_node_precision_and_refused_by_torch():
    from mtlsi_ros.params import validate

    assert validate({"precision": "int8"}).precision == "int8"
    with pytest.raises(ValueError, match="precision must be one of"):
        create_runtime("torch", str(tiny_checkpoint()), precision="int8")


def test_mtlsi_export_writes_the_int8_file(tmp_path, monkeypatch, capsys):
    import mtlsi_core.runtime.export as export_mod
    from mtlsi_core.tools.export import main

    real = tiny_onnx()  # the fp32 export is the session's real one (tested in test_export_cli.py)
    monkeypatch.setattr(export_mod, "export_onnx", lambda model, cfg, path, **kw: shutil.copyfile(real, path))
    out = tmp_path / "m.onnx"
    args = ["--checkpoint", str(tiny_checkpoint()), "--format", "onnx", "--output", str(out), "-q"]
    assert main(args + ["--precision", "int8", "--calib-frames", "1"]) == 0
    q = tmp_path / "m.int8.onnx"
    assert q.is_file() and create_runtime("onnx", str(q)).info.precision == "int8"
    assert main(args + ["--precision", "fp16"]) == 2 and "applies to --format engine" in capsys.readouterr().err
    assert main(args[:3] + ["engine", *args[4:], "--precision", "int8"]) == 2
    assert "applies to --format onnx" in capsys.readouterr().err
