"""The ONNX Runtime backend: built from the .onnx alone, matches the torch runtime, clear errors on bad files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import mtlsi_core.runtime.export as export_mod
from mtlsi_core.runtime import ModelFileError, create_runtime
from mtlsi_core.runtime.export import compare_outputs, read_onnx_meta
from mtlsi_core.runtime.onnx_runtime import physical_cores, select_providers
from runtime_helpers import MIXED_SIZES, as_network_layout, images, save_tiny_checkpoint, tiny_checkpoint, tiny_onnx


@pytest.fixture(scope="module")
def ort_rt():
    return create_runtime("onnx", str(tiny_onnx()))


def test_runtime_needs_only_the_onnx_file(tmp_path):
    lone = tmp_path / "alone" / "model.onnx"
    lone.parent.mkdir()
    shutil.copy(tiny_onnx(), lone)
    rt = create_runtime("onnx", str(lone))
    assert rt.tasks == ("semseg", "depth", "normals", "edge") and rt.input_size == (64, 96)
    assert rt.info.backend == "onnx" and rt.info.options["providers"] == ["CPUExecutionProvider"]
    assert rt.info.options["intra_op_threads"] == physical_cores()
    out = rt.infer(images([(64, 96)]))[0]
    assert out["semseg"].dtype == np.uint8 and out["normals"].shape == (64, 96, 3)


def test_ort_matches_torch_within_the_stated_tolerances(ort_rt):
    torch_rt = create_runtime("torch", str(tiny_checkpoint()))
    imgs = images()
    for size in ("input", "network", (50, 70)):
        with torch.inference_mode():
            ref = torch_rt.infer(imgs, output_size=size)
        got = ort_rt.infer(imgs, output_size=size)
        for (h, w), a, b in zip(MIXED_SIZES, ref, got):
            for t in torch_rt.tasks:
                assert a[t].shape == b[t].shape and a[t].dtype == b[t].dtype
                res = compare_outputs(t, as_network_layout(t, a[t]), as_network_layout(t, b[t]))
                assert res["ok"], (size, (h, w), t, res)


def test_fp16_on_cpu_and_cuda_requests_fall_back_with_notes(ort_rt):
    rt = create_runtime("onnx", str(tiny_onnx()), device="cuda", precision="fp16")
    if "CUDAExecutionProvider" not in rt.info.options["providers"]:
        assert rt.info.device == "cpu"
        assert any("no CUDA execution provider" in n for n in rt.info.notes)
    assert rt.info.precision == "fp32" and any("precision fp16" in n for n in rt.info.notes)
    np.testing.assert_array_equal(rt.infer(images([(64, 96)]))[0]["semseg"],
                                  ort_rt.infer(images([(64, 96)]))[0]["semseg"])


def test_provider_selection():
    notes: list[str] = []
    assert select_providers("cpu", "fp32", None, ["CPUExecutionProvider"], notes) == ["CPUExecutionProvider"]
    assert notes == []
    got = select_providers("cuda:1", "fp16", ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
                           ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], notes)
    assert got == [("TensorrtExecutionProvider", {"device_id": 1, "trt_fp16_enable": True}),
                   ("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    got = select_providers("cuda", "fp32", None, ["CPUExecutionProvider"], notes)
    assert got == ["CPUExecutionProvider"]
    assert any("CUDAExecutionProvider is not installed" in n for n in notes)
    assert any("running on CPU" in n for n in notes)


def test_optimised_model_can_be_saved(tmp_path):
    target = tmp_path / "opt.onnx"
    create_runtime("onnx", str(tiny_onnx()), optimized_model_path=str(target), graph_optimization="extended")
    assert target.is_file() and target.stat().st_size > 0
    with pytest.raises(ValueError, match="graph_optimization"):
        create_runtime("onnx", str(tiny_onnx()), graph_optimization="max")


def test_missing_corrupt_and_foreign_files_name_the_file(tmp_path):
    with pytest.raises(ModelFileError, match="ONNX file not found: .*nothing.onnx"):
        create_runtime("onnx", str(tmp_path / "nothing.onnx"))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_onnx().read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="corrupt.onnx"):
        create_runtime("onnx", str(corrupt))
    with pytest.raises(ModelFileError, match="corrupt.onnx.*not a valid ONNX"):
        read_onnx_meta(corrupt)
    # a valid ONNX without our metadata
    proto = onnx.load(str(tiny_onnx()))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    with pytest.raises(ModelFileError, match="foreign.onnx: no mtlsi metadata"):
        create_runtime("onnx", str(foreign))
    # metadata that contradicts the task registry
    proto = onnx.load(str(tiny_onnx()))
    for p in proto.metadata_props:
        if p.key == "mtlsi.meta":
            p.value = p.value.replace('"semseg": 40', '"semseg": 12')
    bad = tmp_path / "badmeta.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ModelFileError, match="badmeta.onnx: metadata channels"):
        create_runtime("onnx", str(bad))


def test_checkpoint_is_exported_once_into_the_model_cache_and_again_when_it_changes(tmp_path, monkeypatch):
    """backend onnx given a .pt uses the model cache, as auto does: one cache folder, nothing written beside the
    checkpoint (whose folder may be a read-only install)."""
    ckpt = tmp_path / "ckpt" / "model.pt"
    ckpt.parent.mkdir()
    shutil.copy(tiny_checkpoint(), ckpt)
    cache = tmp_path / "cache"
    exports = []

    def fake_export(model, cfg, path, source=None, **kw):  # copies the session's real export, stamped with source
        exports.append(Path(path))
        proto = onnx.load(str(tiny_onnx()))
        for p in proto.metadata_props:
            if p.key == "mtlsi.meta":
                meta = export_mod.ModelMeta.from_json(p.value, "test")
                p.value = export_mod.ModelMeta(**{**meta.__dict__, "source": dict(source)}).to_json()
        onnx.save(proto, str(path))

    monkeypatch.setattr(export_mod, "export_onnx", fake_export)
    rt = create_runtime("onnx", str(ckpt), cache_dir=str(cache))
    model = Path(rt.info.options["model"])
    assert len(exports) == 1 and model.parent == cache and model.name.startswith("model-fp32-")
    create_runtime("onnx", str(ckpt), cache_dir=str(cache))
    assert len(exports) == 1  # reused: same checkpoint content
    save_tiny_checkpoint(ckpt, seed=3)
    assert Path(create_runtime("onnx", str(ckpt), cache_dir=str(cache)).info.options["model"]) != model
    assert len(exports) == 2
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["model.pt"]
