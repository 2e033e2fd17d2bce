"""Player and recorder over real DDS (a private domain): a bag played and recorded comes back byte for byte, at its
relative timing, with /clock carrying the bag time; the CLI commands in their own processes; a recorder that is
interrupted finishes its bag (Ctrl-C) or leaves none that looks complete (killed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bag_helpers import make_synth_bag, read_bag
from mtlsi_ros.bag.live import BagPlayer, BagRecorder
from mtlsi_ros.bag.storage import BagReader
from node_helpers import REPO, RosSide, domain_id, ros_env

pytestmark = pytest.mark.ros

FRAMES = 3
RATE = 5.0  # frames per second in the bag
TOPICS = ["/camera/camera_info", "/camera/image", "/camera/gt/segmentation", "/camera/gt/depth",
          "/camera/gt/normals", "/camera/gt/boundary"]


def _same_cdr(recorded: bytes, original: bytes) -> bool:
    """Equal bytes; a DDS payload may end in up to 3 zero bytes aligning its length to 4."""
    pad = recorded[len(original):]
    return recorded[:len(original)] == original and len(pad) < 4 and not any(pad)


def _log_times(path, topic):
    with BagReader(path) as r:
        return [raw.log_time for raw in r.messages([topic])]


def test_play_and_record_round_trip_with_clock(tmp_path):
    bag = make_synth_bag(tmp_path / "in", num=FRAMES, rate=RATE)
    ros = RosSide(domain_id(__name__ + "inproc"))
    try:
        rec = BagRecorder(tmp_path / "rec", TOPICS + ["/clock"], context=ros.context)
        try:
            with BagPlayer(bag, context=ros.context, rate=2.0, clock=True, clock_hz=50.0) as player:
                rec.wait_ready(30)
                player.wait_for_subscribers(timeout=30)
                result = player.play()
                rec.wait_for_counts({t: FRAMES for t in TOPICS}, timeout=30)
            time.sleep(0.2)
        except BaseException:
            rec.abort()
            raise
        out = rec.close()
    finally:
        ros.close()
    assert result["published"] == {t: FRAMES for t in TOPICS}
    original, recorded = read_bag(bag, TOPICS), read_bag(out, TOPICS)
    assert set(original) == set(recorded)
    for key, (data, _) in original.items():
        assert _same_cdr(recorded[key][0], data), key
    # relative timing at twice the speed: frames 0.2 s apart in the bag arrive ~0.1 s apart
    received = _log_times(out, "/camera/image")
    span = (received[-1] - received[0]) / 1e9
    assert 0.8 * (FRAMES - 1) / RATE / 2.0 <= span <= (FRAMES - 1) / RATE / 2.0 + 1.0, span
    # /clock carries the bag's time: within its range, never backwards, and hits every message time
    with BagReader(out) as r:
        clock = [r.deserialize(raw).clock for raw in r.messages(["/clock"])]
    ns = [c.sec * 1_000_000_000 + c.nanosec for c in clock]
    stamps = sorted({s for _, s in original})
    assert ns == sorted(ns) and stamps[0] <= ns[0] and ns[-1] <= stamps[-1] and set(stamps) <= set(ns)
    assert len(ns) > len(stamps)  # also between messages


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mtlsi_ros.bag.cli", *args], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_cli_record_and_play_in_their_own_processes(tmp_path):
    bag = make_synth_bag(tmp_path / "in.mcap", num=FRAMES, rate=10.0)
    env = ros_env(domain_id(__name__ + "cli"))
    out = tmp_path / "rec.db3"
    rec = _cli(["record", "--out", str(out), "--topics", "/camera/image", "/camera/camera_info", "--count",
                str(FRAMES)], env)
    play = _cli(["play", "--bag", str(bag), "--wait-for", "/camera/image", "/camera/camera_info",
                 "--topics", "/camera/image", "/camera/camera_info"], env)
    try:
        play_out, play_err = play.communicate(timeout=60)
        rec_out, rec_err = rec.communicate(timeout=30)
    finally:
        for p in (play, rec):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert play.returncode == 0, play_err
    assert rec.returncode == 0, rec_err
    assert f"played {2 * FRAMES} messages" in play_out
    original, recorded = read_bag(bag, ["/camera/image", "/camera/camera_info"]), read_bag(out)
    assert set(original) == set(recorded)
    assert all(_same_cdr(recorded[k][0], d) for k, (d, _) in original.items())


def test_interrupted_recorder_finishes_or_leaves_no_bag(tmp_path):
    env = ros_env(domain_id(__name__ + "signals"))
    outs = {"int": tmp_path / "ctrl_c", "kill": tmp_path / "killed"}
    procs = {k: _cli(["record", "--out", str(p), "--topics", "/nobody/publishes"], env) for k, p in outs.items()}
    try:
        for p in procs.values():  # the recorder says so once its bag is open
            assert "recording" in p.stderr.readline()
        os.killpg(procs["int"].pid, signal.SIGINT)
        os.killpg(procs["kill"].pid, signal.SIGKILL)
        _, err = procs["int"].communicate(timeout=30)
        procs["kill"].wait(timeout=30)
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert procs["int"].returncode == 0, err
    with BagReader(outs["int"]) as r:  # complete (metadata and all), with no messages
        assert r.message_counts() == {}
    assert not outs["kill"].exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".killed.partial-")]


def test_latched_topics_reach_late_subscribers_and_stay_latched(tmp_path):
    """A topic recorded as latched is played transient local: a recorder that subscribes only after the playback
    ended still gets its message (as a tf2 buffer gets /tf_static), subscribes transient local because the
    publisher offers it, and marks the topic latched in its own bag; a plain topic stays volatile."""
    from std_msgs.msg import String

    from mtlsi_ros.bag.storage import BagWriter

    bag = tmp_path / "latched.mcap"
    with BagWriter(bag) as w:
        w.add_topic("/robot_description", "std_msgs/msg/String", latched=True)
        w.write_msg("/robot_description", String(data="<robot/>"), 1_000)
        w.write_msg("/chatter", String(data="hello"), 2_000)
    with BagReader(bag) as r:
        assert r.latched_topics() == {"/robot_description"}
    ros = RosSide(domain_id(__name__ + "latched"))
    try:
        with BagPlayer(bag, context=ros.context, rate=100.0) as player:
            assert player.latched == {"/robot_description"}
            player.play()  # nobody listens yet
            with BagRecorder(tmp_path / "rec.mcap", ["/robot_description"], context=ros.context) as rec:
                rec.wait_ready(30)  # closes the bag on success, drops it on an error
                rec.wait_for_counts({"/robot_description": 1}, timeout=30)
            out = tmp_path / "rec.mcap"
    finally:
        ros.close()
    with BagReader(out) as r:
        assert r.latched_topics() == {"/robot_description"}
        assert [r.deserialize(m).data for m in r.messages(["/robot_description"])] == ["<robot/>"]
