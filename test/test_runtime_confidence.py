"""Auxiliary outputs: the labels tasks' confidence (max softmax), declared once in the task registry, computed by
every runtime only when asked (option ``auxiliary``), absent (not wrong) with a model file exported before it."""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from mtlsi_core.runtime import create_runtime
from mtlsi_core.runtime.export import export_onnx, load_for_export, read_onnx_meta
from mtlsi_core.runtime.processing import output_names
from mtlsi_core.tasks import ACTIVATIONS, TASKS, auxiliary_outputs, get_task, output_spec
from runtime_helpers import MIXED_SIZES, images, tiny_checkpoint, tiny_model, tiny_onnx

CONF = ("confidence",)


def test_every_labels_task_declares_a_confidence_and_nothing_else_does():
    for name, spec in TASKS.items():
        keys = [spec.output_key(a) for a in spec.auxiliary]
        assert keys == ([f"{name}_confidence"] if spec.kind == "labels" else []), name
    aux = auxiliary_outputs(("semseg", "depth", "human_parts"))
    assert list(aux) == ["semseg_confidence", "human_parts_confidence"]
    assert output_spec("semseg_confidence") == (get_task("semseg"), aux["semseg_confidence"][1])
    assert output_names(("semseg", "depth"), None) == ("semseg", "depth", "semseg_confidence")
    assert output_names(("semseg", "depth")) == ("semseg", "depth")
    with pytest.raises(KeyError, match="semseg_conf"):
        output_spec("semseg_conf")


