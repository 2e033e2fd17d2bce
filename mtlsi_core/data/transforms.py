"""Training augmentation and evaluation preprocessing of multi-task samples (numpy in, numpy out).

A raw sample is an RGB uint8 image (H, W, 3) and a dict of ground truth per task in the conventions of
``load_raw`` (see ``mtlsi_core.data.base``). The training pipeline is the one InvPT / ATRC use:
random rescale (scale drawn uniformly from ``augment.scale_range``; depth divided by the scale), random crop
to the input size (retrying up to 10 times so that no class covers more than 75 % of the labelled pixels, as
the peers' ``cat_max_ratio=0.75``), horizontal flip (normals' x negated), optionally a real photo's style on the
image (``FourierStyle``, FDA: its low-frequency amplitude spectrum; off by default), photometric distortion of the
image (brightness +-32, contrast 0.5-1.5, saturation 0.5-1.5, hue +-18 degrees of OpenCV's 180, each with
probability 0.5), optionally sim-to-real camera effects on the image (``SensorAugment``: blur, exposure,
vignetting, white balance, sensor noise, gamma, saturation, JPEG; off by default), ImageNet normalisation, then
padding (centred, as the peers' PadImage) to the input size with 0 for the normalised image (= the mean colour)
and each task's ``ignore_value`` for its ground truth.

Evaluation: no randomness; an image larger than the input size is first downscaled, keeping its aspect, to fit;
then it is padded. ``meta["valid_box"]`` = (top, left, bottom, right) of the image inside the padded input
(bottom / right exclusive) and ``meta["scale"]`` the resize factor; ``restore_prediction`` maps a prediction back
to the original resolution. The depth target of a downscaled sample follows the training convention (depth /
scale, see ``ZOOM_EXPONENT``), so a network trained with the scale augmentation predicts depth / scale on it:
``restore_prediction`` multiplies by ``scale`` again. ``load_raw`` always gives the metric ground truth.

Resampling ground truth: labels, boundaries and saliency with nearest neighbour (the registry's
``interpolation``). Depth and normals are resampled with nearest neighbour too by default (as the peers do):
bilinear interpolation would blend depths across occlusion boundaries and mix invalid (0) pixels into valid
ones. ``dense_interpolation="bilinear"`` gives a validity-weighted bilinear resize instead (normals are then
re-normalised to unit length).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch

from mtlsi_core.adaptation.fourier import FourierStyle, PhotoSource
from mtlsi_core.tasks import TASKS, get_task

# How a target transforms geometrically beyond being resampled:
# Both tables are views of the task registry (TaskSpec.zoom_exponent, TaskSpec.hflip_negate).
# ZOOM_EXPONENT: when the image is enlarged by s, the target is multiplied by s ** exponent (depth: an image
# enlarged by s shows the scene as if it were s times closer).
ZOOM_EXPONENT: Mapping[str, float] = {t: s.zoom_exponent for t, s in TASKS.items() if s.zoom_exponent}
# HFLIP_NEGATE: channels whose sign flips with a horizontal mirror (x of vectors in the optical frame).
HFLIP_NEGATE: Mapping[str, tuple[int, ...]] = {t: s.hflip_negate for t, s in TASKS.items() if s.hflip_negate}

_CV2_INTER = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR}


def target_layout(task: str) -> str:
    """"index": a class-index map (H, W) int64 (labels, and binary tasks trained with a 2-way softmax);
    "dense": a float map (C, H, W) with C = the task's channels."""
    spec = get_task(task)
    if spec.kind == "labels" or (spec.kind == "binary" and (spec.channels or 0) > 1):
        return "index"
    return "dense"


def ground_truth_interpolation(task: str, dense_interpolation: str = "nearest") -> str:
    spec = get_task(task)
    return dense_interpolation if spec.kind == "dense" else spec.interpolation


