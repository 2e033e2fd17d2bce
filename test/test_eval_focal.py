"""mtlsi-eval applies the runtimes' focal-length correction of depth (one shared ``focal_zoom``): evaluated on a
dataset whose camera is not the training camera, its depth agrees with the runtime's given the dataset's focal
length. Synthetic frames always; real NYUDv2 frame 433 with the shipped model where ../shared is present."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from runtime_helpers import tiny_model

from mtlsi_core.checkpoint import atomic_torch_save, make_checkpoint
from mtlsi_core.config import apply_overrides, config_from_dict
from mtlsi_core.data import build_dataset, restore_prediction
from mtlsi_core.data.synth import write_dataset
from mtlsi_core.metrics import DepthMetric
from mtlsi_core.runtime import create_runtime
from mtlsi_core.runtime.processing import focal_zoom
from mtlsi_core.training.evaluate import run_eval
from mtlsi_core.training.evaluation import evaluate_model, evaluation_zoom

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIPPED = Path(__file__).resolve().parents[1] / "mtlsi_core" / "weights" / "synth_edge_lite0.pt"
NYU_FX = 518.8579


class _DepthRecorder:
    """Evaluator stand-in that keeps the depth predictions and scores only depth (fast)."""

    def __init__(self, tasks, dataset):
        self.metric = DepthMetric("depth", "nyud")
        self.preds: list[np.ndarray] = []

    def update(self, preds, targets):
        self.preds.append(preds["depth"])
        self.metric.update(preds["depth"], targets["depth"])

    def compute(self):
        return {"depth": self.metric.compute()}


def _eval_depth(model, dataset, tasks, canonical_focal) -> _DepthRecorder:
    """The evaluation path (``evaluate_model``) with a depth-only recorder; returns the recorder."""
    rec = {}

    def factory(tasks, ds):
        rec["ev"] = _DepthRecorder(tasks, ds)
        return rec["ev"]

    evaluate_model(model, dataset, tasks, "cpu", evaluator_factory=factory, canonical_focal=canonical_focal)
    return rec["ev"]


def _tiny_checkpoint(path: Path, canonical_focal: float) -> Path:
    model, cfg = tiny_model()
    d = cfg.to_dict()
    d["data"]["canonical_focal"] = canonical_focal
    atomic_torch_save(make_checkpoint(model.state_dict(), d, {"note": "focal test"}), path)
    return path


def test_shared_formula():
    # runtime: f = 100 px at width 160 -> network width 96: zoom 100 * 96 / 160 / 80 = 0.75
    assert focal_zoom(100.0, 96 / 160, 80.0) == pytest.approx(0.75)
    assert evaluation_zoom({"scale": 0.6}, 100.0, 80.0) == pytest.approx(0.75)
    assert evaluation_zoom({"scale": 0.6}, None, 80.0) == pytest.approx(0.6)  # unknown camera: the resize only
    assert evaluation_zoom({"scale": 0.6}, 100.0, None) == pytest.approx(0.6)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="focal length"):
            focal_zoom(bad, 1.0, 80.0)


@pytest.mark.parametrize("size", [(64, 96), (128, 192)])
def test_eval_depth_agrees_with_runtime_on_synthetic_frames(tmp_path, size):
    """Frames at the network size and at twice it (the network's aspect ratio, so both paths feed the network the
    same picture), from a camera whose focal length is 1/0.6 of the model's at the network: eval == runtime."""
    root = tmp_path / "synth"
    write_dataset(root, num_train=1, num_val=1, seed=11, size=size, workers=1)
    fx = float(json.loads((root / "camera.json").read_text())["K"][0][0])
    canonical = fx * 96 / size[1] * 0.6  # the scene looks 1/0.6 times closer to the network than in training
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt", canonical)
    rt = create_runtime("torch", str(ckpt), device="cpu")
    cfg = config_from_dict(apply_overrides(torch.load(ckpt, weights_only=False)["config"], []), source="t")
    val = build_dataset(cfg, "val", root=str(root), train=False)
    assert val.focal_length == pytest.approx(fx)

    model = rt.model
    ev = _eval_depth(model, val, cfg.tasks, canonical)
    eval_preds = ev.preds
    runtime_metric = DepthMetric("depth", "nyud")
    for i in range(len(val)):
        raw = val.load_raw(i)
        out = rt.infer([raw["image"]], focal_lengths=[fx])[0]["depth"]
        runtime_metric.update(out, raw["depth"])
        ratio = float(eval_preds[i].mean() / out.mean())
        assert ratio == pytest.approx(1.0, rel=0.01), f"frame {i}: eval / runtime mean depth {ratio:.4f}"
    rmse_eval = ev.compute()["depth"]["rmse"]
    assert rmse_eval == pytest.approx(runtime_metric.compute()["rmse"], rel=0.01)

    # mtlsi-eval itself (the CLI's function) takes canonical_focal from the checkpoint and reports the same figure
    doc = run_eval(ckpt, data=str(root), json_out=None, device="cpu", progress=False, batch_size=1)
    assert doc["canonical_focal"] == pytest.approx(canonical) and doc["dataset_focal"] == pytest.approx(fx)
    assert doc["metrics"]["depth"]["rmse"] == pytest.approx(rmse_eval, rel=1e-6)

    # the previous behaviour (zoom = the resize s alone) is off by the camera's zoom: s against s / 0.6
    old = _eval_depth(model, val, cfg.tasks, None)
    s = 96 / size[1]
    assert float(old.preds[0].mean() / eval_preds[0].mean()) == pytest.approx(s * 0.6, rel=1e-3)


