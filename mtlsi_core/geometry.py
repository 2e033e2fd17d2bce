"""Camera geometry of the outputs: back-projection of a depth image into 3-D points and the labelled point cloud.

What it does: turns a depth image (metres along the optical z axis, REP 118; NaN = no return) and a pinhole K of
the same size into x, y, z in the camera optical frame (x right, y down, z forward), and packs them with the
input colour, the class label and a per-point confidence into one structured array whose bytes are a
sensor_msgs/PointCloud2 body (``POINT_DTYPE``; the ROS side only wraps them, ``mtlsi_ros.conversions``).
What it may touch: numpy arrays only; no ROS, no torch, no per-point Python. Pixel centres are integer
coordinates (the OpenCV / ROS pinhole convention, as ``mtlsi_core.outputs.scale_intrinsics``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mtlsi_core.outputs import scale_intrinsics

# One point: 24 bytes, every field at its natural alignment. rgb is PCL's packing, 0x00RRGGBB stored as the bits of
# a float32 (RViz's RGB8 channel and pcl::PointXYZRGB read it so); label as pcl::PointXYZL (uint32).
POINT_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb", "label", "confidence"],
                        "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<f4"],
                        "offsets": [0, 4, 8, 12, 16, 20], "itemsize": 24})
# The same layout with rgb as its integer bits: filled through this view so no float operation touches them.
_POINT_BITS = np.dtype({"names": POINT_DTYPE.names, "formats": ["<f4", "<f4", "<f4", "<u4", "<u4", "<f4"],
                        "offsets": [0, 4, 8, 12, 16, 20], "itemsize": 24})


def canonical_intrinsics(out_hw: tuple[int, int], network_hw: tuple[int, int], focal: float) -> np.ndarray:
    """The 3x3 K assumed without camera_info: the image at the network size has the training camera's focal
    length ``focal`` (pixels, fx = fy) and its principal point at the centre; scaled to ``out_hw``."""
    if not (np.isfinite(focal) and focal > 0):
        raise ValueError(f"focal length must be a positive number of pixels, got {focal!r}")
    nh, nw = int(network_hw[0]), int(network_hw[1])
    k = [focal, 0.0, (nw - 1) / 2.0, 0.0, focal, (nh - 1) / 2.0, 0.0, 0.0, 1.0]
    return scale_intrinsics(k, [0.0] * 12, (nh, nw), out_hw)[0].reshape(3, 3)


def backproject(depth: np.ndarray, k: Sequence[float] | np.ndarray) -> np.ndarray:
    """(H, W) depth along optical z (metres) and a 3x3 (or 9-value) K for that image -> (H, W, 3) float32 x, y, z.

    ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``, ``z = depth`` for pixel column u, row v. NaN depth gives NaN
    points. The skew K[0, 1] is honoured.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {d.shape}")
    kk = np.asarray(k, dtype=np.float64).reshape(-1)
    if kk.size != 9:
        raise ValueError(f"K must have 9 values, got {kk.size}")
    fx, s, cx, fy, cy = kk[0], kk[1], kk[2], kk[4], kk[5]
    if not (fx > 0 and fy > 0):
        raise ValueError(f"K needs positive focal lengths, got fx={fx}, fy={fy}")
    h, w = d.shape
    # normalised image coordinates per row / column (float64 for the division, float32 out)
    yn = ((np.arange(h, dtype=np.float64) - cy) / fy).astype(np.float32)
    xn_u = (np.arange(w, dtype=np.float64) - cx) / fx
    out = np.empty((h, w, 3), np.float32)
    if s == 0.0:
        np.multiply(d, xn_u.astype(np.float32)[None, :], out=out[..., 0])
    else:  # u = fx x + s y + cx  ->  x = (u - cx - s y) / fx
        xn = (xn_u[None, :] - (s / fx) * yn.astype(np.float64)[:, None]).astype(np.float32)
        np.multiply(d, xn, out=out[..., 0])
    np.multiply(d, yn[:, None], out=out[..., 1])
    out[..., 2] = d
    return out


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) uint32 0x00RRGGBB: the bits of PCL's / RViz's float32 ``rgb`` field."""
    c = np.asarray(rgb)
    if c.dtype != np.uint8 or c.ndim < 1 or c.shape[-1] != 3:
        raise ValueError(f"rgb must be (..., 3) uint8, got {c.shape} {c.dtype}")
    packed = c[..., 0].astype(np.uint32) << 16
    packed |= c[..., 1].astype(np.uint32) << 8
    packed |= c[..., 2]
    return packed


def point_cloud(depth: np.ndarray, k: Sequence[float] | np.ndarray, rgb: np.ndarray, labels: np.ndarray,
                confidence: np.ndarray | None = None, organized: bool = False,
                keep_invalid: bool = False) -> np.ndarray:
    """The labelled point cloud of one frame as a ``POINT_DTYPE`` array.

    depth       (H, W) metres along optical z, NaN (or <= 0, or inf) = no point
    k           K of the (H, W) image
    rgb         (H, W, 3) uint8 colour of each pixel (the input image at the output size)
    labels      (H, W) integer class ids
    confidence  (H, W) float32 in [0, 1] (e.g. the segmentation's max softmax probability); None: NaN
    organized   True: shape (H, W), one point per pixel, invalid ones with x = y = z = NaN (needs keep_invalid)
                False: shape (N,), row-major pixel order
    keep_invalid  keep points without a valid depth (NaN x, y, z); False drops them (then the cloud is dense)
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {d.shape}")
    hw = d.shape
    if rgb.shape[:2] != hw or labels.shape[:2] != hw or (confidence is not None and confidence.shape[:2] != hw):
        raise ValueError(f"depth {hw}, rgb {rgb.shape[:2]}, labels {labels.shape[:2]}"
                         + (f", confidence {confidence.shape[:2]}" if confidence is not None else "")
                         + " must have the same size")
    if organized and not keep_invalid:
        raise ValueError("an organized cloud keeps one point per pixel: it needs keep_invalid=True")
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids, got {lab.dtype}")
    valid = np.isfinite(d) & (d > 0)
    d = np.where(valid, d, np.float32(np.nan))
    bits = np.empty(hw, _POINT_BITS)
    xyz = backproject(d, k)
    bits["x"], bits["y"], bits["z"] = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    bits["rgb"] = pack_rgb(rgb)
    bits["label"] = lab
    bits["confidence"] = np.float32(np.nan) if confidence is None else confidence
    cloud = bits.view(POINT_DTYPE)
    if organized:
        return cloud
    if keep_invalid:
        return cloud.reshape(-1)
    # select whole 24-byte rows as plain uint32 words: numpy's boolean indexing of structured arrays is ~10x slower
    rows = bits.reshape(-1).view(np.uint32).reshape(-1, POINT_DTYPE.itemsize // 4)[valid.reshape(-1)]
    return rows.view(POINT_DTYPE).reshape(-1)


__all__ = ["POINT_DTYPE", "backproject", "canonical_intrinsics", "pack_rgb", "point_cloud"]