def resize_target(task: str, arr: np.ndarray, size: tuple[int, int], dense_interpolation: str = "nearest") -> np.ndarray:
    """Resample one ground-truth map to ``size`` = (H, W)."""
    h, w = size
    if arr.shape[:2] == (h, w):
        return arr
    mode = ground_truth_interpolation(task, dense_interpolation)
    if mode == "nearest":
        return cv2.resize(arr, (w, h), interpolation=cv2.INTER_NEAREST)
    if mode != "bilinear":
        raise ValueError(f"unknown interpolation {mode!r} for task {task!r}")
    # validity-weighted bilinear: invalid pixels (ignore value / zero vector) do not bleed into valid ones
    ignore = get_task(task).ignore_value
    a = arr.astype(np.float32)
    a3 = a if a.ndim == 3 else a[:, :, None]
    valid = np.any(a3 != ignore, axis=-1).astype(np.float32)
    num = cv2.resize(a3 * valid[:, :, None], (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
    den = cv2.resize(valid, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None]
    out = np.where(den > 0.5, num / np.maximum(den, 1e-6), np.float32(ignore)).astype(np.float32)
    if a.ndim == 3:  # vectors: back to unit length
        norm = np.linalg.norm(out, axis=-1, keepdims=True)
        out = np.where(norm > 1e-6, out / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
        return out
    return out[:, :, 0]


def zoom_target(task: str, arr: np.ndarray, scale: float) -> np.ndarray:
    """Apply the value change of a zoom by ``scale`` (depth / scale); other targets are returned as they are."""
    exp = ZOOM_EXPONENT.get(task)
    if exp is None or scale == 1.0:
        return arr
    return (arr * np.float32(scale ** exp)).astype(arr.dtype, copy=False)


def hflip_target(task: str, arr: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(arr[:, ::-1])
    for c in HFLIP_NEGATE.get(task, ()):
        out[..., c] *= -1
    return out


def pad_to(arr: np.ndarray, size: tuple[int, int], value: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre ``arr`` in a (size) canvas filled with ``value``; returns it and the (top, left) offset."""
    h, w = arr.shape[:2]
    H, W = max(size[0], h), max(size[1], w)
    if (H, W) == (h, w):
        return arr, (0, 0)
    top, left = (H - h) // 2, (W - w) // 2
    out = np.full((H, W) + arr.shape[2:], value, dtype=arr.dtype)
    out[top:top + h, left:left + w] = arr
    return out, (top, left)


def normalize_image(img: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 RGB -> float32 (x / 255 - mean) / std."""
    m = np.asarray(mean, np.float32) * 255.0
    s = 1.0 / (np.asarray(std, np.float32) * 255.0)
    return (img.astype(np.float32) - m) * s


def photometric_distortion(img: np.ndarray, rng: np.random.Generator, brightness: float = 32.0,
                           contrast: tuple[float, float] = (0.5, 1.5), saturation: tuple[float, float] = (0.5, 1.5),
                           hue: int = 18) -> np.ndarray:
    """Random brightness, contrast (before or after the colour changes), saturation and hue of a uint8 RGB image."""
    def affine(x: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
        return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    out = img
    if rng.random() < 0.5:
        out = affine(out, beta=rng.uniform(-brightness, brightness))
    contrast_first = rng.random() < 0.5
    if contrast_first and rng.random() < 0.5:
        out = affine(out, alpha=rng.uniform(*contrast))
    do_sat, do_hue = rng.random() < 0.5, rng.random() < 0.5
    if do_sat or do_hue:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        if do_sat:
            hsv[:, :, 1] = affine(hsv[:, :, 1], alpha=rng.uniform(*saturation))
        if do_hue:
            hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int16) + int(rng.integers(-hue, hue))) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and rng.random() < 0.5:
        out = affine(out, alpha=rng.uniform(*contrast))
    return out


@dataclass(frozen=True)
class SensorAugment:
    """Sim-to-real camera effects on a uint8 RGB training image (``data.augment``'s defocus_blur ... jpeg sections).

    Each effect ``name`` is applied with probability ``p[name]`` and parameters drawn uniformly from its ranges, in
    the order a camera applies them: the optics (Gaussian defocus, motion streak of random direction, vignetting)
    and the sensor (exposure gain, per-channel white-balance gain, shot + read noise) on linear intensity (the image
    decoded with the sRGB-like power 2.2), then the tone curve (re-encoded with 1 / 2.2 times a random gamma),
    the chroma (saturation scale about the luminance, or grey), and JPEG re-compression. Only the image changes:
    none of these moves a pixel or scales a depth. An effect with p = 0 draws no random number, so with all of
    them off the generator's stream (and the training run) is exactly that of a transform without them.
    """

    # the ranges of the config's sections (their defaults live there, in mtlsi_core.config): use from_config
    p: Mapping[str, float]
    defocus_sigma: tuple[float, float]
    motion_length: tuple[float, float]
    exposure_gain: tuple[float, float]
    gamma: tuple[float, float]
    vignetting: tuple[float, float]
    wb_gain: tuple[float, float]
    shot: tuple[float, float]
    read: tuple[float, float]
    saturation: tuple[float, float]
    grayscale: float
    jpeg_quality: tuple[int, int]

    EFFECTS = ("defocus_blur", "motion_blur", "exposure", "vignetting", "white_balance", "sensor_noise", "saturation",
               "jpeg")

    @classmethod
    def from_config(cls, a) -> "SensorAugment":
        """From a ``data.augment`` section (``mtlsi_core.config.AugmentConfig``)."""
        return cls(p={e: float(getattr(a, e).p) for e in cls.EFFECTS},
                   defocus_sigma=tuple(a.defocus_blur.sigma), motion_length=tuple(a.motion_blur.length),
                   exposure_gain=tuple(a.exposure.gain), gamma=tuple(a.exposure.gamma),
                   vignetting=tuple(a.vignetting.strength),
                   wb_gain=tuple(a.white_balance.gain), shot=tuple(a.sensor_noise.shot),
                   read=tuple(a.sensor_noise.read), saturation=tuple(a.saturation.scale),
                   grayscale=float(a.saturation.grayscale), jpeg_quality=tuple(a.jpeg.quality))

    @property
    def active(self) -> bool:
        return any(self.p.get(e, 0.0) > 0 for e in self.EFFECTS)

    def draw(self, rng: np.random.Generator) -> dict[str, object]:
        """The effects applied to one image and their parameters (fixed draw order: the stream is reproducible)."""
        out: dict[str, object] = {}

        def on(name: str) -> bool:
            p = self.p.get(name, 0.0)
            return p > 0 and rng.random() < p

        if on("defocus_blur"):
            out["defocus_blur"] = float(rng.uniform(*self.defocus_sigma))
        if on("motion_blur"):
            out["motion_blur"] = (float(rng.uniform(*self.motion_length)), float(rng.uniform(0.0, np.pi)))
        if on("exposure"):
            out["exposure"] = (float(rng.uniform(*self.exposure_gain)), float(rng.uniform(*self.gamma)))
        if on("vignetting"):
            out["vignetting"] = float(rng.uniform(*self.vignetting))
        if on("white_balance"):
            out["white_balance"] = rng.uniform(*self.wb_gain, size=3).astype(np.float32)
        if on("sensor_noise"):
            out["sensor_noise"] = (float(rng.uniform(*self.shot)), float(rng.uniform(*self.read)),
                                   int(rng.integers(0, 2 ** 31)))
        if on("saturation"):
            gray = self.grayscale > 0 and rng.random() < self.grayscale
            out["saturation"] = 0.0 if gray else float(rng.uniform(*self.saturation))
        if on("jpeg"):
            out["jpeg"] = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        return out

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.active:
            return img
        return apply_sensor_effects(img, self.draw(rng))


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel (odd size) of ``length`` pixels at ``angle`` radians: a linear motion streak."""
    k = int(np.ceil(length)) | 1
    kern = np.zeros((k, k), np.float32)
    c = (k - 1) / 2.0
    half = (length - 1) / 2.0
    dx, dy = np.cos(angle), np.sin(angle)
    for t in np.linspace(-half, half, max(2 * k, 3)):
        x, y = c + t * dx, c + t * dy
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for yy, xx, w in ((y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)), (y0 + 1, x0, (1 - fx) * fy),
                          (y0 + 1, x0 + 1, fx * fy)):
            if 0 <= yy < k and 0 <= xx < k:
                kern[yy, xx] += w
    return kern / kern.sum()


def vignette(shape: tuple[int, int], strength: float) -> np.ndarray:
    """Radial light falloff (H, W): 1 at the centre, 1 - strength in the corners (quadratic in the radius)."""
    h, w = shape
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max((h - 1) / 2, 1)
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max((w - 1) / 2, 1)
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2.0
    return (1.0 - np.float32(strength) * r2).astype(np.float32)


def apply_sensor_effects(img: np.ndarray, fx: Mapping[str, object]) -> np.ndarray:
    """Apply the effects ``SensorAugment.draw`` chose to a uint8 RGB image; returns a new uint8 RGB image."""
    if not fx:
        return img
    linear_fx = ("defocus_blur", "motion_blur", "exposure", "vignetting", "white_balance", "sensor_noise")
    out = img
    if any(k in fx for k in linear_fx):
        lin = np.power(img.astype(np.float32) * np.float32(1.0 / 255.0), np.float32(2.2))
        if "defocus_blur" in fx:
            lin = cv2.GaussianBlur(lin, (0, 0), sigmaX=float(fx["defocus_blur"]), borderType=cv2.BORDER_REFLECT)
        if "motion_blur" in fx:
            length, angle = fx["motion_blur"]
            lin = cv2.filter2D(lin, -1, motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)
        gamma = 1.0
        if "exposure" in fx:
            gain, gamma = fx["exposure"]
            lin = lin * np.float32(gain)
        if "vignetting" in fx:
            lin = lin * vignette(lin.shape[:2], float(fx["vignetting"]))[:, :, None]
        if "white_balance" in fx:
            lin = lin * np.asarray(fx["white_balance"], np.float32)
        if "sensor_noise" in fx:
            shot, read, seed = fx["sensor_noise"]
            lin = np.clip(lin, 0.0, 1.0)
            std = np.sqrt(np.float32(shot) * lin + np.float32(read) ** 2)
            lin = lin + std * np.random.default_rng(seed).standard_normal(lin.shape, dtype=np.float32)
        out = np.power(np.clip(lin, 0.0, 1.0), np.float32(gamma / 2.2)) * np.float32(255.0)
    if "saturation" in fx:
        f = out.astype(np.float32, copy=False)
        lum = f @ np.asarray([0.299, 0.587, 0.114], np.float32)
        out = lum[:, :, None] + np.float32(fx["saturation"]) * (f - lum[:, :, None])
    if out is not img:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if "jpeg" in fx:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(fx["jpeg"])])
        if not ok:
            raise RuntimeError("JPEG re-compression failed")
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def _resize_all(image: np.ndarray, targets: dict[str, np.ndarray], size: tuple[int, int],
                dense_interpolation: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    h, w = size
    down = h < image.shape[0] or w < image.shape[1]
    img = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if down else cv2.INTER_LINEAR)
    return img, {t: resize_target(t, a, size, dense_interpolation) for t, a in targets.items()}


def _finish(image: np.ndarray, targets: dict[str, np.ndarray], size: tuple[int, int], mean, std,
            meta: dict) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    img = normalize_image(image, mean, std)
    h, w = img.shape[:2]
    img, (top, left) = pad_to(img, size, 0.0)
    out = {t: pad_to(a, size, get_task(t).ignore_value)[0] for t, a in targets.items()}
    meta["valid_box"] = (top, left, top + h, left + w)
    meta["input_size"] = tuple(int(v) for v in img.shape[:2])
    return img, out, meta


@dataclass
class _Normalizing:
    """What every transform ends with: normalise by ``mean`` / ``std`` and pad to ``input_size``."""

    input_size: tuple[int, int]
    mean: Sequence[float]
    std: Sequence[float]


@dataclass
class TrainTransform(_Normalizing):
    scale_range: tuple[float, float] = (0.5, 2.0)
    crop: bool = True
    hflip: bool = True
    photometric: bool = True
    cat_max_ratio: float = 0.75
    dense_interpolation: str = "nearest"
    sensor: SensorAugment | None = None  # sim-to-real camera effects, last (None or all p = 0: none)
    # a real photo's low-frequency amplitude (FDA), after the flip, before the photometric jitter (None: none)
    fourier: FourierStyle | None = None
    random = True  # draws from the generator it is given (class attribute, not a field)

    @classmethod
    def from_config(cls, data_cfg, style_photos: PhotoSource | None = None) -> "TrainTransform":
        """From a ``data`` section. ``style_photos``: the photos of ``data.target_photos``
        (``mtlsi_core.data.photos.PhotoFolder``; ``mtlsi_core.data.build_dataset`` passes them), needed when
        ``data.augment.fourier_style.p > 0`` and unused otherwise."""
        a = data_cfg.augment
        sensor = SensorAugment.from_config(a)
        fourier = None
        if a.fourier_style.p > 0:
            if style_photos is None:
                raise ValueError(f"data.augment.fourier_style.p = {a.fourier_style.p:g}: the transform needs the "
                                 f"photos of data.target_photos ({data_cfg.target_photos}) as style_photos")
            fourier = FourierStyle(float(a.fourier_style.p), tuple(a.fourier_style.beta), style_photos)
        return cls(tuple(data_cfg.input_size), data_cfg.mean, data_cfg.std, tuple(a.scale_range), a.crop, a.hflip,
                   a.photometric, sensor=sensor if sensor.active else None, fourier=fourier)

    def _crop_box(self, shape: tuple[int, int], targets: dict[str, np.ndarray], rng: np.random.Generator):
        H, W = shape
        ch, cw = min(self.input_size[0], H), min(self.input_size[1], W)
        # the class-balance rule looks at the first class-label task (semantic segmentation in both data sets)
        label_task = next((t for t in targets if get_task(t).kind == "labels"), None)
        box = None
        for _ in range(10):
            y0, x0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
            box = (y0, x0, ch, cw)
            if label_task is None or self.cat_max_ratio >= 1.0:
                break
            crop = targets[label_task][y0:y0 + ch, x0:x0 + cw]
            ignore = get_task(label_task).ignore_value
            counts = np.bincount(crop[crop != ignore].ravel().astype(np.int64))
            if counts.size and np.count_nonzero(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio:
                break
        return box

    def __call__(self, image: np.ndarray, targets: dict[str, np.ndarray], rng: np.random.Generator):
        meta: dict = {}
        lo, hi = self.scale_range
        s = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
        if s != 1.0:
            H, W = image.shape[:2]
            size = (max(1, int(H * s)), max(1, int(W * s)))
            image, targets = _resize_all(image, targets, size, self.dense_interpolation)
            targets = {t: zoom_target(t, a, s) for t, a in targets.items()}
        meta["aug_scale"] = s
        if self.crop:
            y0, x0, ch, cw = self._crop_box(image.shape[:2], targets, rng)
            image = image[y0:y0 + ch, x0:x0 + cw]
            targets = {t: a[y0:y0 + ch, x0:x0 + cw] for t, a in targets.items()}
        elif image.shape[0] > self.input_size[0] or image.shape[1] > self.input_size[1]:
            image, targets, _ = fit_to(image, targets, self.input_size, self.dense_interpolation)
        flip = self.hflip and rng.random() < 0.5
        if flip:
            image = np.ascontiguousarray(image[:, ::-1])
            targets = {t: hflip_target(t, a) for t, a in targets.items()}
        meta["hflip"] = flip
        if self.fourier is not None:
            image = self.fourier(np.ascontiguousarray(image), rng)
        if self.photometric:
            image = photometric_distortion(np.ascontiguousarray(image), rng)
        if self.sensor is not None:
            image = self.sensor(np.ascontiguousarray(image), rng)
        return _finish(image, targets, self.input_size, self.mean, self.std, meta)


def fit_to(image: np.ndarray, targets: dict[str, np.ndarray], size: tuple[int, int], dense_interpolation: str = "nearest"):
    """Downscale (keeping the aspect ratio) so that the image fits in ``size``; returns the scale (1 if it fits)."""
    H, W = image.shape[:2]
    if H <= size[0] and W <= size[1]:
        return image, targets, 1.0
    s = min(size[0] / H, size[1] / W)
    new = (min(size[0], max(1, round(H * s))), min(size[1], max(1, round(W * s))))
    image, targets = _resize_all(image, targets, new, dense_interpolation)
    return image, targets, s


@dataclass
class EvalTransform(_Normalizing):
    dense_interpolation: str = "nearest"
    random = False  # deterministic: needs no generator

    @classmethod
    def from_config(cls, data_cfg) -> "EvalTransform":
        return cls(tuple(data_cfg.input_size), data_cfg.mean, data_cfg.std)

    def __call__(self, image: np.ndarray, targets: dict[str, np.ndarray], rng: np.random.Generator | None = None):
        image, targets, s = fit_to(image, targets, self.input_size, self.dense_interpolation)
        targets = {t: zoom_target(t, a, s) for t, a in targets.items()}
        return _finish(image, targets, self.input_size, self.mean, self.std, {"scale": s})


def to_tensors(image: np.ndarray, targets: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Normalised (H, W, 3) image and targets -> the sample tensors (see ``mtlsi_core.data.base``)."""
    out = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))}
    for t, a in targets.items():
        if target_layout(t) == "index":
            out[t] = torch.from_numpy(a.astype(np.int64))
        else:
            a = a.astype(np.float32, copy=False)
            out[t] = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None]))
    return out


