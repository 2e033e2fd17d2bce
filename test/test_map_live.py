"""The map built from the node's live outputs equals the map built from ``mtlsi-bag infer``'s outputs: a short
sequence bag played with /clock to the installed node (its own process, real DDS, ``process_every_frame``, simulated
time), its depth, segmentation and output camera_info recorded; the same bag through ``infer``; both mapped with the
poses of the sequence bag's /tf, paired by the outputs' stamps. Equal maps need the outputs' stamps and frame_id to
be the input's (TF lookup), the output camera_info scaled to the output, and equal pixels. The shipped model, so the
map is a real one (checked non-trivial)."""
from __future__ import annotations

import numpy as np
import pytest

from bag_helpers import live_and_offline
from mtlsi_ros.bag.map import MapOptions, build_bag_maps

pytestmark = pytest.mark.ros

FRAMES = 5
CAMERA = "/camera"


def test_live_map_equals_offline_map(tmp_path):
    from mtlsi_core.data.sequence import SequenceSpec
    from mtlsi_ros.bag.make import MakeOptions, make_sequence_bag

    bag = tmp_path / "seq.mcap"
    make_sequence_bag(bag, SequenceSpec(seed=21, kind="handheld", frames=FRAMES, rate=10.0, size=(96, 128)),
                      MakeOptions(progress=False))
    params = {"model_path": "", "backend": "torch", "device": "cpu", "precision": "fp32", "warmup": False,
              "process_every_frame": True, "batch_window_ms": 0.0, "use_sim_time": True, "publish_color": False}
    topics = [f"{CAMERA}/depth", f"{CAMERA}/segmentation", f"{CAMERA}/output/camera_info"]
    live_path, offline_path, summary, log = live_and_offline(tmp_path, bag, params, topics, FRAMES, __name__)
    assert "dropped frame" not in log, log[-3000:]
    assert summary.processed == FRAMES

    opts = MapOptions(gt_map=False)
    live = build_bag_maps(live_path, poses_bag=bag, options=opts)["network"]
    offline = build_bag_maps(offline_path, poses_bag=bag, options=opts)["network"]
    assert live[0].frames == offline[0].frames == FRAMES
    for field in ("vertices", "triangles", "labels", "confidence"):
        assert np.array_equal(getattr(live[0], field), getattr(offline[0], field)), field
    assert np.array_equal(live[1].T, offline[1].T) and np.array_equal(live[1].K, offline[1].K)
    # not vacuous: a real surface with several classes, seen from the first pose of the sequence
    assert len(live[0].vertices) > 500 and len(np.unique(live[0].labels)) > 2
