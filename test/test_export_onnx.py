"""ONNX export: named outputs and metadata, the checks, and the exporter fallback."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import mtlsi_core.runtime.export as export_mod
from mtlsi_core.config import load_config
from mtlsi_core.runtime.export import (TOLERANCES, ExportError, compare_outputs, config_mismatches, export_onnx,
                                       load_for_export, read_onnx_meta)
from mtlsi_core.runtime.meta import INPUT_NAME
from mtlsi_core.tasks import get_task
from runtime_helpers import TINY, tiny_checkpoint, tiny_model, tiny_onnx


def test_graph_has_one_uint8_input_and_a_named_output_per_task():
    proto = onnx.load(str(tiny_onnx()))
    cfg = load_config(TINY)
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = proto.graph.input
    assert inp.name == INPUT_NAME and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims[1:] == [64, 96, 3] and isinstance(dims[0], str)  # static size, dynamic batch
    outs = {o.name: o for o in proto.graph.output}
    # one per task, then the auxiliary outputs the tasks declare (the labels' confidence)
    assert list(outs) == [*cfg.data.tasks, "semseg_confidence"]
    assert outs["semseg"].type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert outs["semseg_confidence"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert len(outs["semseg_confidence"].type.tensor_type.shape.dim) == 3
    assert outs["depth"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert len(outs["normals"].type.tensor_type.shape.dim) == 4 and len(outs["edge"].type.tensor_type.shape.dim) == 3


def test_metadata_carries_what_a_runtime_needs():
    cfg = load_config(TINY)
    meta = read_onnx_meta(tiny_onnx())
    assert meta.tasks == tuple(cfg.data.tasks) and meta.dataset == "nyud"
    assert meta.input_size == (64, 96)
    assert meta.mean == tuple(cfg.data.mean) and meta.std == tuple(cfg.data.std)
    assert meta.channels == {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}
    assert meta.config["model"]["embed_dim"] == cfg.model.embed_dim
    assert meta.source["sha256"] and meta.source["checkpoint"].endswith("tiny.pt")
    assert meta.exporter == "torchscript" and meta.outputs["normals"] == "BCHW"
    assert meta.outputs["semseg_confidence"] == "BHW" and set(meta.outputs) == {*cfg.data.tasks, "semseg_confidence"}


def test_comparisons_detect_differences_beyond_the_stated_tolerances():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 40, (1, 64, 96)).astype(np.int32)
    flipped = labels.copy()
    flipped.flat[:10] = (flipped.flat[:10] + 1) % 40  # 0.16 % of pixels
    assert compare_outputs("semseg", labels, labels)["ok"]
    assert not compare_outputs("semseg", labels, flipped)["ok"]
    depth = rng.uniform(0.5, 8.0, (1, 64, 96)).astype(np.float32)
    assert compare_outputs("depth", depth, depth + 0.005)["ok"]  # 5 mm of 8 m
    assert not compare_outputs("depth", depth, depth + 0.02)["ok"]
    n = rng.normal(size=(1, 3, 64, 96))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    a = np.radians(0.5)  # rotate every vector by 0.5 degrees about z: too much
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    turned = np.einsum("ij,bjhw->bihw", rot, n)
    assert compare_outputs("normals", n, n)["ok"]
    res = compare_outputs("normals", n, turned)
    assert not res["ok"] and 0.0 < res["value"] <= 0.5 + 1e-6
    p = rng.uniform(size=(1, 64, 96)).astype(np.float32)
    assert not compare_outputs("edge", p, p + 2e-3)["ok"]
    assert not compare_outputs("edge", p, p[:, :32])["ok"]  # shape mismatch
    for task in ("semseg", "depth", "normals", "edge", "sal", "human_parts"):
        assert get_task(task).activation in TOLERANCES


def test_config_must_describe_the_checkpoint_network(tmp_path):
    stored = load_config(TINY).to_dict()
    same_but_bigger = load_config(TINY, ["data.input_size=[96,128]", "model.backbone.pretrained=true"]).to_dict()
    assert config_mismatches(stored, same_but_bigger) == []
    other = load_config(TINY, ["model.embed_dim=48", "data.tasks=[semseg,depth]"]).to_dict()
    diff = config_mismatches(stored, other)
    assert any(d.startswith("model.embed_dim") for d in diff) and any(d.startswith("data.tasks") for d in diff)
    with pytest.raises(ExportError, match="model.embed_dim"):
        load_for_export(tiny_checkpoint(), TINY, ["model.embed_dim=48"])
    model, cfg, _ = load_for_export(tiny_checkpoint(), TINY, ["data.input_size=[96,128]"])
    assert tuple(cfg.data.input_size) == (96, 128) and cfg.model.backbone.pretrained is False


def test_dynamo_failure_falls_back_to_torchscript(tmp_path, monkeypatch):
    prebuilt = onnx.load(str(tiny_onnx()))
    calls = []

    def failing_dynamo(*a, **k):
        calls.append("dynamo")
        raise RuntimeError("unsupported op aten::frobnicate\nlong traceback")

    def cached_torchscript(*a, **k):  # the real TorchScript export of the same weights, made once per session
        calls.append("torchscript")
        return prebuilt

    monkeypatch.setitem(export_mod._EXPORT_FUNCS, "dynamo", failing_dynamo)
    monkeypatch.setitem(export_mod._EXPORT_FUNCS, "torchscript", cached_torchscript)
    model, cfg, source = load_for_export(tiny_checkpoint())
    res = export_onnx(model, cfg, tmp_path / "m.onnx", source=source)
    assert calls == ["dynamo", "torchscript"] and res.exporter == "torchscript"
    assert any("aten::frobnicate" in n for n in res.notes)
    assert all(r["ok"] for r in res.verification.values())  # verified against the live model: same weights
    assert read_onnx_meta(tmp_path / "m.onnx").exporter == "torchscript"


def test_failed_exports_and_verifications_write_nothing(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setitem(export_mod._EXPORT_FUNCS, "dynamo", broken)
    monkeypatch.setitem(export_mod._EXPORT_FUNCS, "torchscript", broken)
    model, cfg = tiny_model()
    with pytest.raises(ExportError, match="dynamo exporter failed.*torchscript exporter failed"):
        export_onnx(model, cfg, tmp_path / "a.onnx")
    assert not (tmp_path / "a.onnx").exists()

    # an ONNX of other weights fails verification against this model
    prebuilt = onnx.load(str(tiny_onnx()))
    monkeypatch.setitem(export_mod._EXPORT_FUNCS, "torchscript", lambda *a, **k: prebuilt)
    other, _ = tiny_model(seed=5)
    with pytest.raises(ExportError, match="differ from PyTorch beyond tolerance"):
        export_onnx(other, cfg, tmp_path / "b.onnx", exporter="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_export_arguments_are_checked(tmp_path):
    model, cfg = tiny_model()
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(model, cfg, tmp_path / "x.onnx", exporter="tflite")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, cfg, tmp_path / "x.onnx", opset=13)


@pytest.mark.slow
def test_dynamo_export_with_static_batch_matches_torch(tmp_path):
    """The default (dynamo) exporter end to end; static batch 2 run with 3 images (chunked and padded)."""
    from mtlsi_core.runtime import create_runtime
    from runtime_helpers import as_network_layout, images

    model, cfg, source = load_for_export(tiny_checkpoint())
    res = export_onnx(model, cfg, tmp_path / "d.onnx", exporter="dynamo", static_batch=2, source=source)
    assert res.exporter == "dynamo" and not res.dynamic_batch
    assert all(r["ok"] for r in res.verification.values()), res.verification
    ort_rt = create_runtime("onnx", str(tmp_path / "d.onnx"))
    assert ort_rt.static_batch == 2
    torch_rt = create_runtime("torch", str(tiny_checkpoint()))
    imgs = images()
    with torch.inference_mode():
        for a, b in zip(torch_rt.infer(imgs), ort_rt.infer(imgs)):
            for t in cfg.data.tasks:
                r = compare_outputs(t, as_network_layout(t, a[t]), as_network_layout(t, b[t]))
                assert r["ok"], (t, r)
