"""Bad input over real DDS: every malformed message gets a logged error naming what was wrong and a diagnostics
count under its reason, and the node keeps serving good frames; an 8000x6000 image is served (resized) below
max_input_pixels and refused above it; 500 random malformed messages in a row do not stop the node.

Two nodes: /t takes raw images (reliable QoS, max_input_pixels 50 M, outputs capped at 1 M pixels), /tc takes
compressed images with the default limits."""
from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from mtlsi_core.outputs import fit_within_pixels
from mtlsi_ros.client import PerceptionClient
from mtlsi_ros.conversions import image_to_numpy, rgb_to_compressed
from node_helpers import NodeProcess, RosSide, domain_id, intrinsics, sample_image, tiny_checkpoint

pytestmark = pytest.mark.ros

COMMON = {"device": "cpu", "precision": "fp32", "error_log_throttle_s": 0.0, "diagnostics_period_s": 0.2,
          "batch_window_ms": 0.0}
RAW = {**COMMON, "qos_reliability": "reliable", "max_input_pixels": 50_000_000, "max_output_pixels": 1_000_000}
COMPRESSED = {**COMMON, "input_transport": "compressed"}
GOOD = sample_image(64, 96, seed=1)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("node_badinput")
    dom = domain_id(__name__)
    ckpt = str(tiny_checkpoint())
    raw = NodeProcess(root, dom, {**RAW, "model_path": ckpt}, namespace="/t")
    comp = NodeProcess(root, dom, {**COMPRESSED, "model_path": ckpt}, namespace="/tc")
    ros = None
    try:
        raw.wait_log("active: subscribed", 180)
        comp.wait_log("active: subscribed", 180)
        ros = RosSide(dom)
        yield raw, comp, ros
    finally:
        raw.stop()
        comp.stop()
        if ros is not None:
            ros.close()


@pytest.fixture(scope="module")
def raw_client(nodes):
    raw, _, ros = nodes
    with PerceptionClient("/t", context=ros.context, topics=["segmentation", "depth", "output/camera_info"]) as c:
        c.wait_for_node(60)
        yield raw, c


@pytest.fixture(scope="module")
def comp_client(nodes):
    _, comp, ros = nodes
    with PerceptionClient("/tc", context=ros.context, topics=["segmentation"], compressed=True) as c:
        c.wait_for_node(60)
        yield comp, c


def _count(c: PerceptionClient, reason: str) -> int:
    return int(c.wait_diagnostics(lambda v: f"dropped.{reason}" in v)[f"dropped.{reason}"])


def _expect_refused(proc: NodeProcess, c: PerceptionClient, msg, reason: str, pattern: str) -> None:
    before = _count(c, reason)
    start = len(proc.log())
    c.publish_msg(msg)
    c.wait_diagnostics(lambda v: int(v[f"dropped.{reason}"]) > before, timeout=15)
    proc.wait_log(rf"\[ERROR\].*dropped frame \({reason}\): .*{pattern}", timeout=15, start=start)
    # still serving
    h = c.publish(GOOD)
    c.wait_for(h, topics=["segmentation"], timeout=30)


def _image(h: int, w: int, encoding: str, step: int, n: int) -> Image:
    m = Image(height=h, width=w, encoding=encoding, step=step)
    m.header.frame_id = "bad"
    m.data = bytes(n)
    return m


@pytest.mark.parametrize("msg, reason, pattern", [
    (_image(4, 4, "mono16", 8, 32), "bad_encoding", r"/t/image: 16-bit encoding 'mono16' is not supported"),
    (_image(4, 4, "16UC1", 8, 32), "bad_encoding", r"16-bit encoding '16UC1'"),
    (_image(4, 4, "rgb16", 24, 96), "bad_encoding", r"16-bit encoding 'rgb16'"),
    (_image(4, 4, "foo_bar", 12, 48), "bad_encoding", r"unsupported encoding 'foo_bar'; supported: rgb8, bgr8"),
    (_image(4, 4, "", 12, 48), "bad_encoding", r"unsupported encoding ''"),
    (_image(0, 0, "rgb8", 0, 0), "bad_size", r"zero-size image \(0x0\)"),
    (_image(10, 0, "rgb8", 0, 0), "bad_size", r"zero-size image \(10x0\)"),
    (_image(10, 10, "rgb8", 20, 200), "bad_size", r"step 20 is smaller than width 10 x 3 bytes per pixel = 30"),
    (_image(10, 10, "rgb8", 30, 299), "bad_size", r"data length 299 does not match step 30 x height 10 = 300"),
    (_image(10, 10, "bgra8", 40, 401), "bad_size", r"data length 401 does not match step 40 x height 10 = 400"),
    (_image(10, 10, "mono8", 16, 100), "bad_size", r"data length 100 does not match step 16 x height 10 = 160"),
    (_image(6000, 9000, "rgb8", 27000, 0), "too_large",
     r"9000x6000 = 54000000 pixels exceeds max_input_pixels = 50000000"),
], ids=["mono16", "16UC1", "rgb16", "unknown", "empty_encoding", "zero_size", "zero_width", "step_too_small",
        "data_short", "data_long", "step_data_mismatch", "too_large_header_only"])
def test_bad_raw_images_are_logged_counted_and_survived(raw_client, msg, reason, pattern):
    proc, c = raw_client
    _expect_refused(proc, c, msg, reason, pattern)


