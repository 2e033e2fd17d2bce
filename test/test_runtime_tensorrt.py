"""TensorRT engine cache (key, rebuilds, logging) with a fake builder, and the clear message without TensorRT."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from mtlsi_core.config import load_config
from mtlsi_core.runtime import ModelFileError, create_runtime
from mtlsi_core.runtime.meta import ModelMeta
from mtlsi_core.runtime.tensorrt_runtime import (BuildSpec, EngineCache, TensorRTUnavailable, engine_path,
                                                 read_engine_meta, sidecar_path, tensorrt_version)
from runtime_helpers import TINY


def _write_onnx(path: Path, tag: str = "a") -> Path:
    """A small valid ONNX (identity) carrying the tiny config's mtlsi metadata; ``tag`` changes its bytes."""
    inp = helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 64, 96, 3])
    out = helper.make_tensor_value_info("out", TensorProto.UINT8, ["batch", 64, 96, 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], f"g_{tag}",
                                                [inp], [out]))
    for k, v in ModelMeta.from_config(load_config(TINY)).to_props().items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


class FakeBuilder:
    def __init__(self, seconds: float = 0.0, fail: bool = False):
        self.calls: list[tuple[Path, BuildSpec]] = []
        self.seconds, self.fail = seconds, fail

    def __call__(self, onnx_path: Path, spec: BuildSpec) -> bytes:
        self.calls.append((onnx_path, spec))
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("parser error: unsupported node")
        return f"engine of {onnx_path.name} {spec} #{len(self.calls)}".encode()


def test_engine_path_encodes_precision_size_and_version(tmp_path):
    p = engine_path(tmp_path / "net.onnx", "fp16", (448, 576), "10.3.0")
    assert p == tmp_path / "net.fp16.448x576.trt10.3.0.engine"
    assert sidecar_path(p) == tmp_path / "net.fp16.448x576.trt10.3.0.engine.json"


def test_built_once_then_reused_until_the_key_changes(tmp_path):
    onnx_path = _write_onnx(tmp_path / "net.onnx")
    fake = FakeBuilder()
    spec = BuildSpec("fp16", (64, 96))
    cache = EngineCache(onnx_path, spec, "10.3.0", fake)
    assert "no engine" in cache.stale_reason()
    first = cache.get()
    assert first == tmp_path / "net.fp16.64x96.trt10.3.0.engine" and first.read_bytes().endswith(b"#1")
    assert len(fake.calls) == 1 and cache.stale_reason() is None
    side = json.loads(sidecar_path(first).read_text())
    assert side["key"]["precision"] == "fp16" and side["key"]["batch"] == [1, 1, 4]
    assert side["meta"]["tasks"] == ["semseg", "depth", "normals", "edge"]

    assert EngineCache(onnx_path, spec, "10.3.0", fake).get() == first and len(fake.calls) == 1  # cached
    EngineCache(onnx_path, spec, "10.3.0", fake).get(force_rebuild=True)
    assert len(fake.calls) == 2 and first.read_bytes().endswith(b"#2")

    # another precision, input size or TensorRT version: another file, built once
    for other_spec, version in ((BuildSpec("fp32", (64, 96)), "10.3.0"), (BuildSpec("fp16", (96, 128)), "10.3.0"),
                                (spec, "10.4.1")):
        c = EngineCache(onnx_path, other_spec, version, fake)
        n = len(fake.calls)
        assert c.get() != first and len(fake.calls) == n + 1
        assert c.get() == c.path and len(fake.calls) == n + 1
    assert len(list(tmp_path.glob("*.engine"))) == 4


def test_changed_onnx_or_batch_profile_or_lost_sidecar_rebuilds(tmp_path):
    onnx_path = _write_onnx(tmp_path / "net.onnx")
    fake = FakeBuilder()
    spec = BuildSpec("fp16", (64, 96))
    EngineCache(onnx_path, spec, "10.3.0", fake).get()
    _write_onnx(onnx_path, tag="b")  # re-exported weights
    c = EngineCache(onnx_path, spec, "10.3.0", fake)
    assert "onnx_sha256" in c.stale_reason()
    c.get()
    assert len(fake.calls) == 2
    c2 = EngineCache(onnx_path, BuildSpec("fp16", (64, 96), max_batch=8), "10.3.0", fake)
    assert "batch" in c2.stale_reason()
    c2.get()
    assert len(fake.calls) == 3
    sidecar_path(c2.path).unlink()
    assert "sidecar" in c2.stale_reason()
    c2.get()
    assert len(fake.calls) == 4


def test_build_logs_start_heartbeat_and_end(tmp_path, caplog):
    onnx_path = _write_onnx(tmp_path / "net.onnx")
    cache = EngineCache(onnx_path, BuildSpec("fp16", (64, 96)), "10.3.0", FakeBuilder(seconds=0.35), heartbeat_s=0.1)
    with caplog.at_level(logging.INFO, logger="mtlsi_core.runtime.tensorrt_runtime"):
        cache.get()
    text = caplog.text
    assert "building TensorRT engine net.fp16.64x96.trt10.3.0.engine" in text and "several minutes" in text
    assert "no engine at" in text  # the reason
    assert "still building TensorRT engine" in text
    assert "built TensorRT engine" in text


def test_failed_build_leaves_no_engine(tmp_path, caplog):
    onnx_path = _write_onnx(tmp_path / "net.onnx")
    cache = EngineCache(onnx_path, BuildSpec("fp16", (64, 96)), "10.3.0", FakeBuilder(fail=True))
    with pytest.raises(RuntimeError, match="unsupported node"):
        cache.get()
    assert not cache.path.exists() and not sidecar_path(cache.path).exists()
    assert "failed" in caplog.text
    with pytest.raises(ModelFileError, match="ONNX file not found: .*gone.onnx"):
        EngineCache(tmp_path / "gone.onnx", BuildSpec("fp16", (64, 96)), "10.3.0", FakeBuilder()).get()


def test_build_spec_and_engine_metadata_are_checked(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        BuildSpec("int8", (64, 96))
    with pytest.raises(ValueError, match="batch profile"):
        BuildSpec("fp16", (64, 96), min_batch=2, opt_batch=1, max_batch=4)
    lone = tmp_path / "x.engine"
    lone.write_bytes(b"\0")
    with pytest.raises(ModelFileError, match="x.engine: its metadata sidecar"):
        read_engine_meta(lone)
    onnx_path = _write_onnx(tmp_path / "net.onnx")
    engine = EngineCache(onnx_path, BuildSpec("fp16", (64, 96)), "10.3.0", FakeBuilder()).get()
    assert read_engine_meta(engine).input_size == (64, 96)


@pytest.mark.skipif(tensorrt_version() is not None, reason="TensorRT is installed here")
def test_without_tensorrt_the_backend_explains_itself(tmp_path):
    onnx_path = _write_onnx(tmp_path / "net.onnx")
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed.*pip install tensorrt.*'onnx'"):
        create_runtime("tensorrt", str(onnx_path), device="cuda", precision="fp16")
    assert not list(tmp_path.glob("*.engine"))
