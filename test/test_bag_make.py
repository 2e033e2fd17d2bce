"""``mtlsi-bag make``: topics, types, stamps, intrinsics and ground truth of a made bag read back equal to the
dataset; image folders with a calibration file; single-file storages; atomic output."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from bag_helpers import SIZE, make_synth_bag, read_bag, synth_set
from mtlsi_core.data.nyud import NYUDMT
from mtlsi_ros.bag.cli import main
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.frames import decode_image
from mtlsi_ros.bag.make import MakeOptions, make_bag
from mtlsi_ros.bag.sources import Source, dataset_source, kinect_calibration
from mtlsi_ros.bag.storage import BagReader
from mtlsi_ros.conversions import compressed_to_rgb, image_to_numpy

GT_TOPICS = {"semseg": "/camera/gt/segmentation", "depth": "/camera/gt/depth", "normals": "/camera/gt/normals",
             "edge": "/camera/gt/boundary"}


def test_dataset_bag_reads_back_as_the_dataset(tmp_path):
    bag = make_synth_bag(tmp_path / "b", num=3, rate=4.0, frame_id="cam_opt")
    ds = NYUDMT(synth_set(3), "val", tuple(GT_TOPICS), None, dataset="synth")
    cam = json.loads((synth_set(3) / "camera.json").read_text())
    msgs = read_bag(bag)
    with BagReader(bag) as r:
        assert r.topics() == {"/camera/camera_info": "sensor_msgs/msg/CameraInfo",
                              "/camera/image": "sensor_msgs/msg/Image",
                              **{t: "sensor_msgs/msg/Image" for t in GT_TOPICS.values()}}
        assert set(r.message_counts().values()) == {3}
        log_times = {(raw.topic, raw.index): raw.log_time for raw in r.messages()}
        frames = json.loads(r.custom_data()["mtlsi.frames"])
    stamps = sorted({s for _, s in msgs})
    assert stamps == [1_700_000_000_000_000_000 + i * 250_000_000 for i in range(3)]
    assert [n for _, n in frames] == ds.ids and [s for s, _ in frames] == stamps
    assert {log_times[("/camera/image", i)] for i in range(3)} == set(stamps)  # log time = header stamp
    for i, stamp in enumerate(stamps):
        raw = ds.load_raw(i)
        img = msgs[("/camera/image", stamp)][1]
        assert img.encoding == "rgb8" and img.header.frame_id == "cam_opt"
        np.testing.assert_array_equal(image_to_numpy(img), raw["image"])
        info = msgs[("/camera/camera_info", stamp)][1]
        assert (info.height, info.width) == SIZE and np.allclose(np.reshape(info.k, (3, 3)), cam["K"])
        for task, topic in GT_TOPICS.items():
            gt_msg = msgs[(topic, stamp)][1]
            np.testing.assert_array_equal(decode_image(task, gt_msg, topic, "gt"), raw[task], err_msg=task)
        depth = image_to_numpy(msgs[("/camera/gt/depth", stamp)][1])
        assert np.array_equal(np.isnan(depth), raw["depth"] == 0)  # invalid depth is NaN on the topic
        assert msgs[("/camera/gt/segmentation", stamp)][1].encoding == "mono8"
        assert set(np.unique(image_to_numpy(msgs[("/camera/gt/boundary", stamp)][1]))) <= {0, 1, 255}


def test_compressed_png_single_file_and_same_bytes_twice(tmp_path):
    a = make_synth_bag(tmp_path / "a.mcap", num=2, compressed="png")
    b = make_synth_bag(tmp_path / "b.mcap", num=2, compressed="png")
    assert a.is_file() and b.is_file()
    ma, mb = read_bag(a), read_bag(b)
    assert {k: v[0] for k, v in ma.items()} == {k: v[0] for k, v in mb.items()}  # reproducible CDR bytes
    ds = NYUDMT(synth_set(2), "val", (), None, dataset="synth")
    stamps = sorted({s for t, s in ma if t == "/camera/image/compressed"})
    for i, s in enumerate(stamps):
        rgb = compressed_to_rgb(ma[("/camera/image/compressed", s)][1])
        np.testing.assert_array_equal(rgb, ds.load_raw(i)["image"])  # png: lossless
    db3 = make_synth_bag(tmp_path / "c.db3", num=2)
    assert db3.is_file() and len(read_bag(db3)) == 2 * 6


def test_image_folder_with_ros_calibration(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.jpg", "notes.txt"):
        if name.endswith("txt"):
            (folder / name).write_text("not an image")
        else:
            cv2.imwrite(str(folder / name), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    calib = tmp_path / "cam.yaml"
    calib.write_text("image_width: 120\nimage_height: 80\ncamera_name: test\n"
                     "camera_matrix: {rows: 3, cols: 3, data: [100.0, 0, 59.5, 0, 101.0, 39.5, 0, 0, 1]}\n"
                     "distortion_model: plumb_bob\n"
                     "distortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.2, 0, 0, 0]}\n")
    out = tmp_path / "folder_bag"
    assert main(["make", "--images", str(folder), "--camera-info", str(calib), "--out", str(out),
                 "--camera", "/front", "--rate", "2"]) == 0
    msgs = read_bag(out)
    assert {t for t, _ in msgs} == {"/front/image", "/front/camera_info"}  # no ground truth
    infos = [m for (t, _), (_, m) in sorted(msgs.items()) if t == "/front/camera_info"]
    assert len(infos) == 2 and (infos[0].width, infos[0].height) == (120, 80)  # the calibration's own size
    assert infos[0].k[0] == 100.0 and list(infos[0].d) == [0.1, -0.2, 0.0, 0.0, 0.0]
    stamps = sorted(s for t, s in msgs if t == "/front/image")
    assert stamps[1] - stamps[0] == 500_000_000
    out2 = tmp_path / "no_info"
    assert main(["make", "--images", str(folder), "--out", str(out2)]) == 0
    assert {t for t, _ in read_bag(out2)} == {"/camera/image"}


def test_nyud_layout_without_camera_json_gets_kinect_intrinsics():
    k = kinect_calibration((425, 560))
    assert k.k[0] == pytest.approx(518.857901) and k.k[2] == pytest.approx(325.582449 - 40.0)
    assert k.k[5] == pytest.approx(253.736166 - 27.5) and (k.height, k.width) == (425, 560)
    assert kinect_calibration((960, 1280)).k[0] == pytest.approx(2 * 518.857901)


def test_output_is_atomic_and_never_overwritten_silently(tmp_path):
    out = make_synth_bag(tmp_path / "b", num=1)
    before = read_bag(out)
    with pytest.raises(BagError, match="exists already"):
        make_synth_bag(out, num=1)
    source = dataset_source(synth_set(), "val", max_frames=2)

    def failing():
        yield next(source.frames)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        make_bag(tmp_path / "c.mcap", Source(failing(), 2, source.tasks, source.dataset, source.info),
                 MakeOptions(progress=False))
    assert sorted(os.listdir(tmp_path)) == ["b"]  # neither c.mcap nor a partial folder
    make_synth_bag(out, num=2, overwrite=True)
    assert len(read_bag(out)) == 2 * len(before)


def test_make_rejects_bad_inputs(tmp_path, capsys):
    assert main(["make", "--dataset-root", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert main(["make", "--dataset-root", str(synth_set()), "--split", "test", "--out", str(tmp_path / "x")]) == 2
    assert "split file not found" in capsys.readouterr().err
    assert main(["make", "--dataset-root", str(synth_set()), "--rate", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--rate must be > 0" in capsys.readouterr().err
    bad = tmp_path / "cam.yaml"
    bad.write_text("camera_matrix: {data: [1, 2]}\nimage_width: 4\nimage_height: 3\n")
    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((4, 4, 3), np.uint8))
    assert main(["make", "--images", str(tmp_path), "--camera-info", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "camera_matrix must hold 9" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
