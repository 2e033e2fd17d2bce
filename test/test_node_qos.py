"""QoS behaviour over real DDS: with the default sensor-data QoS (keep last 1) a burst of frames faster than
inference is answered with the newest frames and bounded latency (older frames are dropped by DDS's keep-last-1
history or, once received, counted ``stale``); with ``process_every_frame`` every frame is answered, in order."""
from __future__ import annotations

import statistics
import time

import pytest

from mtlsi_ros.client import LifecycleClient, PerceptionClient, stamp_to_ns
from node_helpers import node_session, sample_image, tiny_checkpoint

pytestmark = pytest.mark.ros

# A large input makes each frame slower than the publisher (resizing in, outputs at input size out).
BIG = (480, 640)
BURST = 30


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    params = {"device": "cpu", "model_path": str(tiny_checkpoint()), "batch_window_ms": 0.0}
    yield from node_session(tmp_path_factory.mktemp("node_qos"), __name__, params)


def _burst(c: PerceptionClient, base: int) -> tuple[float, float, list[int]]:
    """Time one frame at a time, then publish BURST frames back to back; wait until answers stop coming.
    Returns (seconds per single frame, seconds the burst took, stamps published)."""
    frames = [sample_image(*BIG, seed=i) for i in range(4)]
    single = []
    for i in range(3):
        h = c.publish(frames[i % 4], stamp_ns=base + i)
        r = c.wait_for(h, timeout=60)["segmentation"]
        single.append(r.t - c.published[("", base + i)])
    one = statistics.median(single)
    c.clear()
    t0 = time.monotonic()
    stamps = [stamp_to_ns(c.publish(frames[i % 4], stamp_ns=base + 100 + i).stamp) for i in range(BURST)]
    t_burst = time.monotonic() - t0
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < max(1.0, 4 * one) and time.monotonic() - t0 < 60:
        n = len(c.answered("", "segmentation"))
        if n != seen:
            seen, quiet_since = n, time.monotonic()
        time.sleep(0.05)
    return one, t_burst, stamps


def _check_burst(c: PerceptionClient, one: float, t_burst: float, stamps: list[int], newest_of: int) -> dict:
    answered = c.answered("", "segmentation")
    assert t_burst < BURST * one, f"the burst ({t_burst:.2f} s) was not faster than inference ({one:.3f} s/frame)"
    assert answered, "no frame of the burst was answered"
    assert len(answered) < BURST, "with keep-last-1 QoS the node must not answer every frame of the burst"
    assert answered == sorted(answered), "answers out of order"
    assert answered[-1] in stamps[-newest_of:], "the node did not end on the newest frames"
    last = c.get(answered[-1])
    latency_last = last.t - c.published[("", answered[-1])]
    # Newest-wins: the last frame waits for at most the frame in progress, then its own inference.
    assert latency_last < 4 * one + 0.5, (latency_last, one)
    # every frame the node received is either answered or counted as dropped (as stale: nothing else went wrong)
    diag = c.wait_diagnostics(lambda v: int(v["frames_in"]) == int(v["frames_out"]) + int(v["dropped_total"])
                              and int(v["frames_out"]) >= len(answered) + 3, timeout=10)
    assert int(diag["dropped.stale"]) == int(diag["dropped_total"])
    return diag


def test_burst_faster_than_inference_keeps_newest_and_bounded_latency(node):
    """Default sensor-data QoS (best effort, keep last 1). Best effort may lose the very last sample in
    transport, so the newest answered frame must be one of the last few published."""
    _, ros, _ = node
    with PerceptionClient("/t", context=ros.context, topics=["segmentation"], input_depth=BURST) as c:
        c.wait_for_node(60)
        one, t_burst, stamps = _burst(c, 1_000)
        _check_burst(c, one, t_burst, stamps, newest_of=5)


def test_burst_with_reliable_keep_last_1_answers_the_newest(node):
    """qos_reliability: reliable, depth 1: still newest-wins, and the newest frame is guaranteed to arrive."""
    proc, ros, _ = node
    with PerceptionClient("/t", context=ros.context, topics=["segmentation"], input_depth=BURST) as c:
        lc = LifecycleClient(c.node, proc.fqn)
        assert lc.change_state("deactivate") and lc.change_state("cleanup")
        assert all(lc.set_parameters({"qos_reliability": "reliable"}))
        assert lc.change_state("configure") and lc.change_state("activate")
        c.wait_for_node(60)
        one, t_burst, stamps = _burst(c, 1_000_000)
        _check_burst(c, one, t_burst, stamps, newest_of=1)


def test_process_every_frame_answers_every_frame_in_order(node):
    proc, ros, _ = node
    n = 20
    with PerceptionClient("/t", context=ros.context, topics=["segmentation", "depth"], input_depth=n + 5) as c:
        lc = LifecycleClient(c.node, proc.fqn)
        assert lc.change_state("deactivate") and lc.change_state("cleanup")
        assert all(lc.set_parameters({"process_every_frame": True, "queue_size": 3, "qos_reliability": "best_effort"}))
        assert lc.change_state("configure") and lc.change_state("activate")
        c.wait_for_node(60)
        img = sample_image(240, 320, seed=1)
        stamps = [stamp_to_ns(c.publish(img, stamp_ns=50_000 + i).stamp) for i in range(n)]
        for s in stamps:
            c.wait_for(s, topics=["segmentation", "depth"], timeout=60)
        assert c.answered("", "segmentation") == stamps
        assert c.answered("", "depth") == stamps
        diag = c.wait_diagnostics(lambda v: int(v["frames_out"]) >= n, timeout=10)
        assert int(diag["dropped.stale"]) == 0 and int(diag["dropped.queue_full"]) == 0
