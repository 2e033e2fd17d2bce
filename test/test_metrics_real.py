"""Metrics on the real NYUDv2 frames of ../shared/data/nyud_real_samples/multitask/ (skipped where absent):
perfect predictions give the perfect score, known perturbations give the known error."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt, gaussian_filter
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from mtlsi_core.metrics import (BoundaryMetric, DepthMetric, MeanIoU, MultiTaskEvaluator, NormalsMetric,
                                seg2bmap)
from mtlsi_core.metrics.boundary import match_count
from mtlsi_core.metrics.thinning import thin

pytestmark = pytest.mark.real_data

FRAMES = ("drsleep_three_{}_000433.png", "drsleep_joint_{}_000464.png")


def _read(root, name):
    path = root / "multitask" / name
    if not path.is_file():
        pytest.skip(f"missing {path}")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def _segm(root, i):
    return _read(root, FRAMES[i].format("segm_gt"))


def _depth(root, i):
    return _read(root, FRAMES[i].format("depth_gt")).astype(np.float64) / 5000.0  # metres, 0 = invalid


def _normals(root):
    v = _read(root, FRAMES[0].format("norm_gt"))[..., ::-1].astype(np.float64)  # BGR -> RGB
    n = 2.0 * v / 255.0 - 1.0
    n[np.all(v == 127, axis=-1)] = 0.0  # the file's "no normal" code (127, 127, 127) -> zero vector = invalid
    return n


def test_semseg_perfect_and_known_relabelling(real_samples):
    gt = _segm(real_samples, 0)
    present = [c for c in np.unique(gt) if c != 255]
    m = MeanIoU("semseg", "nyud")
    m.update(gt.copy(), gt)
    r = m.compute()
    assert r["miou_present"] == pytest.approx(100.0) and r["pixel_acc"] == pytest.approx(100.0)
    # peers' convention: classes absent from this frame count 0 in the mean over the 40 classes
    assert r["miou"] == pytest.approx(100.0 * len(present) / 40)

    # relabel the pixels of class a in the top half as class b
    a, b = present[0], present[1]
    pred = gt.copy()
    changed = (gt == a)
    changed[gt.shape[0] // 2:] = False
    pred[changed] = b
    n_s, n_a, n_b = changed.sum(), (gt == a).sum(), (gt == b).sum()
    assert n_s > 0
    iou_a = (n_a - n_s) / n_a  # TP n_a - n_s, FN n_s, FP 0
    iou_b = n_b / (n_b + n_s)  # TP n_b, FP n_s, FN 0
    m = MeanIoU("semseg", "nyud")
    m.update(pred, gt)
    r = m.compute()
    k = len(present)
    assert r["miou_present"] == pytest.approx(100.0 * (k - 2 + iou_a + iou_b) / k)
    assert r["miou"] == pytest.approx(100.0 * (k - 2 + iou_a + iou_b) / 40)


def test_depth_perfect_and_scaled(real_samples):
    m0, m1 = DepthMetric("depth", "nyud"), DepthMetric("depth", "nyud")
    sq = []
    for i in range(2):
        gt = _depth(real_samples, i)
        valid = gt > 0
        m0.update(gt.astype(np.float32), gt)
        pred = np.where(valid, 1.1 * gt, 7.0).astype(np.float64)  # invalid pixels: anything
        m1.update(pred, gt)
        sq.append(gt[valid] ** 2)
    r0, r1 = m0.compute(), m1.compute()
    assert r0["rmse"] < 1e-6 and r0["abs_rel"] < 1e-6 and r0["delta1"] == 100.0
    d2 = np.concatenate(sq)
    assert r1["rmse"] == pytest.approx(0.1 * math.sqrt(d2.mean()), rel=1e-9)
    assert r1["abs_rel"] == pytest.approx(0.1, rel=1e-9)
    assert r1["log_rmse"] == pytest.approx(math.log(1.1), rel=1e-9)
    assert r1["delta1"] == 100.0  # 1.1 < 1.25 everywhere
    assert r1["pixels"] == d2.size


def test_normals_perfect_and_rotated_by_10_degrees(real_samples):
    gt = _normals(real_samples)
    valid = np.any(gt != 0, axis=-1)
    assert 0.3 < valid.mean() < 1.0
    m = NormalsMetric("normals", "nyud")
    m.update(gt.astype(np.float32), gt)
    assert m.compute()["mean"] < 1e-3
    # rotate every vector by 10 degrees towards a direction perpendicular to it
    u = gt / np.maximum(np.linalg.norm(gt, axis=-1, keepdims=True), 1e-12)
    perp = np.cross(u, np.array([0.0, 0.0, 1.0]))
    small = np.linalg.norm(perp, axis=-1) < 0.1
    perp[small] = np.cross(u[small], np.array([1.0, 0.0, 0.0]))
    perp /= np.maximum(np.linalg.norm(perp, axis=-1, keepdims=True), 1e-12)
    th = math.radians(10.0)
    rotated = math.cos(th) * u + math.sin(th) * perp
    m = NormalsMetric("normals", "nyud")
    m.update(rotated.astype(np.float32), gt)
    r = m.compute()
    assert r["pixels"] == valid.sum()
    assert r["mean"] == pytest.approx(10.0, abs=1e-3)
    assert r["median"] == pytest.approx(10.0, abs=0.01)
    assert r["rmse"] == pytest.approx(10.0, abs=1e-3)
    assert r["within_11.25"] == 100.0 and r["within_22.5"] == 100.0


def _edges(root, i, frame=0):
    e = seg2bmap(_segm(root, i)).astype(np.uint8)
    if frame:
        e[:frame], e[-frame:], e[:, :frame], e[:, -frame:] = 0, 0, 0, 0
    return e


def test_boundary_perfect_shifted_and_far(real_samples):
    gt = _edges(real_samples, 0)
    # keep boundaries 6 px away from the image border: a 1-px shift then loses no pixel off the image, and the
    # NMS border fade of the default (InvPT) protocol (5 px) does not touch them
    gt[:6], gt[-6:], gt[:, :6], gt[:, -6:] = 0, 0, 0, 0
    for shift in (0, 1):
        m = BoundaryMetric("edge", "nyud", thresholds=3)
        m.update(np.roll(gt, shift, axis=1).astype(np.float32), gt)
        r = m.compute()
        assert r["odsf"] == pytest.approx(100.0) and r["oisf"] == pytest.approx(100.0)
    # shifted by 40 px along both axes (tolerance 0.011 x 800 = 8.8 px): only crossings with other boundaries match,
    # so F is bounded by the share of predicted pixels that have any GT pixel within 8.8 px
    shifted = np.roll(np.roll(gt, 40, axis=0), 40, axis=1)
    m = BoundaryMetric("edge", "nyud", thresholds=3)
    m.update(shifted.astype(np.float32), gt)
    r = m.compute()
    near = distance_transform_edt(~thin(gt.astype(bool))) <= 0.011 * 800
    bound = 100.0 * near[thin(shifted.astype(bool))].mean()
    assert r["odsf"] <= bound + 1e-9
    assert r["odsf"] < 50.0


def test_boundary_matching_on_real_sized_graph(real_samples):
    # a blurred, noisy boundary map of a real frame: the kind of graph that made scipy's Hopcroft-Karp hang here
    gt = thin(_edges(real_samples, 0).astype(bool))
    rng = np.random.default_rng(0)
    prob = gaussian_filter(np.roll(gt.astype(float), 2, axis=0), 1.5) * 3
    prob += 0.15 * gaussian_filter(rng.random(gt.shape), 4)
    pred = thin(prob >= 0.08)
    got = match_count(pred, gt, 8.8)
    # cross-check on a crop with a different max-flow algorithm (Edmonds-Karp)
    crop = (slice(100, 260), slice(200, 360))
    a, b = pred[crop], gt[crop]
    ay, ax = np.nonzero(a)
    by, bx = np.nonzero(b)
    d2 = (ay[:, None] - by[None, :]) ** 2 + (ax[:, None] - bx[None, :]) ** 2
    i, j = np.nonzero(d2 <= 8.8 ** 2)
    n1, n2 = ay.size, by.size
    src = np.concatenate([np.zeros(n1, int), 1 + i, 1 + n1 + np.arange(n2)])
    dst = np.concatenate([1 + np.arange(n1), 1 + n1 + j, np.full(n2, n1 + n2 + 1)])
    g = csr_matrix((np.ones(src.size, np.int32), (src, dst)), shape=(n1 + n2 + 2,) * 2)
    assert match_count(a, b, 8.8) == maximum_flow(g, 0, n1 + n2 + 1, method="edmonds_karp").flow_value
    assert 0 < got <= min(pred.sum(), gt.sum())


def test_evaluator_on_real_frames_perfect_and_merged(real_samples):
    tasks = ["semseg", "depth", "edge"]
    frames = []
    for i in range(2):
        seg, depth, edge = _segm(real_samples, i), _depth(real_samples, i), _edges(real_samples, i, frame=6)
        frames.append(({"semseg": seg.copy(), "depth": depth.astype(np.float32), "edge": edge.astype(np.float32)},
                       {"semseg": seg, "depth": depth, "edge": edge}))
    kw = {"edge": {"thresholds": 3}}
    whole = MultiTaskEvaluator(tasks, "nyud", **kw)
    parts = [MultiTaskEvaluator(tasks, "nyud", **kw) for _ in range(2)]
    for i, (p, g) in enumerate(frames):
        whole.update(p, g)
        parts[i].update(p, g)
    parts[0].merge(parts[1].state())
    r, r2 = whole.compute(), parts[0].compute()
    assert r["semseg"]["miou_present"] == pytest.approx(100.0)
    assert r["depth"]["rmse"] < 1e-6
    assert r["edge"]["odsf"] == pytest.approx(100.0)
    for t in tasks:
        for k, v in r[t].items():
            if isinstance(v, float):
                assert r2[t][k] == pytest.approx(v), (t, k)
