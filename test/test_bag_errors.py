"""Bad bags and bad arguments: truncated or corrupt sqlite3 / mcap files, paths that are not bags, missing topics,
unsupported or unknown message types, undeserialisable messages, bad parameter files. Each is one clear line on
stderr naming the file / topic / message, and exit status 2; no output bag appears."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable

import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from bag_helpers import focal_checkpoint, make_synth_bag
from mtlsi_ros.bag.cli import main
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.live import BagPlayer
from mtlsi_ros.bag.msgtypes import definition
from mtlsi_ros.bag.storage import BagReader, BagWriter


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    return {"dir_sqlite3": make_synth_bag(root / "d_sqlite", num=2, storage="sqlite3"),
            "dir_mcap": make_synth_bag(root / "d_mcap", num=2, storage="mcap"),
            "db3": make_synth_bag(root / "f.db3", num=2), "mcap": make_synth_bag(root / "f.mcap", num=2)}


def _cut(src: Path, dst: Path, keep: float = 0.5, middle: bool = False) -> Path:
    """A copy of a bag whose storage file is cut to ``keep`` of its size (or, ``middle``, damaged there)."""
    if src.is_dir():
        shutil.copytree(src, dst)
        f = next(p for p in dst.iterdir() if p.suffix in (".db3", ".mcap"))
    else:
        shutil.copy(src, dst)
        f = dst
    data = bytearray(f.read_bytes())
    at = int(len(data) * keep)
    if middle:
        data[at:at + 4096] = b"\xff" * 4096
    else:
        del data[at:]
    f.write_bytes(bytes(data))
    return dst


def _run(capsys, *argv: str) -> str:
    rc = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mtlsi-bag {argv[0]}: error: "), err
    return lines[0]


@pytest.mark.parametrize("kind", ["dir_sqlite3", "dir_mcap", "db3", "mcap"])
def test_truncated_bags(good, tmp_path, capsys, caplog, kind):
    """Cut in half: the complete messages before the cut are used, with a warning naming the file (test_bag_truncated
    checks which ones); where none is complete (sqlite3 keeps these rows in pages past the cut) a clear error."""
    src = good[kind]
    bad = _cut(src, tmp_path / src.name)
    out = tmp_path / "out"
    try:
        with BagReader(bad) as r:
            images = r.message_counts().get("/camera/image", 0)
    except BagError as e:
        assert "no complete message before the cut" in str(e)
        images = 0
    if kind.endswith("mcap"):
        assert images >= 1  # the first frame lies wholly in the first half
    if images == 0:
        msg = _run(capsys, "infer", "--in", str(bad), "--out", str(out), "--device", "cpu")
        assert str(bad) in msg and "truncated or corrupt" in msg
        assert not out.exists()
        assert "truncated or corrupt" in _run(capsys, "eval", "--bag", str(bad))
        return
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtlsi_ros.bag.storage"):  # the CLI logs to stderr
        rc = main(["infer", "--in", str(bad), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith(str(bad)) and "truncated bag" in w and "up to byte" in w for w in warned), warned
    with BagReader(out) as r:
        assert r.message_counts()["/camera/segmentation"] == images


def test_corrupt_sqlite_pages_name_the_last_good_message(good, tmp_path):
    bad = _cut(good["db3"], tmp_path / "bad.db3", keep=0.5, middle=True)
    with pytest.raises(BagError, match=r"bad\.db3: truncated or corrupt data after /camera/\S+ message \d+ "):
        with BagReader(bad) as r:
            for _ in r.messages():
                pass


def _write(path: Path, fill: Callable[[BagWriter], None]) -> Path:
    with BagWriter(path) as w:
        fill(w)
    return path


def test_not_a_bag(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "not a bag (expected a rosbag2 directory" in _run(capsys, "infer", "--in", str(text), "--out", "x")
    assert "a directory without metadata.yaml" in _run(capsys, "infer", "--in", str(tmp_path), "--out", "x")
    assert "no such bag" in _run(capsys, "eval", "--bag", str(tmp_path / "nope"))
    fake = tmp_path / "fake.mcap"
    fake.write_bytes(b"not an mcap file at all")
    assert "cannot open the bag, truncated or corrupt" in _run(capsys, "infer", "--in", str(fake), "--out", "x")


def test_missing_and_unsupported_topics(good, tmp_path, capsys):
    msg = _run(capsys, "infer", "--in", str(good["mcap"]), "--out", str(tmp_path / "o"), "--image-topic", "/cam/rgb")
    assert "no image topic /cam/rgb; its topics: /camera/camera_info (sensor_msgs/msg/CameraInfo)" in msg
    only_info = _write(tmp_path / "info_only.mcap", lambda w: w.write_msg("/camera/camera_info", String(data="x"), 1))
    msg = _run(capsys, "infer", "--in", str(only_info), "--out", str(tmp_path / "o"))
    assert "no image topic (a topic named .../image" in msg and "/camera/camera_info (std_msgs/msg/String)" in msg
    strings = _write(tmp_path / "strings.mcap", lambda w: w.write_msg("/camera/image", String(data="hi"), 1))
    msg = _run(capsys, "infer", "--in", str(strings), "--out", str(tmp_path / "o"))
    assert ("image topic /camera/image has type std_msgs/msg/String, which is not supported here (expected "
            "sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage)") in msg
    assert not (tmp_path / "o").exists()


def test_unknown_message_type_and_garbage_bytes(tmp_path, capsys):
    from rosbags.rosbag2 import Writer

    unknown = tmp_path / "unknown"
    with Writer(unknown, version=9) as w:
        conn = w.add_connection("/camera/image", "acme_msgs/msg/Frame", msgdef="string data\n",
                                rihs01="RIHS01_" + "0" * 64)
        w.write(conn, 1, b"\x00\x01\x00\x00\x03\x00\x00\x00ab\x00")
    msg = _run(capsys, "infer", "--in", str(unknown), "--out", str(tmp_path / "o"))
    assert "has type acme_msgs/msg/Frame, which is not supported here" in msg
    with pytest.raises(BagError, match="acme_msgs/msg/Frame is not available in this Python environment"):
        BagPlayer(unknown)
    msgdef, rihs = definition("sensor_msgs/msg/Image")
    garbage = tmp_path / "garbage"
    with Writer(garbage, version=9) as w:  # message 0 is fine, message 1 is cut short
        conn = w.add_connection("/camera/image", "sensor_msgs/msg/Image", msgdef=msgdef, rihs01=rihs)
        w.write(conn, 1, serialize_message(Image(header=Header(frame_id="f"), height=8, width=8, encoding="rgb8",
                                                 step=24, data=[7] * 192)))
        w.write(conn, 2, b"\x00\x01\x00\x00\x05")
    msg = _run(capsys, "infer", "--in", str(garbage), "--out", str(tmp_path / "o"), "--device", "cpu",
               "--model", str(focal_checkpoint()), "--set", "warmup=false")
    assert "garbage: /camera/image message 1: cannot deserialise 5 bytes as sensor_msgs/msg/Image" in msg
    assert not (tmp_path / "o").exists()


def test_bad_parameter_files(good, tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("/**:\n  ros__parameters:\n    bogus: 1\n")
    msg = _run(capsys, "infer", "--in", str(good["mcap"]), "--out", str(tmp_path / "o"), "--params", str(p))
    assert f"params file {p}: unknown parameter 'bogus'" in msg
    p.write_text("perception:\n  ros__parameters:\n    qos_depth: 0\n")
    msg = _run(capsys, "infer", "--in", str(good["mcap"]), "--out", str(tmp_path / "o"), "--params", str(p))
    assert "parameter 'qos_depth' = 0: must be > 0" in msg
    p.write_text("/**: [unclosed\n")
    assert "not valid YAML" in _run(capsys, "infer", "--in", str(good["mcap"]), "--out", "o", "--params", str(p))
    assert "expected NAME=VALUE" in _run(capsys, "infer", "--in", str(good["mcap"]), "--out", "o", "--set", "x")