def restore_prediction(task: str, pred: np.ndarray | torch.Tensor, meta: Mapping, undo_zoom: bool = True,
                       zoom: float | None = None) -> np.ndarray:
    """Map a prediction at network resolution back onto the sample's original ground-truth grid.

    ``pred``: (H, W) or, for vector tasks, (H, W, C) or (C, H, W) at ``meta["input_size"]``. The padding is cut
    off (``valid_box``), the rest resized to ``orig_size`` with the task's registry interpolation (vectors are
    re-normalised). With ``undo_zoom``, a depth predicted on an input that looks ``zoom`` times closer than a
    training image at scale 1 is multiplied by ``zoom`` (the inverse of the training convention, under which an
    image shrunk by s shows the scene 1/s times farther away). ``zoom`` defaults to ``meta["scale"]``, which is
    right only when the dataset's camera is the training camera; ``mtlsi_core.training.evaluation`` passes the
    focal-length-corrected zoom (``mtlsi_core.runtime.processing.focal_zoom``).
    """
    if isinstance(pred, torch.Tensor):
        pred = pred.detach().cpu().numpy()
    pred = np.asarray(pred)
    in_h, in_w = meta["input_size"]
    if pred.ndim == 3 and pred.shape[1:] == (in_h, in_w) and pred.shape[0] != in_h:
        pred = pred.transpose(1, 2, 0)
    if pred.shape[:2] != (in_h, in_w):
        raise ValueError(f"prediction for {task!r} has shape {pred.shape}, expected the input size {(in_h, in_w)}")
    top, left, bottom, right = meta["valid_box"]
    pred = pred[top:bottom, left:right]
    h, w = bottom - top, right - left
    oh, ow = meta["orig_size"]
    spec = get_task(task)
    if (h, w) != (oh, ow):
        src = pred.astype(np.float32) if pred.dtype not in (np.uint8, np.float32) else pred
        pred = cv2.resize(src, (ow, oh), interpolation=_CV2_INTER[spec.interpolation]).astype(pred.dtype, copy=False)
        if pred.ndim == 3:
            norm = np.linalg.norm(pred, axis=-1, keepdims=True)
            pred = np.where(norm > 1e-6, pred / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
    scale = float(meta.get("scale", 1.0)) if zoom is None else float(zoom)
    if undo_zoom and scale != 1.0 and task in ZOOM_EXPONENT:
        pred = pred * np.float32(scale ** (-ZOOM_EXPONENT[task]))
    return np.ascontiguousarray(pred)
