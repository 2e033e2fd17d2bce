"""``mtlsi-bag infer``: the outputs are the runtime's results for each frame with the node's conventions (focal
length from camera_info, registry encodings, depth range, output resolution, scaled camera_info, input headers);
reproducible bytes; compressed input; batching; dropped frames; input topics copied."""
from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Header

from bag_helpers import SIZE, focal_checkpoint, make_synth_bag, read_bag
from mtlsi_core.runtime import create_runtime
from mtlsi_ros.bag.cli import main
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.infer import InferOptions, run_infer
from mtlsi_ros.bag.storage import BagWriter
from mtlsi_ros.conversions import image_to_numpy, numpy_to_image
from mtlsi_ros.params import validate

OUT_TOPICS = ["segmentation", "segmentation/color", "depth", "depth/color", "normals", "normals/color", "boundary",
              "output/camera_info"]
FRAMES = 3


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return make_synth_bag(tmp_path_factory.mktemp("infer") / "in", num=FRAMES)


@pytest.fixture(scope="module")
def runtime():
    return create_runtime("torch", str(focal_checkpoint()), device="cpu", precision="fp32")


def _params(**kw):
    # backend torch: the outputs are compared bit for bit with the torch runtime of the fixture
    return validate({"model_path": str(focal_checkpoint()), "backend": "torch", "device": "cpu", "precision": "fp32",
                     "warmup": False, **kw})


def _infer(bag, out, **kw):
    params = kw.pop("params", _params())
    return run_infer(bag, out, params, InferOptions(progress=False, **kw))


def _outputs(msgs, ns="/camera"):
    """{stamp: {relative topic: message}} of the output topics."""
    out: dict[int, dict] = {}
    for (topic, stamp), (_, msg) in msgs.items():
        rel = topic[len(ns) + 1:] if topic.startswith(ns + "/") else None
        if rel in OUT_TOPICS:
            out.setdefault(stamp, {})[rel] = msg
    return out


def test_outputs_are_the_runtime_results_with_the_nodes_conventions(bag, tmp_path, runtime):
    s = _infer(bag, tmp_path / "out", params=_params(min_depth=0.0, max_depth=0.0))
    assert (s.frames, s.processed, s.dropped, s.namespace) == (FRAMES, FRAMES, {}, "/camera")
    msgs = read_bag(tmp_path / "out")
    inputs = {stamp: m for (t, stamp), (_, m) in msgs.items() if t == "/camera/image"}
    infos = {stamp: m for (t, stamp), (_, m) in msgs.items() if t == "/camera/camera_info"}
    outs = _outputs(msgs)
    assert sorted(outs) == sorted(inputs) and all(sorted(o) == sorted(OUT_TOPICS) for o in outs.values())
    for stamp, o in outs.items():
        rgb, info = image_to_numpy(inputs[stamp]), infos[stamp]
        exp = runtime.infer([rgb], "input", focal_lengths=[info.k[0]])[0]  # image and calibration: same width
        assert all(m.header == inputs[stamp].header for m in o.values())
        np.testing.assert_array_equal(image_to_numpy(o["segmentation"]), exp["semseg"])
        depth = image_to_numpy(o["depth"])
        valid = exp["depth"] > 0
        np.testing.assert_array_equal(depth[valid], exp["depth"][valid])
        assert np.isnan(depth[~valid]).all()
        np.testing.assert_array_equal(image_to_numpy(o["normals"]), exp["normals"])
        np.testing.assert_array_equal(image_to_numpy(o["boundary"]),
                                      np.floor(np.clip(exp["edge"], 0, 1) * 255 + 0.5).astype(np.uint8))
        assert image_to_numpy(o["depth/color"]).shape == SIZE + (3,)
        assert list(o["output/camera_info"].k) == pytest.approx(list(info.k))  # outputs at the input size
        # the focal length matters for this model: without it depth would differ
        assert not np.allclose(runtime.infer([rgb], "input")[0]["depth"], exp["depth"])


