"""Unit tests of the node's pure parts: conversions, numerics, frame buffers, diagnostics, parameters, plans.

No DDS traffic (rclpy message classes only); the node itself is tested over DDS in the other test_node_* files.
"""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from mtlsi_core.outputs import cast_for_encoding, fit_within_pixels, mask_outside_range, scale_intrinsics
from mtlsi_ros.conversions import (InputError, compressed_to_rgb, image_to_numpy, image_to_rgb, make_camera_info,
                                   numpy_to_image, rgb_to_compressed, scale_camera_info)
from mtlsi_ros.diagnostics import DROP_REASONS, CameraStats, ThrottledLogger, camera_status, status_values
from mtlsi_ros.frames import Frame, FrameBuffers
from mtlsi_ros.params import PARAMS, ParamError, encoding_param, validate
from mtlsi_ros.publishing import build_plans, load_palette

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def _msg(a: np.ndarray, encoding: str, pad: int = 0) -> Image:
    m = numpy_to_image(a, encoding, Header(frame_id="f"))
    if pad:
        rows = np.frombuffer(m.data, np.uint8).reshape(m.height, m.step)
        padded = np.concatenate([rows, np.full((m.height, pad), 7, np.uint8)], axis=1)
        m.step += pad
        m.data = padded.tobytes()
    return m


# ------------------------------------------------------------------------------------------------ conversions

@pytest.mark.parametrize("encoding, make", [
    ("rgb8", lambda a: a),
    ("bgr8", lambda a: a[..., ::-1]),
    ("rgba8", lambda a: np.dstack([a, np.full(a.shape[:2], 9, np.uint8)])),
    ("bgra8", lambda a: np.dstack([a[..., ::-1], np.full(a.shape[:2], 9, np.uint8)])),
])
@pytest.mark.parametrize("pad", [0, 3])
def test_image_to_rgb_all_colour_encodings_and_step_padding(encoding, make, pad):
    out = image_to_rgb(_msg(np.ascontiguousarray(make(RGB)), encoding, pad))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_image_to_rgb_mono8_replicates_grey():
    g = RGB[..., 0].copy()
    out = image_to_rgb(_msg(g, "mono8", pad=2))
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)


@pytest.mark.parametrize("encoding, match", [
    ("mono16", "16-bit encoding 'mono16'"), ("16UC1", "16-bit"), ("rgb16", "16-bit"), ("bgra16", "16-bit"),
    ("32FC1", "32-bit encoding"), ("yuv422", "unsupported encoding 'yuv422'"), ("", "unsupported encoding ''"),
])
def test_image_to_rgb_rejects_encodings(encoding, match):
    m = Image(height=2, width=2, encoding=encoding, step=8, data=bytes(16))
    with pytest.raises(InputError, match=match) as e:
        image_to_rgb(m)
    assert e.value.reason == "bad_encoding"
    assert "rgb8" in str(e.value)  # names what is supported


@pytest.mark.parametrize("h, w, step, n, reason, match", [
    (0, 0, 0, 0, "bad_size", "zero-size"),
    (4, 0, 0, 0, "bad_size", "zero-size"),
    (4, 4, 11, 44, "bad_size", "step 11 is smaller than width 4 x 3"),
    (4, 4, 12, 47, "bad_size", "data length 47 does not match step 12 x height 4 = 48"),
    (4, 4, 12, 49, "bad_size", "data length 49"),
    (100, 100, 300, 30000, "too_large", "exceeds max_input_pixels = 9999"),
])
def test_image_to_rgb_rejects_sizes(h, w, step, n, reason, match):
    m = Image(height=h, width=w, encoding="rgb8", step=step, data=bytes(n))
    with pytest.raises(InputError, match=match) as e:
        image_to_rgb(m, max_pixels=9999)
    assert e.value.reason == reason


@pytest.mark.parametrize("encoding, dtype, shape", [
    ("32FC1", np.float32, (5, 7)), ("32FC3", np.float32, (5, 7, 3)), ("mono16", np.uint16, (5, 7)),
    ("mono8", np.uint8, (5, 7)), ("rgb8", np.uint8, (5, 7, 3)),
])
def test_numpy_image_round_trip(encoding, dtype, shape):
    a = (RNG.random(shape) * 1000).astype(dtype)
    m = numpy_to_image(a, encoding, Header(frame_id="x"))
    assert m.step == shape[1] * (shape[2] if len(shape) == 3 else 1) * np.dtype(dtype).itemsize
    np.testing.assert_array_equal(image_to_numpy(m), a)


