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
