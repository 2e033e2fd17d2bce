"""The camera of the nyud profile, from scene radiance to an 8-bit RGB image (ground truth is never touched).

In the order light meets them: vignetting, lateral chromatic aberration, defocus blur, motion blur (optics and
exposure time), in-camera sharpening; auto exposure (the frame's median luminance to a drawn mid-grey, +- a drawn
error), shot and read noise (Poisson-Gaussian, in linear units of the sensor), an imperfect grey-world white
balance, a tone curve (sRGB-like gamma with a soft shoulder and an S-curve), colour saturation, 8-bit quantisation
and, usually, JPEG compression. Every parameter is drawn per frame from ``SensorParams.sample`` so that a model sees
a range of cameras.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class SensorParams:
    vignetting: float  # relative fall-off at the corners
    aberration: float  # relative magnification of red against blue (lateral chromatic aberration)
    defocus: float  # Gaussian sigma, output pixels
    motion: float  # motion-blur length, output pixels (0: none)
    motion_angle: float  # radians
    sharpen: float  # unsharp-mask amount of the camera's processing (0: none)
    exposure_ev: float  # error of the auto exposure (stops)
    mid_grey: float  # linear level the median luminance is exposed to
    shot: float  # variance per unit of linear signal
    read: float  # read-noise sigma (linear units)
    wb_strength: float  # 0: no white balance, 1: full grey world
    wb_tint: tuple[float, float, float]  # residual per-channel gain
    gamma: float
    contrast: float  # S-curve strength of the tone curve (0: none)
    saturation: float  # the camera's colour processing (1: none)
    jpeg_quality: int  # 0: no JPEG

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "SensorParams":
        motion = float(rng.uniform(1.0, 5.0)) if rng.random() < 0.3 else 0.0
        return cls(vignetting=float(rng.uniform(0.1, 0.4)), aberration=float(rng.uniform(0.0, 0.004)),
                   defocus=float(rng.uniform(0.0, 0.6)), motion=motion, motion_angle=float(rng.uniform(0, math.pi)),
                   exposure_ev=float(rng.normal(0.0, 0.4)), mid_grey=float(rng.uniform(0.14, 0.3)),
                   shot=float(10 ** rng.uniform(-4.0, -2.8)), read=float(10 ** rng.uniform(-3.6, -2.6)),
                   sharpen=float(rng.uniform(0.0, 1.0)),
                   wb_strength=float(rng.uniform(0.0, 0.6)),
                   wb_tint=tuple(float(g) for g in rng.normal(1.0, 0.025, 3)), gamma=float(rng.uniform(2.0, 2.4)),
                   contrast=float(rng.uniform(0.2, 0.9)), saturation=float(rng.uniform(1.0, 1.4)),
                   jpeg_quality=int(rng.integers(60, 96)) if rng.random() < 0.85 else 0)

    @classmethod
    def plain(cls) -> "SensorParams":
        """An ideal camera: exposure to mid-grey, gamma 2.2, nothing else."""
        return cls(vignetting=0.0, aberration=0.0, defocus=0.0, motion=0.0, motion_angle=0.0, sharpen=0.0,
                   exposure_ev=0.0, mid_grey=0.2, shot=0.0, read=0.0, wb_strength=0.0, wb_tint=(1.0, 1.0, 1.0),
                   gamma=2.2, contrast=0.0, saturation=1.0, jpeg_quality=0)


def _vignette(h: int, w: int, strength: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
    return (1.0 - strength * r2 ** 1.3).astype(np.float32)


def _magnify(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    M = np.array([[scale, 0.0, cx * (1 - scale)], [0.0, scale, cy * (1 - scale)]], np.float32)
    return cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    k = int(math.ceil(length)) | 1
    kern = np.zeros((k, k), np.float32)
    c = k // 2
    for t in np.linspace(-length / 2, length / 2, 4 * k):
        kern[int(round(c + t * math.sin(angle))), int(round(c + t * math.cos(angle)))] += 1.0
    return kern / kern.sum()


def apply(radiance: np.ndarray, p: SensorParams, rng: np.random.Generator) -> np.ndarray:
    """Linear radiance (H, W, 3) float32 -> uint8 RGB image as the drawn camera would record it."""
    h, w, _ = radiance.shape
    img = radiance * _vignette(h, w, p.vignetting)[..., None]
    if p.aberration > 0:
        img = np.stack([_magnify(np.ascontiguousarray(img[..., 0]), 1 + p.aberration), img[..., 1],
                        _magnify(np.ascontiguousarray(img[..., 2]), 1 - p.aberration)], axis=-1)
    if p.defocus >= 0.25:
        img = cv2.GaussianBlur(img, (0, 0), p.defocus)
    if p.motion > 0:
        img = cv2.filter2D(img, -1, _motion_kernel(p.motion, p.motion_angle), borderType=cv2.BORDER_REFLECT)
    if p.sharpen > 0:  # in-camera sharpening (unsharp mask), applied to the optical image
        img = img + p.sharpen * (img - cv2.GaussianBlur(img, (0, 0), 1.0))
    lum = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    gain = p.mid_grey * 2.0 ** p.exposure_ev / max(float(np.median(lum)), 1e-4)
    img = img * np.float32(gain)
    # Poisson-Gaussian sensor noise (per channel of a Bayer sensor, after demosaicking: slightly correlated)
    sigma = np.sqrt(np.maximum(img, 0.0) * p.shot + p.read ** 2)
    noise = rng.standard_normal(img.shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.5) * 1.6
    img = img + sigma * noise
    # white balance: part of the way to grey world, plus a residual tint
    means = np.maximum(img.reshape(-1, 3).mean(axis=0), 1e-4)
    wb = (means.mean() / means) ** p.wb_strength * np.asarray(p.wb_tint)
    img = img * wb.astype(np.float32)
    # tone curve: soft shoulder then gamma
    img = np.maximum(img, 0.0)
    img = img / (1.0 + 0.25 * img)
    img = np.minimum(np.power(img * 1.25, 1.0 / p.gamma), 1.0)
    img = img + p.contrast * (img * img * (3.0 - 2.0 * img) - img)  # S-curve (smoothstep blend)
    grey = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    img = grey + p.saturation * (img - grey)
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if p.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)
