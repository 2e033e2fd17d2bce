"""Procedural materials of the synthetic scenes: a shared colour palette, texture patterns, a tileable noise.

Every object class draws its colours from the same palette (with different preferences), so colour alone
does not identify a class; patterns (noise, stripes, wood grain, tiles, fabric) are drawn independently of
the class too. Patterns are evaluated on planar texture coordinates ``(u, v)`` in metres.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping

import numpy as np

NOISE_SIZE = 256  # texels of the tileable noise texture (a power of two: wrapping is a bit mask)

# Albedo palette (linear-ish RGB in [0, 1]): whites, greys, beiges, woods, darks, muted and saturated colours.
PALETTE = np.array([
    [0.92, 0.91, 0.88], [0.85, 0.84, 0.80], [0.96, 0.94, 0.86], [0.75, 0.75, 0.75], [0.55, 0.56, 0.58],
    [0.35, 0.35, 0.37], [0.12, 0.12, 0.13], [0.82, 0.74, 0.60], [0.72, 0.62, 0.48], [0.76, 0.56, 0.34],
    [0.58, 0.40, 0.24], [0.40, 0.26, 0.16], [0.26, 0.17, 0.11], [0.55, 0.65, 0.78], [0.22, 0.30, 0.50],
    [0.60, 0.74, 0.60], [0.30, 0.42, 0.30], [0.85, 0.62, 0.62], [0.62, 0.20, 0.18], [0.90, 0.82, 0.50],
    [0.80, 0.55, 0.25], [0.35, 0.55, 0.55], [0.55, 0.45, 0.60], [0.45, 0.40, 0.30],
], np.float32)
LIGHT = np.arange(0, 4).tolist() + [7, 8, 13, 15, 19]  # preferred by walls and ceilings
WOOD = [7, 8, 9, 10, 11, 12, 20, 23]
ANY = list(range(len(PALETTE)))


@dataclass
class Material:
    pattern: str  # key in PATTERNS
    c1: np.ndarray  # (3,) albedo where the pattern is 0
    c2: np.ndarray  # (3,) albedo where the pattern is 1
    freq: float  # pattern cycles per metre
    offset: float  # texture-space offset (metres) so that equal materials do not look identical
    emissive: float = 0.0  # added to the shading (windows)


@lru_cache(maxsize=1)
def noise_texture() -> np.ndarray:
    """Tileable smooth noise in [0, 1], (NOISE_SIZE, NOISE_SIZE) float32, the same in every process."""
    rng = np.random.default_rng(0x5EED)
    n = NOISE_SIZE
    f = np.fft.fftfreq(n)
    rad = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    spectrum = np.fft.fft2(rng.standard_normal((n, n))) / np.maximum(rad, 1.0 / n) ** 1.6
    spectrum[rad > 0.25] = 0.0
    tex = np.real(np.fft.ifft2(spectrum))
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return tex.astype(np.float32)


def sample_noise(u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Nearest-texel lookup of the tileable noise; ``scale``: noise tiles per unit of (u, v)."""
    tex = noise_texture()
    m = NOISE_SIZE - 1
    iu = (u * (scale * NOISE_SIZE)).astype(np.int32) & m
    iv = (v * (scale * NOISE_SIZE)).astype(np.int32) & m
    return tex[iv, iu]


def _plain(u: np.ndarray, v: np.ndarray, f: float) -> np.ndarray:
    return 0.5 + 0.5 * (sample_noise(u, v, 0.35) - 0.5)


def _noise(u, v, f):
    return sample_noise(u, v, f * 0.25)


def _stripes(u, v, f):
    return 0.5 + 0.5 * np.sin((2.0 * math.pi * f) * u)


def _wood(u, v, f):
    warp = sample_noise(u * 0.3, v * 2.0, 0.5)
    return 0.5 + 0.5 * np.sin((2.0 * math.pi * f) * (u + 0.6 / f * 4.0 * warp))


def _tiles(u, v, f):
    fu, fv = u * f, v * f
    chk = (np.floor(fu) + np.floor(fv)) % 2.0
    grout = (np.minimum(fu - np.floor(fu), fv - np.floor(fv)) < 0.04)
    return np.where(grout, 1.0, 0.3 * chk).astype(np.float32)


def _fabric(u, v, f):
    w = 2.0 * math.pi * f
    return 0.5 + 0.25 * np.sin(w * u) + 0.25 * np.sin(w * v)


PATTERNS: Mapping[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "plain": _plain, "noise": _noise, "stripes": _stripes, "wood": _wood, "tiles": _tiles, "fabric": _fabric,
}
PATTERN_FREQ = {"plain": (1.0, 1.0), "noise": (1.0, 6.0), "stripes": (2.0, 12.0), "wood": (3.0, 10.0),
                "tiles": (1.5, 4.0), "fabric": (15.0, 40.0)}


def random_material(rng: np.random.Generator, colours: list[int], patterns: list[str],
                    contrast: tuple[float, float] = (0.5, 0.9), emissive: float = 0.0) -> Material:
    """A material with a base colour from ``colours`` (palette indices) and a random second colour."""
    c1 = PALETTE[rng.choice(colours)] * rng.uniform(0.85, 1.12, 3).astype(np.float32)
    if rng.random() < 0.35:  # two-colour pattern
        c2 = PALETTE[rng.choice(ANY)] * rng.uniform(0.85, 1.12, 3).astype(np.float32)
    else:
        c2 = c1 * np.float32(rng.uniform(*contrast))
    pattern = str(rng.choice(patterns))
    lo, hi = PATTERN_FREQ[pattern]
    return Material(pattern, np.clip(c1, 0, 1).astype(np.float32), np.clip(c2, 0, 1).astype(np.float32),
                    float(rng.uniform(lo, hi)), float(rng.uniform(0, 100)), emissive)


def albedo(material: Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(n,) texture coordinates -> (n, 3) float32 albedo."""
    t = PATTERNS[material.pattern](u + material.offset, v + material.offset, material.freq).astype(np.float32)
    grain = 0.9 + 0.2 * sample_noise(u + material.offset, v, 6.0)
    t = t[:, None]
    return (material.c1 + (material.c2 - material.c1) * t) * grain[:, None]
