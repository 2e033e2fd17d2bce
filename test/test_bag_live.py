"""Live replay equals offline inference: a bag played to the installed node (its own process, real DDS,
``process_every_frame``, simulated time from the player's /clock), its outputs recorded, compared message by message
with ``mtlsi-bag infer`` on the same bag with the same parameter files: same topics, same headers, equal messages and
identical CDR bytes (up to the zero bytes a DDS payload may append to align its length to 4).

This holds because both sides run the same code (conversions, ``output_size_arg``, ``focal_length_px``,
``build_messages``, rclpy serialisation) on the same runtime, one frame per network call, on the same CPU. The model
is the tiny one with ``canonical_focal`` set, so a focal length passed differently would change depth.
"""
from __future__ import annotations

import numpy as np
import pytest

from bag_helpers import SIZE, focal_checkpoint, live_and_offline, make_synth_bag, read_bag
from mtlsi_ros.client import default_topics
from mtlsi_ros.conversions import image_to_numpy

pytestmark = pytest.mark.ros

FRAMES = 4
CAMERA = "/camera"


def test_live_outputs_equal_mtlsi_bag_infer(tmp_path):
    bag = make_synth_bag(tmp_path / "input", num=FRAMES, rate=5.0)
    params = {"model_path": str(focal_checkpoint()), "device": "cpu", "precision": "fp32", "warmup": False,
              "process_every_frame": True, "batch_window_ms": 0.0, "use_sim_time": True}
    topics = [f"{CAMERA}/{t}" for t in default_topics("nyud")]
    live_path, offline_path, summary, log = live_and_offline(tmp_path, bag, params, topics, FRAMES, __name__)
    assert "dropped frame" not in log, log[-3000:]
    assert summary.processed == FRAMES and not summary.dropped

    live, offline = read_bag(live_path), read_bag(offline_path)
    assert set(live) == set(offline), sorted(set(live) ^ set(offline))
    assert {t for t, _ in live} == set(topics) and len(live) == FRAMES * len(topics)
    inputs = read_bag(bag, [f"{CAMERA}/image"])
    for (topic, stamp), (data, msg) in offline.items():
        live_data, live_msg = live[(topic, stamp)]
        assert live_msg == msg, f"{topic} at {stamp}: live and offline messages differ"
        if hasattr(msg, "data"):
            assert bytes(live_msg.data) == bytes(msg.data), f"{topic} at {stamp}: pixel bytes differ"
        # CDR bytes: identical; the DDS payload may end in up to 3 zero bytes aligning it to 4 (CameraInfo)
        pad = live_data[len(data):]
        assert live_data[:len(data)] == data and len(pad) < 4 and not any(pad), f"{topic} at {stamp}: CDR differs"
        assert msg.header == inputs[(f"{CAMERA}/image", stamp)][1].header
    # the comparison is not vacuous: full-size outputs that vary between frames
    depths = [image_to_numpy(m) for (t, _), (_, m) in sorted(offline.items()) if t == f"{CAMERA}/depth"]
    assert all(d.shape == SIZE for d in depths) and not np.array_equal(depths[0], depths[1])