def test_max_softmax_is_the_probability_of_the_argmax_class():
    x = torch.randn(2, 40, 5, 7) * 6
    x[0, 3, 0, 0] = 80.0  # saturated: probability 1, no overflow
    conf = ACTIVATIONS["max_softmax"](x)
    ref = torch.softmax(x.double(), dim=1).amax(dim=1)
    assert conf.dtype == torch.float32 and conf.shape == (2, 5, 7)
    assert float((conf - ref).abs().max()) < 1e-6
    assert float(conf.min()) >= 1 / 40 - 1e-7 and float(conf.max()) <= 1.0
    assert float(conf[0, 0, 0]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def torch_conf():
    return create_runtime("torch", str(tiny_checkpoint()), auxiliary=CONF)


def test_torch_confidence_equals_max_softmax_of_the_raw_logits(torch_conf):
    img = images([(64, 96)])[0]  # the network size: no resizing
    model, cfg = tiny_model()
    x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
         - torch.tensor(cfg.data.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.data.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(x)["final"]["semseg"][0].double()
    ref = torch.softmax(logits, dim=0).amax(dim=0).numpy()
    out = torch_conf.infer([img])[0]
    conf = out["semseg_confidence"]
    assert conf.dtype == np.float32 and conf.shape == (64, 96)
    np.testing.assert_allclose(conf, ref, rtol=1e-5, atol=1e-7)
    # the tiny model is nearly uniform over 40 classes (confidence ~0.035) but varies over the image 100x more than
    # the tolerance, and is not the uniform 1/40: the comparison is not trivial
    assert ref.std() > 1e-3 and abs(ref.mean() - 1 / 40) > 1e-3
    # the labels are the argmax of the same logits, so each label's own probability is the confidence
    np.testing.assert_array_equal(out["semseg"], logits.argmax(0).numpy())


def test_confidence_follows_the_labels_when_resized(torch_conf):
    imgs = images()
    for (h, w), img, out in zip(MIXED_SIZES, imgs, torch_conf.infer(imgs), strict=True):
        net = torch_conf.infer([img], output_size="network")[0]
        assert out["semseg_confidence"].shape == (h, w)
        want = F.interpolate(torch.from_numpy(net["semseg_confidence"])[None, None], size=(h, w), mode="nearest")[0, 0]
        # nearest, as the labels (bilinear would differ by ~1e-4 between neighbours; batching by ~1e-8)
        np.testing.assert_allclose(out["semseg_confidence"], want.numpy(), rtol=1e-5, atol=0)
        c = out["semseg_confidence"]
        assert np.isfinite(c).all() and c.min() > 0 and c.max() <= 1


def test_off_by_default_and_unknown_names_are_errors():
    for backend, path in (("torch", tiny_checkpoint()), ("onnx", tiny_onnx())):
        rt = create_runtime(backend, str(path))
        assert set(rt.infer(images([(64, 96)]))[0]) == set(rt.tasks)
        with pytest.raises(ValueError, match="unknown auxiliary output.*confidance"):
            create_runtime(backend, str(path), auxiliary=("confidance",))


def test_ort_confidence_matches_torch(torch_conf):
    ort_rt = create_runtime("onnx", str(tiny_onnx()), auxiliary=CONF)
    assert ort_rt.auxiliary_keys == ("semseg_confidence",) and ort_rt.info.options["auxiliary"] == ["semseg_confidence"]
    for size in ("input", "network", (50, 70)):
        with torch.inference_mode():
            ref = torch_conf.infer(images(), output_size=size)
        for a, b in zip(ref, ort_rt.infer(images(), output_size=size), strict=True):
            assert set(a) == set(b) == {*ort_rt.tasks, "semseg_confidence"}
            assert b["semseg_confidence"].dtype == np.float32
            assert float(np.abs(a["semseg_confidence"] - b["semseg_confidence"]).max()) < 1e-4, size


def test_ort_cuts_unrequested_auxiliary_outputs_from_the_graph():
    """ONNX Runtime runs every node of a graph whatever a run fetches: without the option the session must not hold
    the confidence at all (it costs 16-23 ms a frame on the shipped model)."""
    names = [o.name for o in onnx.load(str(tiny_onnx()), load_external_data=False).graph.output]
    assert names == ["semseg", "depth", "normals", "edge", "semseg_confidence"]
    off = create_runtime("onnx", str(tiny_onnx()))
    assert [o.name for o in off.session.get_outputs()] == ["semseg", "depth", "normals", "edge"]
    on = create_runtime("onnx", str(tiny_onnx()), auxiliary=CONF)
    assert [o.name for o in on.session.get_outputs()] == names
    img = images([(64, 96)])
    a, b = off.infer(img)[0], on.infer(img)[0]
    for t in off.tasks:
        np.testing.assert_array_equal(a[t], b[t])
    assert off.meta == on.meta  # the metadata survives the cut


@pytest.fixture(scope="module")
def old_onnx(tmp_path_factory):
    """An export without auxiliary outputs: the graph and metadata of files exported before they existed."""
    model, cfg, source = load_for_export(tiny_checkpoint())
    path = tmp_path_factory.mktemp("old") / "old.onnx"
    export_onnx(model, cfg, path, exporter="torchscript", source=source, auxiliary=())
    return path


def test_an_old_export_without_confidence_still_loads_and_runs(old_onnx):
    assert [o.name for o in onnx.load(str(old_onnx)).graph.output] == ["semseg", "depth", "normals", "edge"]
    assert "semseg_confidence" not in read_onnx_meta(old_onnx).outputs
    rt = create_runtime("onnx", str(old_onnx), auxiliary=CONF)
    assert rt.auxiliary_keys == ()
    assert any("without the outputs semseg_confidence" in n for n in rt.info.notes)
    outs = rt.infer(images())
    assert all(set(o) == set(rt.tasks) for o in outs)  # absent, not NaN-filled or made up
    new = create_runtime("onnx", str(tiny_onnx())).infer(images())
    for a, b in zip(outs, new, strict=True):
        np.testing.assert_array_equal(a["semseg"], b["semseg"])


def test_model_cache_format_changed_with_the_confidence():
    """Entries of the auto backend's cache made before the confidence output existed must not be served."""
    from mtlsi_core.runtime.model_cache import CACHE_FORMAT, model_key, tool_versions

    assert CACHE_FORMAT >= 2
    old = dict(tool_versions(), cache_format="1")
    assert model_key("s", (64, 96), "fp32", old) != model_key("s", (64, 96), "fp32")
