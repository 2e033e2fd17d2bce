"""numpy <-> sensor_msgs conversions (no cv_bridge here): Image, CompressedImage, CameraInfo.

Input side (``image_to_rgb``, ``compressed_to_rgb``) validates everything a message can get wrong and raises
``InputError`` whose ``reason`` is one of the node's drop reasons (``bad_encoding``, ``bad_size``,
``decode_error``, ``too_large``) and whose message names the encoding and sizes involved.
Output side (``numpy_to_image``) builds messages for any encoding in ``ENCODINGS``; ``image_to_numpy`` reads
them back (the client and tests use it).
"""
from __future__ import annotations

import array
import io
import sys
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from mtlsi_core.outputs import scale_intrinsics

_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True)
class Encoding:
    dtype: np.dtype
    channels: int


def _enc(dtype: type, channels: int) -> Encoding:
    return Encoding(np.dtype(dtype), channels)


# sensor_msgs/image_encodings.hpp names this module reads or writes.
ENCODINGS: dict[str, Encoding] = {
    "rgb8": _enc(np.uint8, 3), "bgr8": _enc(np.uint8, 3), "rgba8": _enc(np.uint8, 4), "bgra8": _enc(np.uint8, 4),
    "mono8": _enc(np.uint8, 1), "8UC1": _enc(np.uint8, 1), "8UC3": _enc(np.uint8, 3),
    "rgb16": _enc(np.uint16, 3), "bgr16": _enc(np.uint16, 3), "rgba16": _enc(np.uint16, 4),
    "bgra16": _enc(np.uint16, 4), "mono16": _enc(np.uint16, 1), "16UC1": _enc(np.uint16, 1),
    "16UC3": _enc(np.uint16, 3),
    "32FC1": _enc(np.float32, 1), "32FC3": _enc(np.float32, 3),
}

# Input encodings the node accepts, with the OpenCV conversion to RGB (None: already RGB).
INPUT_ENCODINGS: dict[str, int | None] = {
    "rgb8": None,
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}


class InputError(ValueError):
    """An input message cannot be used; ``reason`` is the diagnostics drop reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _supported() -> str:
    return ", ".join(INPUT_ENCODINGS)


def check_pixels(height: int, width: int, max_pixels: int, what: str) -> None:
    if height < 1 or width < 1:
        raise InputError("bad_size", f"{what}: zero-size image ({height}x{width})")
    if max_pixels > 0 and height * width > max_pixels:
        raise InputError("too_large", f"{what}: {width}x{height} = {height * width} pixels exceeds "
                                      f"max_input_pixels = {max_pixels}; refused")


def image_to_rgb(msg: Image, max_pixels: int = 0) -> np.ndarray:
    """A sensor_msgs/Image in one of ``INPUT_ENCODINGS`` -> contiguous (H, W, 3) uint8 RGB (a copy).

    Raises InputError for unknown or 16-bit encodings, zero size, too many pixels, or a ``step`` / data
    length that does not match ``width``, ``height`` and the encoding.
    """
    enc = msg.encoding
    if enc not in INPUT_ENCODINGS:
        known = ENCODINGS.get(enc)
        if known is not None and known.dtype.itemsize > 1:
            raise InputError("bad_encoding", f"{8 * known.dtype.itemsize}-bit encoding {enc!r} is not supported; "
                                             f"publish one of: {_supported()}")
        raise InputError("bad_encoding", f"unsupported encoding {enc!r}; supported: {_supported()}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    check_pixels(h, w, max_pixels, f"encoding {enc}")
    ch = ENCODINGS[enc].channels
    row = w * ch
    if step < row:
        raise InputError("bad_size", f"step {step} is smaller than width {w} x {ch} bytes per pixel = {row} "
                                     f"({enc}, {w}x{h})")
    n = len(msg.data)
    if n != step * h:
        raise InputError("bad_size", f"data length {n} does not match step {step} x height {h} = {step * h} "
                                     f"({enc}, {w}x{h})")
    buf = np.frombuffer(msg.data, dtype=np.uint8).reshape(h, step)[:, :row].reshape(h, w, ch)
    code = INPUT_ENCODINGS[enc]
    if code is None:
        return np.ascontiguousarray(buf) if step != row else buf.copy()
    return cv2.cvtColor(np.ascontiguousarray(buf) if ch > 1 else buf[..., 0].copy(), code)


def _compressed_size(data: bytes) -> tuple[int, int] | None:
    """(H, W) from the file header without decoding the pixels (None if the format is not recognised)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            w, h = im.size
            return int(h), int(w)
    except PILImage.DecompressionBombError as e:  # declares more pixels than Pillow's own safety limit
        raise InputError("too_large", f"compressed image: {e}") from None
    except Exception:
        return None