@pytest.mark.real_data
def test_eval_depth_agrees_with_runtime_on_real_frame_433(real_samples, tmp_path):
    """Real NYUDv2 frame 433 (640x480, fx 518.86 px) and the shipped model (canonical focal 259.43 px at 320 wide):
    the evaluation path's depth equals the runtime's given the same network input and focal length."""
    src = real_samples / "multitask"
    rgb, dep = src / "drsleep_three_000433.png", src / "drsleep_three_depth_gt_000433.png"
    if not rgb.is_file() or not dep.is_file():
        pytest.skip(f"frame 433 not found in {src}")
    root = tmp_path / "nyud"
    for f in ("images", "depth", "gt_sets"):
        (root / f).mkdir(parents=True)
    (root / "images" / "433.png").write_bytes(rgb.read_bytes())
    np.save(root / "depth" / "433.npy", cv2.imread(str(dep), cv2.IMREAD_UNCHANGED).astype(np.float32) / 5000.0)
    (root / "gt_sets" / "val.txt").write_text("433\n")

    rt = create_runtime("torch", str(SHIPPED), device="cpu")
    ckpt_cfg = torch.load(SHIPPED, map_location="cpu", weights_only=False)["config"]
    cfg = config_from_dict(apply_overrides(ckpt_cfg, ["data.dataset=nyud", "data.tasks=[depth]"]), source="t")
    val = build_dataset(cfg, "val", root=str(root), train=False)
    assert val.focal_length == pytest.approx(NYU_FX)
    rmse_eval = _eval_depth(rt.model, val, ["depth"], rt.canonical_focal).compute()["depth"]["rmse"]

    # the same network input the evaluation used (the letterboxed frame), through the runtime with the focal
    # length of that picture (518.86 px x the evaluation resize)
    sample = val[0]
    meta = sample["meta"]
    mean = np.asarray(cfg.data.mean, np.float32)[:, None, None]
    std = np.asarray(cfg.data.std, np.float32)[:, None, None]
    net_img = np.clip(np.round((sample["image"].numpy() * std + mean) * 255.0), 0, 255).astype(np.uint8)
    net_img = np.ascontiguousarray(net_img.transpose(1, 2, 0))
    top, left, bottom, right = meta["valid_box"]
    f_net = NYU_FX * (right - left) / 640.0  # the frame's focal length in the pixels of the network input
    out = rt.infer([net_img], output_size="network", focal_lengths=[f_net])
    depth = restore_prediction("depth", out[0]["depth"], meta, undo_zoom=False)
    m = DepthMetric("depth", "nyud")
    m.update(depth, val.load_raw(0)["depth"])
    assert rmse_eval == pytest.approx(m.compute()["rmse"], rel=0.01)
    assert rmse_eval < 1.5  # the evaluation path without the correction reported 2.05 m here
