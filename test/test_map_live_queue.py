"""Live mapping's queue and thread (mtlsi_core.mapping.live, no ROS): ``submit`` never waits for the map; newest
wins drops the oldest waiting frame and counts it, process-all keeps every frame up to its capacity; a frame whose
pose is not there yet is retried, then counted unplaced; bad frames are counted and the thread goes on; every frame
lands in exactly one count; the map of every frame equals ``build_map``'s."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mtlsi_core.data.sequence import SequenceSpec, make_sequence
from mtlsi_core.mapping.live import FrameQueue, LiveMapper, NotReady

OUTCOMES = ("integrated", "skipped", "empty", "dropped", "unposed", "failed", "discarded", "waiting")


@pytest.fixture(scope="module")
def frames():
    seq = make_sequence(SequenceSpec(seed=6, kind="handheld", frames=6, rate=10.0, size=(48, 64)))
    return [(f.depth, f.semseg, f.K, T) for f, T in zip((seq.render(i) for i in range(len(seq))), seq.poses)]


def accounted(st):
    return sum(st[k] for k in OUTCOMES) == st["received"]


def test_frame_queue_policies():
    assert FrameQueue("latest").capacity == 3
    q = FrameQueue("latest", capacity=1)
    assert q.capacity == 1 and q.put("a") and not q.put("b") and not q.put("c")
    assert q.dropped == 2 and len(q) == 1 and q.get(0)[1] == "c" and q.pending() == 1
    q.done()
    assert q.pending() == 0 and q.get(timeout=0.01) is None
    q = FrameQueue("all", capacity=3)
    assert all(q.put(i) for i in range(3)) and not q.put(3)  # full: the oldest goes
    assert q.dropped == 1 and [q.get(0)[1] for _ in range(3)] == [1, 2, 3] and q.high_water == 3
    q.close()
    assert q.get() is None and not q.put(9) and q.dropped == 2
    assert FrameQueue("all").capacity == 300
    for policy, cap in [("oldest", None), ("all", 0)]:
        with pytest.raises(ValueError):
            FrameQueue(policy, cap)


def test_submit_never_waits_for_a_slow_map_and_newest_wins(frames):
    gate = threading.Event()

    def slow(item):  # the map is stuck until the gate opens
        gate.wait(10)
        return item

    m = LiveMapper(policy="latest", capacity=1, prepare=slow)
    try:
        assert m.submit(frames[0])
        time.sleep(0.05)  # the thread took it and waits in prepare
        t0 = time.perf_counter()
        results = [m.submit(f) for f in frames[1:]]
        assert time.perf_counter() - t0 < 0.5  # no waiting for the map
        time.sleep(0.05)
        gate.set()
        assert m.wait_idle(30)
        st = m.stats()
        # the first frame was taken into work at once; of the others only the newest waited
        assert st["received"] == len(frames) and st["integrated"] == 2 and st["dropped"] == len(frames) - 2
        assert results.count(False) == st["dropped"] and accounted(st) and st["queue_high_water"] == 1
    finally:
        m.close()


def test_process_all_maps_every_frame_like_build_map(frames):
    from mtlsi_core.mapping.tsdf import build_map

    m = LiveMapper(policy="all")
    for f in frames:
        assert m.submit(f)
    m.close()
    st = m.stats()
    assert st["integrated"] == len(frames) and st["dropped"] == 0 and accounted(st) and st["waiting"] == 0
    assert st["latency_s"]["max"] > 0 and st["integrated_per_second"] > 0 and not st["errors"]
    ref = build_map(frames)
    res = m.extract()
    for field in ("vertices", "triangles", "labels", "confidence"):
        assert np.array_equal(getattr(res, field), getattr(ref, field)), field


def test_not_ready_retried_then_unposed_and_bad_frames_counted(frames):
    arrived: dict[int, float] = {}

    def prepare(item):
        i, late = item
        if i == 1:
            raise ValueError("frame 1 is broken")
        if i == 2:
            raise RuntimeError("something unexpected")
        if late is None:
            raise NotReady(f"no pose for frame {i}")
        now = time.monotonic()
        if now - arrived.setdefault(i, now) < late:
            raise NotReady(f"pose of frame {i} not yet")
        return frames[i]

    m = LiveMapper(policy="all", prepare=prepare, ready_wait=0.3)
    for item in [(0, 0.1), (1, 0.0), (2, 0.0), (3, None), (4, 0.0)]:
        m.submit(item)
    m.close()
    st = m.stats()
    assert (st["integrated"], st["failed"], st["unposed"]) == (2, 2, 1) and accounted(st)
    text = " | ".join(st["errors"])
    assert "frame 1 is broken" in text and "RuntimeError: something unexpected" in text
    assert "not placed within 0.3 s: no pose for frame 3" in text
    # a frame of the wrong shape fails in the integration: counted, the thread goes on
    d, lab, K, T = frames[0]
    m = LiveMapper(policy="all")
    m.submit((d, lab[::2], K, T))
    m.submit(frames[0])
    m.close()
    st = m.stats()
    assert st["failed"] == 1 and st["integrated"] == 1 and "same size" in st["errors"][0]


def test_close_without_drain_discards_and_keyframes_count_skipped(frames):
    from mtlsi_core.mapping.tsdf import TSDFOptions

    gate = threading.Event()
    m = LiveMapper(policy="all", prepare=lambda item: (gate.wait(10), item)[1])
    for f in frames:
        m.submit(f)
    time.sleep(0.05)
    threading.Timer(0.2, gate.set).start()
    m.close(drain=False)
    st = m.stats()
    assert st["discarded"] == len(frames) - 1 and st["integrated"] == 1 and accounted(st)
    m = LiveMapper(TSDFOptions(keyframe_translation=0.05, keyframe_rotation_deg=5.0), policy="all")
    for _ in range(3):
        m.submit(frames[0])
    m.submit((np.full_like(frames[1][0], np.nan), *frames[1][1:]))
    m.close()
    st = m.stats()
    assert (st["integrated"], st["skipped"], st["empty"]) == (1, 2, 1) and accounted(st)