def test_image_to_numpy_honours_big_endian_and_padding():
    a = np.arange(6, dtype=np.uint16).reshape(2, 3) * 300
    be = a.astype(">u2").tobytes()
    rows = np.frombuffer(be, np.uint8).reshape(2, 6)
    m = Image(height=2, width=3, encoding="mono16", is_bigendian=1, step=8,
              data=np.concatenate([rows, np.zeros((2, 2), np.uint8)], axis=1).tobytes())
    np.testing.assert_array_equal(image_to_numpy(m), a)


def test_numpy_to_image_checks_dtype_and_channels():
    with pytest.raises(ValueError, match="32FC1 needs 1 channel"):
        numpy_to_image(np.zeros((2, 2), np.float64), "32FC1", Header())
    with pytest.raises(ValueError, match="unknown encoding"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "nope", Header())


def test_compressed_round_trip_and_errors():
    img = cv2.resize(RGB, (64, 48), interpolation=cv2.INTER_NEAREST)
    png = rgb_to_compressed(img, Header(), "png")
    np.testing.assert_array_equal(compressed_to_rgb(png), img)
    jpg = rgb_to_compressed(img, Header(), "jpeg", quality=95)
    assert np.abs(compressed_to_rgb(jpg).astype(int) - img).mean() < 12
    with pytest.raises(InputError, match="exceeds max_input_pixels") as e:
        compressed_to_rgb(png, max_pixels=100)
    assert e.value.reason == "too_large"
    bad = CompressedImage(format="jpeg", data=bytes(RNG.integers(0, 256, 500, dtype=np.uint8)))
    with pytest.raises(InputError) as e:
        compressed_to_rgb(bad)
    assert e.value.reason == "decode_error"
    trunc = CompressedImage(format="jpeg", data=jpg.data.tobytes()[:40])
    with pytest.raises(InputError) as e:
        compressed_to_rgb(trunc)
    assert e.value.reason == "decode_error"
    with pytest.raises(InputError, match="empty data"):
        compressed_to_rgb(CompressedImage(format="jpeg"))
    with pytest.raises(InputError, match="compressed depth") as e:
        compressed_to_rgb(CompressedImage(format="16UC1; compressedDepth png", data=png.data))
    assert e.value.reason == "bad_encoding"


def test_compressed_size_checked_before_decoding():
    """A tiny PNG whose header declares 100000 x 100000 pixels is refused without decoding."""
    import struct
    import zlib as z

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", z.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", z.compress(b"\x00" * 10)) + chunk(b"IEND", b""))
    with pytest.raises(InputError) as e:
        compressed_to_rgb(CompressedImage(format="png", data=png), max_pixels=4096 * 4096)
    assert e.value.reason == "too_large"


# ------------------------------------------------------------------------------------------------ numerics

def test_fit_within_pixels():
    assert fit_within_pixels((6000, 8000), 0) == (6000, 8000)
    assert fit_within_pixels((480, 640), 640 * 480) == (480, 640)
    h, w = fit_within_pixels((6000, 8000), 1_000_000)
    assert h * w <= 1_000_000 and abs(w / h - 8000 / 6000) < 0.01 and h * w > 990_000


