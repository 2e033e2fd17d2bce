"""benchmarks/sim2real.py: the choice rule on made-up scores (keep / drop, both directions of every metric) and the
blind photo criterion on a tiny model and a few made-up photos."""
from __future__ import annotations

import copy
import importlib.util
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
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("sim2real", REPO / "benchmarks" / "sim2real.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _scores(miou=40.0, rmse=0.4, agree=80.0, diff=5.0):
    head = {"semseg": miou, "depth": rmse, "normals": 12.0, "edge": 75.0}
    return {"synthetic": {s: {"headline": dict(head)} for s in ("nyud", "assets")},
            "photos": {"label_agreement_pct": agree, "depth_rel_diff_pct": diff, "normals_diff_deg": 10.0}}


def test_synthetic_change_signs(bench):
    ref = _scores()["synthetic"]
    assert bench.synthetic_change(_scores(miou=44.0)["synthetic"], ref) < 0  # better mIoU: negative change
    assert bench.synthetic_change(_scores(rmse=0.44)["synthetic"], ref) > 0  # worse depth: positive change
    assert bench.synthetic_change(ref, ref) == 0


def test_choice_rule(bench):
    base = _scores()
    scores = {"control": base,
              "assets": _scores(miou=40.4, agree=82.0, diff=4.5),  # slightly better everywhere: kept
              "assets_fda": _scores(miou=38.0, agree=85.0, diff=4.0),  # photos better; mIoU 6 % worse = 1.5 % of 4 tasks
              "shipped": base, "shipped+adabn_head": _scores(rmse=0.8, agree=90.0, diff=3.0)}
    c = bench.choose(scores)
    assert c["assets (meshes, photo textures, HDR light)"]["keep"]
    fda = c["Fourier style of real photos"]
    assert fda["synthetic_change"] == pytest.approx((40.4 - 38.0) / 40.4 / 4) and fda["keep"]  # within the 2 %
    assert not c["AdaBN (head) on shipped"]["keep"]  # synthetic depth twice as bad
    assert "AdaBN (head) on control" not in c  # no such model: no such comparison
    worse_photos = copy.deepcopy(scores)
    worse_photos["assets"]["photos"]["depth_rel_diff_pct"] = 6.0  # less consistent depth on photos: dropped
    assert not bench.choose(worse_photos)["assets (meshes, photo textures, HDR light)"]["keep"]


def test_flip_consistency_on_a_tiny_model(bench, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(0, 255, (40, 56, 3), np.uint8)
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), img)
    out = bench.flip_consistency(tiny_checkpoint(), tmp_path, 3)
    assert out["photos"] == 3
    assert 0 <= out["label_agreement_pct"] <= 100 and out["depth_rel_diff_pct"] >= 0
    assert 0 <= out["normals_diff_deg"] <= 180
