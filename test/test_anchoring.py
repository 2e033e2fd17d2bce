"""Floor anchoring (mtlsi_core.anchoring): the floor plane of a mount against the synthetic generator's exact depth,
the signs of the mount by hand, impossible mounts, and the scale estimator (robustness, memory, bounds)."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from mtlsi_core.anchoring import (AnchorConfig, CameraMount, FloorAnchor, FloorPlane, anchor_outputs,
                                  fit_floor_plane, floor_classes)
from mtlsi_core.tasks import NYUD_CLASSES

FLOOR = NYUD_CLASSES.index("floor")
H, W = 480, 640
K = np.array([[520.0, 0.0, 320.0], [0.0, 520.0, 240.0], [0.0, 0.0, 1.0]])  # principal point on a pixel centre


# ------------------------------------------------------------------------------------------------ geometry


def test_mount_signs_by_hand():
    # 30 degrees down from 1 m: the optical axis meets the floor 1 / sin 30 = 2 m along it (z = 2)
    d = FloorPlane.from_mount(CameraMount(1.0, pitch_deg=30.0)).depth(K, (H, W))
    assert d[240, 320] == pytest.approx(2.0, rel=1e-6)
    d0 = FloorPlane.from_mount(CameraMount(1.0)).depth(K, (H, W))
    # level camera: no floor at or above the principal row, z = h fy / (v - cy) below it
    assert np.isnan(d0[:241]).all() and np.isfinite(d0[241:]).all()
    np.testing.assert_allclose(d0[300, :], 520.0 / (300 - 240), rtol=1e-6)
    # looking up 30 degrees from 1 m, a 480-row image with a 49-degree vertical field of view sees no floor
    assert np.isnan(FloorPlane.from_mount(CameraMount(1.0, pitch_deg=-30.0)).depth(K, (H, W))).all()
    # roll > 0 lifts the camera's left side: the horizon rises (smaller row) to the right of the image
    dr = FloorPlane.from_mount(CameraMount(1.0, roll_deg=10.0)).depth(K, (H, W))
    first_floor_row = np.argmax(np.isfinite(dr), axis=0)
    assert first_floor_row[-1] < first_floor_row[0] - 100
    # last column (u - cx = 319 px): horizon at v = cy - 319 tan 10 = 183.75, so row 184 is the first floor row
    assert first_floor_row[-1] == math.floor(240 - 319 * math.tan(math.radians(10))) + 1 == 184


def _sequence_frame(seed: int, height: float, pitch_deg: float, roll_deg: float, size=(120, 160)):
    """A frame of a synthetic room seen from a pose of the given mount: the generator's conventions (``camera_pose``,
    pitch > 0 looking up), so the mount's signs are checked against code written apart."""
    from mtlsi_core.data.sequence import SequenceSpec, camera_pose, make_sequence

    seq = make_sequence(SequenceSpec(seed, "ground", frames=1, size=size))
    xy = seq.poses[0][:2, 3]
    yaw = float(seq.path.yaw(np.float64(0.0)))
    T = camera_pose(np.array([xy[0], xy[1], height]), yaw, -math.radians(pitch_deg), math.radians(roll_deg))
    seq = replace(seq, poses=T[None])
    return seq.render(0), T


@pytest.mark.parametrize("seed,mount", [(3, (0.42, 12.0, 0.0)), (5, (0.6, 25.0, -4.0)), (7, (1.45, 35.0, 3.0))])
def test_plane_depth_equals_the_generators_depth_on_floor_pixels(seed, mount):
    frame, T = _sequence_frame(seed, *mount)
    floor = frame.semseg == FLOOR
    assert floor.sum() > 500, "the view should show the floor"
    for plane in (FloorPlane.from_mount(CameraMount(*mount)), FloorPlane.from_pose(T)):
        d = plane.depth(frame.K, frame.depth.shape)
        rel = np.abs(d[floor] / frame.depth[floor] - 1.0)
        assert np.isfinite(rel).all() and rel.max() < 1e-3, mount
    np.testing.assert_allclose(FloorPlane.from_pose(T).normal, FloorPlane.from_mount(CameraMount(*mount)).normal,
                               atol=1e-9)
    back = FloorPlane.from_pose(T).mount()
    assert (back.height_m, back.pitch_deg, back.roll_deg) == pytest.approx(mount, abs=1e-9)


