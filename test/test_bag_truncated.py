"""Bags cut short (a crash or power loss while recording): every complete message before the cut comes back, in
order and bit-identical, with a warning naming the file and where it stops; a file cut inside its header is a clear
error. MCAP (single file and rosbag2 directory) and sqlite3."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.storage import BagReader, BagWriter

CUTS = (0.3, 0.6, 0.9)
N = 90  # messages; ~2.7 MB, so the MCAP file has several 1 MiB chunks


def _messages():
    rng = np.random.default_rng(11)
    for i in range(N):
        hdr = Header(frame_id=f"cam{i}")
        hdr.stamp.sec, hdr.stamp.nanosec = 100 + i // 10, (i % 10) * 100_000_000
        if i % 3 == 0:
            info = CameraInfo(header=hdr, height=i + 1, width=2 * i + 1)
            yield "/camera/camera_info", info, 1_000 + i
        else:
            w = 100 + int(rng.integers(0, 60))
            img = Image(header=hdr, height=100, width=w, encoding="rgb8", step=3 * w)
            img.data = rng.integers(0, 256, size=100 * 3 * w, dtype=np.uint8).tobytes()  # unique bytes per message
            yield "/camera/image", img, 1_000 + i


def _write(path: Path) -> Path:
    with BagWriter(path) as w:
        for topic, msg, t in _messages():
            w.write_msg(topic, msg, t)
    return path


def _read(path: Path) -> tuple[list[tuple[str, int, bytes]], list]:
    with BagReader(path) as bag:
        msgs = [(m.topic, m.log_time, m.data) for m in bag.messages()]
        for m in bag.messages():  # every salvaged message deserialises as usual
            bag.deserialize(m)
        return msgs, bag.truncations


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("trunc")
    out = {"mcap": _write(root / "full.mcap"), "db3": _write(root / "full.db3"), "dir": _write(root / "dirbag")}
    return out, {k: _read(v)[0] for k, v in out.items()}


def _cut_copy(src: Path, dst: Path, at: int) -> Path:
    dst.write_bytes(src.read_bytes()[:at])
    return dst


def _complete_before(full: bytes, msgs, cut: int):
    """The messages whose bytes all lie before ``cut`` (their CDR bytes located in the uncompressed MCAP file)."""
    out = []
    for m in msgs:
        at = full.find(m[2])
        assert at > 0 and full.find(m[2], at + 1) < 0  # each message's bytes are unique in the file
        if at + len(m[2]) <= cut:
            out.append(m)
    return out


@pytest.mark.parametrize("where", [*CUTS, "5 bytes short"])
def test_mcap_cut_gives_every_complete_message_before_the_cut(bags, tmp_path, caplog, where):
    files, full_msgs = bags
    src = files["mcap"]
    full = src.read_bytes()
    assert len(full_msgs["mcap"]) == N
    cut = len(full) - 5 if where == "5 bytes short" else int(len(full) * where)
    bad = _cut_copy(src, tmp_path / "cut.mcap", cut)
    with caplog.at_level(logging.WARNING, logger="mtlsi_ros.bag.storage"):
        got, truncs = _read(bad)
    expect = _complete_before(full, full_msgs["mcap"], cut)
    assert len(expect) > 0.8 * where * N if where != "5 bytes short" else len(expect) == N
    assert got == expect  # all of them, in order, bit-identical; nothing partial
    assert len(truncs) == 1 and truncs[0].file == bad and truncs[0].size == cut
    last_end = full.find(expect[-1][2]) + len(expect[-1][2])
    assert last_end <= truncs[0].offset <= cut
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(bad) in w and f"up to byte {truncs[0].offset} of {cut}" in w and f"read {len(expect)} " in w
               for w in warnings), warnings


@pytest.mark.parametrize("frac", CUTS)
def test_sqlite_cut_gives_the_messages_sqlite_still_has(bags, tmp_path, caplog, frac):
    files, full_msgs = bags
    src = files["db3"]
    full = src.read_bytes()
    cut = int(len(full) * frac)
    bad = _cut_copy(src, tmp_path / "cut.db3", cut)
    with caplog.at_level(logging.WARNING, logger="mtlsi_ros.bag.storage"):
        got, truncs = _read(bad)
    # a subsequence of the full bag, in order and bit-identical (rows whose pages lie past the cut are missing)
    it = iter(full_msgs["db3"])
    assert all(any(m == f for f in it) for m in got)
    assert len(got) > 0.5 * frac * N, len(got)
    assert len(truncs) == 1 and truncs[0].messages == len(got) and truncs[0].size == cut
    assert any(str(bad) in r.getMessage() and "truncated bag" in r.getMessage() for r in caplog.records)


def test_directory_bag_with_a_cut_storage_file_and_without_metadata(bags, tmp_path, caplog):
    files, full_msgs = bags
    bag = tmp_path / "dirbag"
    shutil.copytree(files["dir"], bag)
    f = next(bag.glob("*.mcap"))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="mtlsi_ros.bag.storage"):
        got, truncs = _read(bag)
    assert got == _complete_before(data, full_msgs["dir"], len(data) // 2) and len(got) > 0.4 * N
    assert truncs[0].file == f and any(str(f) in r.getMessage() for r in caplog.records)
    (bag / "metadata.yaml").unlink()  # a recorder killed before it wrote metadata.yaml
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mtlsi_ros.bag.storage"):
        again, _ = _read(bag)
    assert again == got
    with BagReader(bag) as r:
        assert r.topics() == {"/camera/camera_info": "sensor_msgs/msg/CameraInfo",
                              "/camera/image": "sensor_msgs/msg/Image"}
        assert sum(r.message_counts().values()) == len(got)


@pytest.mark.parametrize("kind,at", [("mcap", 5), ("mcap", 12), ("db3", 50)])
def test_cut_inside_the_header_is_a_clear_error(bags, tmp_path, kind, at):
    files, _ = bags
    bad = _cut_copy(files[kind], tmp_path / f"head.{kind}", at)
    header = "MCAP header" if kind == "mcap" else "SQLite header"
    with pytest.raises(BagError, match=rf"head\.{kind}.*truncated inside the {header} \({at} bytes\)"):
        _read(bad)


def test_complete_bags_read_as_before_without_warnings(bags, caplog):
    files, full_msgs = bags
    with caplog.at_level(logging.WARNING, logger="mtlsi_ros.bag.storage"):
        for kind in ("mcap", "db3", "dir"):
            got, truncs = _read(files[kind])
            assert truncs == [] and len(got) == N
    assert not caplog.records
    assert full_msgs["mcap"] == full_msgs["db3"] == full_msgs["dir"]
