"""Floor anchoring over real DDS (issue 19, item 1): one node, the shipped model, two cameras with a static mount given
as parameters. The front camera sends synthetic ground-robot frames (a room of the generator, seen from that very
mount) with camera_info: the floor pixels of the published depth lie on the floor (the generator's exact depth) within
2 % (the median: scale anchoring; and most pixels one by one with ``floor_replace_depth``), where the network alone is
off by far more. The rear camera sends no camera_info: its depth is not anchored and /diagnostics says so."""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest

from mtlsi_core.tasks import NYUD_CLASSES
from mtlsi_ros.client import LifecycleClient, PerceptionClient
from mtlsi_ros.conversions import image_to_numpy
from node_helpers import node_session

pytestmark = pytest.mark.ros

SIZE = (240, 320)
HEIGHT, PITCH, ROLL = 0.45, 8.0, 1.5  # m, degrees down, degrees (left side up): the mount of both cameras
SEED = 42  # a ground-robot sequence of the generator (its room and path; the mount replaced by ours)
FRAMES = 3
FLOOR = NYUD_CLASSES.index("floor")
CAMS = ("front", "rear")


@pytest.fixture(scope="module")
def frames():
    """Frames of one room from a camera on the static mount (height, pitch, roll fixed), moving along the
    generator's ground path; the generator's own pose convention (``camera_pose``: pitch > 0 looks up)."""
    from mtlsi_core.data.sequence import SequenceSpec, camera_pose, make_sequence

    seq = make_sequence(SequenceSpec(SEED, "ground", frames=FRAMES, rate=5.0, size=SIZE))
    poses = []
    for T in seq.poses:
        yaw = math.atan2(T[1, 2], T[0, 2])  # heading of the optical axis
        poses.append(camera_pose(np.array([T[0, 3], T[1, 3], HEIGHT]), yaw, -math.radians(PITCH), math.radians(ROLL)))
    seq = replace(seq, poses=np.stack(poses))
    return [seq.render(i) for i in range(FRAMES)]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    params = {"device": "cpu", "backend": "torch", "precision": "fp32", "model_path": "",  # the shipped model
              "cameras": list(CAMS), "floor_anchoring": True,
              "camera_height_m": [HEIGHT, HEIGHT], "camera_pitch_deg": [PITCH, PITCH], "camera_roll_deg": ROLL,
              # each frame's own scale (smoothing and the per-frame bound are unit-tested: test_anchoring.py)
              "floor_smoothing": 1.0, "floor_max_step": 1.0,
              "camera_info_wait_ms": 1000.0, "batch_window_ms": 0.0, "diagnostics_period_s": 0.2,
              "publish_color": False, "warmup": False}
    yield from node_session(tmp_path_factory.mktemp("node_anchoring"), __name__, params)


def _floor_ratio(depth: np.ndarray, frame) -> np.ndarray:
    """published depth / the generator's exact depth on its floor pixels (finite published depth)."""
    floor = (frame.semseg == FLOOR) & np.isfinite(depth)
    assert floor.sum() > 0.2 * floor.size, "the view should show the floor"
    return depth[floor] / frame.depth[floor]


def _publish_frames(c: PerceptionClient, frames, stamp0: int) -> list[np.ndarray]:
    out = []
    for i, f in enumerate(frames):
        h = c.publish(f.image, camera="front", stamp_ns=stamp0 + i, k=f.K)
        out.append(image_to_numpy(c.wait_for(h, camera="front", timeout=60)["depth"].msg))
    return out


def test_floor_pixels_of_the_published_depth_lie_on_the_floor(node, frames):
    _, ros, _ = node
    with PerceptionClient("/t", cameras=["front"], context=ros.context, topics=["depth"]) as c:
        c.wait_for_node(60)
        c.wait_until_answering(60)
        for i, (f, depth) in enumerate(zip(frames, _publish_frames(c, frames, 7_000_000_000))):
            med = float(np.median(_floor_ratio(depth, f)))
            assert abs(med - 1.0) < 0.02, f"frame {i}: floor pixels at {med:.4f} x their true depth"
        d = c.wait_diagnostics(lambda v: int(v.get("anchor.frames_anchored", 0)) >= FRAMES, camera="front")
        assert d["anchor.status"] == "anchored" and int(d["anchor.support_pixels"]) >= 100, d
        assert d["anchor.mount"] == f"height {HEIGHT:.3f} m, pitch {PITCH:+.2f} deg, roll {ROLL:+.2f} deg"
        # the last frame's depth was the network's x anchor.scale: the network alone puts the floor far off
        raw = med / float(d["anchor.scale"])
        assert abs(raw - 1.0) > 0.1, f"the network's own floor depth is already right ({raw:.3f}): no test"


def test_a_camera_without_camera_info_is_not_anchored_and_diagnostics_say_so(node, frames):
    _, ros, _ = node
    with PerceptionClient("/t", cameras=["rear"], context=ros.context, topics=["depth"]) as c:
        c.wait_for_node(60)
        deadline, answered, i = time.monotonic() + 60, None, 0
        while answered is None:  # no wait_until_answering: its probes carry camera_info
            assert time.monotonic() < deadline, "the rear camera was never answered"
            h = c.publish(frames[0].image, camera="rear", stamp_ns=9_000_000_000 + i)  # no k: no camera_info
            i += 1
            try:
                answered = c.wait_for(h, camera="rear", timeout=5)
            except TimeoutError:
                continue
        d = c.wait_diagnostics(lambda v: v.get("anchor.status") == "no_intrinsics", camera="rear", timeout=15)
        assert d["level"] == "1" and d["message"].startswith("floor anchoring: no camera_info"), d
        assert d["anchor.scale"] == "1.0000" and d["anchor.frames_anchored"] == "0"
        depth = image_to_numpy(answered["depth"].msg)
        assert abs(float(np.median(_floor_ratio(depth, frames[0]))) - 1.0) > 0.1  # as the network predicts


def test_floor_replace_depth_puts_most_floor_pixels_on_the_plane(node, frames):
    proc, ros, _ = node
    with PerceptionClient("/t", cameras=["front"], context=ros.context, topics=["depth"]) as c:
        lc = LifecycleClient(c.node, proc.fqn)
        assert lc.change_state("deactivate") and lc.change_state("cleanup")
        assert all(lc.set_parameters({"floor_replace_depth": True}))
        assert lc.change_state("configure") and lc.change_state("activate")
        c.wait_for_node(60)
        c.wait_until_answering(60)
        for i, (f, depth) in enumerate(zip(frames[:2], _publish_frames(c, frames[:2], 8_000_000_000))):
            r = _floor_ratio(depth, f)
            on = float(np.mean(np.abs(r - 1.0) < 0.02))
            assert on > 0.6, f"frame {i}: only {on:.0%} of the floor pixels within 2 % of the floor"
