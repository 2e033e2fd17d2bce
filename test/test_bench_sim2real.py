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
              "assets_fda": _scores(miou=38.0, agree=85.0, diff=4.0),  # photos better; mIoU 6 % worse: 1.5 % of 4
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


def _real(rmse=0.7, d1=65.0, scaled=0.5, miou=20.0, acc=50.0, ods=46.0, mErr=25.0):
    return {"depth": {"rmse_m": rmse, "delta1_pct": d1, "rmse_m_median_scaled": scaled},
            "semseg": {"mIoU_gt_classes": miou, "pixel_acc": acc}, "edge": {"odsF": ods},
            "normals": {"mErr_deg": mErr}}


def test_shipping_rule(bench):
    shipped = {**_scores(), "real": _real()}
    # better on RMSE, δ1, pixel accuracy, normals; worse on scaled RMSE, mIoU, odsF: 4 of 7, not shipped
    four = {**_scores(), "real": _real(rmse=0.6, d1=70.0, scaled=0.55, miou=19.0, acc=51.0, ods=45.0, mErr=24.0)}
    v = bench.shipping_verdict({"shipped": shipped, "assets": four}, "assets")
    assert (v["wins"], v["of"], v["ship"]) == (4, 7, False)
    assert v["real"]["depth RMSE"]["better"] and not v["real"]["odsF"]["better"]
    five = copy.deepcopy(four)
    five["real"]["edge"]["odsF"] = 47.0  # a fifth figure better: shipped
    assert bench.shipping_verdict({"shipped": shipped, "assets": five}, "assets")["ship"]
    # ... unless a synthetic nyud val headline is more than 10 % worse (mIoU 40 -> 35.9: 10.25 %)
    five["synthetic"]["nyud"]["headline"]["semseg"] = 35.9
    v = bench.shipping_verdict({"shipped": shipped, "assets": five}, "assets")
    assert v["nyud_val"]["semseg"]["change"] == pytest.approx(0.1025) and not v["ship"]
    assert bench.shipping_verdict({"shipped": _scores(), "assets": five}, "assets") is None  # no real scores
    no_normals = copy.deepcopy(shipped)
    del no_normals["real"]["normals"]  # real frames without normals: that figure cannot be better
    v_nn = bench.shipping_verdict({"shipped": no_normals, "assets": four}, "assets")
    assert v_nn["real"]["normals mErr (433)"] == {"candidate": 24.0, "shipped": None, "better": False}
    assert v_nn["wins"] == 3 and "| normals mErr (433) | 24.000 | – | no |" in bench.markdown(
        {"iterations": 1, "lr": 1e-4, "machine": {}, "scores": {}, "choice_rule": "x", "choice": {}, "shipping": v_nn,
         "runs": {}})
    assert "do not ship" in bench.markdown({"iterations": 1, "lr": 1e-4, "machine": {}, "scores": {},
                                            "choice_rule": "x", "choice": {}, "shipping": v, "runs": {}})


def test_nothing_is_exported_when_the_rule_does_not_pass(bench, tmp_path):
    args = bench.build_parser().parse_args(["report", "--export-weights", str(tmp_path / "m.pt")])
    assert bench.ship({"shipping": None}, args) is None
    assert bench.ship({"shipping": {"ship": False, "wins": 4, "of": 7}}, args) is None
    assert not (tmp_path / "m.pt").exists()
