"""Several cameras, one model, over real DDS: frames that arrive together run as one batch; each camera's outputs
come under its own namespace with its own header, at its own size."""
from __future__ import annotations

import numpy as np
import pytest

from mtlsi_ros.client import PerceptionClient, stamp_to_ns
from mtlsi_ros.conversions import image_to_numpy
from node_helpers import intrinsics, node_session, sample_image, tiny_checkpoint

pytestmark = pytest.mark.ros

CAMS = ("front", "rear/left")
SIZES = {"front": (120, 160), "rear/left": (90, 200)}
TOPICS = ["segmentation", "depth", "normals", "boundary", "output/camera_info"]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    params = {"device": "cpu", "model_path": str(tiny_checkpoint()), "cameras": list(CAMS),
              "batch_window_ms": 500.0}  # long window: a pair published together is always one batch
    yield from node_session(tmp_path_factory.mktemp("node_multicam"), __name__, params)


def test_two_cameras_one_node_batched_with_own_headers(node):
    _, ros, _ = node
    with PerceptionClient("/t", cameras=CAMS, context=ros.context, topics=TOPICS) as c:
        c.wait_for_node(60)
        c.wait_until_answering(60)  # the node's publishers have matched this client's subscriptions too
        for i in range(3):
            headers = {}
            for j, cam in enumerate(CAMS):
                h, w = SIZES[cam]
                headers[cam] = c.publish(sample_image(h, w, seed=10 * i + j), camera=cam,
                                         stamp_ns=5_000_000_000 + 1000 * i + j,
                                         frame_id=f"{cam.replace('/', '_')}_optical", k=intrinsics(h, w))
            for cam in CAMS:
                outs = c.wait_for(headers[cam], camera=cam, timeout=30)
                for topic, r in outs.items():
                    assert r.msg.header.frame_id == headers[cam].frame_id, (cam, topic)
                    assert stamp_to_ns(r.msg.header.stamp) == stamp_to_ns(headers[cam].stamp), (cam, topic)
                    assert (r.msg.height, r.msg.width) == SIZES[cam], (cam, topic)
                np.testing.assert_allclose(np.asarray(outs["output/camera_info"].msg.k).reshape(3, 3),
                                           intrinsics(*SIZES[cam]))
                assert image_to_numpy(outs["segmentation"].msg).shape == SIZES[cam]
        # each camera's topics carried only its own frames
        for cam in CAMS:
            mine = {stamp_to_ns(h.stamp) for h in [c.make_header(5_000_000_000 + 1000 * i + CAMS.index(cam))
                                                   for i in range(3)]}
            assert set(c.answered(cam, "segmentation")) == mine
        for cam in CAMS:
            d = c.wait_diagnostics(lambda v: int(v["frames_out"]) >= 3, camera=cam)
            assert d["max_batch"] == "2", f"{cam}: frames of both cameras were never inferred as one batch"
            assert int(d["dropped_total"]) == 0
