"""Non-maximum suppression of a boundary probability map, as SEISM's ``read_one_cont_png`` applies it before
thresholding (the IO function InvPT and TaskPrompter name for their boundary evaluation).

SEISM (``jponttuset/seism``, ``src/io/read_one_cont_png.m``) runs, on the map E read from the 8-bit PNG:

    [Ox, Oy] = gradient2(convTri(E, 4));  [Oxx, ~] = gradient2(Ox);  [Oxy, Oyy] = gradient2(Oy);
    O = mod(atan(Oyy .* sign(-Oxy) ./ (Oxx + 1e-5)), pi);
    E = edgesNmsMex(E, O, 1, 5, 1.01, 1);

from Dollar & Zitnick's Structured Edge toolbox: ``convTri`` is a separable triangle filter
([1 .. r, r+1, r .. 1] / (r+1)^2, symmetric borders), ``gradient2`` central differences (one-sided at the borders),
and ``edgesNmsMex(E, O, r, s, m)`` zeroes a pixel when m x E is below the bilinearly interpolated E at distance
1..r along the orientation (cos O, sin O) on either side, then fades the s pixels next to the image border
linearly to 0. This is our own NumPy version of those steps in float32; at exact ties float rounding may differ
from the MEX files.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve1d


def conv_tri(image: np.ndarray, r: float) -> np.ndarray:
    """Triangle-filter smoothing (``convTri``) with symmetric borders; float32."""
    img = np.asarray(image, np.float32)
    if r <= 0:
        return img.copy()
    if r <= 1:
        p = 12.0 / r / (r + 2) - 2
        f = np.array([1.0, p, 1.0]) / (2 + p)
    else:
        ri = int(r)
        f = np.concatenate([np.arange(1, ri + 1), [ri + 1], np.arange(ri, 0, -1)]) / (ri + 1) ** 2
    f = f.astype(np.float32)
    out = convolve1d(img, f, axis=0, mode="reflect")
    return convolve1d(out, f, axis=1, mode="reflect")


def orientation(edges: np.ndarray) -> np.ndarray:
    """Edge orientation in [0, pi) from second derivatives of the smoothed map (``read_one_cont_png``)."""
    sm = conv_tri(edges, 4)
    oy, ox = np.gradient(sm)
    oxx = np.gradient(ox, axis=1)
    oyy, oxy = np.gradient(oy)
    with np.errstate(divide="ignore", invalid="ignore"):
        o = np.arctan(oyy * np.sign(-oxy) / (oxx + np.float32(1e-5)))
    return np.mod(o, np.float32(np.pi)).astype(np.float32)


def _interp(e: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = e.shape
    x = np.clip(x, 0, np.float32(w - 1.001))
    y = np.clip(y, 0, np.float32(h - 1.001))
    x0 = x.astype(np.int64)
    y0 = y.astype(np.int64)
    dx0 = x - x0
    dy0 = y - y0
    dx1 = 1 - dx0
    dy1 = 1 - dy0
    return (e[y0, x0] * dx1 * dy1 + e[y0, x0 + 1] * dx0 * dy1
            + e[y0 + 1, x0] * dx1 * dy0 + e[y0 + 1, x0 + 1] * dx0 * dy0)


def edge_nms(edges: np.ndarray, orient: np.ndarray | None = None, r: int = 1, s: int = 5,
             m: float = 1.01) -> np.ndarray:
    """``edgesNmsMex(E, O, r, s, m)``: thin ridges of ``edges`` across ``orient`` and fade the border; float32."""
    e0 = np.asarray(edges, np.float32)
    if e0.ndim != 2:
        raise ValueError(f"edge_nms: expected an (H, W) map, got shape {e0.shape}")
    h, w = e0.shape
    o = orientation(e0) if orient is None else np.asarray(orient, np.float32)
    out = e0.copy()
    ys, xs = np.nonzero(e0)
    if ys.size:
        val = e0[ys, xs] * np.float32(m)
        cos_o, sin_o = np.cos(o[ys, xs]), np.sin(o[ys, xs])
        xf, yf = xs.astype(np.float32), ys.astype(np.float32)
        weak = np.zeros(ys.size, bool)
        for d in range(-r, r + 1):
            if d:
                weak |= val < _interp(e0, xf + d * cos_o, yf + d * sin_o)
        out[ys[weak], xs[weak]] = 0
    s = min(s, w // 2, h // 2)
    for x in range(s):
        f = np.float32(x / s)
        out[:, x] *= f
        out[:, w - 1 - x] *= f
    for y in range(s):
        f = np.float32(y / s)
        out[y, :] *= f
        out[h - 1 - y, :] *= f
    return out