def test_scale_intrinsics_matches_a_real_resize():
    """Project a point, resize the image with OpenCV (area-based), find the point again: K' predicts it."""
    k = np.array([500.0, 0, 319.5, 0, 510.0, 239.5, 0, 0, 1])
    p = np.array([500.0, 0, 319.5, -25.0, 0, 510.0, 239.5, 0, 0, 0, 1, 0])
    k2, p2 = scale_intrinsics(k, p, (480, 640), (120, 160))
    sx = 160 / 640
    assert k2[0] == pytest.approx(500 * sx) and k2[4] == pytest.approx(510 * sx)
    assert k2[2] == pytest.approx((319.5 + 0.5) * sx - 0.5) and k2[5] == pytest.approx((239.5 + 0.5) * sx - 0.5)
    assert p2[3] == pytest.approx(-25.0 * sx) and p2[10] == 1.0
    # A bright 4x4 block centred on pixel (u, v) = (401.5, 101.5) in the big image
    img = np.zeros((480, 640), np.float32)
    img[100:104, 400:404] = 1.0
    small = cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(small)
    u = float((xs * small[ys, xs]).sum() / small[ys, xs].sum())
    v = float((ys * small[ys, xs]).sum() / small[ys, xs].sum())
    assert u == pytest.approx((401.5 + 0.5) * sx - 0.5, abs=1e-4)
    assert v == pytest.approx((101.5 + 0.5) * sx - 0.5, abs=1e-4)
    zk, zp = scale_intrinsics(np.zeros(9), np.zeros(12), (480, 640), (120, 160))
    assert not zk.any() and not zp.any()


def test_scale_camera_info_restamps_and_uses_calibration_size():
    h = Header(frame_id="cam")
    h.stamp.sec, h.stamp.nanosec = 12, 34
    info = make_camera_info([600, 0, 639.5, 0, 600, 359.5, 0, 0, 1], (720, 1280), Header(frame_id="other"))
    info.binning_x = info.binning_y = 2  # the image is 640x360, the calibration full size
    out = scale_camera_info(info, h, (360, 640), (360, 640))
    assert out.header is h and (out.height, out.width) == (360, 640)
    assert out.k[0] == pytest.approx(300) and out.k[2] == pytest.approx(319.5)
    assert out.binning_x == 0 and list(out.d) == [0.0] * 5


def test_mask_outside_range_and_cast():
    d = np.array([0.0, 0.5, 1.0, 5.0, np.nan], np.float32)
    m = mask_outside_range(d, 0.5, 4.0)
    np.testing.assert_array_equal(np.isnan(m), [True, True, False, True, True])
    assert np.isnan(mask_outside_range(d, 0.0, 0.0)).tolist() == [True, False, False, False, True]
    same = d.copy()
    assert mask_outside_range(same, 0.5, 4.0, out=same) is same
    np.testing.assert_array_equal(np.isnan(same), np.isnan(m))
    np.testing.assert_array_equal(cast_for_encoding(np.array([0.0, 0.5, 1.0, 2.0]), np.uint8), [0, 128, 255, 255])
    np.testing.assert_array_equal(cast_for_encoding(np.array([3, 39], np.uint8), np.uint16), [3, 39])
    with pytest.raises(ValueError, match="do not fit"):
        cast_for_encoding(np.array([300], np.uint16), np.uint8)


# ------------------------------------------------------------------------------------------------ frames

def _frame(cam: int, i: int) -> Frame:
    return Frame(cam, i, np.zeros((1, 1, 3), np.uint8), time.monotonic())


def test_latest_wins_replaces_and_reports_stale():
    b = FrameBuffers(2)
    assert b.put(_frame(0, 1)) is None
    assert b.put(_frame(0, 2)).header == 1
    assert b.put(_frame(1, 3)) is None
    batch = b.take_batch(window_s=0.0, wait_s=0.1)
    assert sorted(f.header for f in batch) == [2, 3]
    assert b.take_batch(0.0, 0.05) == []


def test_ordered_queue_blocks_when_full_and_keeps_order():
    b = FrameBuffers(1, ordered=True, capacity=2)
    b.put(_frame(0, 1))
    b.put(_frame(0, 2))
    with pytest.raises(TimeoutError, match="full"):
        b.put(_frame(0, 3), timeout=0.05)
    got: list[int] = []

    def consume() -> None:
        while len(got) < 4:
            got.extend(f.header for f in b.take_batch(0.0, 1.0))

    t = threading.Thread(target=consume)
    t.start()
    b.put(_frame(0, 3), timeout=2.0)  # waits for the consumer
    b.put(_frame(0, 4), timeout=2.0)
    t.join(5)
    assert got == [1, 2, 3, 4]


