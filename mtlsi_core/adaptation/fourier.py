"""Fourier domain adaptation (FDA; Yang & Soatto, "FDA: Fourier Domain Adaptation for Semantic Segmentation",
CVPR 2020): a synthetic image takes a real photo's low-frequency amplitude spectrum and keeps its own phase.

The amplitude of the lowest frequencies carries the global "style" of an image (overall colour, brightness,
illumination gradients, contrast of large regions); the phase carries where things are (layout, edges). Swapping
only the low band of the amplitude gives the synthetic scene a real photo's colours and lighting while every edge,
and so the ground truth, stays where it was.

``fourier_style(src, tgt, beta)`` does it for one (H, W, 3) image, per colour channel: the swapped band is every
frequency (fy, fx) with ``|fy| <= b`` and ``|fx| <= b`` (signed integer frequencies, the paper's centred square),
``b = floor(beta * min(H, W))``; ``beta`` is the paper's ``L`` (it used 0.01-0.09). ``beta = 0`` returns the
image unchanged; any ``beta > 0`` swaps at least the mean colour (the DC term), as in the paper's code. The photo is
resized to the image's size first (as the paper does).

``FourierStyle`` is the training augmentation (``data.augment.fourier_style``): with probability ``p`` it draws
``beta`` from a range and one photo of a ``PhotoSource`` (``mtlsi_core.data.photos.PhotoFolder``), from the
augmentation's own generator, so the result is a function of that generator's state.

Pure numpy and OpenCV: this module imports nothing from the project (``mtlsi_core.data.transforms`` imports it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import cv2
import numpy as np

MAX_BETA = 0.5  # b = beta * min(H, W) <= half the shorter side: the band cannot outgrow the spectrum


class PhotoSource(Protocol):
    """What ``FourierStyle`` draws its photos from: ``len()`` photos, ``image(i)`` = photo ``i`` as uint8 RGB
    (H, W, 3), or the next readable one where photo ``i`` cannot be read."""

    def __len__(self) -> int: ...

    def image(self, index: int) -> np.ndarray: ...


def _unit_float(img: np.ndarray, what: str) -> np.ndarray:
    """(H, W, 3) uint8 (0..255) or float (0..1) -> float64 on the 0..1 scale."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"fourier_style: {what} must be an (H, W, 3) image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float64) * (1.0 / 255.0)
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"fourier_style: {what} must be uint8 (0..255) or float (0..1), got {img.dtype}")
    return img.astype(np.float64)


def band_half_width(shape: tuple[int, int], beta: float) -> int:
    """``b`` of the swapped band |fy|, |fx| <= b for an image of ``shape`` (H, W); -1 for beta 0 (no band)."""
    if beta <= 0:
        return -1
    return int(np.floor(beta * min(shape[0], shape[1])))


def low_band_mask(shape: tuple[int, int], beta: float) -> np.ndarray:
    """Boolean (H, W // 2 + 1) mask of the swapped frequencies in ``numpy.fft.rfft2``'s layout (rows: fy in fft order,
    columns: fx = 0 .. W // 2)."""
    h, w = shape
    b = band_half_width(shape, beta)
    fy = np.abs(np.fft.fftfreq(h) * h)
    fx = np.arange(w // 2 + 1)
    return (fy[:, None] <= b) & (fx[None, :] <= b)


def fourier_style(src: np.ndarray, tgt: np.ndarray, beta: float | Sequence[float],
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """``src`` with the low-frequency amplitude spectrum of ``tgt`` (the module docstring); ``src``'s phase is kept.

    ``src``, ``tgt``: (H, W, 3) RGB, uint8 (0..255) or float (0..1); ``tgt`` is resized to ``src``'s size.
    ``beta``: the band's half-width as a fraction of the shorter side, 0 .. 0.5, or a (lo, hi) range drawn from
    ``rng``. Returns a new image: uint8 (rounded, clipped) for a uint8 ``src``, else float32 on the 0..1 scale,
    not clipped (the exact result, whose phase is ``src``'s).
    """
    if isinstance(beta, (tuple, list, np.ndarray)):
        lo, hi = (float(v) for v in beta)
        if rng is None:
            raise ValueError("fourier_style: a beta range needs a random generator (rng)")
        if not 0.0 <= lo <= hi <= MAX_BETA:
            raise ValueError(f"fourier_style: beta range {[lo, hi]} must satisfy 0 <= lo <= hi <= {MAX_BETA}")
        beta = float(rng.uniform(lo, hi))
    beta = float(beta)
    if not 0.0 <= beta <= MAX_BETA:
        raise ValueError(f"fourier_style: beta {beta} must be in [0, {MAX_BETA}]")
    s = _unit_float(src, "src")
    t = _unit_float(tgt, "tgt")
    if beta == 0.0:
        return np.array(src, copy=True) if np.asarray(src).dtype == np.uint8 else s.astype(np.float32)
    h, w = s.shape[:2]
    if t.shape[:2] != (h, w):
        down = t.shape[0] > h or t.shape[1] > w
        t = cv2.resize(t, (w, h), interpolation=cv2.INTER_AREA if down else cv2.INTER_LINEAR)
    fs = np.fft.rfft2(s, axes=(0, 1))
    ft = np.fft.rfft2(t, axes=(0, 1))
    mask = low_band_mask((h, w), beta)
    band = fs[mask]  # (n, 3): the band's coefficients of each channel
    amp = np.abs(band)
    # each coefficient keeps its phase and takes the photo's amplitude; a zero coefficient has no phase: it takes
    # the photo's amplitude at phase 0 (numpy's angle of 0)
    phase = np.where(amp > 0, band / np.where(amp > 0, amp, 1.0), 1.0)
    fs[mask] = np.abs(ft[mask]) * phase
    out = np.fft.irfft2(fs, s=(h, w), axes=(0, 1))
    if np.asarray(src).dtype == np.uint8:
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return out.astype(np.float32)


@dataclass(frozen=True)
class FourierStyle:
    """``data.augment.fourier_style`` on a uint8 RGB training image: with probability ``p`` the image takes the
    low-frequency amplitude of a random photo of ``photos``, band ``beta`` drawn uniformly from its range.

    Draws, in order, from the generator it is given: the coin (when ``p > 0``), beta, the photo's index; ``p = 0``
    draws nothing (the training stream is then exactly that of a transform without it).
    """

    p: float
    beta: tuple[float, float]
    photos: PhotoSource

    def __post_init__(self) -> None:
        lo, hi = self.beta
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"FourierStyle: p {self.p} must be in [0, 1]")
        if not 0.0 <= lo <= hi <= MAX_BETA:
            raise ValueError(f"FourierStyle: beta range {list(self.beta)} must satisfy 0 <= lo <= hi <= {MAX_BETA}")
        if self.p > 0 and len(self.photos) == 0:
            raise ValueError("FourierStyle: no photos to draw the style from")

    def draw(self, rng: np.random.Generator) -> tuple[float, int] | None:
        """(beta, photo index) for one image, or None when it is not applied."""
        if self.p <= 0 or not rng.random() < self.p:
            return None
        return float(rng.uniform(*self.beta)), int(rng.integers(0, len(self.photos)))

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        drawn = self.draw(rng)
        if drawn is None:
            return img
        beta, index = drawn
        return fourier_style(img, self.photos.image(index), beta)


__all__ = ["FourierStyle", "MAX_BETA", "PhotoSource", "band_half_width", "fourier_style", "low_band_mask"]
