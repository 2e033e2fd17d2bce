"""The node over real DDS (own process): headers, encodings, sizes and value ranges of every output, camera_info
scaling, input encodings, and the network-resolution / alternative-encoding configuration."""
from __future__ import annotations

import numpy as np
import pytest

from mtlsi_core.tasks import get_task
from mtlsi_ros.client import LifecycleClient, PerceptionClient, default_topics, stamp_to_ns
from mtlsi_ros.conversions import image_to_numpy
from node_helpers import intrinsics, node_session, sample_image, tiny_checkpoint

pytestmark = pytest.mark.ros

H, W = 120, 160  # not the network's 64x96: outputs must come back at the input size
NET = (64, 96)
TASKS = ("semseg", "depth", "normals", "edge")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    params = {"device": "cpu", "model_path": str(tiny_checkpoint()), "batch_window_ms": 0.0}
    yield from node_session(tmp_path_factory.mktemp("node_outputs"), __name__, params)


@pytest.fixture(scope="module")
def client(node):
    _, ros, _ = node
    c = PerceptionClient("/t", context=ros.context, topics=default_topics("nyud"))
    c.wait_for_node(60)
    c.wait_until_answering(60)  # the node's publishers have matched this client's subscriptions too
    yield c
    c.close()


def _values(outs):
    return {t: image_to_numpy(r.msg) for t, r in outs.items() if t != "output/camera_info"}


def test_every_output_has_exactly_the_input_header(client):
    for i, frame_id in enumerate(["cam_optical", "robot/front_camera_optical_frame"]):
        stamp = 1_700_000_000_123_456_789 + i * 33_000_000
        h = client.publish(sample_image(H, W, seed=i), stamp_ns=stamp, frame_id=frame_id, k=intrinsics(H, W))
        outs = client.wait_for(h, timeout=30)
        assert set(outs) == set(default_topics("nyud"))
        for topic, r in outs.items():
            assert r.msg.header.frame_id == frame_id, topic
            assert stamp_to_ns(r.msg.header.stamp) == stamp, topic


def test_encodings_sizes_and_value_ranges(client):
    h = client.publish(sample_image(H, W, seed=3), k=intrinsics(H, W))
    outs = client.wait_for(h, timeout=30)
    enc = {t: r.msg.encoding for t, r in outs.items() if t != "output/camera_info"}
    for t in TASKS:
        ros = get_task(t).ros
        assert enc[ros.topic] == ros.encodings[0]
        if ros.color_topic:
            assert enc[ros.color_topic] == "rgb8"
    v = _values(outs)
    for topic, a in v.items():
        assert a.shape[:2] == (H, W), topic
    assert v["segmentation"].dtype == np.uint8 and v["segmentation"].max() < 40
    d = v["depth"]
    assert d.dtype == np.float32 and d.ndim == 2
    finite = d[np.isfinite(d)]
    assert (finite > 0).all()  # min_depth = 0: depth <= 0 is NaN, never 0 (REP 118)
    assert not np.isinf(d).any()
    n = v["normals"]
    assert n.dtype == np.float32 and n.shape == (H, W, 3)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-3)
    assert v["boundary"].dtype == np.uint8 and v["boundary"].ndim == 2
    for c in ("segmentation/color", "depth/color", "normals/color"):
        assert v[c].shape == (H, W, 3) and v[c].dtype == np.uint8
    # normals/color is (n + 1) / 2 of the published normals
    np.testing.assert_allclose(v["normals/color"].astype(float), np.clip((n + 1) * 127.5, 0, 255), atol=1.01)


def test_camera_info_republished_at_input_size(client):
    k = intrinsics(H, W)
    h = client.publish(sample_image(H, W, seed=4), k=k)
    info = client.wait_for(h, timeout=30)["output/camera_info"].msg
    assert (info.height, info.width) == (H, W)
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), k, atol=1e-9)