def compressed_to_rgb(msg: CompressedImage, max_pixels: int = 0) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG, PNG, ... as image_transport's ``compressed``) -> (H, W, 3) uint8 RGB.

    The size is read from the header and checked against ``max_pixels`` before decoding, so a small file that
    declares a huge image is refused without allocating it. Corrupt bytes raise InputError("decode_error").
    """
    fmt = msg.format or ""
    if "compressedDepth" in fmt:
        raise InputError("bad_encoding", f"format {fmt!r}: compressed depth images are not camera images")
    n = len(msg.data)
    if n == 0:
        raise InputError("decode_error", f"format {fmt!r}: empty data")
    data = msg.data.tobytes() if isinstance(msg.data, array.array) else bytes(msg.data)
    hw = _compressed_size(data)
    if hw is None:
        raise InputError("decode_error", f"format {fmt!r}: {n} bytes are not a recognised image file "
                                         f"(corrupt or unsupported)")
    check_pixels(hw[0], hw[1], max_pixels, f"compressed image ({fmt or 'no format'})")
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise InputError("decode_error", f"format {fmt!r}: cannot decode {n} bytes (corrupt or truncated)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _to_uint8_array(a: np.ndarray) -> array.array:
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(a)).cast("B"))
    return out


def numpy_to_image(values: np.ndarray, encoding: str, header: Header) -> Image:
    """(H, W) or (H, W, C) array -> sensor_msgs/Image; dtype and channels must match ``encoding``."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    spec = ENCODINGS[encoding]
    a = np.asarray(values)
    ch = 1 if a.ndim == 2 else (a.shape[2] if a.ndim == 3 else -1)
    if ch != spec.channels or a.dtype != spec.dtype:
        raise ValueError(f"encoding {encoding} needs {spec.channels} channel(s) of {spec.dtype}, "
                         f"got shape {a.shape} {a.dtype}")
    # check_fields: the generated ``data`` setter then keeps our array('B') as it is; unchecked, it copies it again
    # (measured by benchmarks/bench_transport.py: half the cost; memoryviews and ndarrays are iterated byte by byte)
    msg = Image(check_fields=True)
    msg.header = header
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_NATIVE_BIG_ENDIAN)
    msg.step = msg.width * spec.channels * spec.dtype.itemsize
    msg.data = _to_uint8_array(a)
    return msg


def image_to_numpy(msg: Image) -> np.ndarray:
    """Any sensor_msgs/Image in ``ENCODINGS`` -> (H, W) or (H, W, C) array (a copy), honouring ``step`` and
    ``is_bigendian``."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {msg.encoding!r}")
    spec = ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * spec.channels * spec.dtype.itemsize
    if step < row or len(msg.data) != step * h:
        raise ValueError(f"{msg.encoding} {w}x{h}: step {step} / data length {len(msg.data)} do not match")
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(h, step)[:, :row]
    dt = spec.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    a = np.ascontiguousarray(raw).view(dt).reshape(h, w, spec.channels).astype(spec.dtype)
    return a[..., 0] if spec.channels == 1 else a


def rgb_to_compressed(rgb: np.ndarray, header: Header, fmt: str = "jpeg", quality: int = 90) -> CompressedImage:
    """(H, W, 3) uint8 RGB -> sensor_msgs/CompressedImage as image_transport's ``compressed`` plugin writes it."""
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ValueError(f"format must be jpeg or png, got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"cv2.imencode({ext}) failed for an image of shape {rgb.shape}")
    msg = CompressedImage(check_fields=True)  # keeps our array('B') as it is (see numpy_to_image)
    msg.header = header
    msg.format = f"rgb8; {'jpeg' if ext == '.jpg' else 'png'} compressed bgr8"
    msg.data = _to_uint8_array(buf.reshape(-1))
    return msg


def scale_camera_info(info: CameraInfo, header: Header, image_hw: tuple[int, int],
                      out_hw: tuple[int, int]) -> CameraInfo:
    """``info`` re-stamped with ``header`` and scaled to an output image of ``out_hw`` pixels.

    The calibration resolution is ``info.height x info.width`` when set (so binned images work too), else the input
    image's ``image_hw``. The result describes the full output image: binning 1 (stored as 0) and an empty ROI.
    """
    src = (int(info.height), int(info.width)) if info.height > 0 and info.width > 0 else tuple(image_hw)
    k, p = scale_intrinsics(info.k, info.p, src, out_hw)
    out = CameraInfo()
    out.header = header
    out.height, out.width = int(out_hw[0]), int(out_hw[1])
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = info.r
    out.k = k.tolist()
    out.p = p.tolist()
    return out


def make_camera_info(k: Sequence[float], hw: tuple[int, int], header: Header) -> CameraInfo:
    """A plumb_bob CameraInfo with no distortion for a 3x3 ``k`` (9 values) at ``hw`` pixels (client / demos)."""
    k = [float(v) for v in np.asarray(k, dtype=np.float64).reshape(-1)]
    if len(k) != 9:
        raise ValueError(f"k must have 9 values, got {len(k)}")
    info = CameraInfo()
    info.header = header
    info.height, info.width = int(hw[0]), int(hw[1])
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = k
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0]
    return info


