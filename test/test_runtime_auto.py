"""backend auto: the resolution table (injected machine facts), the model cache (key components, corrupt and stale
entries rebuilt, atomic writes, two builders at once), the runtime it builds and what the node reports."""
from __future__ import annotations

import inspect
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import mtlsi_core.runtime.export as export_mod
from mtlsi_core.checkpoint import atomic_write
from mtlsi_core.runtime import BACKENDS, create_runtime, runtime_options
from mtlsi_core.runtime.auto import Platform, Selection, resolve_backend
from mtlsi_core.runtime.base import ModelFileError
from mtlsi_core.runtime.model_cache import (CACHE_ENV, ModelCache, cache_root, cached_onnx, key_digest,
                                            load_cached_onnx, model_key, tool_versions)
from runtime_helpers import images, tiny_checkpoint, tiny_onnx

CPU = Platform(has_cuda=False, has_tensorrt=False)
GPU = Platform(has_cuda=True, has_tensorrt=False, cuda_name="NVIDIA H200")
GPU_TRT = Platform(has_cuda=True, has_tensorrt=True, cuda_name="NVIDIA H200", tensorrt_version="10.9")
NO_ORT = Platform(has_cuda=False, has_tensorrt=False, has_onnxruntime=False)


# ------------------------------------------------------------------------------------------------ resolution table


@pytest.mark.parametrize("platform, model, device, precision, expect", [
    # platform, model file, device, precision -> candidates (backend, device, precision), best first
    (GPU_TRT, "m.pt", "cuda", "fp16", [("tensorrt", "cuda", "fp16"), ("torch", "cuda", "fp16"), ("onnx", "cpu", "fp32"),
                                        ("torch", "cpu", "fp32")]),
    (GPU, "m.pt", "cuda", "fp16", [("torch", "cuda", "fp16"), ("onnx", "cpu", "fp32"), ("torch", "cpu", "fp32")]),
    (GPU, "m.pt", "cuda:1", "bf16", [("torch", "cuda:1", "bf16"), ("onnx", "cpu", "fp32"), ("torch", "cpu", "fp32")]),
    (CPU, "m.pt", "cuda", "fp16", [("onnx", "cpu", "fp32"), ("torch", "cpu", "fp32")]),
    (CPU, "m.pt", "cpu", "int8", [("onnx", "cpu", "int8"), ("torch", "cpu", "fp32")]),
    (GPU_TRT, "m.pt", "cpu", "fp32", [("onnx", "cpu", "fp32"), ("torch", "cpu", "fp32")]),  # device cpu: the CPU
    (GPU_TRT, "m.pt", "cuda", "int8", [("tensorrt", "cuda", "fp16"), ("torch", "cuda", "fp16"), ("onnx", "cpu", "int8"),
                                        ("torch", "cpu", "fp32")]),
    (NO_ORT, "m.pt", "cuda", "fp16", [("torch", "cpu", "fp32")]),
    (CPU, "m.onnx", "cuda", "fp16", [("onnx", "cpu", "fp32")]),
    (GPU_TRT, "m.onnx", "cuda", "fp16", [("tensorrt", "cuda", "fp16"), ("onnx", "cpu", "fp32")]),
    (GPU_TRT, "m.engine", "cuda", "fp16", [("tensorrt", "cuda", "fp16")]),
])
def test_resolution_table(platform, model, device, precision, expect):
    got = resolve_backend(platform, model, device, precision)
    assert [(s.backend, s.device, s.precision) for s in got] == expect
    assert all(s.reason and s.requested == "auto" for s in got)


def test_resolution_reasons_and_options():
    best = resolve_backend(GPU, "m.pt")[0]
    assert best.options == {"cuda_graphs": True} and "TensorRT not installed" in best.reason and "H200" in best.reason
    assert "TensorRT 10.9" in resolve_backend(GPU_TRT, "m.pt")[0].reason
    assert resolve_backend(CPU, "m.pt")[0].reason.startswith("no CUDA device: ONNX Runtime on the CPU")
    assert resolve_backend(GPU, "m.pt", device="cpu")[0].reason.startswith("device 'cpu' asked")
    assert "ONNX Runtime not installed" in resolve_backend(NO_ORT, "m.pt")[0].reason


def test_resolution_refuses_what_cannot_run():
    with pytest.raises(ValueError, match="TensorRT engine, which needs a CUDA device"):
        resolve_backend(CPU, "m.engine")
    with pytest.raises(ValueError, match="nothing can run"):
        resolve_backend(NO_ORT, "m.onnx")
    with pytest.raises(ValueError, match="cannot tell the kind of model file"):
        resolve_backend(CPU, "m.bin")


