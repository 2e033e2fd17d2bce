"""``mtlsi-bag eval``: perfect predictions score perfectly; ground truth from the same bag, another bag or the
dataset gives the same figures; predictions at network resolution are mapped onto the ground-truth grid; the table is
mtlsi-eval's; JSON; errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bag_helpers import focal_checkpoint, make_synth_bag, read_bag, synth_set
from mtlsi_core.data.nyud import NYUDMT
from mtlsi_core.metrics import MultiTaskEvaluator, format_table
from mtlsi_ros.bag.cli import main
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.evaluate import EvalOptions, run_bag_eval
from mtlsi_ros.bag.frames import decode_image, to_gt_grid
from mtlsi_ros.bag.infer import InferOptions, run_infer
from mtlsi_ros.bag.storage import BagReader, BagWriter
from mtlsi_ros.conversions import image_to_numpy
from mtlsi_ros.params import validate
from mtlsi_ros.publishing import build_messages, build_plans

TASKS = ("semseg", "depth", "normals", "edge")
GT = {"semseg": "segmentation", "depth": "depth", "normals": "normals", "edge": "boundary"}
FRAMES = 3


@pytest.fixture(scope="module")
def gt_bag(tmp_path_factory):
    return make_synth_bag(tmp_path_factory.mktemp("eval") / "gt", num=FRAMES)


@pytest.fixture(scope="module")
def perfect_bag(gt_bag, tmp_path_factory):
    """The ground truth published as the node would publish it (node encodings, NaN depth) plus the inputs."""
    path = tmp_path_factory.mktemp("eval") / "perfect"
    plans = build_plans(TASKS, {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}, validate({}))
    with BagReader(gt_bag) as r, BagWriter(path, custom_data=r.custom_data()) as w:
        frames: dict[int, dict] = {}
        for raw in r.messages():
            w.write(raw.topic, raw.msgtype, raw.log_time, raw.data)
            msg = r.deserialize(raw)
            frames.setdefault(raw.log_time, {})[raw.topic] = msg
        for t, f in frames.items():
            outputs = {task: decode_image(task, f[f"/camera/gt/{GT[task]}"], "", "gt") for task in TASKS}
            outputs["edge"] = outputs["edge"].astype(np.float32)
            rgb = image_to_numpy(f["/camera/image"])
            for rel, msg in build_messages(plans, f["/camera/image"].header, outputs, rgb, f["/camera/camera_info"]):
                w.write_msg(f"/camera/{rel}", msg, t)
    return path


def test_perfect_predictions_score_perfectly_from_every_ground_truth_source(perfect_bag, gt_bag, tmp_path):
    same = run_bag_eval(perfect_bag, options=EvalOptions(progress=False), json_out=tmp_path / "r.json")
    other = run_bag_eval(perfect_bag, gt_bag=gt_bag, options=EvalOptions(progress=False))
    data = run_bag_eval(perfect_bag, dataset_root=synth_set(FRAMES), split="val", options=EvalOptions(progress=False))
    h = same["headline"]
    m = same["metrics"]["semseg"]  # mIoU averages over all 40 classes (the peers' way): absent ones count 0
    assert m["miou_present"] == pytest.approx(100.0) and m["pixel_acc"] == pytest.approx(100.0)
    assert h["depth"] == pytest.approx(0.0, abs=1e-6)
    assert h["normals"] == pytest.approx(0.0, abs=1e-3) and h["edge"] > 95.0  # BSDS matching of 2-px-wide edges
    # exactly what the evaluator gives for the dataset's own arrays
    ds = NYUDMT(synth_set(FRAMES), "val", TASKS, None, dataset="synth")
    ref = MultiTaskEvaluator(TASKS, "synth")
    for i in range(len(ds)):
        gt = ds.load_raw(i)
        ref.update({**{t: gt[t] for t in TASKS}, "edge": gt["edge"].astype(np.float32)}, gt)
    assert same["metrics"] == ref.compute()
    assert same["num_frames"] == other["num_frames"] == data["num_frames"] == FRAMES
    assert same["metrics"] == other["metrics"] == data["metrics"]
    assert same["dataset"] == "synth" and same["unmatched"] == {"predictions": 0, "ground_truth": 0}
    assert same["table"] == format_table(same["metrics"], TASKS, params_m=None, name="perfect")
    assert json.loads((tmp_path / "r.json").read_text())["headline"] == pytest.approx(h)


def test_network_resolution_outputs_are_scored_on_the_ground_truth_grid(gt_bag, tmp_path, capsys):
    params = validate({"model_path": str(focal_checkpoint()), "device": "cpu", "precision": "fp32",
                       "warmup": False, "output_resolution": "network"})
    run_infer(gt_bag, tmp_path / "net", params, InferOptions(progress=False))
    assert main(["eval", "--bag", str(tmp_path / "net"), "--json", str(tmp_path / "e.json"), "--name", "tiny"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["num_frames"] == FRAMES and doc["table"] in printed and "| tiny |" in doc["table"]
    assert doc["prediction_topics"]["semseg"] == "/camera/segmentation"
    assert all(np.isfinite(v) for v in doc["headline"].values())
    labels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    up = to_gt_grid("semseg", labels, (4, 6))
    assert up.dtype == np.uint8 and up.shape == (4, 6) and set(np.unique(up)) == set(range(6))
    normals = to_gt_grid("normals", np.tile(np.float32([0, 0, 1]), (2, 3, 1)), (4, 6))
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, rtol=1e-6)


def test_dataset_pairing_by_order_without_recorded_frames(perfect_bag, tmp_path):
    single = tmp_path / "perfect.mcap"  # a single file keeps no custom_data: frames pair with samples by order
    with BagReader(perfect_bag) as r, BagWriter(single) as w:
        for raw in r.messages():
            w.write(raw.topic, raw.msgtype, raw.log_time, raw.data)
    doc = run_bag_eval(single, dataset_root=synth_set(FRAMES), options=EvalOptions(progress=False))
    assert doc["num_frames"] == FRAMES and doc["metrics"]["semseg"]["pixel_acc"] == pytest.approx(100.0)
    one = run_bag_eval(single, options=EvalOptions(progress=False, tasks=["depth"], max_frames=1))
    assert one["tasks"] == ["depth"] and one["num_frames"] == 1


def test_eval_errors_name_what_is_missing(gt_bag, perfect_bag, tmp_path):
    with pytest.raises(BagError, match=r"no output topics of the perception node .*its topics: /camera/camera_info"):
        run_bag_eval(gt_bag, options=EvalOptions(progress=False))
    shifted = tmp_path / "shifted"
    make_synth_bag(shifted, num=FRAMES, start_s=5.0)
    with pytest.raises(BagError, match=r"no frame of the predictions could be paired .*\(3 prediction frame"):
        run_bag_eval(perfect_bag, gt_bag=shifted, options=EvalOptions(progress=False))
    with pytest.raises(BagError, match=r"no prediction topic /camera/saliency for task 'sal'"):
        run_bag_eval(perfect_bag, options=EvalOptions(progress=False, tasks=["sal"]))
    with pytest.raises(BagError, match="either a ground-truth bag or a dataset folder"):
        run_bag_eval(perfect_bag, gt_bag=gt_bag, dataset_root=synth_set(FRAMES))
    assert len(read_bag(perfect_bag)) == FRAMES * (6 + 8)  # inputs + gt, and the 8 output topics