def test_network_resolution_and_reproducible_bytes(bag, tmp_path):
    params = _params(output_resolution="network", publish_color=False)
    _infer(bag, tmp_path / "a.mcap", params=params, copy_input=False, namespace="/net")
    _infer(bag, tmp_path / "b.db3", params=params, copy_input=False, namespace="/net")
    a, b = read_bag(tmp_path / "a.mcap"), read_bag(tmp_path / "b.db3")
    assert {t for t, _ in a} == {"/net/segmentation", "/net/depth", "/net/normals", "/net/boundary",
                                 "/net/output/camera_info"}
    assert {k: v[0] for k, v in a.items()} == {k: v[0] for k, v in b.items()}  # same bytes, both storages
    for (topic, _), (_, msg) in a.items():
        assert (msg.height, msg.width) == (64, 96), topic
        if topic.endswith("camera_info"):
            assert msg.k[0] == pytest.approx(518.857901 * 128 / 640 * 96 / 128)


def test_compressed_input_and_batches_give_the_same_outputs(bag, tmp_path):
    png = make_synth_bag(tmp_path / "png", num=FRAMES, compressed="png")
    _infer(bag, tmp_path / "raw_out", copy_input=False)
    _infer(png, tmp_path / "png_out", copy_input=False)
    _infer(bag, tmp_path / "batch_out", copy_input=False, batch=2)
    raw, comp, batched = (_outputs(read_bag(tmp_path / n)) for n in ("raw_out", "png_out", "batch_out"))
    assert raw == comp  # lossless png decodes to the same pixels: same messages
    assert sorted(batched) == sorted(raw)
    for stamp in raw:
        assert sorted(batched[stamp]) == sorted(raw[stamp])
        np.testing.assert_allclose(image_to_numpy(batched[stamp]["normals"]), image_to_numpy(raw[stamp]["normals"]),
                                   atol=1e-4)


def test_bad_frames_are_dropped_as_the_node_drops_them(tmp_path):
    path = tmp_path / "mixed.mcap"
    rng = np.random.default_rng(0)
    with BagWriter(path) as w:
        for i in range(3):
            h = Header(frame_id="cam")
            h.stamp.sec = 100 + i
            img = rng.integers(0, 255, SIZE + (3,), dtype=np.uint8)
            msg = (numpy_to_image(img[..., 0].astype(np.uint16), "mono16", h) if i == 1
                   else numpy_to_image(img, "rgb8", h))
            w.write_msg("/cam/image", msg, (100 + i) * 10**9)
    s = _infer(path, tmp_path / "out")
    assert (s.frames, s.processed, s.dropped) == (3, 2, {"bad_encoding": 1})
    assert any("no camera_info topic /cam/camera_info" in n for n in s.notes)
    out = read_bag(tmp_path / "out")
    assert sorted(s for t, s in out if t == "/cam/depth") == [100 * 10**9, 102 * 10**9]
    assert not any(t == "/cam/output/camera_info" for t, _ in out)  # no camera_info in, none out (as the node)


def test_cli_copies_inputs_and_reads_params_files(bag, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n    device: cpu\n    warmup: false\n"
                      f"    model_path: {focal_checkpoint()}\n"
                      "/other_node:\n  ros__parameters:\n    no_such_parameter: 1\n")
    out = tmp_path / "out"
    assert main(["infer", "--in", str(bag), "--out", str(out), "--params", str(params),
                 "--set", "publish_color=false", "--set", "boundary_encoding=32FC1"]) == 0
    assert "3/3 frames of /camera/image" in capsys.readouterr().out
    msgs, inputs = read_bag(out), read_bag(bag)
    for key, (data, _) in inputs.items():
        assert msgs[key][0] == data  # input topics copied byte for byte
    topics = {t for t, _ in msgs}
    assert "/camera/segmentation/color" not in topics and "/camera/gt/depth" in topics
    assert {m.encoding for (t, _), (_, m) in msgs.items() if t == "/camera/boundary"} == {"32FC1"}
    assert main(["infer", "--in", str(bag), "--out", str(tmp_path / "x"), "--model",
                 str(tmp_path / "missing.pt"), "--device", "cpu"]) == 2
    assert "model file not found" in capsys.readouterr().err and not (tmp_path / "x").exists()
    with pytest.raises(BagError, match="output bag must differ"):
        _infer(bag, bag)
    with pytest.raises(BagError, match=r"already has output topic\(s\) /camera/boundary, .*--namespace"):
        _infer(out, tmp_path / "again")  # outputs of a previous run would mix with the new ones
    assert not (tmp_path / "again").exists()
