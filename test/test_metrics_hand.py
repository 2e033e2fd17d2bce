"""mIoU, depth, normals and maxF against values worked out by hand on tiny arrays (mtlsi_core.metrics)."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from mtlsi_core.metrics import METRICS, DepthMetric, MaxFMetric, MeanIoU, NormalsMetric
from mtlsi_core.tasks import TASKS


def test_registry_names_match_metrics():
    assert set(METRICS) == {spec.metric for spec in TASKS.values()}


def test_miou_by_hand():
    gt = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 0, 2]], np.uint8)
    m = MeanIoU("semseg", "nyud")
    m.update(pred, gt)
    r = m.compute()
    # valid pixels (gt != 255): (0,0) 0->0 TP0; (0,1) 0->1 FN0 FP1; (0,2) 1->1 TP1; (1,0) 1->1 TP1; (1,1) 2->0 FN2 FP0
    # IoU0 = 1/(1+1+1) = 1/3, IoU1 = 2/(2+1+0) = 2/3, IoU2 = 0/(0+0+1) = 0; 37 classes absent -> IoU 0 (InvPT)
    assert r["miou"] == pytest.approx(100 * (1 / 3 + 2 / 3 + 0) / 40)
    assert r["miou_present"] == pytest.approx(100 * (1 / 3 + 2 / 3 + 0) / 3)
    assert r["pixel_acc"] == pytest.approx(100 * 3 / 5)
    assert r["iou/wall"] == pytest.approx(100 / 3) and r["iou/floor"] == pytest.approx(200 / 3)
    assert r["headline"] == r["miou"] and r["headline_name"] == "mIoU (%)"


def test_miou_is_dataset_level_not_mean_of_images():
    # image 1: class 0 perfect (1 px), image 2: class 0 -> predicted 1 on 3 px
    m = MeanIoU("human_parts", "pascal", skip_images_without_foreground=False)
    m.update(np.array([[0]]), np.array([[0]]))
    m.update(np.array([[1, 1, 1]]), np.array([[0, 0, 0]]))
    r = m.compute()
    # sums: class 0 TP 1, FN 3 -> 1/4; class 1 TP 0, FP 3 -> 0; classes 2..6 absent -> 0; mean over 7
    assert r["miou"] == pytest.approx(100 * (1 / 4) / 7)


def test_human_parts_skips_images_without_parts():
    m = METRICS["miou"]("human_parts", "pascal", **dict(TASKS["human_parts"].metric_kwargs))
    m.update(np.array([[3, 3]]), np.array([[0, 255]]))  # only background/ignore: skipped (InvPT AddIgnoreRegions)
    m.update(np.array([[1, 0]]), np.array([[1, 0]]))
    r = m.compute()
    assert r["images"] == 1 and r["images_skipped"] == 1
    assert r["miou"] == pytest.approx(100 * 2 / 7)


def test_miou_rejects_bad_labels_and_shapes():
    m = MeanIoU("semseg", "nyud")
    with pytest.raises(ValueError, match="ground-truth labels \\[40\\]"):
        m.update(np.zeros((2, 2), np.uint8), np.array([[0, 40], [1, 255]], np.uint8))
    with pytest.raises(ValueError, match="predicted labels \\[41\\]"):
        m.update(np.array([[0, 41]], np.uint8), np.array([[0, 1]], np.uint8))
    with pytest.raises(ValueError, match="'semseg': prediction shape \\(2, 3\\) does not match ground-truth shape"):
        m.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match="integer class ids"):
        m.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8))


def test_depth_by_hand():
    gt = np.array([[1.0, 2.0], [0.0, 4.0]])
    pred = np.array([[2.0, 2.0], [5.0, 3.0]], np.float32)
    m = DepthMetric("depth", "nyud")
    m.update(pred, gt)
    r = m.compute()
    # valid (gt != 0): errors d - d* = 1, 0, -1 over gt 1, 2, 4
    assert r["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert r["abs_rel"] == pytest.approx((1 / 1 + 0 + 1 / 4) / 3)
    assert r["sq_rel"] == pytest.approx((1 / 1 + 0 + 1 / 4) / 3)
    assert r["log_rmse"] == pytest.approx(math.sqrt((math.log(2) ** 2 + 0 + math.log(4 / 3) ** 2) / 3))
    assert r["delta1"] == pytest.approx(100 / 3)  # ratios 2, 1, 4/3: only 1 < 1.25
    # a second image: dataset-level sums, not a mean of per-image RMSEs
    m.update(np.array([[2.5]]), np.array([[2.0]]))
    assert m.compute()["rmse"] == pytest.approx(math.sqrt((2 + 0.25) / 4))


def test_depth_nonpositive_prediction_is_clamped_like_invpt():
    m = DepthMetric("depth", "nyud")
    m.update(np.array([[0.0, -1.0]]), np.array([[1.0, 2.0]]))
    r = m.compute()
    assert r["rmse"] == pytest.approx(math.sqrt(((1e-9 - 1) ** 2 + (1e-9 - 2) ** 2) / 2))
    assert math.isfinite(r["log_rmse"])
    with pytest.raises(ValueError, match="non-finite"):
        m.update(np.array([[np.nan]]), np.array([[1.0]]))


def test_normals_by_hand():
    gt = np.array([[[0, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]]], np.float32)
    pred = np.array([[[1, 0, 0], [1, 1, 0], [2, 0, 0], [1, 0, 0], [0, 0, 0]]], np.float32)
    m = NormalsMetric("normals", "nyud")
    m.update(pred, gt)
    r = m.compute()
    # errors: 90, 45, 0 (scale does not matter), invalid (zero GT), 90 (zero prediction, as the peers)
    errs = [90.0, 45.0, 0.0, 90.0]
    assert r["pixels"] == 4
    assert r["mean"] == pytest.approx(sum(errs) / 4)
    assert r["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errs) / 4))
    assert r["median"] == pytest.approx(67.5, abs=0.01)  # (45 + 90) / 2, within one 0.01-degree bin
    for key in ("within_11.25", "within_22.5", "within_30"):
        assert r[key] == pytest.approx(25.0)


def test_normals_median_over_dataset():
    rng = np.random.default_rng(0)
    m = NormalsMetric("normals", "nyud")
    all_err = []
    for _ in range(3):
        gt = rng.normal(size=(6, 7, 3))
        pred = gt + rng.normal(scale=0.5, size=gt.shape)
        m.update(pred, gt)
        cosang = np.sum(gt * pred, -1) / np.linalg.norm(gt, axis=-1) / np.linalg.norm(pred, axis=-1)
        all_err.append(np.degrees(np.arccos(np.clip(cosang, -1, 1))).ravel())
    e = np.concatenate(all_err)
    r = m.compute()
    assert r["mean"] == pytest.approx(e.mean(), abs=1e-6)
    assert r["median"] == pytest.approx(np.median(e), abs=0.01)


def test_maxf_by_hand():
    gt = np.array([[1, 1, 0, 0, 255]], np.uint8)
    pred = np.array([[0.9, 0.32, 0.62, 0.12, 0.99]], np.float32)
    m = MaxFMetric("sal", "pascal")
    m.update(pred, gt)
    r = m.compute()
    # F = 1.3 P R / (0.3 P + R) over dataset counts (AP = 2):
    #   t <= 0.10: PP 4, TP 2 -> P 1/2, R 1   -> 0.65 / 1.15
    #   t 0.15..0.30: PP 3, TP 2 -> P 2/3, R 1 -> (1.3 * 2/3) / 1.2
    #   t 0.35..0.60: PP 2, TP 1 -> P 1/2, R 1/2 -> 0.325 / 0.65
    #   t 0.65..0.90: PP 1, TP 1 -> P 1, R 1/2 -> 0.65 / 0.8 = 0.8125  <- max, first at 0.65
    #   t = 0.95: PP 0 -> NaN -> 0
    _, _, f = m.f_measures()
    expected = [0.65 / 1.15] * 2 + [1.3 * 2 / 3 / 1.2] * 4 + [0.5] * 6 + [0.8125] * 6 + [0.0]
    np.testing.assert_allclose(f, expected, rtol=1e-12)
    assert r["maxf"] == pytest.approx(81.25)
    assert r["threshold"] == pytest.approx(0.65)
    assert len(m.thresholds) == 19


def test_maxf_invpt_double_sigmoid():
    gt = np.array([[1, 1, 0, 0]], np.uint8)
    pred = np.array([[0.9, 0.32, 0.62, 0.12]], np.float32)
    m = MaxFMetric("sal", "pascal", invpt_double_sigmoid=True)
    m.update(pred, gt)
    # sigmoid(p) = 0.711, 0.579, 0.650, 0.530: the 1-TP/1-PP case is only reached at t = 0.70
    r = m.compute()
    assert r["maxf"] == pytest.approx(81.25) and r["threshold"] == pytest.approx(0.70)


def test_maxf_rejects_bad_inputs():
    m = MaxFMetric("sal", "pascal")
    with pytest.raises(ValueError, match="probability map"):
        m.update(np.array([[1.5]]), np.array([[1]]))
    with pytest.raises(ValueError, match="ground truth must be 0, 1"):
        m.update(np.array([[0.5]]), np.array([[2]]))


@pytest.mark.parametrize("task,dataset,make", [
    ("semseg", "nyud", lambda r: (r.integers(0, 40, (5, 6)), r.integers(0, 40, (5, 6)))),
    ("depth", "nyud", lambda r: (r.random((5, 6)) + 0.1, r.random((5, 6)) * 3)),
    ("normals", "nyud", lambda r: (r.normal(size=(5, 6, 3)), r.normal(size=(5, 6, 3)))),
    ("sal", "pascal", lambda r: (r.random((5, 6)).astype(np.float32), r.integers(0, 2, (5, 6)))),
])
def test_state_merge_equals_single_pass(task, dataset, make):
    rng = np.random.default_rng(3)
    data = [make(rng) for _ in range(4)]
    cls = METRICS[TASKS[task].metric]
    whole, a, b = cls(task, dataset), cls(task, dataset), cls(task, dataset)
    for i, (p, g) in enumerate(data):
        whole.update(p, g)
        (a if i % 2 else b).update(p, g)
    a.merge(pickle.loads(pickle.dumps(b.state())))
    for k, v in whole.compute().items():
        if isinstance(v, float):
            assert a.compute()[k] == pytest.approx(v, rel=1e-12), k


def test_merge_rejects_different_settings():
    a = NormalsMetric("normals", "nyud", median_bin_deg=0.01)
    b = NormalsMetric("normals", "nyud", median_bin_deg=0.1)
    with pytest.raises(ValueError, match="different settings"):
        a.merge(b.state())
    with pytest.raises(ValueError, match="task"):
        MeanIoU("semseg", "nyud").merge(MeanIoU("human_parts", "pascal").state())


def test_wrong_task_or_dataset_rejected():
    with pytest.raises(ValueError, match="scored with metric 'miou'"):
        DepthMetric("semseg", "nyud")
    with pytest.raises(ValueError, match="dataset 'nyud' has no task 'sal'"):
        MaxFMetric("sal", "nyud")
    with pytest.raises(ValueError, match="no valid depth pixel"):
        DepthMetric("depth", "nyud").compute()
