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
