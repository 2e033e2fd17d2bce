"""``mtlsi-bag make --sequence`` / ``map`` / ``eval`` on sequences (no DDS): /tf poses that reproduce the scene's,
consistent stamps, a map of ground truth that scores near-perfect, one-line errors for bad input with nothing
written, and the temporal stability section of eval (~0 for ground truth, > 0 for a shifted prediction)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtlsi_ros.bag.cli import main as bag_main
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.storage import BagReader, BagWriter

SIZE = "96x128"
FRAMES = 8


@pytest.fixture(scope="module")
def seq_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seq") / "seq.mcap"
    assert bag_main(["make", "--sequence", "7", "--frames", str(FRAMES), "--size", SIZE, "--rate", "15",
                     "--out", str(out)]) == 0
    return out


def _stamp(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def test_sequence_bag_poses_and_stamps(seq_bag):
    from mtlsi_ros.bag.make import read_scene_file, scene_file
    from mtlsi_ros.bag.transforms import read_pose_table

    scene = read_scene_file(scene_file(seq_bag))
    assert scene["spec"]["kind"] == "handheld" and len(scene["poses"]) == FRAMES
    with BagReader(seq_bag) as bag:
        assert bag.topics()["/tf"] == "tf2_msgs/msg/TFMessage"
        table = read_pose_table(bag)
        for st, T in zip(scene["stamps_ns"], scene["poses"]):
            assert np.allclose(table.lookup("map", "camera_optical_frame", int(st)), T, atol=1e-9)
        stamps: dict[str, list[int]] = {}
        for raw in bag.messages():
            if raw.topic == "/tf":
                continue
            msg = bag.deserialize(raw)
            assert msg.header.frame_id == "camera_optical_frame"
            stamps.setdefault(raw.topic, []).append(_stamp(msg))
            assert _stamp(msg) == raw.log_time
    expected = [int(s) for s in scene["stamps_ns"]]
    assert all(v == expected for v in stamps.values()), stamps
    assert np.allclose(np.diff(expected), 1e9 / 15, atol=1)


def test_map_of_ground_truth_near_perfect(seq_bag, tmp_path):
    out = tmp_path / "maps"
    assert bag_main(["map", "--bag", str(seq_bag), "--namespace", "/camera/gt", "--out", str(out),
                     "--no-gt-map"]) == 0
    doc = json.loads((out / "map.json").read_text())
    s = doc["maps"]["network"]["scores"]
    assert s["accuracy_m"] < 0.02 and s["fscore"] > 0.9 and s["semantic_accuracy"] > 0.9, s
    for name in ("map_mesh.ply", "map_points.ply", "map_points.npz", "map_topdown.png", "map_first_pose.png"):
        assert (out / name).stat().st_size > 0
    pts = np.load(out / "map_points.npz")
    assert len(pts["points"]) == doc["maps"]["network"]["vertices"] and pts["labels"].dtype == np.uint8


def _rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a bag, passing each deserialised image/camera_info message through ``change(topic, msg)``, which
    returns [(topic, msg), ...] to write (others are copied raw)."""
    with BagReader(src) as bag, BagWriter(dst) as out:
        for raw in bag.messages():
            if raw.topic == "/tf":
                out.write(raw.topic, raw.msgtype, raw.log_time, raw.data)
                continue
            for topic, msg in change(raw.topic, bag.deserialize(raw), raw.index):
                out.write_msg(topic, msg, raw.log_time)
    return dst


def _predictions(transform):
    """A change function adding /camera/depth and /camera/segmentation made from the ground truth."""
    from mtlsi_ros.conversions import image_to_numpy, numpy_to_image

    def change(topic, msg, index):
        out = [(topic, msg)]
        if topic in ("/camera/gt/depth", "/camera/gt/segmentation"):
            arr = transform(topic, image_to_numpy(msg).copy(), index)
            out.append((topic.replace("/gt", ""), numpy_to_image(np.ascontiguousarray(arr), msg.encoding, msg.header)))
        return out
    return change


