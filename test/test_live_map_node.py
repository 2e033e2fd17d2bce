"""``bag.live_map.LiveMapNode``: the header stamp read straight from the CDR bytes, depth and labels paired by stamp
in the callback (unpaired ones counted), /tf messages into the frame tree; over real DDS (a bag's ground truth
played by ``BagPlayer`` as a node's outputs), the live map of every frame equals ``mtlsi-bag map``'s map of the same
bag, with nothing dropped."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.live_map import LiveMapNode, cdr_stamp

FRAMES = 8


def _image(sec: int, nsec: int, frame_id: str = "cam") -> bytes:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    m = Image()
    m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id = sec, nsec, frame_id
    m.height, m.width, m.encoding, m.step = 2, 3, "32FC1", 12
    m.data = bytes(24)
    return serialize_message(m)


def _bare_node() -> LiveMapNode:
    """A LiveMapNode without rclpy: the state its callbacks use, the mapper a list."""
    from mtlsi_ros.bag.transforms import PoseTable

    node = LiveMapNode.__new__(LiveMapNode)
    submitted: list = []
    node._lock = threading.Lock()
    node._pairs = __import__("collections").OrderedDict()
    node.messages = {"depth": 0, "segmentation": 0, "camera_info": 0, "tf": 0}
    node.unpaired, node.errors = 0, []
    node.poses = PoseTable("/tf")
    node.mapper = SimpleNamespace(submit=submitted.append, submitted=submitted)
    return node


def test_cdr_stamp():
    assert cdr_stamp(_image(123, 456_789)) == 123_000_456_789
    assert cdr_stamp(b"\x00\x00\x00\x00" + (7).to_bytes(4, "big") + (9).to_bytes(4, "big")) == 7_000_000_009
    with pytest.raises(BagError, match="CDR"):
        cdr_stamp(b"\x00\x01\x00")


def test_callbacks_pair_by_stamp_and_read_tf():
    from mtlsi_ros.bag.frames import PAIR_WINDOW
    from mtlsi_ros.bag.transforms import tf_message_cdr

    node = _bare_node()
    d1, s1, d2 = _image(1, 0), _image(1, 0), _image(2, 0)
    node._on_image("depth", d1)
    node._on_image("depth", d2)
    assert node.mapper.submitted == []
    node._on_image("segmentation", s1)  # pairs with the depth of its stamp, not the newest
    assert node.mapper.submitted == [(1_000_000_000, d1, s1)]
    for k in range(PAIR_WINDOW + 5):  # depth whose labels never come: the oldest are given up
        node._on_image("depth", _image(10 + k, 0))
    assert node.unpaired == 6 and len(node._pairs) == PAIR_WINDOW
    node._on_image("segmentation", b"\x01\x02")
    assert node.errors and "CDR" in node.errors[0]
    T = np.eye(4)
    T[:3, 3] = [1.0, 2.0, 0.5]
    node._on_tf(tf_message_cdr(5_000_000_000, "map", "base_link", T), False)
    S = np.eye(4)
    S[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    node._on_tf(tf_message_cdr(0, "base_link", "cam", S), True)
    assert np.allclose(node.poses.lookup("map", "cam", 5_000_000_000), T @ S)
    node._on_tf(b"\x00\x01\x00\x00garbage", False)
    assert node.messages["tf"] == 2 and "/tf" in node.errors[-1]


def test_no_poses_without_tf2_msgs():
    try:
        import tf2_msgs.msg  # noqa: F401
        pytest.skip("tf2_msgs is installed: /tf is subscribed to")
    except ImportError:
        pass
    with pytest.raises(BagError, match="tf2_msgs"):
        LiveMapNode("/camera", poses=None)


@pytest.mark.ros
def test_live_map_of_a_played_bag_equals_mtlsi_bag_map(tmp_path):
    from mtlsi_core.data.sequence import SequenceSpec
    from mtlsi_ros.bag.live import BagPlayer
    from mtlsi_ros.bag.make import MakeOptions, make_sequence_bag
    from mtlsi_ros.bag.map import MapOptions, build_bag_maps
    from mtlsi_ros.bag.storage import BagReader
    from mtlsi_ros.bag.transforms import read_pose_table
    from node_helpers import RosSide, domain_id

    bag = tmp_path / "seq.mcap"
    # a ground robot: map -> base_link on /tf, base_link -> camera on /tf_static
    make_sequence_bag(bag, SequenceSpec(seed=22, kind="ground", frames=FRAMES, rate=10.0, size=(96, 128)),
                      MakeOptions(progress=False))
    with BagReader(bag) as b:
        poses = read_pose_table(b)
    ros = RosSide(domain_id(__name__))
    try:
        with LiveMapNode("/camera/gt", context=ros.context, poses=poses, info_topic="/camera/camera_info",
                         policy="all") as node:
            topics = ["/camera/gt/depth", "/camera/gt/segmentation", "/camera/camera_info"]
            with BagPlayer(bag, context=ros.context, rate=1.0, topics=topics) as player:
                player.wait_for_subscribers(timeout=60)
                time.sleep(0.5)
                player.play()
            st = node.wait_for_frames(FRAMES, timeout=60)
        live = node.extract()
    finally:
        ros.close()
    assert st["received"] == st["integrated"] == FRAMES and st["dropped"] == 0 and st["unpaired"] == 0, st
    assert st["messages"]["depth"] == st["messages"]["segmentation"] == FRAMES and not st["errors"], st
    offline = build_bag_maps(bag, options=MapOptions(namespace="/camera/gt", gt_map=False))["network"][0]
    for field in ("vertices", "triangles", "labels", "confidence"):
        assert np.array_equal(getattr(live, field), getattr(offline, field)), field
    assert len(live.vertices) > 500 and len(np.unique(live.labels)) > 2