def test_auto_is_the_default_of_the_factory_and_the_node():
    from mtlsi_ros.params import validate

    assert inspect.signature(create_runtime).parameters["backend"].default == "auto" and BACKENDS[0] == "auto"
    assert validate({}).backend == "auto"
    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "perception.yaml").read_text())
    assert cfg["/**"]["ros__parameters"]["backend"] == "auto"
    with pytest.raises(ValueError, match="model_path is required"):
        create_runtime()


def test_factory_defaults_ask_auto_for_the_gpu(monkeypatch):
    import mtlsi_core.runtime as runtime_pkg

    seen = {}
    monkeypatch.setattr(runtime_pkg, "create_auto_runtime", lambda path, **kw: seen.update(path=path, **kw))
    create_runtime(model_path="m.pt")
    assert seen == {"path": "m.pt", "device": "cuda", "precision": "fp16"}  # a GPU where present, else the CPU


def test_runtime_options_keep_what_a_backend_accepts():
    vals = dict(cache_dir="/c", intra_op_threads=2, inter_op_threads=None, graph_optimization="all")
    assert runtime_options("torch", **vals) == {}
    assert runtime_options("onnx", **vals) == {"cache_dir": "/c", "intra_op_threads": 2, "graph_optimization": "all"}
    assert runtime_options("auto", **vals) == {"cache_dir": "/c", "intra_op_threads": 2, "graph_optimization": "all"}


# ------------------------------------------------------------------------------------------------ the cache


def test_cache_folder_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == Path.home() / ".cache" / "mtlsi_ros"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "mtlsi_ros"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "param") == tmp_path / "param"  # the node parameter wins


def test_cache_key_changes_with_each_component():
    versions = {"torch": "2.13.0", "onnx": "1.23.2", "onnxruntime": "1.32.0", "cache_format": "1"}
    base = model_key("a" * 64, (224, 288), "fp32", versions)
    variants = [model_key("b" * 64, (224, 288), "fp32", versions),
                model_key("a" * 64, (240, 320), "fp32", versions),
                model_key("a" * 64, (224, 288), "int8", versions),
                model_key("a" * 64, (224, 288), "fp32", versions, extra={"calibration": {"frames": 8}})]
    for name in versions:  # every tool version and the cache format
        variants.append(model_key("a" * 64, (224, 288), "fp32", {**versions, name: versions[name] + ".1"}))
    digests = {key_digest(k) for k in variants}
    assert len(digests) == len(variants) and key_digest(base) not in digests
    assert key_digest(base) == key_digest(model_key("a" * 64, (224, 288), "fp32", dict(versions)))
    assert set(tool_versions()) == set(versions)
    cache = ModelCache("/x")
    assert cache.entry_path("m", base) != cache.entry_path("m", variants[1])


class CountingBuilder:
    def __init__(self, payload: bytes = b"model-bytes" * 100, seconds: float = 0.0):
        self.payload, self.seconds, self.calls = payload, seconds, 0

    def __call__(self, path: Path) -> None:
        self.calls += 1
        time.sleep(self.seconds)
        atomic_write(path, lambda f: f.write(self.payload + str(self.calls).encode()))


KEY = model_key("c" * 64, (64, 96), "fp32", {"torch": "t", "onnx": "o", "onnxruntime": "r", "cache_format": "1"})


def test_cache_reuses_a_valid_entry(tmp_path):
    cache, build = ModelCache(tmp_path), CountingBuilder()
    first = cache.get("m", KEY, build)
    assert first.built and build.calls == 1 and first.path.parent == tmp_path
    side = json.loads(cache.sidecar(first.path).read_text())
    assert side["key"] == KEY and len(side["sha256"]) == 64
    again = cache.get("m", KEY, build)
    assert not again.built and again.reason == "cached" and again.path == first.path and build.calls == 1


@pytest.mark.parametrize("damage, reason", [
    (lambda p, s: p.write_bytes(p.read_bytes()[:50]), "corrupt"),  # truncated file
    (lambda p, s: p.write_bytes(b"X" + p.read_bytes()[1:]), "corrupt"),  # same size, one byte changed
    (lambda p, s: s.unlink(), "missing or unreadable"),
    (lambda p, s: s.write_text("{not json"), "missing or unreadable"),
    (lambda p, s: s.write_text(json.dumps({**json.loads(s.read_text()),
                                           "key": {**KEY, "versions": {**KEY["versions"], "torch": "old"}}})),
     "stale entry (key differs in versions)"),
])
def test_corrupt_or_stale_entry_is_rebuilt(tmp_path, damage, reason):
    cache, build = ModelCache(tmp_path), CountingBuilder()
    path = cache.get("m", KEY, build).path
    damage(path, cache.sidecar(path))
    assert reason in cache.stale_reason(path, KEY)
    again = cache.get("m", KEY, build)
    assert again.built and reason in again.reason and build.calls == 2
    assert cache.stale_reason(path, KEY) is None


