"""Node parameters for ``mtlsi-bag infer`` from ROS 2 params files: which sections apply to the node (ROS
wildcards), file order, ROS built-ins ignored, values validated as the node validates them."""
from __future__ import annotations

import pytest

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.node_params import load_node_params, section_matches


@pytest.mark.parametrize("key, fqn, applies", [
    ("/**", "/camera/perception", True),
    ("perception", "/camera/perception", True),
    ("/camera/perception", "/camera/perception", True),
    ("/*/perception", "/camera/perception", True),
    ("/*/perception", "/perception", False),
    ("/**/perception", "/perception", True),
    ("/**/perception", "/robot/front/perception", True),
    ("/other/perception", "/camera/perception", False),
    ("/camera/*", "/camera/perception", True),
    ("demo", "/camera/perception", False),
])
def test_sections_apply_as_ros_matches_them(key, fqn, applies):
    assert section_matches(key, fqn) is applies


def test_files_merge_in_order_and_overrides_win(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("/**:\n  ros__parameters:\n    max_depth: 8.0\n    use_sim_time: true\n    publish_color: false\n"
                 "/camera/perception:\n  ros__parameters:\n    max_depth: 9.0\n")
    b.write_text("perception:\n  ros__parameters:\n    max_depth: 10.0\n    boundary_encoding: 32FC1\n"
                 "/elsewhere/perception:\n  ros__parameters:\n    max_depth: 99.0\n")
    p = load_node_params([a, b], {"min_depth": 0.5}, node_fqn="/camera/perception")
    assert (p.max_depth, p.min_depth, p.publish_color, p.encodings["edge"]) == (10.0, 0.5, False, "32FC1")
    assert load_node_params([a], node_fqn="/perception").max_depth == 8.0  # /camera/perception does not apply
    with pytest.raises(BagError, match="must exceed min_depth"):
        load_node_params([a], {"min_depth": 9.5}, node_fqn="/camera/perception")
    with pytest.raises(BagError, match="cannot read it"):
        load_node_params([tmp_path / "missing.yaml"])
    a.write_text("/**:\n  params: {}\n")
    with pytest.raises(BagError, match="section '/\\*\\*' has no ros__parameters"):
        load_node_params([a])
