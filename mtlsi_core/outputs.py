"""Numeric helpers for publishing runtime outputs: output sizes, camera intrinsics scaling, validity masks, casts.

Pure numpy (no ROS); the ROS node (``mtlsi_ros``) calls these and only does message conversion.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def fit_within_pixels(hw: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """The largest (H, W) with the aspect ratio of ``hw`` and at most ``max_pixels`` pixels (``hw`` if it fits).

    ``max_pixels <= 0`` means no limit.
    """
    h, w = int(hw[0]), int(hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    if max_pixels <= 0 or h * w <= max_pixels:
        return h, w
    s = math.sqrt(max_pixels / (h * w))
    nh, nw = max(1, int(h * s)), max(1, int(w * s))
    while nh * nw > max_pixels:  # guard against rounding up past the limit
        if nh >= nw:
            nh -= 1
        else:
            nw -= 1
    return nh, nw


def scale_intrinsics(k: Sequence[float], p: Sequence[float], src_hw: tuple[int, int],
                     dst_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scale a 3x3 camera matrix ``k`` and a 3x4 projection ``p`` (row-major, 9 and 12 values) from an image of
    ``src_hw`` pixels to one of ``dst_hw`` pixels (the same field of view, resized).

    Integer pixel coordinates are pixel centres (the OpenCV / ROS pinhole convention) and resizing maps pixel areas
    (bilinear with ``align_corners=False``), so a point at column ``u`` moves to ``(u + 0.5) * sx - 0.5``:
    ``fx' = fx * sx``, ``cx' = (cx + 0.5) * sx - 0.5``, likewise in y; ``Tx = -fx' * baseline`` scales with ``fx``.
    An all-zero ``p`` (uncalibrated) stays zero.
    """
    sh, sw = int(src_hw[0]), int(src_hw[1])
    dh, dw = int(dst_hw[0]), int(dst_hw[1])
    if min(sh, sw, dh, dw) < 1:
        raise ValueError(f"image sizes must be positive, got {sh}x{sw} -> {dh}x{dw}")
    sx, sy = dw / sw, dh / sh
    k = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
    p = np.asarray(p, dtype=np.float64).reshape(3, 4).copy()

    def scale_rows(m: np.ndarray) -> None:
        # Row 0 (x) and row 1 (y) scale with the resize; the homogeneous row 2 stays.
        # cx' = (cx + 0.5) sx - 0.5 is the row operation  row0 * sx + (sx - 1)/2 * row2.
        r2 = m[2].copy()
        m[0] = m[0] * sx + 0.5 * (sx - 1.0) * r2
        m[1] = m[1] * sy + 0.5 * (sy - 1.0) * r2

    if k.any():
        scale_rows(k)
    if p.any():
        scale_rows(p)
    return k.reshape(-1), p.reshape(-1)


def mask_outside_range(values: np.ndarray, lo: float, hi: float, out: np.ndarray | None = None) -> np.ndarray:
    """float32 ``values`` with NaN where ``value <= lo`` or ``value > hi`` (REP 118: NaN = no return).

    ``hi <= 0`` disables the upper bound. Writes into ``out`` when given (may be ``values`` itself if float32),
    else into a copy.
    """
    if out is None or out.dtype != np.float32:
        out = np.array(values, dtype=np.float32, copy=True)
    elif out is not values:
        np.copyto(out, values)
    invalid = ~(out > np.float32(lo))  # also catches NaN; bounds compared in float32 like the values
    if hi > 0:
        invalid |= out > np.float32(hi)
    np.copyto(out, np.float32(np.nan), where=invalid)
    return out


def cast_for_encoding(values: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """Cast an output to an image dtype.

    Float probabilities in [0, 1] going to an integer type are scaled to its full range and rounded
    (0.5 -> 128 for uint8); integers (class ids) are range-checked and cast; floats stay floats.
    """
    dtype = np.dtype(dtype)
    src = np.asarray(values)
    if src.dtype == dtype:
        return src
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if np.issubdtype(src.dtype, np.floating):
            scaled = np.fmax(src, 0.0, dtype=np.float32)  # fmax maps NaN to 0
            np.fmin(scaled, 1.0, out=scaled)
            scaled *= float(info.max)
            scaled += 0.5
            return scaled.astype(dtype)
        if src.size and (int(src.min()) < info.min or int(src.max()) > info.max):
            raise ValueError(f"values {int(src.min())}..{int(src.max())} do not fit in {dtype}")
        return src.astype(dtype)
    return src.astype(dtype)


__all__ = ["cast_for_encoding", "fit_within_pixels", "mask_outside_range", "scale_intrinsics"]