def test_all_input_encodings_give_the_same_answer(client):
    """rgb8, bgr8, rgba8 and bgra8 of one image must reach the network as the same RGB image."""
    img = sample_image(H, W, seed=5)
    seg = {}
    for i, enc in enumerate(["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]):
        h = client.publish(img, encoding=enc, stamp_ns=2_000_000_000 + i)
        seg[enc] = image_to_numpy(client.wait_for(h, timeout=30)["segmentation"].msg)
    for enc in ("bgr8", "rgba8", "bgra8"):
        np.testing.assert_array_equal(seg[enc], seg["rgb8"], err_msg=enc)
    assert seg["mono8"].shape == (H, W)


def test_network_resolution_and_alternative_encodings(node, client):
    """Reconfigure through the lifecycle services: network-size outputs, mono16 labels, 32FC1 boundary,
    a depth range; camera_info scaled to the network size."""
    proc, _, _ = node
    lc = LifecycleClient(client.node, proc.fqn)
    assert lc.change_state("deactivate") and lc.change_state("cleanup")
    assert all(lc.set_parameters({"output_resolution": "network", "segmentation_encoding": "mono16",
                                  "boundary_encoding": "32FC1"}))
    assert lc.change_state("configure") and lc.change_state("activate")
    client.wait_for_node(60)
    k = intrinsics(H, W)
    h = client.publish(sample_image(H, W, seed=6), k=k)
    outs = client.wait_for(h, timeout=30)
    v = _values(outs)
    for topic, a in v.items():
        assert a.shape[:2] == NET, topic
    assert outs["segmentation"].msg.encoding == "mono16" and v["segmentation"].dtype == np.uint16
    assert v["segmentation"].max() < 40
    b = v["boundary"]
    assert outs["boundary"].msg.encoding == "32FC1" and b.dtype == np.float32
    assert ((b >= 0) & (b <= 1)).all() and np.unique(b).size > 10  # a probability, not a quantised one
    info = outs["output/camera_info"].msg
    assert (info.height, info.width) == NET
    sx, sy = NET[1] / W, NET[0] / H
    kk = np.asarray(info.k).reshape(3, 3)
    assert kk[0, 0] == pytest.approx(k[0, 0] * sx) and kk[1, 1] == pytest.approx(k[1, 1] * sy)
    assert kk[0, 2] == pytest.approx((k[0, 2] + 0.5) * sx - 0.5)
    assert kk[1, 2] == pytest.approx((k[1, 2] + 0.5) * sy - 0.5)
    assert np.asarray(info.p)[0] == pytest.approx(k[0, 0] * sx)

    # Depth range: NaN exactly outside (min_depth, max_depth]
    d = v["depth"]
    finite = d[np.isfinite(d)]
    assert finite.size > 10
    u = np.unique(finite)
    q1, q3 = len(u) // 4, 3 * len(u) // 4
    lo, hi = (float(u[q1]) + float(u[q1 + 1])) / 2, (float(u[q3]) + float(u[q3 + 1])) / 2  # between values: no ties
    assert lc.change_state("deactivate") and lc.change_state("cleanup")
    assert all(lc.set_parameters({"min_depth": float(lo), "max_depth": float(hi)}))
    assert lc.change_state("configure") and lc.change_state("activate")
    client.wait_for_node(60)
    h = client.publish(sample_image(H, W, seed=6), k=k)
    d2 = image_to_numpy(client.wait_for(h, timeout=30)["depth"].msg)
    expect_valid = np.isfinite(d) & (d > np.float32(lo)) & (d <= np.float32(hi))  # the node compares in float32
    np.testing.assert_array_equal(np.isfinite(d2), expect_valid)
    np.testing.assert_allclose(d2[expect_valid], d[expect_valid], rtol=1e-6)


def test_points_output_off_by_default_then_an_organised_cloud_matching_depth_and_labels(node, client):
    """``publish_points``: PointCloud2 on <camera>/points with the input's header, back-projected from the published
    depth with the published (scaled) camera_info, labels equal to the segmentation."""
    import threading

    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    from mtlsi_ros.conversions import pointcloud2_to_numpy

    proc, _, _ = node
    assert client.node.count_publishers("/t/points") == 0  # off by default
    lc = LifecycleClient(client.node, proc.fqn)
    assert lc.change_state("deactivate") and lc.change_state("cleanup")
    assert all(lc.set_parameters({"publish_points": True, "points_organized": True, "points_keep_invalid": True,
                                  "output_resolution": "input", "segmentation_encoding": "mono8",
                                  "min_depth": 0.0, "max_depth": 0.0}))
    assert lc.change_state("configure") and lc.change_state("activate")
    got: dict[int, PointCloud2] = {}
    cond = threading.Condition()

    def on_points(msg):
        with cond:
            got[stamp_to_ns(msg.header.stamp)] = msg
            cond.notify_all()

    sub = client.node.create_subscription(PointCloud2, "/t/points", on_points,
                                          QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    try:
        client.wait_for_node(60)
        k = intrinsics(H, W)
        stamp = 1_800_000_000_000_000_007
        h = client.publish(sample_image(H, W, seed=7), stamp_ns=stamp, frame_id="cam_optical", k=k)
        outs = client.wait_for(h, timeout=30)
        with cond:
            assert cond.wait_for(lambda: stamp in got, timeout=30), "no points message"
        msg = got[stamp]
    finally:
        client.node.destroy_subscription(sub)
    assert msg.header.frame_id == "cam_optical" and stamp_to_ns(msg.header.stamp) == stamp
    assert (msg.height, msg.width) == (H, W)
    cloud = pointcloud2_to_numpy(msg)
    depth = image_to_numpy(outs["depth"].msg)
    np.testing.assert_array_equal(cloud["z"], depth)  # NaN where depth is NaN, the same metres elsewhere
    np.testing.assert_array_equal(cloud["label"], image_to_numpy(outs["segmentation"].msg))
    kk = np.asarray(outs["output/camera_info"].msg.k).reshape(3, 3)
    u = np.arange(W)[None, :]
    np.testing.assert_allclose(cloud["x"], (u - kk[0, 2]) * depth / kk[0, 0], rtol=1e-5, atol=1e-6)
    # publish_points asks the runtime for the labels' confidence: the max softmax probability, where labels exist
    conf = cloud["confidence"]
    assert conf.dtype == np.float32 and np.isfinite(conf).all()
    assert conf.min() >= 1 / 40 - 1e-6 and conf.max() <= 1.0 and conf.std() > 0