def test_batch_window_waits_for_other_cameras_and_close_wakes():
    b = FrameBuffers(2)
    b.put(_frame(0, 1))
    threading.Timer(0.05, lambda: b.put(_frame(1, 2))).start()
    batch = b.take_batch(window_s=2.0, wait_s=1.0)
    assert sorted(f.camera for f in batch) == [0, 1]
    b.put(_frame(0, 5))
    assert [f.header for f in b.close()] == [5]
    with pytest.raises(RuntimeError, match="closed"):
        b.put(_frame(0, 6))
    assert b.take_batch(0.0, 0.01) == []


# ------------------------------------------------------------------------------------------------ diagnostics

def test_camera_stats_and_status():
    s = CameraStats("cam0")
    t0 = 100.0
    for i in range(11):
        s.received(t0 + i * 0.1)
    for i in range(10):
        s.answered(t0 + i * 0.1 + 0.05, latency_s=0.010 + 0.001 * i, infer_s=0.008, batch=2)
    s.dropped("stale")
    s.dropped("bad_encoding", "16-bit encoding 'mono16'")
    snap = s.snapshot(t0 + 1.05)
    assert snap["frames_in"] == 11 and snap["frames_out"] == 10 and snap["dropped_total"] == 2
    assert snap["dropped.stale"] == 1 and snap["dropped.bad_encoding"] == 1 and snap["max_batch"] == 2
    assert snap["input_rate_hz"] == pytest.approx(10.0, rel=0.05)
    assert 10.0 <= snap["latency_p50_ms"] <= 19.0 and snap["latency_p99_ms"] <= 19.0 + 1e-9
    ok = camera_status("/n", "cam0", snap, no_image_warn_s=5.0)
    assert ok.level == ok.OK and status_values(ok)["dropped.bad_encoding"] == "1"
    warn = camera_status("/n", "cam0", s.snapshot(t0 + 7.0), no_image_warn_s=5.0)
    assert warn.level == warn.WARN and "no image for" in warn.message
    with pytest.raises(ValueError, match="unknown drop reason"):
        s.dropped("because")
    assert set(DROP_REASONS) >= {"stale", "bad_encoding", "bad_size", "decode_error", "too_large",
                                 "no_subscribers", "queue_full", "inference_error"}


def test_throttled_logger_per_key():
    now = [0.0]
    lines: list[str] = []
    log = ThrottledLogger(lines.append, period_s=1.0, clock=lambda: now[0])
    assert log("a", "x") and log("b", "y") and not log("a", "x2")
    now[0] = 1.5
    assert log("a", "x3")
    assert lines == ["x", "y", "x3 (1 similar messages suppressed)"]


# ------------------------------------------------------------------------------------------------ params, plans

def test_params_defaults_validate_and_cover_registry():
    p = validate({})
    assert p.cameras == ("",) and p.qos_reliability == "best_effort" and p.qos_depth == 1
    assert p.encodings == {"semseg": "mono8", "edge": "mono8", "human_parts": "mono8", "sal": "mono8"}
    names = {s.name for s in PARAMS}
    assert {encoding_param("semseg"), encoding_param("edge")} <= names


@pytest.mark.parametrize("values, match", [
    ({"qos_depth": 0}, "'qos_depth' = 0: must be > 0"),
    ({"qos_depth": "3"}, "'qos_depth': expected an integer"),
    ({"backend": "caffe"}, "'backend': 'caffe' is not one of auto, torch"),
    ({"segmentation_encoding": "32FC1"}, "'segmentation_encoding'"),
    ({"cameras": []}, "at least one camera"),
    ({"cameras": ["a", "a"]}, "twice"),
    ({"cameras": ["bad name"]}, "not a valid ROS name"),
    ({"device": "gpu"}, "'device'"),
    ({"min_depth": 5.0, "max_depth": 2.0}, "must exceed min_depth"),
    ({"overlay_alpha": 1.5}, "must be in \\[0, 1\\]"),
    ({"no_such": 1}, "unknown parameter"),
])
def test_params_reject_bad_values_with_names(values, match):
    with pytest.raises(ParamError, match=match):
        validate(values)


