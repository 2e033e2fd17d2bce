"""The /tf + /tf_static frame tree of ``mtlsi_ros.bag.transforms`` (no DDS): lookups along chains as a robot's bag has
them (map -> odom -> base_link -> camera_optical_frame, the last edge static), in both directions and between
siblings, interpolation per dynamic edge, a bag round trip, and one-line errors naming the frames for trees that are
not trees and frames without a chain."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.msgtypes import TF
from mtlsi_ros.bag.storage import BagReader, BagWriter
from mtlsi_ros.bag.transforms import TF_STATIC_TOPIC, TF_TOPIC, PoseTable, read_pose_table, tf_message_cdr

MS = 1_000_000


def pose(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(q).as_matrix()
    T[:3, 3] = rng.uniform(-2, 2, 3)
    return T


def tq(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat()


@pytest.fixture()
def robot():
    """map -> odom (dynamic, 0 and 100 ms, translation only between them), odom -> base_link (0, 50, 100 ms),
    base_link -> camera_optical_frame and base_link -> lidar (static)."""
    rng = np.random.default_rng(3)
    m_o0 = pose(rng)
    m_o1 = m_o0.copy()
    m_o1[:3, 3] += [0.4, -0.2, 0.1]
    o_b = {0: pose(rng), 50: pose(rng), 100: pose(rng)}
    b_c, b_l = pose(rng), pose(rng)
    table = PoseTable("robot.mcap")
    for ms, T in ((0, m_o0), (100, m_o1)):
        table.add("map", "odom", ms * MS, *tq(T))
    for ms, T in o_b.items():
        table.add("odom", "/base_link", ms * MS, *tq(T))  # a leading slash is the same frame
    table.add_static("base_link", "camera_optical_frame", *tq(b_c))
    table.add_static("base_link", "lidar", *tq(b_l))
    return table, m_o0, m_o1, o_b, b_c, b_l


def test_chain_with_a_static_edge(robot):
    table, m_o0, m_o1, o_b, b_c, _ = robot
    got = table.lookup("map", "camera_optical_frame", 50 * MS)
    m_o = np.eye(4)
    m_o[:3, :3], m_o[:3, 3] = m_o0[:3, :3], (m_o0[:3, 3] + m_o1[:3, 3]) / 2  # interpolated halfway
    np.testing.assert_allclose(got, m_o @ o_b[50] @ b_c, atol=1e-9)
    np.testing.assert_allclose(table.lookup("map", "camera_optical_frame", 0), m_o0 @ o_b[0] @ b_c, atol=1e-9)
    np.testing.assert_allclose(table.lookup("/odom", "camera_optical_frame", 100 * MS), o_b[100] @ b_c, atol=1e-9)


def test_inverse_and_sibling_lookups(robot):
    table, *_, b_c, b_l = robot
    fwd = table.lookup("map", "camera_optical_frame", 100 * MS)
    np.testing.assert_allclose(table.lookup("camera_optical_frame", "map", 100 * MS), np.linalg.inv(fwd), atol=1e-9)
    np.testing.assert_allclose(table.lookup("camera_optical_frame", "lidar", 7), np.linalg.inv(b_c) @ b_l, atol=1e-9)
    np.testing.assert_array_equal(table.lookup("lidar", "lidar", 0), np.eye(4))


def test_errors_name_frames_and_edges(robot):
    table, *_ = robot
    with pytest.raises(BagError, match=r"no transform world -> camera_optical_frame .*camera_optical_frame's chain: "
                                       r"map <- odom <- base_link <- camera_optical_frame") as e:
        table.lookup("world", "camera_optical_frame", 0, where="frame 3")
    assert "(frame 3" in str(e.value) and "base_link -> lidar (static)" in str(e.value) and "\n" not in str(e.value)
    # past the stamps of one dynamic edge: that edge is named, with the lookup it serves
    with pytest.raises(BagError, match=r"no transform odom -> base_link at stamp 200000000 ns \(frame 9\)"):
        table.lookup("map", "camera_optical_frame", 200 * MS, where="frame 9")
    t, q = np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0])
    with pytest.raises(BagError, match="frame lidar has two parents"):
        table.add_static("odom", "lidar", t, q)
    with pytest.raises(BagError, match="closes a loop"):
        table.add("camera_optical_frame", "map", 0, t, q)
    with pytest.raises(BagError, match="from frame odom to itself"):
        table.add("odom", "odom", 0, t, q)
    with pytest.raises(BagError, match="on both /tf and /tf_static"):
        table.add("base_link", "lidar", 0, t, q)


def test_bag_round_trip_with_tf_static(tmp_path):
    rng = np.random.default_rng(0)
    m_b = {ms: pose(rng) for ms in (0, 100, 200)}
    b_c = pose(rng)
    path = tmp_path / "robot.mcap"
    with BagWriter(path) as bag:
        bag.write(TF_STATIC_TOPIC, TF, 0, tf_message_cdr(0, "base_link", "camera_optical_frame", b_c))
        for ms, T in m_b.items():
            bag.write(TF_TOPIC, TF, ms * MS, tf_message_cdr(ms * MS, "map", "base_link", T))
    with BagReader(path) as bag:
        table = read_pose_table(bag)
        for ms, T in m_b.items():
            np.testing.assert_allclose(table.lookup("map", "camera_optical_frame", ms * MS), T @ b_c, atol=1e-9)
        # without /tf_static the chain stops at base_link, and the error says what the bag has
        with pytest.raises(BagError, match=r"no transform map -> camera_optical_frame .*map -> base_link \(3 stamps\)"):
            read_pose_table(bag, static_topic=None).lookup("map", "camera_optical_frame", 0)
