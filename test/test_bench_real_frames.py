"""benchmarks/real_frames.py: label conventions and boundary ground truth by hand (always), a tiny model on one real
frame (skipped where ../shared is absent), and the clean skip without the frames."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime_helpers import tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_frames", REPO / "benchmarks" / "real_frames.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_label_conventions_and_edges(bench):
    seg40 = np.array([[0, 1, 1], [40, 2, 1]], np.uint8)  # 1..40, 0 = unlabelled
    np.testing.assert_array_equal(bench.seg40_to_labels(seg40), [[255, 0, 0], [39, 1, 0]])
    with pytest.raises(ValueError, match="up to 41"):
        bench.seg40_to_labels(np.array([[41]], np.uint8))
    lab = np.array([[0, 0, 1], [0, 0, 1], [255, 2, 2]], np.uint8)
    # right or lower neighbour differs -> 1; unlabelled pixels -> 255
    np.testing.assert_array_equal(bench.label_edges(lab), [[0, 1, 0], [1, 1, 1], [255, 0, 0]])


def test_skips_cleanly_without_frames(bench, tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 0
    assert "skipped" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


@pytest.mark.real_data
def test_tiny_model_on_real_frame_433(bench, real_samples, tmp_path):
    frames = {f.name: f for f in bench.discover(real_samples)}
    assert "nyu_0433" in frames  # present in both folders, scored once
    assert set(frames["nyu_0433"].gt) == {"depth", "normals", "labels"}
    rc = bench.main(["--model", str(tiny_checkpoint()), "--data", str(real_samples), "--frames", "nyu_0433",
                     "--thresholds", "3", "--out", str(tmp_path), "--name", "t", "--tile", "48", "64"])
    assert rc == 0
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["frames_per_task"] == {t: ["nyu_0433"] for t in ("depth", "normals", "semseg", "edge")}
    frame = doc["per_frame"][0]
    for who in ("model", "baseline"):  # one frame: pooled == per frame
        assert doc["pooled"][who] == frame[who]
    # baselines checked independently: 'wall' everywhere -> pixel accuracy = wall share of the labelled pixels
    seg = cv2.imread(str(real_samples / "multitask" / "drsleep_three_segm_gt_000433.png"), cv2.IMREAD_UNCHANGED)
    wall = 100.0 * np.mean(seg[seg != 255] == 0)
    assert frame["baseline"]["semseg"]["pixel_acc"] == pytest.approx(wall, abs=1e-3)
    assert frame["baseline"]["edge"]["odsF"] == 0.0
    d = cv2.imread(str(real_samples / "multitask" / "drsleep_three_depth_gt_000433.png"), cv2.IMREAD_UNCHANGED) / 5000.0
    v = d[d > 0]
    assert frame["baseline"]["depth"]["rmse_m"] == pytest.approx(float(v.std()), rel=1e-3)  # constant = mean
    assert "cpu_model" in doc["machine"]
    sheet = cv2.imread(str(tmp_path / "t_sheet.png"))
    assert sheet.shape[1] == 4 + 9 * (64 + 4)  # input + GT / prediction for 4 tasks


# ------------------------------------------------------------------ --anchor-gt-floor, on synthetic stand-in frames


def _standin_frames(root: Path, size=(120, 160)):
    """A synthetic nyud ground-robot frame written as a real frame (multitask/ layout: RGB, uint16 depth / 5000,
    0..39 labels); returns the frame and its camera's mount."""
    from mtlsi_core.data.sequence import SequenceSpec, make_sequence

    seq = make_sequence(SequenceSpec(4, "ground", frames=1, size=size, profile="nyud"))
    f = seq.render(0)
    mt = root / "multitask"
    mt.mkdir(parents=True)
    cv2.imwrite(str(mt / "drsleep_synth_000001.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    d = np.where(np.isfinite(f.depth) & (f.depth > 0), f.depth, 0.0)
    cv2.imwrite(str(mt / "drsleep_synth_depth_gt_000001.png"), np.clip(np.round(d * 5000), 0, 65535).astype(np.uint16))
    cv2.imwrite(str(mt / "drsleep_synth_segm_gt_000001.png"), f.semseg.astype(np.uint8))
    return f, seq.mount


def test_gt_floor_anchoring_recovers_a_scaled_prediction(bench, tmp_path):
    """A prediction at 0.7x the truth with the true labels: the mount fitted to the ground-truth floor gives the
    scale back and the anchored depth the truth's."""
    from mtlsi_core.tasks import NYUD_CLASSES

    _, mount = _standin_frames(tmp_path)
    gt = bench.load_ground_truth(bench.discover(tmp_path)[0])
    floor = gt["semseg"] == NYUD_CLASSES.index("floor")
    assert floor.sum() > bench.MIN_FLOOR_PIXELS
    pred = {"depth": gt["depth"] * np.float32(0.7), "semseg": gt["semseg"].copy(),
            "semseg_confidence": np.ones(floor.shape, np.float32)}
    a = bench.GtFloorAnchoring("nyud")
    row = a.add("nyu_0001", gt, pred)
    np.testing.assert_array_equal(pred["depth"], gt["depth"] * np.float32(0.7))  # the prediction is left as it was
    assert row["anchored"] and row["status"] == "anchored" and row["scale"] == pytest.approx(1 / 0.7, rel=0.01)
    fitted = row["plane"]["offset_m"]
    assert fitted == pytest.approx(mount.height_m, abs=0.02)
    doc = a.doc()
    assert doc["mount_source"] == bench.MOUNT_SOURCE and doc["frames_anchored"] == ["nyu_0001"]
    assert doc["pooled"]["with"]["rmse_m"] < 0.05 < doc["pooled"]["without"]["rmse_m"]
    assert doc["pooled"]["with"]["delta1_pct"] > 99 and doc["target_met"] is True
    # a frame without label ground truth is reported, not anchored
    assert a.add("x", {"image": gt["image"], "depth": gt["depth"]}, pred)["anchored"] is False


def test_anchor_gt_floor_option_writes_its_own_file(bench, tmp_path):
    _standin_frames(tmp_path / "data")
    out = tmp_path / "out"
    rc = bench.main(["--model", str(tiny_checkpoint()), "--data", str(tmp_path / "data"), "--thresholds", "3",
                     "--out", str(out), "--tile", "48", "64", "--anchor-gt-floor"])
    assert rc == 0
    doc = json.loads((out / f"real_frames_anchored_{tiny_checkpoint().stem}.json").read_text())
    a = doc["anchoring"]
    assert a["mount_source"] == "mount from each frame's ground-truth floor: simulates a calibrated robot"
    assert a["frames_anchored"] == ["nyu_0001"] and isinstance(a["target_met"], bool)
    plain = {k: v for k, v in doc["pooled"]["model"]["depth"].items() if not k.endswith("_median_scaled")}
    assert a["pooled"]["without"] == plain  # unanchored = the plain score
    assert not (out / f"real_frames_{tiny_checkpoint().stem}.json").exists()
