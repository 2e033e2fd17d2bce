"""Shared checks of the synthetic generator's ground truth (written apart from the generator's own code)."""
from __future__ import annotations

import numpy as np


def expected_boundaries(instance: np.ndarray, depth: np.ndarray, jump: float = 0.1) -> np.ndarray:
    """True where the object id changes or depth jumps by more than ``jump`` x the nearer depth between
    4-neighbours, on both sides of the change."""
    change = np.zeros(instance.shape, bool)
    for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                 ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        c = (instance[a] != instance[b]) | (np.abs(depth[a] - depth[b]) > jump * np.minimum(depth[a], depth[b]))
        change[a] |= c
        change[b] |= c
    return change


def scene(h: int = 48, w: int = 64, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A textured image (smooth gradient + checkerboard) and ground truth of every NYUD task."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 120 * xx / w + 40 * (((yy // 4) + (xx // 4)) % 2)
    img = np.stack([base, base * 0.8 + 20, 200 - base * 0.5], -1).clip(0, 255).astype(np.uint8)
    n = rng.normal(size=(h, w, 3)).astype(np.float32)
    gt = {"semseg": rng.integers(0, 40, (h, w)).astype(np.uint8),
          "depth": rng.uniform(0.5, 5, (h, w)).astype(np.float32),
          "normals": n / np.linalg.norm(n, axis=-1, keepdims=True),
          "edge": (rng.random((h, w)) < 0.1).astype(np.float32)}
    return img, gt