def test_8000x6000_is_resized_and_served(raw_client):
    proc, c = raw_client
    h, w = 6000, 8000
    img = np.ascontiguousarray(np.broadcast_to(sample_image(60, 80, seed=2).repeat(100, 0).repeat(100, 1), (h, w, 3)))
    header = c.publish(img, k=intrinsics(h, w))
    del img
    outs = c.wait_for(header, timeout=180)
    oh, ow = fit_within_pixels((h, w), RAW["max_output_pixels"])
    for topic, r in outs.items():
        assert (r.msg.height, r.msg.width) == (oh, ow), topic
    k = np.asarray(outs["output/camera_info"].msg.k).reshape(3, 3)
    assert k[0, 0] == pytest.approx(intrinsics(h, w)[0, 0] * ow / w)
    assert image_to_numpy(outs["segmentation"].msg).max() < 40
    assert proc.alive()


def test_500_random_malformed_messages_then_a_good_frame(raw_client):
    proc, c = raw_client
    rng = np.random.default_rng(123)
    time.sleep(1.0)  # > 2 diagnostics periods: the latest status counts everything sent before
    before = c.wait_diagnostics(lambda v: True)
    for i in range(500):
        kind = rng.integers(0, 5)
        h, w = (int(v) for v in rng.integers(0, 48, 2))
        enc = str(rng.choice(["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]))
        ch = {"mono8": 1, "rgb8": 3, "bgr8": 3}.get(enc, 4)
        step = w * ch
        n = step * h
        if kind == 0:  # unknown or 16-bit encoding
            enc = str(rng.choice(["mono16", "16UC1", "bgr16", "32FC1", "yuv422", "bayer_rggb8", "x" * int(rng.integers(0, 40))]))
        elif kind == 1:  # zero size
            h = 0 if rng.random() < 0.5 else h
            w = 0 if h else w
            step, n = w * ch, w * ch * h
        elif kind == 2:  # step too small
            h, w = max(h, 1), max(w, 1)
            step = int(rng.integers(0, w * ch))
            n = step * h
        else:  # data length off
            h, w = max(h, 1), max(w, 1)
            step = w * ch + int(rng.integers(0, 8))
            n = max(0, step * h + int(rng.choice([-1, 1])) * int(rng.integers(1, 500)))
            n = n if n != step * h else n + 1
        m = _image(h, w, enc, step, n)
        m.data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        m.is_bigendian = int(rng.integers(0, 2))
        c.publish_msg(m)
    header = c.publish(GOOD, stamp_ns=77_000_000_000)
    outs = c.wait_for(header, topics=["segmentation"], timeout=60)
    assert outs["segmentation"].msg.header.stamp.sec == 77
    assert proc.alive()
    c.wait_diagnostics(lambda v: int(v["frames_out"]) > int(before["frames_out"]))
    time.sleep(1.0)
    after = c.wait_diagnostics(lambda v: True)
    bad = sum(int(after[f"dropped.{r}"]) - int(before[f"dropped.{r}"]) for r in ("bad_encoding", "bad_size"))
    assert bad > 0 and int(after["dropped.inference_error"]) == 0
    # every message that reached the node was refused: none answered but the good one
    assert int(after["frames_out"]) - int(before["frames_out"]) == 1


def _png_declaring(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def _compressed(data: bytes, fmt: str = "rgb8; jpeg compressed bgr8") -> CompressedImage:
    m = CompressedImage(format=fmt)
    m.header.frame_id = "bad"
    m.data = data
    return m


def _big_jpeg() -> bytes:
    small = sample_image(60, 80, seed=3)
    big = cv2.resize(small, (8000, 6000), interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    return buf.tobytes()


JPEG = rgb_to_compressed(GOOD, CompressedImage().header).data.tobytes()


@pytest.mark.parametrize("data, fmt, reason, pattern", [
    (bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)), "jpeg", "decode_error",
     r"/tc/image/compressed: format 'jpeg': 2000 bytes are not a recognised image file"),
    (JPEG[:2] + bytes(200), "jpeg", "decode_error", r"not a recognised image file"),
    (JPEG[:30], "jpeg", "decode_error", r"format 'jpeg'"),
    (b"", "jpeg", "decode_error", r"empty data"),
    (JPEG, "16UC1; compressedDepth png", "bad_encoding", r"compressed depth images are not camera images"),
    (_png_declaring(100_000, 100_000), "png", "too_large", r"compressed image"),
    (None, "jpeg", "too_large", r"8000x6000 = 48000000 pixels exceeds max_input_pixels = 16777216"),
], ids=["random", "bad_header", "truncated", "empty", "compressed_depth", "png_bomb", "8000x6000_default_limit"])
def test_bad_compressed_images_are_logged_counted_and_survived(comp_client, data, fmt, reason, pattern):
    proc, c = comp_client
    _expect_refused(proc, c, _compressed(_big_jpeg() if data is None else data, fmt), reason, pattern)


def test_random_compressed_garbage_then_a_good_frame(comp_client):
    proc, c = comp_client
    rng = np.random.default_rng(7)
    for i in range(100):
        data = JPEG[: int(rng.integers(0, 300))] + rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        c.publish_msg(_compressed(data, str(rng.choice(["jpeg", "png", "", "rgb8; jpeg compressed bgr8"]))))
    h = c.publish(GOOD, stamp_ns=88_000_000_000, frame_id="good_frame")
    r = c.wait_for(h, topics=["segmentation"], timeout=60)["segmentation"]
    assert r.msg.header.frame_id == "good_frame" and (r.msg.height, r.msg.width) == GOOD.shape[:2]
    assert proc.alive()
    assert not re.search(r"Traceback|Segmentation fault", proc.log())


def test_logs_have_no_tracebacks(nodes):
    for proc in nodes[:2]:
        assert proc.alive()
        assert "Traceback" not in proc.log(), Path(proc.log_path).name
