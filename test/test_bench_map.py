"""benchmarks/bench_map.py --anchoring: the node parameters of a recorded mount and the side-by-side figures (the
benchmark itself is run by hand: minutes per sequence)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_map", REPO / "benchmarks" / "bench_map.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_recorded_mount_becomes_the_nodes_anchoring_parameters(bench):
    from mtlsi_ros.bag.node_params import load_node_params

    mount = {"height_m": 0.42, "pitch_deg": 12.5, "roll_deg": -1.0, "forward_m": 0.1}  # make's ``mount``
    p = load_node_params([REPO / "config" / "perception.yaml"], bench.anchoring_overrides(mount),
                         node_fqn="/perception")
    assert p.floor_anchoring
    assert (p.camera_height_m, p.camera_pitch_deg, p.camera_roll_deg) == ((0.42,), (12.5,), (-1.0,))


def test_side_by_side_without_with_and_change(bench):
    def rec(acc, flicker):
        return {"maps": {"network": {"accuracy_m": acc, "completeness_m": 0.2, "fscore": 0.3,
                                     "semantic_accuracy": 0.8}},
                "temporal_stability": {"prediction": {"depth_rel_mean": flicker, "label_flip_rate": 0.02}}}

    sb = bench.side_by_side(rec(0.15, 0.04), rec(0.10, 0.05))
    assert set(sb) == {*bench.MAP_KEYS, "flicker_depth_rel_mean", "flicker_label_flip_rate"}
    assert sb["accuracy_m"] == pytest.approx({"without": 0.15, "with": 0.10, "change": -0.05})
    assert sb["flicker_depth_rel_mean"] == pytest.approx({"without": 0.04, "with": 0.05, "change": 0.01})
    assert sb["fscore"]["change"] == 0.0
