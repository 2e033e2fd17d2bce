"""``mtlsi-bag make --sequence SEED --kind ground`` (no DDS): a ground robot's bag has its base's poses on /tf
(``map -> base_link``, on the floor) and the camera's fixed mount once on /tf_static (``base_link -> camera``,
latched), the mount also in the scene file and a directory bag's metadata; the chain gives the generator's T_map_cam,
``mtlsi-bag map`` of its ground truth scores near-perfect, and without /tf_static it fails naming the chain.
Handheld nyud bags keep ``map -> camera`` on /tf and have no /tf_static."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtlsi_ros.bag.cli import main as bag_main
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.storage import BagReader, BagWriter

FRAMES = 6
SIZE = "96x128"


@pytest.fixture(scope="module")
def ground_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ground") / "robot"  # a directory bag: it has metadata
    assert bag_main(["make", "--sequence", "9102", "--kind", "ground", "--profile", "nyud", "--frames", str(FRAMES),
                     "--size", SIZE, "--rate", "10", "--out", str(out)]) == 0
    return out


def _tf(bag: BagReader, topic: str) -> list[tuple[int, str, str, np.ndarray]]:
    """(stamp, parent, child, T) of every transform on ``topic``."""
    from scipy.spatial.transform import Rotation

    from mtlsi_ros.bag.msgtypes import typestore

    store, out = typestore(), []
    for raw in bag.messages([topic]):
        for ts in store.deserialize_cdr(raw.data, raw.msgtype).transforms:
            T = np.eye(4)
            r, t = ts.transform.rotation, ts.transform.translation
            T[:3, :3] = Rotation.from_quat([r.x, r.y, r.z, r.w]).as_matrix()
            T[:3, 3] = t.x, t.y, t.z
            out.append((ts.header.stamp.sec * 1_000_000_000 + ts.header.stamp.nanosec, ts.header.frame_id,
                        ts.child_frame_id, T))
    return out


def test_ground_bag_has_the_mount_on_tf_static_and_the_base_on_tf(ground_bag):
    from mtlsi_core.data.sequence import CARRIERS, Mount, SequenceSpec, make_sequence
    from mtlsi_ros.bag.make import read_scene_file, scene_file
    from mtlsi_ros.bag.transforms import read_pose_table

    scene = read_scene_file(scene_file(ground_bag))
    spec = scene["spec"]
    assert (spec["kind"], spec["profile"], spec["base_frame"]) == ("ground", "nyud", "base_link")
    mount = Mount(**spec["mount"])
    cr = CARRIERS["ground"]
    assert cr.height[0] <= mount.height_m <= cr.height[1] and abs(mount.roll_deg) <= cr.roll_amp_deg
    # the generator's own sequence: same poses, same mount
    seq = make_sequence(SequenceSpec(9102, "ground", FRAMES, 10.0, (96, 128), "nyud"))
    assert seq.mount == mount and spec["room_type"] == seq.room_type
    np.testing.assert_array_equal(scene["poses"], seq.poses)
    np.testing.assert_array_equal(scene["base_poses"], seq.base_poses)
    with BagReader(ground_bag) as bag:
        assert "/tf_static" in bag.latched_topics() and "/tf_static" in bag.topics()
        assert json.loads(bag.custom_data()["mtlsi.mount"]) == spec["mount"]
        static = _tf(bag, "/tf_static")
        assert len(static) == 1
        stamp, parent, child, T = static[0]
        assert (parent, child, stamp) == ("base_link", "camera_optical_frame", int(scene["stamps_ns"][0]))
        np.testing.assert_allclose(T, mount.T_base_cam(), atol=1e-12)
        dynamic = _tf(bag, "/tf")
        assert [(p, c) for _, p, c, _ in dynamic] == [("map", "base_link")] * FRAMES
        assert [s for s, *_ in dynamic] == [int(s) for s in scene["stamps_ns"]]
        for (_, _, _, T_mb), want in zip(dynamic, scene["base_poses"]):
            np.testing.assert_allclose(T_mb, want, atol=1e-12)
            assert abs(T_mb[2, 3]) < 1e-12 and np.allclose(T_mb[:3, 2], [0, 0, 1], atol=1e-12)
        # the tf chain map -> base_link -> camera gives the generator's T_map_cam
        table = read_pose_table(bag)
        for st, T_mc in zip(scene["stamps_ns"], scene["poses"]):
            np.testing.assert_allclose(table.lookup("map", "camera_optical_frame", int(st)), T_mc, atol=1e-9)
        # the /tf_static message comes before the first frame's image
        order = [raw.topic for raw in bag.messages()]
        assert order.index("/tf_static") < order.index("/camera/image")


def test_map_of_ground_robot_ground_truth_near_perfect(ground_bag, tmp_path):
    out = tmp_path / "maps"
    assert bag_main(["map", "--bag", str(ground_bag), "--namespace", "/camera/gt", "--out", str(out),
                     "--no-gt-map"]) == 0
    s = json.loads((out / "map.json").read_text())["maps"]["network"]["scores"]
    assert s["accuracy_m"] < 0.03 and s["fscore"] > 0.85 and s["semantic_accuracy"] > 0.9, s


def test_map_without_tf_static_names_the_broken_chain(ground_bag, tmp_path):
    cut = tmp_path / "no_static.mcap"
    with BagReader(ground_bag) as bag, BagWriter(cut) as out:
        for raw in bag.messages():
            if raw.topic != "/tf_static":
                out.write(raw.topic, raw.msgtype, raw.log_time, raw.data)
    from mtlsi_ros.bag.make import scene_file
    from mtlsi_ros.bag.map import MapOptions, run_map

    with pytest.raises(BagError, match=r"no transform map -> camera_optical_frame .*map -> base_link"):
        run_map(cut, tmp_path / "m", scene=scene_file(ground_bag),
                options=MapOptions(namespace="/camera/gt", gt_map=False))
    assert not (tmp_path / "m").exists()


def test_handheld_nyud_bag_poses_the_camera_directly(tmp_path):
    from mtlsi_ros.bag.make import read_scene_file, scene_file
    from mtlsi_ros.bag.transforms import read_pose_table

    out = tmp_path / "hand.mcap"
    assert bag_main(["make", "--sequence", "9101", "--frames", "3", "--size", "48x64", "--out", str(out)]) == 0
    scene = read_scene_file(scene_file(out))
    assert scene["spec"]["profile"] == "nyud" and scene["spec"]["mount"] is None  # nyud: the default
    assert "base_poses" not in scene
    with BagReader(out) as bag:
        assert "/tf_static" not in bag.topics()
        table = read_pose_table(bag)
        assert table.describe() == "it has map -> camera_optical_frame (3 stamps)"
        for st, T in zip(scene["stamps_ns"], scene["poses"]):
            np.testing.assert_allclose(table.lookup("map", "camera_optical_frame", int(st)), T, atol=1e-9)
    # the basic rooms stay reachable
    basic = tmp_path / "basic.mcap"
    assert bag_main(["make", "--sequence", "9101", "--profile", "basic", "--frames", "2", "--size", "48x64",
                     "--out", str(basic)]) == 0
    assert read_scene_file(scene_file(basic))["spec"]["room_type"] == "basic"


def test_cli_reports_the_mount_it_drew(tmp_path, capsys):
    from mtlsi_ros.bag.make import read_scene_file, scene_file

    out = tmp_path / "r.mcap"
    assert bag_main(["make", "--sequence", "5", "--trajectory", "ground", "--frames", "2", "--size", "32x40",
                     "--out", str(out)]) == 0
    m = read_scene_file(scene_file(out))["spec"]["mount"]
    text = capsys.readouterr().out
    assert f"camera mount {m['height_m']:.3f} m high, pitch {m['pitch_deg']:+.2f} deg (down)" in text, text


def test_base_frame_must_differ_from_the_camera_frame(tmp_path):
    from mtlsi_core.data.sequence import SequenceSpec
    from mtlsi_ros.bag.make import MakeOptions, make_sequence_bag

    with pytest.raises(BagError, match="base frame 'camera_optical_frame' must be named and differ"):
        make_sequence_bag(tmp_path / "x.mcap", SequenceSpec(1, "ground", 2, 10.0, (16, 16), "nyud"),
                          MakeOptions(base_frame="camera_optical_frame", progress=False))
    assert not any(tmp_path.iterdir())