def test_plans_follow_registry_and_params(tmp_path):
    p = validate({"segmentation_encoding": "mono16", "boundary_encoding": "32FC1", "max_depth": 10.0})
    plans = {pl.task: pl for pl in build_plans(["semseg", "depth", "normals", "edge"],
                                               {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}, p)}
    assert (plans["semseg"].topic, plans["semseg"].encoding, plans["semseg"].color_topic) == \
        ("segmentation", "mono16", "segmentation/color")
    assert plans["depth"].encoding == "32FC1" and plans["depth"].valid_range == (0.0, 10.0)
    assert plans["normals"].encoding == "32FC3" and plans["normals"].color_topic == "normals/color"
    assert plans["edge"].topic == "boundary" and plans["edge"].encoding == "32FC1"
    assert plans["edge"].color_topic is None and plans["semseg"].valid_range is None
    no_color = build_plans(["semseg"], {"semseg": 40}, validate({"publish_color": False}))
    assert no_color[0].color_topic is None
    with pytest.raises(ParamError, match="mono8 cannot hold 300 classes"):
        build_plans(["semseg"], {"semseg": 300}, validate({}))
    pal = tmp_path / "pal.yaml"
    pal.write_text("- [255, 0, 0]\n- [0, 255, 0]\n")
    plans = build_plans(["semseg"], {"semseg": 2}, validate({}), load_palette(str(pal)))
    np.testing.assert_array_equal(plans[0].colorize(np.array([[1, 0]], np.uint8)), [[[0, 255, 0], [255, 0, 0]]])
    pal.write_text("- [1, 2]\n")
    with pytest.raises(ParamError, match="palette_file"):
        load_palette(str(pal))


def test_camera_info_made_by_client_helper_is_consistent():
    info = make_camera_info(np.eye(3).reshape(-1) * 2, (10, 20), Header())
    assert isinstance(info, CameraInfo) and info.p[0] == 2.0 and info.p[3] == 0.0 and (info.height, info.width) == (10, 20)


# ------------------------------------------------------------------------------------------------ pipelining

def test_the_next_inference_overlaps_the_last_publish():
    """Inference and publishing run on two threads: while frame k's messages go out, frame k+1 is inferred; every
    frame is still published, in order, with its own header, and stopping sends what was already inferred."""
    import rclpy
    from std_msgs.msg import Header

    from mtlsi_ros.perception_node import PerceptionNode

    spans: dict[str, list[tuple[float, float, int, str]]] = {"infer": [], "publish": []}
    busy_s = 0.15

    class SlowRuntime:
        def infer(self, rgbs, output_size=None, focal_lengths=None):
            t0 = time.monotonic()
            time.sleep(busy_s)
            spans["infer"].append((t0, time.monotonic(), int(rgbs[0][0, 0, 0]), threading.current_thread().name))
            return [{"depth": np.zeros(r.shape[:2], np.float32)} for r in rgbs]

    class SlowOutputs:
        def has_subscribers(self):
            return True

        def publish(self, header, outputs, rgb, info):
            t0 = time.monotonic()
            time.sleep(busy_s)
            spans["publish"].append((t0, time.monotonic(), int(header.frame_id), threading.current_thread().name))

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = PerceptionNode(context=ctx)
        node.p = validate({"process_every_frame": True, "use_camera_info": False, "batch_window_ms": 0})
        node.runtime, node._outputs, node._stats = SlowRuntime(), [SlowOutputs()], [CameraStats("cam")]
        node._buffers = FrameBuffers(1, ordered=True, capacity=8)
        node._start_processing()
        for k in range(4):
            rgb = np.full((4, 6, 3), k, np.uint8)
            node._buffers.put(Frame(0, Header(frame_id=str(k)), rgb, time.monotonic()))
        deadline = time.monotonic() + 10
        while len(spans["infer"]) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        node._stop_processing()  # the frames inferred before the stop are still published
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    assert [s[2] for s in spans["infer"]] == [0, 1, 2, 3] and [s[2] for s in spans["publish"]] == [0, 1, 2, 3]
    assert {s[3] for s in spans["infer"]} == {"inference"} and {s[3] for s in spans["publish"]} == {"publishing"}
    # frame k+1's inference began before frame k's publishing ended
    overlapped = [k for k in range(3) if spans["infer"][k + 1][0] < spans["publish"][k][1]]
    assert overlapped == [0, 1, 2], (spans, overlapped)
    assert node._stats[0].snapshot(time.monotonic())["frames_out"] == 4
