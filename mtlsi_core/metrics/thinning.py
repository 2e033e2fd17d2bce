"""Guo-Hall parallel thinning, the algorithm of MATLAB's ``bwmorph(BW, 'thin', Inf)`` and of
``skimage.morphology.thin``, computed only where pixels can still change.

Z. Guo and R. W. Hall, "Parallel thinning with two-subiteration algorithms", Comm. ACM 32(3), 1989 (algorithm A1 in
Lam, Lee & Suen, IEEE TPAMI 14(9), 1992, the reference of ``bwmorph``). With the neighbours x1..x8 of a foreground
pixel numbered counter-clockwise from the east one, a pixel is deleted in the first (second) sub-iteration when

    G1: X_H = 1, X_H = #{i in 1..4 : x_{2i-1} = 0 and (x_{2i} = 1 or x_{2i+1} = 1)}
    G2: 2 <= min(n1, n2) <= 3, n1 = sum_k (x_{2k-1} or x_{2k}), n2 = sum_k (x_{2k} or x_{2k+1})
    G3: (x2 or x3 or not x8) and x1 = 0        (G3': (x6 or x7 or not x4) and x5 = 0)

with all decisions of a sub-iteration taken on the image as it was before it; iterations repeat until nothing
changes; outside the image is background. ``skimage.morphology.thin`` evaluates this on every pixel of the image
in every iteration, which takes 0.1-0.5 s on a 480x640 map with large blobs (low thresholds of a boundary
probability map). Here only foreground pixels with a background neighbour are examined (the others have all eight
neighbours set, so X_H = 0 and they cannot be deleted); the result is identical (tested against skimage).
"""
from __future__ import annotations

import numpy as np

# Neighbour k (bit k of the code) = x_{k+1}: E, NE, N, NW, W, SW, S, SE as (dy, dx).
_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _deletion_tables() -> tuple[np.ndarray, np.ndarray]:
    """Boolean tables over the 256 neighbourhood codes: delete in sub-iteration 1 / 2."""
    first = np.zeros(256, bool)
    second = np.zeros(256, bool)
    for code in range(256):
        x = [bool(code >> k & 1) for k in range(8)]  # x[0] = x1 ... x[7] = x8

        def nb(i: int) -> bool:  # x_i with 1-based, cyclic index
            return x[(i - 1) % 8]

        x_h = sum(1 for i in range(1, 5) if not nb(2 * i - 1) and (nb(2 * i) or nb(2 * i + 1)))
        n1 = sum(1 for k in range(1, 5) if nb(2 * k - 1) or nb(2 * k))
        n2 = sum(1 for k in range(1, 5) if nb(2 * k) or nb(2 * k + 1))
        g12 = x_h == 1 and 2 <= min(n1, n2) <= 3
        g3 = not ((nb(2) or nb(3) or not nb(8)) and nb(1))
        g3p = not ((nb(6) or nb(7) or not nb(4)) and nb(5))
        first[code] = g12 and g3
        second[code] = g12 and g3p
    return first, second


_DELETE_FIRST, _DELETE_SECOND = _deletion_tables()


def thin(image: np.ndarray) -> np.ndarray:
    """Thin a 2-D binary image to one-pixel-wide curves (Guo-Hall, iterated until stable); returns bool."""
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"thin: expected a 2-D image, got shape {img.shape}")
    h, w = img.shape
    if h == 0 or w == 0 or not img.any():
        return img.astype(bool)
    wp = w + 2
    grid = np.zeros((h + 2, wp), np.uint8)
    grid[1:-1, 1:-1] = img.astype(bool)
    flat = grid.ravel()
    offs = [int(dy * wp + dx) for dy, dx in _OFFSETS]

    def codes(idx: np.ndarray) -> np.ndarray:
        code = np.zeros(idx.size, np.uint8)
        for k, off in enumerate(offs):
            code |= flat[idx + off] << np.uint8(k)
        return code

    pending = np.zeros(flat.size, bool)  # marks the next candidate set without sorting
    fg = np.flatnonzero(flat)
    cand = fg[codes(fg) != 255]
    while True:
        changed = False
        for table in (_DELETE_FIRST, _DELETE_SECOND):
            if cand.size == 0:
                break
            kill = table[codes(cand)]
            if not kill.any():
                continue
            gone = cand[kill]
            flat[gone] = 0
            changed = True
            pending[cand[~kill]] = True
            for off in offs:
                pending[gone + off] = True
            np.logical_and(pending, flat, out=pending)
            cand = np.flatnonzero(pending)
            pending[cand] = False
        if not changed:
            break
    return grid[1:-1, 1:-1].astype(bool)
