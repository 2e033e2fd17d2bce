"""The PyTorch runtime: output formats per task, output sizes, precisions, memory format, device fallback."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlsi_core.checkpoint import CheckpointError
from mtlsi_core.runtime import backend_options, create_runtime
from mtlsi_core.runtime.export import compare_outputs, normals_angle_deg
from mtlsi_core.runtime.torch_runtime import TorchRuntime
from mtlsi_core.tasks import get_task
from runtime_helpers import MIXED_SIZES, as_network_layout, images, tiny_checkpoint


@pytest.fixture(scope="module")
def rt() -> TorchRuntime:
    return create_runtime("torch", str(tiny_checkpoint()))


@pytest.fixture(scope="module")
def mixed_outputs(rt):
    return rt.infer(images())


def test_outputs_have_the_documented_shapes_dtypes_and_ranges(rt, mixed_outputs):
    assert len(mixed_outputs) == len(MIXED_SIZES)
    for (h, w), out in zip(MIXED_SIZES, mixed_outputs):
        assert set(out) == set(rt.tasks)
        for task, arr in out.items():
            kind = get_task(task).kind
            if kind == "labels":
                assert arr.shape == (h, w) and arr.dtype == np.uint8
                assert arr.max() < rt.channels[task]
            elif task == "normals":
                assert arr.shape == (h, w, 3) and arr.dtype == np.float32
                np.testing.assert_allclose(np.linalg.norm(arr, axis=-1), 1.0, atol=1e-4)
            else:
                assert arr.shape == (h, w) and arr.dtype == np.float32
                assert np.isfinite(arr).all() and arr.min() >= 0.0
                if kind == "binary":
                    assert arr.max() <= 1.0
    # the predictions are not constant (the comparisons below would be trivial otherwise)
    first = mixed_outputs[0]
    assert len(np.unique(first["semseg"])) >= 3 and first["depth"].std() > 1e-3 and first["edge"].std() > 1e-3


def test_output_size_modes(rt):
    img = images([(120, 160)])
    assert rt.infer(img)[0]["depth"].shape == (120, 160)
    assert rt.infer(img, output_size="network")[0]["normals"].shape == (64, 96, 3)
    assert rt.infer(img, output_size=(30, 41))[0]["semseg"].shape == (30, 41)
    for bad in ("full", (0, 5), (3,)):
        with pytest.raises(ValueError, match="output_size"):
            rt.infer(img, output_size=bad)


def test_resizing_follows_the_registry(rt):
    img = images([(64, 96)])
    net = rt.infer(img, output_size="network")[0]
    big = rt.infer(img, output_size=(128, 192))[0]
    # nearest for labels and edges: exact 2x upsampling repeats pixels
    np.testing.assert_array_equal(big["semseg"][::2, ::2], net["semseg"])
    np.testing.assert_array_equal(big["edge"][::2, ::2], net["edge"])
    # bilinear for depth: values stay within the range, not exact copies
    assert net["depth"].min() - 1e-6 <= big["depth"].min() and big["depth"].max() <= net["depth"].max() + 1e-6
    assert not np.array_equal(big["depth"][::2, ::2], net["depth"])


def test_batch_results_equal_single_image_results(rt, mixed_outputs):
    for img, batched in zip(images(), mixed_outputs):
        single = rt.infer([img])[0]
        for t in rt.tasks:
            res = compare_outputs(t, as_network_layout(t, batched[t]), as_network_layout(t, single[t]))
            assert res["ok"], (t, res)


def test_channels_last_matches_default(rt):
    cl = create_runtime("torch", str(tiny_checkpoint()), channels_last=True)
    assert cl.info.options["channels_last"] is True
    imgs = images()
    for a, b in zip(rt.infer(imgs), cl.infer(imgs)):
        for t in rt.tasks:
            res = compare_outputs(t, as_network_layout(t, a[t]), as_network_layout(t, b[t]))
            assert res["ok"], (t, res)


def test_bf16_on_cpu_is_close_to_fp32(rt):
    bf = create_runtime("torch", str(tiny_checkpoint()), precision="bf16")
    assert bf.info.precision == "bf16"
    imgs = images([(64, 96), (120, 160)])
    for a, b in zip(rt.infer(imgs), bf.infer(imgs)):
        # bf16 keeps 8 mantissa bits (~0.4 % per operation): looser limits than the fp32 export checks
        agree = (a["semseg"] == b["semseg"]).mean()
        assert agree >= 0.97, agree  # the widened random heads leave many near-tied logits
        assert np.abs(a["depth"] - b["depth"]).max() <= 0.02 * max(1.0, float(a["depth"].max()))
        assert np.abs(a["edge"] - b["edge"]).max() <= 0.01
        ang = normals_angle_deg(a["normals"], b["normals"], channel_axis=-1)
        assert np.nanmean(ang) <= 1.5 and np.nanmax(ang) <= 5.0
        assert not np.array_equal(a["depth"], b["depth"])  # bf16 really ran


def test_fp16_on_cpu_runs_fp32_with_a_note():
    r = create_runtime("torch", str(tiny_checkpoint()), precision="fp16")
    assert r.info.precision == "fp32" and any("fp16" in n for n in r.info.notes)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the fallback where CUDA is absent")
def test_cuda_request_falls_back_to_cpu_with_a_note():
    r = create_runtime("torch", str(tiny_checkpoint()), device="cuda", precision="fp16", cuda_graphs=True)
    assert r.info.device == "cpu"
    assert any("CUDA is not available" in n for n in r.info.notes)
    assert any("CUDA graphs" in n for n in r.info.notes)
    out = r.infer(images([(64, 96)]))
    assert out[0]["depth"].shape == (64, 96)


def test_bad_inputs_are_clear_errors(rt):
    good = images([(64, 96)])[0]
    with pytest.raises(ValueError, match="image 1: expected uint8"):
        rt.infer([good, good.astype(np.float32)])
    with pytest.raises(ValueError, match=r"image 0: expected shape \(H, W, 3\)"):
        rt.infer([good[..., :2]])
    with pytest.raises(ValueError, match="empty image batch"):
        rt.infer([])
    with pytest.raises(ValueError, match="precision"):
        create_runtime("torch", str(tiny_checkpoint()), precision="int8")
    with pytest.raises(ValueError, match="unknown runtime backend 'tflite'"):
        create_runtime("tflite", str(tiny_checkpoint()))
    with pytest.raises(ValueError, match="no option.*providers"):
        create_runtime("torch", str(tiny_checkpoint()), providers=["CPUExecutionProvider"])
    assert "compile" in backend_options("torch")


def test_missing_checkpoint_names_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt"):
        create_runtime("torch", str(missing))


def test_warmup_and_close(rt):
    r = create_runtime("torch", str(tiny_checkpoint()))
    r.warmup(1)
    r.close()
    with pytest.raises(RuntimeError, match="closed"):
        r.infer(images([(64, 96)]))


@pytest.mark.slow
def test_compiled_matches_eager(rt):
    """The compile path (graph capture, compiled forward) with the aot_eager backend; inductor's C++ build takes
    minutes on the 2-core CI machine, so it is exercised by benchmarks/bench_runtime.py --compile instead."""
    torch._dynamo.reset()
    comp = create_runtime("torch", str(tiny_checkpoint()), compile={"backend": "aot_eager"})
    assert comp.info.options["compile"] == {"backend": "aot_eager", "dynamic": False}
    imgs = images([(64, 96), (120, 160)])
    for a, b in zip(rt.infer(imgs), comp.infer(imgs)):
        for t in rt.tasks:
            res = compare_outputs(t, as_network_layout(t, a[t]), as_network_layout(t, b[t]))
            assert res["ok"], (t, res)
    with pytest.raises(ValueError, match="compile must be"):
        create_runtime("torch", str(tiny_checkpoint()), compile=3)


def test_prepare_batch_passes_network_sized_images_through_and_resizes_others():
    from mtlsi_core.runtime.processing import prepare_batch

    img = images([(64, 96)])[0]
    flat = np.full((120, 160, 3), (10, 128, 250), np.uint8)
    batch = prepare_batch([img, flat], (64, 96), "cpu")
    assert batch.dtype == torch.uint8 and tuple(batch.shape) == (2, 64, 96, 3)
    np.testing.assert_array_equal(batch[0].numpy(), img)  # same bytes, no resampling
    assert (batch[1].numpy() == np.array([10, 128, 250], np.uint8)).all()  # rounding keeps a flat colour exact