# numpy scalar type of a point field -> sensor_msgs/PointField datatype (the layout is written here: no sensor_msgs_py)
_POINT_FIELD_TYPES = {np.dtype(np.int8): PointField.INT8, np.dtype(np.uint8): PointField.UINT8,
                      np.dtype(np.int16): PointField.INT16, np.dtype(np.uint16): PointField.UINT16,
                      np.dtype(np.int32): PointField.INT32, np.dtype(np.uint32): PointField.UINT32,
                      np.dtype(np.float32): PointField.FLOAT32, np.dtype(np.float64): PointField.FLOAT64}


def numpy_to_pointcloud2(cloud: np.ndarray, header: Header) -> PointCloud2:
    """A structured array (H, W) (organised) or (N,) (e.g. ``mtlsi_core.geometry.point_cloud``) -> PointCloud2 with
    one PointField per named field at its offset; one copy of the bytes. ``is_dense`` when no x is NaN."""
    if cloud.dtype.names is None or cloud.ndim not in (1, 2):
        raise ValueError(f"expected a structured (N,) or (H, W) array, got {cloud.dtype} of shape {cloud.shape}")
    fields = []
    for name in cloud.dtype.names:
        dt, offset = cloud.dtype.fields[name][:2]
        if not dt.isnative:  # the message's is_bigendian holds for every field: the machine's order
            raise ValueError(f"point field {name!r}: {dt} is not in this machine's byte order")
        if dt not in _POINT_FIELD_TYPES:
            raise ValueError(f"point field {name!r}: type {dt} has no PointField datatype")
        fields.append(PointField(name=name, offset=int(offset), datatype=_POINT_FIELD_TYPES[dt], count=1))
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = (int(cloud.shape[0]), int(cloud.shape[1])) if cloud.ndim == 2 else (1, int(cloud.size))
    msg.fields = fields
    msg.is_bigendian = _NATIVE_BIG_ENDIAN
    msg.point_step = int(cloud.dtype.itemsize)
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = bool("x" not in cloud.dtype.names or not np.isnan(cloud["x"]).any())
    msg.data = _to_uint8_array(cloud)
    return msg


def pointcloud2_to_numpy(msg: PointCloud2) -> np.ndarray:
    """A PointCloud2 -> structured array (H, W) (``height > 1``) or (N,), fields as the message declares them."""
    types = {v: k for k, v in _POINT_FIELD_TYPES.items()}
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in types or f.count != 1:
            raise ValueError(f"point field {f.name!r}: datatype {f.datatype} x {f.count} is not supported")
        names.append(f.name)
        formats.append(types[f.datatype].newbyteorder(order))
        offsets.append(int(f.offset))
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    h, w = int(msg.height), int(msg.width)
    if msg.row_step != w * msg.point_step or len(msg.data) != h * msg.row_step:
        raise ValueError(f"PointCloud2 {w}x{h}: point_step {msg.point_step}, row_step {msg.row_step} and data "
                         f"length {len(msg.data)} do not match")
    pts = np.frombuffer(msg.data, dtype=np.uint8).view(dt).copy()
    return pts.reshape(h, w) if h > 1 else pts


__all__ = ["ENCODINGS", "INPUT_ENCODINGS", "Encoding", "InputError", "check_pixels", "compressed_to_rgb",
           "image_to_numpy", "image_to_rgb", "make_camera_info", "numpy_to_image", "numpy_to_pointcloud2",
           "pointcloud2_to_numpy", "rgb_to_compressed",
           "scale_camera_info"]