def test_bad_input_one_line_errors_nothing_written(seq_bag, tmp_path):
    from bag_helpers import make_synth_bag
    from mtlsi_ros.bag.map import MapOptions, run_map

    def fails(bag, match, **kw):
        out = tmp_path / "maps"
        with pytest.raises(BagError, match=match) as e:
            run_map(bag, out, **kw)
        assert "\n" not in str(e.value)
        assert not out.exists() and not list(tmp_path.glob(".maps*"))
        return str(e.value)

    # no poses: a plain dataset bag
    plain = make_synth_bag(tmp_path / "plain.mcap", num=2)
    fails(plain, r"no pose topic /tf", options=MapOptions(namespace="/camera/gt"))
    # unknown frame: poses are for camera_optical_frame, the images say otherwise
    def rename(topic, msg, index):
        if hasattr(msg, "header"):
            msg.header.frame_id = "other_camera"
        return [(topic, msg)]
    renamed = _rewrite(seq_bag, tmp_path / "renamed.mcap", rename)
    msg = fails(renamed, r"no transform map -> other_camera", options=MapOptions(namespace="/camera/gt"))
    assert "/camera/gt/depth" in msg and "map -> camera_optical_frame" in msg
    fails(seq_bag, r"no transform world -> camera_optical_frame",
          options=MapOptions(namespace="/camera/gt", map_frame="world"))
    # depth and labels of different sizes
    import cv2

    halved = _rewrite(seq_bag, tmp_path / "halved.mcap", _predictions(
        lambda t, a, i: cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_NEAREST)
        if t.endswith("segmentation") else a))
    msg = fails(halved, r"/camera/depth is 96x128 but /camera/segmentation is 48x64")
    # CLI: exit status 2 and one line on stderr
    assert bag_main(["map", "--bag", str(plain), "--namespace", "/camera/gt", "--out", str(tmp_path / "maps")]) == 2


def test_eval_reports_temporal_stability(seq_bag, tmp_path):
    from mtlsi_ros.bag.evaluate import EvalOptions, run_bag_eval

    same = _rewrite(seq_bag, tmp_path / "same.mcap", _predictions(lambda t, a, i: a))
    doc = run_bag_eval(same, options=EvalOptions(progress=False))
    st = doc["temporal_stability"]
    assert st["prediction"]["pairs"] == FRAMES - 1 and st["warp_geometry"] == "ground-truth depth"
    for side in ("prediction", "ground_truth"):
        assert st[side]["depth_rel_mean"] < 1e-3 and st[side]["label_flip_rate"] < 1e-3, st
    assert "temporal stability" in doc["table"]

    def shift(topic, a, index):
        if topic.endswith("depth"):
            return a * np.float32(1.1 if index % 2 else 1.0)
        return np.roll(a, 3 * (index % 2), axis=1)
    shifted = _rewrite(seq_bag, tmp_path / "shifted.mcap", _predictions(shift))
    st = run_bag_eval(shifted, options=EvalOptions(progress=False))["temporal_stability"]
    assert st["prediction"]["depth_rel_mean"] > 0.05 and st["prediction"]["label_flip_rate"] > 0.01, st
    assert st["ground_truth"]["depth_rel_mean"] < 1e-3


def test_map_speed_options_and_timing(seq_bag, tmp_path):
    from mtlsi_ros.bag.map import MapOptions, run_map

    rec = run_map(seq_bag, tmp_path / "all", options=MapOptions(namespace="/camera/gt", gt_map=False))
    net = rec["maps"]["network"]
    assert net["frames"] == net["integrated_frames"] == FRAMES and net["skipped_frames"] == 0
    t = net["timing"]
    assert t["read_decode_seconds"] > 0 and t["integrate_seconds"] > 0 and t["extract_seconds"] > 0
    assert t["frames_per_second"] == pytest.approx(FRAMES / (t["read_decode_seconds"] + t["integrate_seconds"]),
                                                   rel=0.05)
    opts = MapOptions(namespace="/camera/gt", gt_map=False, keyframe_translation=0.5, keyframe_rotation_deg=30.0)
    kf = run_map(seq_bag, tmp_path / "keyframes", options=opts)
    net = kf["maps"]["network"]
    assert net["frames"] == FRAMES and 1 <= net["integrated_frames"] < FRAMES
    assert net["skipped_frames"] == FRAMES - net["integrated_frames"]
    assert kf["settings"]["keyframe_translation"] == 0.5 and kf["settings"]["max_size"] is None
    with pytest.raises(BagError, match="keyframe rule"):
        run_map(seq_bag, tmp_path / "bad", options=MapOptions(namespace="/camera/gt", keyframe_translation=0.1))
    assert not (tmp_path / "bad").exists()
