"""The labelled point cloud (``mtlsi_core.geometry``) and its PointCloud2 (``mtlsi_ros.conversions``,
``mtlsi_ros.publishing``): back-projection of known planes, organised vs unorganised layouts, NaN handling, the
PointField layout read back with a structured dtype, and the node's points plan."""
from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import PointField
from std_msgs.msg import Header

from mtlsi_core.geometry import POINT_DTYPE, backproject, canonical_intrinsics, pack_rgb, point_cloud
from mtlsi_ros.conversions import make_camera_info, numpy_to_pointcloud2, pointcloud2_to_numpy
from mtlsi_ros.params import ParamError, validate
from mtlsi_ros.publishing import POINTS_TOPIC, build_messages, build_plans, build_points_plan

H, W = 6, 8
K = np.array([[10.0, 0.0, 3.5], [0.0, 12.0, 2.5], [0.0, 0.0, 1.0]])


def _frame(seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    labels = rng.integers(0, 40, size=(H, W), dtype=np.uint8)
    return rgb, labels


def test_fronto_parallel_plane_back_projects_to_known_points():
    d = np.full((H, W), 2.0, np.float32)
    xyz = backproject(d, K)
    v, u = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(xyz[..., 0], (u - 3.5) * 2.0 / 10.0, rtol=1e-6)
    np.testing.assert_allclose(xyz[..., 1], (v - 2.5) * 2.0 / 12.0, rtol=1e-6)
    np.testing.assert_array_equal(xyz[..., 2], 2.0)  # depth is along optical z, not along the ray (REP 118)


def test_tilted_plane_points_lie_on_the_plane():
    """Depth of the plane n . X = c seen by K: every back-projected point satisfies the plane equation."""
    n, c = np.array([0.0, -0.6, 0.8]), 1.5  # a floor-like plane seen from above, optical frame
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    depth = (c / (rays @ n)).astype(np.float32)
    assert (depth > 0).all()
    xyz = backproject(depth, K).astype(np.float64)
    np.testing.assert_allclose(xyz @ n, c, rtol=1e-5)


def test_skew_is_honoured():
    k = K.copy()
    k[0, 1] = 0.7
    d = np.full((H, W), 3.0, np.float32)
    xyz = backproject(d, k).astype(np.float64)
    proj = (k @ xyz.reshape(-1, 3).T).T
    v, u = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(proj[:, 0] / proj[:, 2], u.reshape(-1), atol=1e-5)
    np.testing.assert_allclose(proj[:, 1] / proj[:, 2], v.reshape(-1), atol=1e-5)


def test_canonical_intrinsics_scale_with_the_output():
    k = canonical_intrinsics((H * 2, W * 2), (H, W), 10.0)
    assert k[0, 0] == pytest.approx(20.0) and k[1, 1] == pytest.approx(20.0)
    assert k[0, 2] == pytest.approx((W * 2 - 1) / 2) and k[1, 2] == pytest.approx((H * 2 - 1) / 2)
    with pytest.raises(ValueError, match="focal"):
        canonical_intrinsics((H, W), (H, W), 0.0)


def test_rgb_packing_is_pcls():
    rgb = np.array([[255, 128, 1], [0, 0, 0], [12, 34, 56]], np.uint8)
    bits = pack_rgb(rgb)
    assert bits.tolist() == [0xFF8001, 0, (12 << 16) | (34 << 8) | 56]


def test_organised_keeps_every_pixel_and_unorganised_drops_invalid():
    rgb, labels = _frame()
    d = np.full((H, W), 1.5, np.float32)
    d[0, 0], d[1, 2], d[5, 7] = np.nan, 0.0, np.inf  # no return, zero and inf are all invalid
    conf = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    org = point_cloud(d, K, rgb, labels, conf, organized=True, keep_invalid=True)
    assert org.shape == (H, W) and org.dtype == POINT_DTYPE
    assert np.isnan(org["x"][0, 0]) and np.isnan(org["z"][1, 2]) and np.isnan(org["y"][5, 7])
    assert np.isfinite(org["z"]).sum() == H * W - 3
    np.testing.assert_array_equal(org["label"], labels)
    np.testing.assert_array_equal(org["confidence"], conf)
    np.testing.assert_array_equal(org["rgb"].view(np.uint32), pack_rgb(rgb))

    flat = point_cloud(d, K, rgb, labels, conf, organized=False, keep_invalid=True)
    assert flat.shape == (H * W,)
    np.testing.assert_array_equal(flat.view(np.uint8), org.reshape(-1).view(np.uint8))

    dense = point_cloud(d, K, rgb, labels, conf)
    valid = np.isfinite(d) & (d > 0)
    assert dense.shape == (valid.sum(),) and np.isfinite(dense["x"]).all()
    np.testing.assert_array_equal(dense.view(np.uint8), org[valid].view(np.uint8))  # row-major order, same points
    assert np.isnan(point_cloud(d, K, rgb, labels)["confidence"]).all()  # no confidence map: NaN, not a number
    with pytest.raises(ValueError, match="keep_invalid"):
        point_cloud(d, K, rgb, labels, organized=True, keep_invalid=False)
    with pytest.raises(ValueError, match="same size"):
        point_cloud(d, K, rgb[:-1], labels)


def test_pointcloud2_layout_is_readable_with_a_structured_dtype():
    rgb, labels = _frame(1)
    d = np.full((H, W), 2.0, np.float32)
    d[2, 3] = np.nan
    hdr = Header(frame_id="cam_optical")
    hdr.stamp.sec, hdr.stamp.nanosec = 12, 34
    cloud = point_cloud(d, K, rgb, labels, organized=True, keep_invalid=True)
    msg = numpy_to_pointcloud2(cloud, hdr)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (H, W, 24, 24 * W)
    assert msg.header is hdr and not msg.is_dense and not msg.is_bigendian
    fields = {f.name: (f.offset, f.datatype, f.count) for f in msg.fields}
    assert fields == {"x": (0, PointField.FLOAT32, 1), "y": (4, PointField.FLOAT32, 1),
                      "z": (8, PointField.FLOAT32, 1), "rgb": (12, PointField.FLOAT32, 1),
                      "label": (16, PointField.UINT32, 1), "confidence": (20, PointField.FLOAT32, 1)}
    # read it back the way a consumer does: a structured dtype built from the PointFields alone
    names = {PointField.FLOAT32: "<f4", PointField.UINT32: "<u4"}
    dt = np.dtype({"names": [f.name for f in msg.fields], "formats": [names[f.datatype] for f in msg.fields],
                   "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    raw = np.frombuffer(bytes(msg.data), dtype=dt).reshape(msg.height, msg.width)
    np.testing.assert_array_equal(raw["z"][np.isfinite(d)], 2.0)
    np.testing.assert_array_equal(raw["label"], labels)
    np.testing.assert_array_equal(raw["rgb"].view(np.uint32), pack_rgb(rgb))
    back = pointcloud2_to_numpy(msg)
    assert back.shape == (H, W)
    np.testing.assert_array_equal(back.view(np.uint8), cloud.view(np.uint8))
    dense = numpy_to_pointcloud2(point_cloud(d, K, rgb, labels), hdr)
    assert (dense.height, dense.width) == (1, H * W - 1) and dense.is_dense


def test_points_parameters_are_validated():
    with pytest.raises(ParamError, match="points_keep_invalid"):
        validate({"points_organized": True})
    p = validate({"publish_points": True, "points_organized": True, "points_keep_invalid": True})
    assert p.publish_points and p.points_organized
    assert validate({}).publish_points is False  # off by default
    with pytest.raises(ParamError, match="no depth"):
        build_points_plan(("semseg", "edge"), p, (H, W), 10.0)
    with pytest.raises(ParamError, match="canonical_focal"):
        build_points_plan(("semseg", "depth"), validate({"publish_points": True, "use_camera_info": False}),
                          (H, W), None)
    assert build_points_plan(("semseg", "depth"), validate({}), (H, W), 10.0) is None


def test_build_messages_points_use_the_scaled_camera_info_and_the_masked_depth():
    """Outputs at half the input size: K is the input's scaled to the output; depth outside (min, max] is dropped."""
    p = validate({"publish_points": True, "min_depth": 0.5, "max_depth": 3.0})
    tasks, channels = ("semseg", "depth"), {"semseg": 40, "depth": 1}
    plans = build_plans(tasks, channels, p)
    pp = build_points_plan(tasks, p, (H, W), 99.0)
    rgb_in = np.zeros((2 * H, 2 * W, 3), np.uint8)
    rgb_in[..., 0] = 200
    k_in = np.array([[20.0, 0, 7.5], [0, 24.0, 5.5], [0, 0, 1]])
    info = make_camera_info(k_in, (2 * H, 2 * W), Header(frame_id="f"))
    depth = np.full((H, W), 2.0, np.float32)
    depth[0, :] = 4.0  # beyond max_depth
    labels = np.arange(H * W, dtype=np.uint8).reshape(H, W) % 40
    hdr = Header(frame_id="f")
    msgs = dict(build_messages(plans, hdr, {"semseg": labels, "depth": depth}, rgb_in, info, wanted={POINTS_TOPIC},
                               points=pp))
    assert set(msgs) == {POINTS_TOPIC}
    cloud = pointcloud2_to_numpy(msgs[POINTS_TOPIC])
    assert cloud.shape == ((H - 1) * W,) and msgs[POINTS_TOPIC].header is hdr
    v, u = np.mgrid[1:H, 0:W]
    # K scaled to the output (half size): fx 10, cx (7.5 + 0.5) / 2 - 0.5 = 3.5; fy 12, cy 2.5
    np.testing.assert_allclose(cloud["x"], ((u - 3.5) * 2.0 / 10.0).reshape(-1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cloud["y"], ((v - 2.5) * 2.0 / 12.0).reshape(-1), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(cloud["label"], labels[1:].reshape(-1))
    np.testing.assert_array_equal(cloud["rgb"].view(np.uint32), 200 << 16)
    # without camera_info: the training camera at the network size (focal 99 px at W pixels)
    msgs = dict(build_messages(plans, hdr, {"semseg": labels, "depth": depth}, rgb_in, None, points=pp))
    cloud = pointcloud2_to_numpy(msgs[POINTS_TOPIC])
    np.testing.assert_allclose(cloud["x"], ((u - (W - 1) / 2) * 2.0 / 99.0).reshape(-1), rtol=1e-6, atol=1e-7)
    # not wanted: not built
    assert POINTS_TOPIC not in dict(build_messages(plans, hdr, {"semseg": labels, "depth": depth}, rgb_in, info,
                                                   wanted={"depth"}, points=pp))


def test_points_confidence_comes_from_the_runtime_when_publish_points_asks_for_it():
    """The node asks the runtime for the labels' confidence only with ``publish_points`` (``runtime_auxiliary``); the
    cloud's confidence is then the max softmax probability at each labelled point, and NaN without it."""
    from mtlsi_core.runtime import create_runtime
    from mtlsi_ros.publishing import runtime_auxiliary
    from runtime_helpers import images, tiny_checkpoint

    p = validate({"publish_points": True, "points_organized": True, "points_keep_invalid": True,
                  "min_depth": 0.0, "max_depth": 0.0})
    assert runtime_auxiliary(p) == ("confidence",) and runtime_auxiliary(validate({})) is None
    rgb = images([(48, 64)])[0]
    info = make_camera_info(np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]]), (48, 64), Header(frame_id="f"))
    for aux in (runtime_auxiliary(p), runtime_auxiliary(validate({}))):
        rt = create_runtime("torch", str(tiny_checkpoint()), auxiliary=aux)
        plans = build_plans(rt.tasks, rt.channels, p)
        pp = build_points_plan(rt.tasks, p, rt.input_size, None)
        outs = rt.infer([rgb])[0]
        conf = outs.get("semseg_confidence")
        msgs = dict(build_messages(plans, Header(frame_id="f"), outs, rgb, info, points=pp))
        assert set(msgs) - {POINTS_TOPIC, "output/camera_info"} == {q for pl in plans for q in (pl.topic, pl.color_topic)
                                                                     if q}  # the extra key publishes nothing
        cloud = pointcloud2_to_numpy(msgs[POINTS_TOPIC]).reshape(48, 64)
        np.testing.assert_array_equal(cloud["label"], outs["semseg"])
        if aux:
            assert np.isfinite(cloud["confidence"]).all() and cloud["confidence"].max() <= 1.0
            assert cloud["confidence"].min() >= 1 / 40 - 1e-6
            np.testing.assert_array_equal(cloud["confidence"], conf)
        else:
            assert conf is None and np.isnan(cloud["confidence"]).all()
