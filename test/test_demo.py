"""The demo command's driver (`mtlsi_demo`, what `make demo` runs), end to end on a tiny model: it starts the installed
node in its own process, streams synthetic frames over DDS and writes the contact sheet and the summaries."""
from __future__ import annotations

import json
import math
import subprocess

import cv2
import pytest

from node_helpers import check_install, domain_id, ros_env, tiny_checkpoint

pytestmark = pytest.mark.ros


def _run_demo(tmp_path, domain: str, args: str) -> None:
    """The installed demo with the tiny model, writing to tmp_path/out; fails the test unless it exits 0."""
    install = check_install()
    demo = install / "mtlsi_ros" / "lib" / "mtlsi_ros" / "mtlsi_demo"
    cmd = (f"set +u; source {install}/setup.bash; exec {demo} --out {tmp_path / 'out'} --model {tiny_checkpoint()} "
           f"{args}")
    proc = subprocess.run(["bash", "-c", cmd], env=ros_env(domain_id(domain)), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_demo_streams_frames_through_the_node_and_writes_its_outputs(tmp_path):
    _run_demo(tmp_path, "demo", f"--frames 3 --size 96x128 --rate 10 --real-data {tmp_path / 'no_real_frames'}")
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_in"] == summary["frames_out"] == 3
    assert summary["header_mismatches"] == []
    assert {"segmentation", "depth", "normals", "boundary", "output/camera_info"} <= set(summary["topics"])
    assert summary["camera_info_out"]["size"] == [96, 128]
    assert summary["camera"]["profile"] == "nyud"  # the default: the rooms the shipped model was trained on
    scores = summary["scores_vs_synthetic_ground_truth"]
    for task in ("semseg", "depth", "normals", "edge"):  # scored against the synthetic ground truth
        assert math.isfinite(scores[task]["network"]) and math.isfinite(scores[task]["trivial"])
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 3 * 96 and sheet.shape[1] > 5 * 128
    assert "headers equal to the input's: yes" in (out / "summary.txt").read_text()
    assert summary["map"]["frames"] == 24 and cv2.imread(str(out / "map.png")) is not None  # the map step ran
    assert summary["real_frames"] is None and "real frames: none at" in (out / "summary.txt").read_text()


def test_demo_scores_real_frames_through_the_node(tmp_path, real_samples):
    _run_demo(tmp_path, "demo_real", f"--frames 1 --size 96x128 --map-frames 0 --profile basic "
                                      f"--real-data {real_samples}")
    out = tmp_path / "out"
    assert json.loads((out / "summary.json").read_text())["camera"]["profile"] == "basic"
    real = json.loads((out / "summary.json").read_text())["real_frames"]
    assert len(real["frames"]) >= 2 and real["frames_per_task"]["depth"] and real["frames_per_task"]["semseg"]
    for who in ("model", "baseline"):  # the node's answers and the trivial baselines, pooled
        assert math.isfinite(real["pooled"][who]["depth"]["rmse_m"])
        assert 0 <= real["pooled"][who]["semseg"]["pixel_acc"] <= 100
    sheet = cv2.imread(str(out / "real_frames.png"))
    assert sheet is not None and sheet.shape[0] >= len(real["frames"]) * 120
    assert "real NYUDv2 frames through the node" in (out / "summary.txt").read_text()


def test_demo_fails_clearly_on_a_missing_model(tmp_path):
    install = check_install()
    demo = install / "mtlsi_ros" / "lib" / "mtlsi_ros" / "mtlsi_demo"
    missing = tmp_path / "no_such_model.pt"
    cmd = f"set +u; source {install}/setup.bash; exec {demo} --out {tmp_path / 'out'} --model {missing} --frames 1"
    proc = subprocess.run(["bash", "-c", cmd], env=ros_env(domain_id("demo_missing")), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "configure failed" in proc.stderr and str(missing) in proc.stderr  # the node's reason, at once
