"""The one path from runtime outputs to messages (``mtlsi_ros.publishing``): ``build_messages`` is what the node's
``CameraOutputs.publish`` sends (subscribed topics only), and the runtime arguments the node and ``mtlsi-bag infer``
share (``output_size_arg``, ``focal_length_px``). No DDS: publishers are stand-ins counting subscribers."""
from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from mtlsi_ros.conversions import image_to_numpy, make_camera_info
from mtlsi_ros.params import validate
from mtlsi_ros.publishing import (CAMERA_INFO_TOPIC, CameraOutputs, build_messages, build_plans, focal_length_px,
                                  output_size_arg, output_topics)

TASKS = ("semseg", "depth", "normals", "edge")
CHANNELS = {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}
HW = (12, 16)


class FakePublisher:
    def __init__(self, msg_type: type, topic: str):
        self.msg_type, self.topic, self.subscribers, self.sent = msg_type, topic, 1, []

    def get_subscription_count(self) -> int:
        return self.subscribers

    def publish(self, msg) -> None:
        assert isinstance(msg, self.msg_type), (self.topic, type(msg))
        self.sent.append(msg)


def _outputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = rng.normal(size=HW + (3,)).astype(np.float32)
    return {"semseg": rng.integers(0, 40, HW).astype(np.uint8),
            "depth": rng.uniform(-0.5, 6.0, HW).astype(np.float32),
            "normals": n / np.linalg.norm(n, axis=-1, keepdims=True),
            "edge": rng.uniform(0, 1, HW).astype(np.float32)}


def _header() -> Header:
    h = Header(frame_id="cam_optical")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


def _setup(params: dict | None = None):
    p = validate({"min_depth": 0.5, "max_depth": 5.0, **(params or {})})
    plans = build_plans(TASKS, CHANNELS, p)
    pubs: dict[str, FakePublisher] = {}

    def factory(msg_type, topic):
        pubs[topic] = FakePublisher(msg_type, topic)
        return pubs[topic]

    return plans, CameraOutputs("cam", plans, factory, with_camera_info=True), pubs


def test_publish_sends_exactly_what_build_messages_builds():
    plans, outs, pubs = _setup()
    rgb = np.full(HW + (3,), 90, np.uint8)
    info = make_camera_info([20.0, 0, 7.5, 0, 20.0, 5.5, 0, 0, 1], (24, 32), _header())
    sent = outs.publish(_header(), _outputs(), rgb, info)
    expected = build_messages(plans, _header(), _outputs(), rgb, info)
    assert sent == len(expected) == len(output_topics(plans)) == 8
    assert [t for t, _ in expected] == output_topics(plans)
    for topic, msg in expected:
        got = pubs[f"cam/{topic}"].sent
        assert len(got) == 1 and got[0] == msg, topic
    # the registry's encodings and the node's parameters are applied
    by_topic = dict(expected)
    depth = image_to_numpy(by_topic["depth"])
    raw = _outputs()["depth"]
    assert np.array_equal(np.isnan(depth), (raw <= 0.5) | (raw > 5.0))
    assert by_topic["boundary"].encoding == "mono8" and by_topic["normals"].encoding == "32FC3"
    assert by_topic[CAMERA_INFO_TOPIC].k[0] == pytest.approx(10.0)  # 24x32 calibration -> 12x16 outputs
    assert all(m.header == _header() for _, m in expected)


def test_only_subscribed_topics_are_built():
    plans, outs, pubs = _setup()
    for p in pubs.values():
        p.subscribers = 0
    pubs["cam/depth/color"].subscribers = 1
    calls = []
    plans[1] = type(plans[1])(**{**plans[1].__dict__, "colorize": lambda v: calls.append(1) or
                                 np.zeros(v.shape + (3,), np.uint8)})
    outs.plans = plans
    info = make_camera_info(np.eye(3).reshape(-1), HW, _header())
    assert outs.publish(_header(), _outputs(), np.zeros(HW + (3,), np.uint8), info) == 1
    assert [t for t, p in pubs.items() if p.sent] == ["cam/depth/color"] and calls == [1]
    wanted = build_messages(plans, _header(), _outputs(), np.zeros(HW + (3,), np.uint8), info,
                            wanted={"segmentation", CAMERA_INFO_TOPIC})
    assert [t for t, _ in wanted] == ["segmentation", CAMERA_INFO_TOPIC]
    assert isinstance(wanted[0][1], Image) and isinstance(wanted[1][1], CameraInfo)
    assert build_messages(plans, _header(), _outputs(), np.zeros(HW + (3,), np.uint8), None)[-1][0] != \
        CAMERA_INFO_TOPIC


def test_focal_length_rescaled_to_the_image_width():
    info = make_camera_info([500.0, 0, 319.5, 0, 500.0, 239.5, 0, 0, 1], (480, 640), _header())
    assert focal_length_px(info, 640) == 500.0
    assert focal_length_px(info, 320) == 250.0
    info.width = 0  # calibration size unknown: K is taken as the image's
    assert focal_length_px(info, 320) == 500.0
    info.k[0] = 0.0
    assert focal_length_px(info, 320) is None
    assert focal_length_px(None, 320) is None


def test_output_size_arg_follows_the_parameters():
    assert output_size_arg(validate({}), (480, 640)) == "input"
    assert output_size_arg(validate({"output_resolution": "network"}), (480, 640)) == "network"
    shrunk = output_size_arg(validate({"max_output_pixels": 120 * 160}), (480, 640))
    assert shrunk == (120, 160)
