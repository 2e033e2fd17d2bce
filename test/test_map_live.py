"""The map built from the node's live outputs equals the map built from ``mtlsi-bag infer``'s outputs: a short
sequence bag played with /clock to the installed node (its own process, real DDS, ``process_every_frame``, simulated
time), its depth, segmentation and output camera_info recorded; the same bag through ``infer``; both mapped with the
poses of the sequence bag's /tf, paired by the outputs' stamps. Equal maps need the outputs' stamps and frame_id to
be the input's (TF lookup), the output camera_info scaled to the output, and equal pixels. The shipped model, so the
map is a real one (checked non-trivial)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from mtlsi_ros.bag.infer import InferOptions, run_infer
from mtlsi_ros.bag.live import BagPlayer, BagRecorder
from mtlsi_ros.bag.map import MapOptions, build_bag_maps
from mtlsi_ros.bag.node_params import load_node_params
from node_helpers import PARAMS_FILE, NodeProcess, RosSide, domain_id, write_params

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
    overrides = write_params(tmp_path / "overrides.yaml", params)
    topics = [f"{CAMERA}/depth", f"{CAMERA}/segmentation", f"{CAMERA}/output/camera_info"]

    dom = domain_id(__name__)
    node = NodeProcess(tmp_path, dom, params, namespace=CAMERA, name="perception")
    ros = None
    try:
        node.wait_log(r"active: subscribed", timeout=180)
        ros = RosSide(dom)
        recorder = BagRecorder(tmp_path / "live.mcap", topics, context=ros.context)
        try:
            recorder.wait_ready(60)
            with BagPlayer(bag, context=ros.context, rate=1.0, clock=True,
                           topics=[f"{CAMERA}/image", f"{CAMERA}/camera_info"]) as player:
                player.wait_for_subscribers(timeout=60)
                time.sleep(1.0)  # the node's publishers see the recorder's subscriptions
                player.play()
                recorder.wait_for_counts({t: FRAMES for t in topics}, timeout=120)
        except BaseException:
            recorder.abort()
            raise
        live_path = recorder.close()
        assert not recorder.errors, recorder.errors
    finally:
        node.stop()
        if ros is not None:
            ros.close()
    assert "dropped frame" not in node.log(), node.log()[-3000:]

    p = load_node_params([PARAMS_FILE, overrides], node_fqn=f"{CAMERA}/perception")
    summary = run_infer(bag, tmp_path / "offline.mcap", p, InferOptions(copy_input=False, progress=False))
    assert summary.processed == FRAMES

    opts = MapOptions(gt_map=False)
    live = build_bag_maps(live_path, poses_bag=bag, options=opts)["network"]
    offline = build_bag_maps(tmp_path / "offline.mcap", poses_bag=bag, options=opts)["network"]
    assert live[0].frames == offline[0].frames == FRAMES
    for field in ("vertices", "triangles", "labels", "confidence"):
        assert np.array_equal(getattr(live[0], field), getattr(offline[0], field)), field
    assert np.array_equal(live[1].T, offline[1].T) and np.array_equal(live[1].K, offline[1].K)
    # not vacuous: a real surface with several classes, seen from the first pose of the sequence
    assert len(live[0].vertices) > 500 and len(np.unique(live[0].labels)) > 2
