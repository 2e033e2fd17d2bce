"""Visualisation of predictions: label palettes, depth colour map, normals, boundaries, contact sheets.

All functions take numpy arrays (the runtime's outputs) and return uint8 RGB images.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np


def label_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC bit-interleaved palette, (n, 3) uint8; index 255 is left as generated."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


_PALETTE = label_palette(256)
# Shift by one for 0-based NYUD ids so that class 0 (wall) is not black.
_NYUD_PALETTE = np.roll(_PALETTE, -1, axis=0)
_NYUD_PALETTE[255] = 0


def colorize_labels(labels: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """(H, W) integer labels -> (H, W, 3) uint8 RGB. 255 (ignore) is black with the default palette.

    Ids beyond the palette take its last colour. uint8 labels (the runtime's, up to 255 classes) go through a
    256-entry table (``cv2.LUT``: 5x faster than indexing, same bytes); other integer types index the palette.
    """
    pal = _NYUD_PALETTE if palette is None else np.asarray(palette, dtype=np.uint8)
    labels = np.asarray(labels)
    if labels.dtype == np.uint8 and labels.ndim == 2 and len(pal) > 0:
        lut = pal[np.minimum(np.arange(256), len(pal) - 1)].reshape(256, 1, 3)
        return cv2.LUT(cv2.merge([labels, labels, labels]), lut)
    idx = np.clip(labels.astype(np.int64), 0, len(pal) - 1)
    return pal[idx]


def colorize_depth(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(H, W) metres (NaN/<=0 invalid) -> (H, W, 3) uint8 RGB, turbo colour map, near = red... far = blue, invalid black."""
    d = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    if not valid.any():
        return np.zeros(d.shape + (3,), np.uint8)
    if vmin is None or vmax is None:
        # robust range from a strided subsample (every 4th pixel each way: 16x cheaper, same look)
        sub = d[::4, ::4][valid[::4, ::4]]
        p2, p98 = np.percentile(sub if sub.size else d[valid], [2, 98])
    lo = float(p2) if vmin is None else vmin
    hi = float(p98) if vmax is None else vmax
    hi = max(hi, lo + 1e-6)
    norm = np.clip((np.where(valid, d, lo) - lo) / (hi - lo), 0, 1)
    g = (255 * (1.0 - norm)).astype(np.uint8)  # near -> high index (red in turbo)
    rgb = cv2.cvtColor(cv2.applyColorMap(g, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def colorize_normals(normals: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit vectors in [-1, 1] -> (H, W, 3) uint8 RGB via (n + 1) / 2 (zero vector = invalid -> black)."""
    n = np.asarray(normals, dtype=np.float32)
    # |n| as np.linalg.norm computes it ((x^2 + y^2) + z^2, same rounding), without its slow reduction over the
    # 3-element last axis (3x faster for a 480x640 image)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    sq = x * x
    sq += y * y
    sq += z * z
    valid = np.sqrt(sq) > 1e-6
    rgb = np.clip((n + 1.0) * 127.5, 0, 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def colorize_probability(prob: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 grey."""
    g = np.clip(np.asarray(prob, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def overlay(image: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colour visualisation over the RGB input (same size)."""
    return cv2.addWeighted(image.astype(np.uint8), 1.0 - alpha, color.astype(np.uint8), alpha, 0.0)


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
    return img.astype(np.uint8)


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str] | None = None,
                  tile_hw: tuple[int, int] = (240, 320), pad: int = 4) -> np.ndarray:
    """Grid of RGB tiles (rows x columns), each resized to ``tile_hw``; optional column titles on top."""
    th, tw = tile_hw
    ncol = max(len(r) for r in rows)
    header = 28 if titles else 0
    H = header + len(rows) * (th + pad) + pad
    W = ncol * (tw + pad) + pad
    sheet = np.full((H, W, 3), 255, np.uint8)
    if titles:
        for c, t in enumerate(titles):
            cv2.putText(sheet, t, (pad + c * (tw + pad) + 4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y = header + pad + r * (th + pad)
            x = pad + c * (tw + pad)
            sheet[y:y + th, x:x + tw] = _fit(tile, th, tw)
    return sheet


VISUALS = {
    "labels": colorize_labels,
    "depth": colorize_depth,
    "normals": colorize_normals,
    "probability": colorize_probability,
}


def visualize_outputs(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """RGB visualisation per task of one image's runtime outputs (keyed by task; see TaskSpec.visual)."""
    from mtlsi_core.tasks import get_task

    return {task: VISUALS[get_task(task).visual](out) for task, out in outputs.items()}