def test_writes_are_atomic_and_a_failed_build_leaves_nothing(tmp_path):
    cache = ModelCache(tmp_path)
    path = cache.entry_path("m", KEY)
    seen = []

    def slow_writer(f):  # while the bytes are written, readers see the old entry (or none), never a part
        f.write(b"new-part-1")
        f.flush()
        seen.append(path.read_bytes() if path.exists() else None)
        f.write(b"new-part-2")

    cache.get("m", KEY, lambda p: atomic_write(p, slow_writer))
    assert seen == [None] and path.read_bytes() == b"new-part-1new-part-2"
    cache.get("m", KEY, lambda p: atomic_write(p, slow_writer), force=True)
    assert seen[1] == b"new-part-1new-part-2"  # the complete previous file, during the rebuild

    def failing(p):
        atomic_write(p, lambda f: (f.write(b"half"), (_ for _ in ()).throw(OSError("disk full"))))

    other = model_key("d" * 64, (64, 96), "fp32", KEY["versions"])
    with pytest.raises(OSError, match="disk full"):
        cache.get("m", other, failing)
    target = cache.entry_path("m", other)
    assert not target.exists() and not cache.sidecar(target).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_two_builders_at_once_build_once(tmp_path):
    build = CountingBuilder(seconds=0.3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(ModelCache(tmp_path).get("m", KEY, build)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.calls == 1 and sorted(r.built for r in results) == [False, True]
    assert results[0].path == results[1].path and ModelCache(tmp_path).stale_reason(results[0].path, KEY) is None


# ------------------------------------------------------------------------------------------------ the runtime


@pytest.fixture
def fake_export(monkeypatch):
    """export_onnx stand-in: copies the session's real tiny export (a real export takes seconds)."""
    calls, real = [], tiny_onnx()  # exported for real before the stand-in is installed

    def fake(model, cfg, path, source=None, **kw):
        calls.append(kw.get("exporter"))
        shutil.copyfile(real, path)

    monkeypatch.setattr(export_mod, "export_onnx", fake)
    return calls


def test_auto_on_cpu_builds_the_onnx_once_then_reuses_it(tmp_path, fake_export):
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint(), ckpt)
    rt = create_runtime("auto", str(ckpt), device="cuda", precision="fp16", cache_dir=tmp_path / "cache", platform=CPU)
    assert isinstance(rt.selection, Selection) and rt.selection.requested == "auto"
    assert (rt.info.backend, rt.info.device, rt.info.precision) == ("onnx", "cpu", "fp32")
    assert rt.selection.reason.startswith("no CUDA device: ONNX Runtime on the CPU") and "model built at" in rt.selection.reason
    assert Path(rt.info.options["model"]).parent == tmp_path / "cache" and fake_export == ["torchscript"]
    out = rt.infer(images())
    assert out[0]["semseg"].shape == images()[0].shape[:2]
    again = create_runtime("auto", str(ckpt), cache_dir=tmp_path / "cache", platform=CPU, intra_op_threads=1)
    assert "model cached at" in again.selection.reason and len(fake_export) == 1
    assert again.info.options["intra_op_threads"] == 1


def _poison_entry(ckpt: Path, cache_dir: Path) -> Path:
    """A cached file that passes its hash check but is not ONNX (the sidecar is rewritten to match it)."""
    entry = cached_onnx(ckpt, cache_dir=cache_dir)
    entry.path.write_bytes(b"not an onnx file")
    side = ModelCache.sidecar(entry.path)
    rec = json.loads(side.read_text())
    rec["sha256"] = export_mod.sha256_file(entry.path)
    side.write_text(json.dumps(rec))
    return entry.path


@pytest.mark.parametrize("backend", ["auto", "onnx"])
def test_a_cached_file_that_does_not_load_is_rebuilt_once(tmp_path, fake_export, backend):
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint(), ckpt)
    _poison_entry(ckpt, tmp_path)
    extra = {"platform": CPU} if backend == "auto" else {}
    rt = create_runtime(backend, str(ckpt), cache_dir=tmp_path, **extra)
    assert rt.info.backend == "onnx" and len(fake_export) == 2
    if backend == "auto":
        assert "model built at" in rt.selection.reason