def test_floor_fitted_to_ground_truth_depth_gives_the_mount_back():
    """fit_floor_plane (the benchmarks' stand-in for a calibrated mount) on the generator's exact depth of the floor
    pixels, with a tenth of them mislabelled (other surfaces called floor: RANSAC leaves them out)."""
    frame, _ = _sequence_frame(5, 0.6, 25.0, -4.0)
    floor = frame.semseg == FLOOR
    other = np.flatnonzero(~floor & np.isfinite(frame.depth) & (frame.depth > 0))
    noisy = floor.copy()
    noisy.flat[np.random.default_rng(0).choice(other, int(floor.sum()) // 10, replace=False)] = True
    for mask in (floor, noisy):
        m = fit_floor_plane(frame.depth, mask, frame.K).mount()
        assert m.height_m == pytest.approx(0.6, abs=0.01)
        assert m.pitch_deg == pytest.approx(25.0, abs=0.5) and m.roll_deg == pytest.approx(-4.0, abs=0.5)
    with pytest.raises(ValueError, match="at least 3"):
        fit_floor_plane(frame.depth, np.zeros_like(floor), frame.K)
    with pytest.raises(ValueError, match="differ in size"):
        fit_floor_plane(frame.depth, floor[:-1], frame.K)


@pytest.mark.parametrize("kw,match", [
    (dict(height_m=0.0), "height_m = 0.0 puts the camera on or below the floor"),
    (dict(height_m=-0.3), "height_m = -0.3 puts the camera on or below the floor"),
    (dict(height_m=float("nan")), "height_m .* must be finite"),
    (dict(height_m=float("inf")), "height_m .* must be finite"),
    (dict(height_m="high"), "height_m .* must be a number"),
    (dict(height_m=0.5, pitch_deg=90.0), "pitch_deg = 90.0 must be within"),
    (dict(height_m=0.5, pitch_deg=-120.0), "pitch_deg"),
    (dict(height_m=0.5, pitch_deg=float("nan")), "pitch_deg must be finite"),
    (dict(height_m=0.5, roll_deg=float("nan")), "roll_deg must be finite"),
])
def test_impossible_mounts_raise_one_clear_error(kw, match):
    with pytest.raises(ValueError, match="camera mount: " + match):
        CameraMount(**kw)


def test_floor_class_comes_from_the_registry():
    assert floor_classes("nyud") == (NYUD_CLASSES.index("floor"),) == floor_classes("synth")
    with pytest.raises(ValueError, match="dataset 'pascal' has no 'floor' class"):
        floor_classes("pascal")


# ------------------------------------------------------------------------------------------------ estimator


def _scene(pred_scale: float, seed: int = 0, outliers: float = 0.2, noise: float = 0.05, decoys: float = 0.3):
    """A camera 0.5 m up looking 15 degrees down: the floor below the horizon labelled floor, the rest wall.
    Predicted depth = true depth x pred_scale (the anchor's scale is 1 / pred_scale) with log-normal noise; a
    fraction ``outliers`` of the floor pixels predicted much nearer (an object the labels miss), and ``decoys``:
    floor-labelled pixels predicted nearer with a low confidence or a wall-like normal."""
    rng = np.random.default_rng(seed)
    plane = FloorPlane.from_mount(CameraMount(0.5, pitch_deg=15.0))
    floor = plane.depth(K, (H, W))
    is_floor = np.isfinite(floor)
    labels = np.where(is_floor, FLOOR, 0).astype(np.uint8)
    depth = np.where(is_floor, floor, 4.0) * pred_scale * np.exp(rng.normal(0, noise, (H, W)))
    out = rng.random((H, W)) < outliers
    depth[out & is_floor] *= rng.uniform(0.3, 0.6, (H, W))[out & is_floor]  # one-sided: biases a plain median
    conf = np.full((H, W), 0.9, np.float32)
    normals = np.broadcast_to(np.asarray(plane.normal, np.float32), (H, W, 3)).copy()
    decoy = (rng.random((H, W)) < decoys) & is_floor & ~out
    low = decoy & (rng.random((H, W)) < 0.5)
    conf[low] = 0.2
    depth[low] *= 0.4
    wrong_normal = decoy & ~low
    normals[wrong_normal] = (0.0, 0.0, -1.0)  # facing the camera like a wall: > 20 degrees from the floor's
    depth[wrong_normal] *= 0.5
    return plane, depth.astype(np.float32), labels, conf, normals


def test_scaled_depth_with_outliers_recovers_the_scale_within_one_percent():
    plane, depth, labels, conf, normals = _scene(0.8)
    anchor = FloorAnchor(plane, (FLOOR,))
    s, support, inliers, stride = anchor.measure(depth, labels, K, conf, normals)
    assert s == pytest.approx(1.25, rel=0.01)
    assert stride == 5 and 100 < inliers < support
    # the rejection matters: a plain median of the same support samples is off by more than 1 %
    sl = (slice(2, None, 5), slice(2, None, 5))
    ok = (labels[sl] == FLOOR) & (conf[sl] >= 0.5) & (normals[sl] @ np.asarray(plane.normal) >= math.cos(
        math.radians(20)))
    naive = float(np.median(plane.depth(K, (H, W))[sl][ok] / depth[sl][ok]))
    assert abs(naive / 1.25 - 1) > 0.01

    # where most floor-labelled pixels are unsure or tilted, the confidence and normal checks carry the estimate
    plane, depth, labels, conf, normals = _scene(0.8, outliers=0.1, decoys=0.8)
    s, *_ = FloorAnchor(plane, (FLOOR,)).measure(depth, labels, K, conf, normals)
    s_unfiltered, *_ = FloorAnchor(plane, (FLOOR,)).measure(depth, labels, K)
    assert s == pytest.approx(1.25, rel=0.01) and abs(s_unfiltered / 1.25 - 1) > 0.05


def test_anchor_outputs_scales_depth_keeps_the_last_scale_and_handles_missing_intrinsics():
    plane, depth, labels, conf, normals = _scene(0.8, outliers=0.0, noise=0.0)
    anchor = FloorAnchor(plane, (FLOOR,))
    outputs = {"semseg": labels, "depth": depth.copy(), "normals": normals, "semseg_confidence": conf}
    st = anchor_outputs(outputs, anchor, K)
    assert st.status == "anchored" and st.scale == pytest.approx(1.25, rel=1e-4) and st.frames == 1
    np.testing.assert_allclose(outputs["depth"], depth * st.scale, rtol=1e-6)
    # no floor in view: the last scale is kept and applied
    wall = {"semseg": np.zeros_like(labels), "depth": depth.copy(), "normals": normals, "semseg_confidence": conf}
    st2 = anchor_outputs(wall, anchor, K)
    assert st2.status == "no_support" and st2.scale == st.scale and st2.support == 0
    np.testing.assert_allclose(wall["depth"], depth * st.scale, rtol=1e-6)
    # no intrinsics: depth as predicted, said so
    raw = {"semseg": labels, "depth": depth.copy(), "normals": normals}
    st3 = anchor_outputs(raw, anchor, None)
    assert st3.status == "no_intrinsics" and st3.scale == st.scale
    np.testing.assert_array_equal(raw["depth"], depth)


def test_intrinsics_of_another_size_are_rescaled_to_the_outputs():
    plane, depth, labels, conf, normals = _scene(0.8, outliers=0.0, noise=0.0)
    small = (H // 2, W // 2)

    def half(a):  # nearest, like the runtime's labels; depth: every other pixel centre is not the small image's centre
        import cv2
        return cv2.resize(a, (small[1], small[0]), interpolation=cv2.INTER_NEAREST)

    # depth of the floor at the small image's own pixel centres, / 0.8
    from mtlsi_core.outputs import scale_intrinsics

    k_small = scale_intrinsics(K.reshape(-1), [0.0] * 12, (H, W), small)[0]
    d_small = (plane.depth(k_small, small) * 0.8).astype(np.float32)
    lab = np.where(np.isfinite(d_small), FLOOR, 0).astype(np.uint8)
    d_small = np.where(np.isfinite(d_small), d_small, 3.0).astype(np.float32)
    outs = {"semseg": lab, "depth": d_small, "normals": half(normals)}
    st = anchor_outputs(outs, FloorAnchor(plane, (FLOOR,)), K, intrinsics_hw=(H, W))
    assert st.scale == pytest.approx(1.25, rel=1e-5)
    # K given as if for the small size: a wrong scale (rows and focal length off by two)
    st_wrong = anchor_outputs({"semseg": lab, "depth": d_small.copy(), "normals": half(normals)},
                              FloorAnchor(plane, (FLOOR,)), K)
    assert st_wrong.status != "anchored" or abs(st_wrong.scale / 1.25 - 1) > 0.05


def _frame_of_scale(plane, s):
    d = plane.depth(K, (H, W))
    lab = np.where(np.isfinite(d), FLOOR, 0).astype(np.uint8)
    return np.where(np.isfinite(d), d / s, 3.0).astype(np.float32), lab


def test_per_frame_bound_smoothing_and_range():
    plane = FloorPlane.from_mount(CameraMount(0.5, pitch_deg=15.0))
    cfg = AnchorConfig(smoothing=0.3, max_step=0.05, scale_range=(0.5, 2.0))
    anchor = FloorAnchor(plane, (FLOOR,), cfg)
    st = anchor.update(*_frame_of_scale(plane, 1.0), K)
    assert st.status == "anchored" and st.scale == pytest.approx(1.0, rel=1e-6)  # the first frame sets the scale
    # a small change is smoothed: log s moves by smoothing x the difference
    st = anchor.update(*_frame_of_scale(plane, 1.02), K)
    assert st.status == "anchored" and st.scale == pytest.approx(1.02 ** 0.3, rel=1e-6)
    # a jump to 1.5 is approached by at most 5 % per frame
    scales = [st.scale]
    for _ in range(40):
        st = anchor.update(*_frame_of_scale(plane, 1.5), K)
        scales.append(st.scale)
    steps = np.array(scales[1:]) / np.array(scales[:-1])
    assert steps.max() <= 1.05 + 1e-9 and (steps >= 1.0).all()
    assert anchor.state.frames == 42 and scales[1] == pytest.approx(scales[0] * 1.05) and scales[-1] == pytest.approx(
        1.5, rel=0.01)
    # an estimate outside scale_range is rejected, the scale kept
    kept = anchor.state.scale
    st = anchor.update(*_frame_of_scale(plane, 3.0), K)
    assert st.status == "out_of_range" and st.scale == kept and st.measured == pytest.approx(3.0, rel=1e-4)


def test_no_support_before_any_scale_is_waiting_at_one():
    plane = FloorPlane.from_mount(CameraMount(0.5, pitch_deg=15.0))
    d, lab = _frame_of_scale(plane, 1.3)
    anchor = FloorAnchor(plane, (FLOOR,), AnchorConfig(min_support=100))
    st = anchor.update(d, np.zeros_like(lab), K)
    assert st.status == "waiting" and st.scale == 1.0 and st.frames == 0
    # a sliver of floor below min_support: still waiting
    sliver = np.zeros_like(lab)
    sliver[-10:, :100] = FLOOR
    assert anchor.update(d, sliver, K).status == "waiting"


def test_replace_floor_puts_support_pixels_on_the_plane_but_not_obstacles():
    plane, depth, labels, conf, normals = _scene(0.8, outliers=0.0, noise=0.03)
    obstacle = np.zeros((H, W), bool)
    obstacle[400:440, 300:340] = True  # labelled floor, but predicted at half the floor's depth: kept
    depth[obstacle] *= 0.5
    outs = {"semseg": labels, "depth": depth.copy(), "normals": normals, "semseg_confidence": conf}
    st = anchor_outputs(outs, FloorAnchor(plane, (FLOOR,), AnchorConfig(replace_floor=True)), K)
    floor_d = plane.depth(K, (H, W))
    agree = normals @ np.asarray(plane.normal) >= math.cos(math.radians(20.0))
    on = (labels == FLOOR) & (conf >= 0.5) & agree & ~obstacle
    np.testing.assert_allclose(outs["depth"][on], floor_d[on], rtol=1e-5)
    np.testing.assert_allclose(outs["depth"][obstacle], depth[obstacle] * st.scale, rtol=1e-6)
    assert st.replaced == int(on.sum())
    np.testing.assert_allclose(outs["depth"][labels != FLOOR], depth[labels != FLOOR] * st.scale, rtol=1e-6)


@pytest.mark.parametrize("kw,match", [
    (dict(min_confidence=1.5), "min_confidence"), (dict(max_normal_angle_deg=0.0), "max_normal_angle_deg"),
    (dict(min_support=0), "min_support"), (dict(min_support=20000), "min_support = 20000 must not exceed max_samples"),
    (dict(smoothing=0.0), "smoothing"), (dict(max_step=float("nan")), "max_step"),
    (dict(scale_range=(1.2, 2.0)), "scale_range"), (dict(outlier_mads=-1.0), "outlier_mads"),
])
def test_config_is_validated(kw, match):
    with pytest.raises(ValueError, match=f"floor anchoring: {match}"):
        AnchorConfig(**kw)


def test_shapes_are_checked_with_names():
    plane = FloorPlane.from_mount(CameraMount(0.5, pitch_deg=15.0))
    d, lab = _frame_of_scale(plane, 1.0)
    with pytest.raises(ValueError, match=r"labels has shape \(10, 10\), expected \(480, 640\)"):
        FloorAnchor(plane, (FLOOR,)).update(d, lab[:10, :10], K)
    with pytest.raises(ValueError, match="intrinsics K needs positive focal lengths"):
        FloorAnchor(plane, (FLOOR,)).update(d, lab, np.zeros(9))
