"""The shared evaluation path: an oracle network that outputs the ground truth must score perfectly, also when
the frames are larger than the network input (predictions mapped back to the original resolution)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtlsi_core.config import load_config
from mtlsi_core.data import build_dataset
from mtlsi_core.data.synth import write_dataset
from mtlsi_core.metrics import MultiTaskEvaluator
from mtlsi_core.training.evaluation import evaluate_model

TINY = Path(__file__).parent / "configs" / "tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Oracle(nn.Module):
    """Recognises each (evaluation-transformed) input image and returns its own targets as raw outputs."""

    def __init__(self, dataset, num_classes: int = 40):
        super().__init__()
        self.num_classes = num_classes
        self.table = {}
        for i in range(len(dataset)):
            s = dataset[i]
            self.table[s["image"].numpy().tobytes()] = s

    def forward(self, x: torch.Tensor) -> dict:
        out: dict[str, list[torch.Tensor]] = {"semseg": [], "depth": [], "normals": [], "edge": []}
        for img in x:
            gt = self.table[img.contiguous().numpy().tobytes()]
            sem = torch.where(gt["semseg"] == 255, 0, gt["semseg"])
            out["semseg"].append(F.one_hot(sem, self.num_classes).permute(2, 0, 1).float() * 10)
            out["depth"].append(gt["depth"].float())
            out["normals"].append(gt["normals"].float())
            out["edge"].append(torch.where(gt["edge"] == 1, 20.0, -20.0))
        return {"final": {t: torch.stack(v) for t, v in out.items()}, "coarse": {}}


def _mean_depth(ds) -> float:
    d = np.concatenate([ds.load_raw(i)["depth"].ravel() for i in range(len(ds))])
    return float(d[d > 0].mean())


def test_oracle_scores_perfectly_at_input_resolution(tmp_path):
    cfg = load_config(TINY)
    write_dataset(tmp_path, num_train=1, num_val=3, seed=5, size=(64, 96), workers=1)
    val = build_dataset(cfg, "val", root=str(tmp_path), train=False)
    res = evaluate_model(Oracle(val), val, cfg.tasks, "cpu", batch_size=2).metrics
    assert res["semseg"]["miou_present"] == pytest.approx(100.0) and res["semseg"]["pixel_acc"] == pytest.approx(100.0)
    assert res["depth"]["headline"] == pytest.approx(0.0, abs=1e-6)
    assert res["normals"]["headline"] == pytest.approx(0.0, abs=0.05)
    # the boundary protocol (quantisation, thinning / NMS, matching) does not give exactly 100 for a perfect map:
    # compare with the metric fed the ground truth itself
    direct = MultiTaskEvaluator(cfg.tasks, val)
    for i in range(len(val)):
        gt = val.load_raw(i)
        direct.update({"semseg": gt["semseg"], "depth": gt["depth"], "normals": gt["normals"],
                       "edge": gt["edge"].astype(np.float32)}, {t: gt[t] for t in cfg.tasks})
    assert res["edge"]["headline"] == pytest.approx(direct.compute()["edge"]["headline"], abs=1e-6)
    assert res["edge"]["headline"] > 90.0


def test_oracle_on_larger_frames_is_mapped_back_to_their_grid(tmp_path):
    # 96x144 frames are shrunk by 2/3 to the 64x96 input; predictions go back to 96x144 before scoring and
    # depth's evaluation zoom is undone (forgetting it would leave an error of ~1/3 of the depth).
    cfg = load_config(TINY)
    write_dataset(tmp_path, num_train=1, num_val=3, seed=4, size=(96, 144), workers=1)
    val = build_dataset(cfg, "val", root=str(tmp_path), train=False)
    saved = tmp_path / "pngs"
    res = evaluate_model(Oracle(val), val, cfg.tasks, "cpu", batch_size=2, save_dir=saved).metrics
    assert res["semseg"]["pixel_acc"] > 90.0
    assert res["depth"]["headline"] < 0.1 * _mean_depth(val)
    assert res["normals"]["headline"] < 10.0
    assert res["edge"]["headline"] > 90.0
    import cv2

    pngs = sorted(saved.glob("*.png"))
    assert len(pngs) == 3 * len(cfg.tasks)
    assert all(cv2.imread(str(p)).shape == (96, 144, 3) for p in pngs)