def test_a_cached_file_rejected_twice_raises(tmp_path, fake_export):
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint(), ckpt)
    seen = []

    def loader(path):
        seen.append(path)
        raise ModelFileError(f"{path}: rejected")

    with pytest.raises(ModelFileError, match="rejected"):
        load_cached_onnx(ckpt, "fp32", loader, cache_dir=tmp_path)
    assert len(seen) == 2 and len(fake_export) == 2  # built, rejected, rebuilt, rejected: raised


def test_auto_falls_back_when_the_best_candidate_fails(tmp_path, fake_export):
    """On this machine TensorRT is absent: a platform claiming it makes the first candidate fail; auto goes on."""
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint(), ckpt)
    rt = create_runtime("auto", str(ckpt), device="cuda", cache_dir=tmp_path, platform=GPU_TRT)
    assert rt.info.backend == "torch"  # torch given "cuda" where there is none runs on the CPU (with a note)
    assert "tensorrt on cuda failed" in rt.selection.reason


def test_explicit_backends_keep_working_and_say_so():
    rt = create_runtime("torch", str(tiny_checkpoint()), device="cpu", precision="fp32")
    assert rt.info.backend == "torch" and rt.selection.requested == "torch"
    assert rt.selection.reason == "backend 'torch' set explicitly"
    with pytest.raises(ValueError, match="has no option"):
        create_runtime("torch", str(tiny_checkpoint()), intra_op_threads=2)


def test_ort_thread_and_graph_options(tmp_path):
    rt = create_runtime("onnx", str(tiny_onnx()), intra_op_threads=1, inter_op_threads=2, graph_optimization="basic")
    o = rt.info.options
    assert (o["intra_op_threads"], o["inter_op_threads"], o["graph_optimization"]) == (1, 2, "basic")
    ref = create_runtime("onnx", str(tiny_onnx()))
    a, b = rt.infer(images()[:1]), ref.infer(images()[:1])
    assert np.array_equal(a[0]["semseg"], b[0]["semseg"])
    np.testing.assert_allclose(a[0]["depth"], b[0]["depth"], rtol=1e-4, atol=1e-5)
    for bad in ({"intra_op_threads": -1}, {"inter_op_threads": 1.5}, {"graph_optimization": "max"}):
        with pytest.raises(ValueError):
            create_runtime("onnx", str(tiny_onnx()), **bad)


def test_diagnostics_values_report_the_choice():
    from mtlsi_ros.diagnostics import runtime_values

    rt = create_runtime("onnx", str(tiny_onnx()))
    rt.selection = Selection("onnx", "cpu", "fp32", "no CUDA device: ONNX Runtime on the CPU")
    v = runtime_values(rt, "/m.pt")
    assert v["backend"] == "onnx" and v["backend.requested"] == "auto" and v["model"] == "/m.pt"
    assert v["backend.reason"].startswith("no CUDA device") and v["backend.model_file"] == str(tiny_onnx())
    assert runtime_values(None, "/m.pt") == {"model": "/m.pt"}


def test_cache_env_var_is_used_by_the_runtime(tmp_path, monkeypatch, fake_export):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "envcache"))
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint(), ckpt)
    rt = create_runtime("auto", str(ckpt), platform=CPU)
    assert Path(rt.info.options["model"]).parent == tmp_path / "envcache"
    assert os.path.isfile(str(rt.info.options["model"]) + ".json")


def test_ort_pre_and_post_processing_use_one_torch_thread_unless_omp_is_passive(monkeypatch):
    """Spinning OpenMP threads of torch's pre/post-processing took the cores from ONNX Runtime (3x slower end to
    end on 2 cores): without OMP_WAIT_POLICY=PASSIVE the onnx runtime keeps torch on one thread while it works."""
    import torch

    import mtlsi_core.runtime.onnx_runtime as ort_mod
    import mtlsi_core.runtime.processing as proc

    seen = []
    real_prepare, real_finalize = ort_mod.prepare_batch, proc.finalize_outputs
    monkeypatch.setattr(ort_mod, "prepare_batch", lambda *a, **k: (seen.append(torch.get_num_threads()),
                                                                  real_prepare(*a, **k))[1])
    monkeypatch.setattr(proc, "finalize_outputs", lambda *a, **k: (seen.append(torch.get_num_threads()),
                                                                   real_finalize(*a, **k))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for policy, expect in (("", [1, 1]), ("PASSIVE", [2, 2])):
            monkeypatch.setenv("OMP_WAIT_POLICY", policy)
            seen.clear()
            create_runtime("onnx", str(tiny_onnx())).infer(images()[:1])
            assert seen == expect and torch.get_num_threads() == 2  # restored after the call
    finally:
        torch.set_num_threads(before)
