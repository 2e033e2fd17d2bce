"""Boundary odsF / oisF / AP (SEISM protocol): thinning, matching and aggregation (mtlsi_core.metrics.boundary)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.optimize import linear_sum_assignment
from skimage.morphology import thin as sk_thin

from mtlsi_core.metrics import BoundaryMetric, seg2bmap
from mtlsi_core.metrics.boundary import make_thresholds, match_count
from mtlsi_core.metrics.edge_nms import conv_tri, edge_nms, orientation
from mtlsi_core.metrics.thinning import thin


def test_thin_equals_skimage():
    rng = np.random.default_rng(0)
    for i in range(25):
        img = rng.random((rng.integers(5, 40), rng.integers(5, 40))) < rng.uniform(0.1, 0.9)
        np.testing.assert_array_equal(thin(img), sk_thin(img), err_msg=f"random image {i}")
    blobs = gaussian_filter(rng.random((60, 80)), 3)
    for t in np.quantile(blobs, [0.2, 0.5, 0.8]):
        np.testing.assert_array_equal(thin(blobs >= t), sk_thin(blobs >= t))
    line = np.zeros((6, 6), bool)
    line[1:5, 2] = True
    np.testing.assert_array_equal(thin(line), line)  # a one-pixel line is kept as is


def test_seg2bmap_by_hand():
    seg = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]])
    # a pixel is on a boundary when it differs from its E, S or SE neighbour (last row: E; last column: S)
    expected = np.array([[0, 1, 0], [1, 1, 1], [0, 0, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(seg), expected)


def _brute_force_count(a, b, radius):
    ay, ax = np.nonzero(a)
    by, bx = np.nonzero(b)
    if ay.size == 0 or by.size == 0:
        return 0
    d2 = (ay[:, None] - by[None, :]) ** 2 + (ax[:, None] - bx[None, :]) ** 2
    cost = (d2 > radius * radius).astype(float)
    i, j = linear_sum_assignment(cost)
    return int(np.sum(cost[i, j] == 0))


def _bsds_style_count(a, b, radius):
    """correspondPixels' problem: min-cost perfect matching where each pixel may instead go to an outlier node at
    cost 100 x radius; the number of real pairs in the optimum."""
    ay, ax = np.nonzero(a)
    by, bx = np.nonzero(b)
    n1, n2 = ay.size, by.size
    big = 1e9
    outlier = 100.0 * radius
    cost = np.full((n1 + n2, n2 + n1), big)
    d = np.hypot(ay[:, None] - by[None, :], ax[:, None] - bx[None, :])
    d2 = (ay[:, None] - by[None, :]) ** 2 + (ax[:, None] - bx[None, :]) ** 2
    cost[:n1, :n2] = np.where(d2 <= radius * radius, d, big)
    cost[:n1, n2:] = np.where(np.eye(n1, dtype=bool), outlier, big)  # pixel of a -> its own outlier
    cost[n1:, :n2] = np.where(np.eye(n2, dtype=bool), outlier, big)  # outlier of b <- pixel of b
    cost[n1:, n2:] = outlier  # outlier-outlier pairs
    i, j = linear_sum_assignment(cost)
    return int(np.sum((i < n1) & (j < n2)))


@pytest.mark.parametrize("radius", [1.0, math.sqrt(2), 1.5, 2.3, 3.7])
def test_matching_count_equals_assignment_solutions(radius):
    rng = np.random.default_rng(int(radius * 100))
    for _ in range(30):
        h, w = rng.integers(3, 12, 2)
        a = rng.random((h, w)) < rng.uniform(0.05, 0.5)
        b = rng.random((h, w)) < rng.uniform(0.05, 0.5)
        got = match_count(a, b, radius)
        assert got == _brute_force_count(a, b, radius)
        if a.sum() + b.sum() <= 60:
            assert got == _bsds_style_count(a, b, radius)


def _two_image_metric(**kw):
    # 10x10 images: diagonal sqrt(200); max_dist chosen so that the tolerance is 1.5 px
    return BoundaryMetric("edge", "nyud", protocol="mti-net", thresholds=[0.5, 0.7], max_dist=1.5 / math.sqrt(200),
                          **kw)


def _image_a():
    gt = np.zeros((10, 10), np.uint8)
    gt[2:8, 3] = 1  # vertical line, 6 px
    pred = np.zeros((10, 10), np.float32)
    pred[2:8, 4] = 0.8  # the same line 1 px to the right
    pred[0, 9] = 0.6  # an isolated false positive
    return pred, gt


def _image_b():
    gt = np.zeros((10, 10), np.uint8)
    gt[5, 1:9] = 1  # horizontal line, 8 px
    pred = np.zeros((10, 10), np.float32)
    pred[6, 1:5] = 0.6  # half of it, 1 px below
    return pred, gt


def test_boundary_by_hand():
    m = _two_image_metric(quantize=False)
    m.update(*_image_a())
    m.update(*_image_b())
    acc = m.state()["acc"]
    # image A: t=0.5 -> 7 predicted, 6 matched, 6 GT; t=0.7 -> 6, 6, 6
    # image B: t=0.5 -> 4 predicted, 4 matched, 8 GT; t=0.7 -> 0, 0, 8
    np.testing.assert_array_equal(acc["sumP"], [7 + 4, 6 + 0])
    np.testing.assert_array_equal(acc["cntP"], [6 + 4, 6 + 0])
    np.testing.assert_array_equal(acc["sumR"], [6 + 8, 6 + 8])
    r = m.compute()
    # with cntP = cntR = c: F = 2c / (sumP + sumR): t=0.5 -> 20/25 = 0.8, t=0.7 -> 12/20 = 0.6 -> odsF at 0.5
    assert r["odsf"] == pytest.approx(80.0) and r["ods_threshold"] == pytest.approx(0.5)
    assert r["ods_precision"] == pytest.approx(100 * 10 / 11) and r["ods_recall"] == pytest.approx(100 * 10 / 14)
    # per image best: A at 0.7 (F = 1; at 0.5 F = 12/13), B at 0.5 (F = 2/3; at 0.7 P = 1, R = 0, F = 0)
    # OIS sums: c = 6 + 4, sumP = 6 + 4, sumR = 6 + 8 -> F = 20 / 24
    assert r["oisf"] == pytest.approx(100 * 20 / 24)
    # AP: P-R points (R 6/14, P 1) and (R 10/14, P 10/11), interpolated at recall k/100 inside [6/14, 10/14]
    r0, r1, p0, p1 = 6 / 14, 10 / 14, 1.0, 10 / 11
    ap = sum(p0 + (k / 100 - r0) * (p1 - p0) / (r1 - r0) for k in range(101) if r0 <= k / 100 <= r1) / 100
    assert r["ap"] == pytest.approx(100 * ap)


def test_quantisation_like_the_peers_png():
    # uint8(255 * 0.5) = 127 -> 127/255 < 0.5: the peers' PNG round trip drops p = 0.5 at threshold 0.5
    gt = np.zeros((10, 10), np.uint8)
    gt[2:8, 3] = 1
    pred = np.zeros((10, 10), np.float32)
    pred[2:8, 3] = 0.5
    kw = dict(protocol="mti-net", thresholds=[0.5], max_dist=0.1)
    q = BoundaryMetric("edge", "nyud", **kw)
    q.update(pred, gt)
    raw = BoundaryMetric("edge", "nyud", quantize=False, **kw)
    raw.update(pred, gt)
    assert q.compute()["odsf"] == 0.0
    assert raw.compute()["odsf"] == pytest.approx(100.0)


def test_far_shift_and_ignore_region():
    gt = np.zeros((40, 40), np.uint8)
    gt[5:35, 10] = 1
    m = BoundaryMetric("edge", "nyud", protocol="mti-net", thresholds=3)  # tolerance 0.011 * 56.6 = 0.62 px
    far = np.zeros((40, 40), np.float32)
    far[5:35, 30] = 1.0
    m.update(far, gt)
    assert m.compute()["odsf"] == 0.0
    # predictions inside the ignore region (255) do not count
    g2 = gt.copy()
    g2[:, 25:] = 255
    m2 = BoundaryMetric("edge", "nyud", protocol="mti-net", thresholds=3)
    p2 = far.copy()
    p2[5:35, 10] = 1.0
    m2.update(p2, g2)
    assert m2.compute()["odsf"] == pytest.approx(100.0)


def test_default_thresholds_and_errors():
    t = make_thresholds(99)
    assert t.size == 99 and t[0] == pytest.approx(0.01) and t[-1] == pytest.approx(0.99)
    invpt = BoundaryMetric("edge", "nyud")  # InvPT/TaskPrompter: SEISM read_one_cont_png + HED.txt thresholds
    assert invpt.nms and invpt.strict and invpt.thresholds.size == 101
    assert invpt.thresholds[0] == 0.001 and invpt.thresholds[1] == 0.01 and invpt.thresholds[-1] == 0.999
    mti = BoundaryMetric("edge", "nyud", protocol="mti-net")
    assert not mti.nms and not mti.strict and mti.thresholds.size == 99
    with pytest.raises(ValueError, match="unknown boundary protocol"):
        BoundaryMetric("edge", "nyud", protocol="bsds")
    assert BoundaryMetric("edge", "pascal").max_dist == 0.0075
    assert BoundaryMetric("edge", "nyud").max_dist == 0.011
    m = BoundaryMetric("edge", "nyud", thresholds=3)
    with pytest.raises(ValueError, match="'edge': prediction shape"):
        m.update(np.zeros((4, 5), np.float32), np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match="ground truth must be 0, 1"):
        m.update(np.zeros((4, 5), np.float32), np.full((4, 5), 3, np.uint8))
    with pytest.raises(ValueError, match="probability map"):
        m.update(np.full((4, 5), 2.0, np.float32), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="thresholds"):
        BoundaryMetric("edge", "nyud", thresholds=[0.0, 0.5])


def test_nms_keeps_ridge_and_fades_border():
    e = np.zeros((20, 20), np.float32)
    for col, v in zip(range(8, 13), (0.2, 0.6, 0.9, 0.6, 0.2)):
        e[:, col] = v  # a vertical ridge: constant along y, so the orientation is 0 (compare left/right)
    np.testing.assert_allclose(orientation(e)[:, 6:15], 0.0, atol=1e-6)
    out = edge_nms(e)
    # 1.01 * 0.6 < 0.9 and 1.01 * 0.2 < 0.6: only the ridge column survives
    assert np.count_nonzero(out[:, [8, 9, 11, 12]]) == 0
    # border fade over s = 5 rows: factor y / 5 on rows y and 19 - y
    fade = np.array([0, 0.2, 0.4, 0.6, 0.8] + [1.0] * 10 + [0.8, 0.6, 0.4, 0.2, 0], np.float32)
    np.testing.assert_allclose(out[:, 10], 0.9 * fade, rtol=1e-6)


def test_nms_never_suppresses_a_binary_map_inside():
    rng = np.random.default_rng(0)
    b = (rng.random((30, 30)) < 0.3).astype(np.float32)
    out = edge_nms(b)
    inner = (slice(5, 25), slice(5, 25))
    np.testing.assert_array_equal(out[inner], b[inner])  # 1.01 * 1 exceeds any interpolated value <= 1


def test_conv_tri_by_hand():
    x = np.zeros((5, 5), np.float32)
    x[2, 2] = 16.0
    # r = 1: [1 2 1] / 4 in each direction -> outer product [1 2 1]^T [1 2 1]
    np.testing.assert_allclose(conv_tri(x, 1)[1:4, 1:4], np.outer([1, 2, 1], [1, 2, 1]), rtol=1e-6)
    # r = 2: [1 2 3 2 1] / 9; the total mass is preserved away from the border
    y = np.zeros((11, 11), np.float32)
    y[5, 5] = 81.0
    np.testing.assert_allclose(conv_tri(y, 2)[3:8, 3:8], np.outer([1, 2, 3, 2, 1], [1, 2, 3, 2, 1]), rtol=1e-6)


def test_invpt_protocol_on_blurred_line():
    gt = np.zeros((40, 40), np.uint8)
    gt[:, 20] = 1
    prob = np.zeros((40, 40), np.float32)
    for col, v in zip(range(18, 23), (0.2, 0.6, 0.9, 0.6, 0.2)):
        prob[:, col] = v
    nms = BoundaryMetric("edge", "nyud", thresholds=[0.1, 0.5])
    raw = BoundaryMetric("edge", "nyud", protocol="mti-net", thresholds=[0.1, 0.5], max_dist=0.011)
    nms.update(prob, gt)
    raw.update(prob, gt)
    a_n, a_r = nms.state()["acc"], raw.state()["acc"]
    # NMS keeps the centre column; after the border fade rows 1..38 remain above 0.1 (0.9 * 0.2 = 0.18)
    # and rows 3..36 above 0.5 (0.9 * 0.6 = 0.54; 0.9 * 0.4 = 0.36 is dropped); all match the GT column
    np.testing.assert_array_equal(a_n["sumP"], [38, 34])
    np.testing.assert_array_equal(a_n["cntP"], [38, 34])
    # without NMS the thresholded band is thinned as a whole (counted here with skimage's thinning)
    band = np.floor(prob * 255) / 255
    assert a_r["sumP"][0] == sk_thin(band >= 0.1).sum() and a_r["sumP"][1] == sk_thin(band >= 0.5).sum()
    assert a_r["sumR"][0] == 40
