"""Folders of real, unlabelled RGB photos: the target domain of sim-to-real adaptation (issue 20).

``PhotoFolder(root)`` lists every ``.jpg`` / ``.jpeg`` / ``.png`` / ``.webp`` under ``root`` (recursively, any case
of the suffix, hidden files and folders left out), sorted by their path relative to ``root``, so the list and every
index into it are the same on every machine. ``max_images=N`` keeps N photos evenly spaced over that list (a folder
sorted by class keeps every class), not the first N.

Its samples are what the networks take, as ``mtlsi_core.data.base`` gives them: ``{"image": float32 (3, H, W)
normalised with the config's data.mean / data.std at data.input_size, "meta": {"name": path relative to root,
"index": i}}``, batched by ``mtlsi_core.data.collate``. Two preprocessings:

- ``train=False`` (AdaBN, evaluation): the largest centred crop of the network input's aspect ratio, resized to
  the input size: what a camera of that aspect ratio shows the runtimes (which resize the frame to the input
  size), with no distortion. Deterministic.
- ``train=True``: a random resized crop (area 30-100 % of the photo, aspect ratio the input's times 3/4 .. 4/3,
  log-uniform) and a horizontal flip with probability 0.5, from a generator seeded by torch's (as the datasets'
  augmentation), so ``torch.manual_seed`` and the DataLoader's worker seeding govern it.

``image(i)`` gives photo ``i`` itself (uint8 RGB at its own size): what ``data.augment.fourier_style`` draws
its style from. A photo that cannot be read (truncated, not an image) is skipped: one warning line naming the file
(once per file and process), and the next readable photo in the list stands in for it; the rest of the folder stays
usable. A missing folder, a folder without photos and a folder without one readable photo are ``DatasetError``\\ s
naming the folder.

Licensed photo collections (e.g. Places365: research and non-commercial use) are read where they lie: nothing here
copies them.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from mtlsi_core.data.errors import DatasetError
from mtlsi_core.data.io import cv2_threads_limited, limit_cv2_threads
from mtlsi_core.data.transforms import normalize_image

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_AREA = (0.3, 1.0)  # random resized crop: fraction of the photo's area
CROP_ASPECT = (3 / 4, 4 / 3)  # ... and its aspect ratio relative to the network input's


def list_photos(root: str | os.PathLike) -> list[Path]:
    """Every photo under ``root`` (recursive, ``IMAGE_EXTENSIONS`` in any case, no hidden files or folders), sorted
    by path relative to ``root``. Raises DatasetError naming the folder when it is missing or holds no photo."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"photo folder not found: {root}" + (" (it is a file)" if root.exists() else ""))
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                path = Path(dirpath) / name
                found.append((path.relative_to(root).as_posix(), path))
    if not found:
        raise DatasetError(f"no photos ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    found.sort(key=lambda rp: rp[0])
    return [p for _, p in found]


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when k is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    if k < 1:
        raise ValueError(f"max_images must be >= 1, got {k}")
    return [i * n // k for i in range(k)]


def center_crop_to_aspect(img: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred crop of ``img`` with width / height = ``aspect``."""
    h, w = img.shape[:2]
    if w / h > aspect:  # too wide
        cw = max(1, min(w, round(h * aspect)))
        x0 = (w - cw) // 2
        return img[:, x0:x0 + cw]
    ch = max(1, min(h, round(w / aspect)))
    y0 = (h - ch) // 2
    return img[y0:y0 + ch]


def random_resized_crop_box(shape: tuple[int, int], aspect: float, rng: np.random.Generator,
                            area: tuple[float, float] = CROP_AREA,
                            ratio: tuple[float, float] = CROP_ASPECT) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop: area fraction uniform in ``area``, width / height = ``aspect`` x
    a log-uniform factor in ``ratio``; shrunk to fit inside the image. Always draws 4 numbers."""
    h, w = shape
    frac = float(rng.uniform(*area))
    r = aspect * math.exp(float(rng.uniform(math.log(ratio[0]), math.log(ratio[1]))))
    ch = math.sqrt(frac * h * w / r)
    cw = ch * r
    s = min(1.0, h / ch, w / cw)  # keep the aspect ratio, fit inside
    ch, cw = max(1, min(h, round(ch * s))), max(1, min(w, round(cw * s)))
    u, v = float(rng.random()), float(rng.random())
    return int(u * (h - ch + 1)) if h > ch else 0, int(v * (w - cw + 1)) if w > cw else 0, ch, cw


def resize_to(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 RGB to ``size`` (H, W): area averaging when shrinking, bilinear when enlarging."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    down = img.shape[0] > h or img.shape[1] > w
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if down else cv2.INTER_LINEAR)


class PhotoFolder(Dataset):
    """Unlabelled RGB photos of a folder (module docstring); ``from_config`` takes size and normalisation from a
    config's ``data`` section."""

    def __init__(self, root: str | os.PathLike, *, input_size: tuple[int, int] | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, train: bool = False,
                 max_images: int | None = None):
        self.root = Path(root)
        files = list_photos(self.root)
        self.files = [files[i] for i in evenly_spaced(len(files), max_images)]
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        if self.input_size is not None and min(self.input_size) < 1:
            raise ValueError(f"input_size must be positive, got {input_size}")
        self.mean, self.std = tuple(mean), tuple(std)
        self.train = bool(train)
        self._warned: set[str] = set()  # files this process has warned about (one line each)

    @classmethod
    def from_config(cls, data_cfg, root: str | os.PathLike, *, train: bool = False,
                    max_images: int | None = None) -> "PhotoFolder":
        """Photos of ``root`` at ``data_cfg.input_size``, normalised with ``data_cfg.mean`` / ``std``."""
        return cls(root, input_size=tuple(data_cfg.input_size), mean=data_cfg.mean, std=data_cfg.std, train=train,
                   max_images=max_images)

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        return self.files[index].relative_to(self.root).as_posix()

    def read(self, index: int) -> np.ndarray | None:
        """Photo ``index`` as uint8 RGB (H, W, 3), or None (after one warning line naming it) when unreadable."""
        path = self.files[index]
        img = None
        try:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error:
            pass
        if img is None or img.size == 0:
            if str(path) not in self._warned:
                self._warned.add(str(path))
                log.warning("skipping unreadable photo %s (not an image file or corrupt)", path)
            return None
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def image(self, index: int) -> np.ndarray:
        """Photo ``index``, or the next readable one after it (wrapping around): uint8 RGB (H, W, 3)."""
        n = len(self.files)
        if not 0 <= index < n:
            raise IndexError(f"photo index {index} out of range for {n} photos")
        for k in range(n):
            img = self.read((index + k) % n)
            if img is not None:
                return img
        raise DatasetError(f"none of the {n} photos under {self.root} can be read")

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} photos")
        if get_worker_info() is not None and not cv2_threads_limited():
            limit_cv2_threads(1)
        img = self.image(index)
        if self.input_size is not None:
            h, w = self.input_size
            if self.train:
                # drawn from torch's generator, as the datasets' augmentation (mtlsi_core.data.base)
                rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))
                y0, x0, ch, cw = random_resized_crop_box(img.shape[:2], w / h, rng)
                img = img[y0:y0 + ch, x0:x0 + cw]
                if rng.random() < 0.5:
                    img = img[:, ::-1]
            else:
                img = center_crop_to_aspect(img, w / h)
            img = resize_to(np.ascontiguousarray(img), (h, w))
        x = normalize_image(img, self.mean, self.std)
        return {"image": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
                "meta": {"name": self.name(index), "index": index}}

    def __repr__(self) -> str:
        return (f"PhotoFolder(root={str(self.root)!r}, n={len(self)}, input_size={self.input_size}, "
                f"train={self.train})")


__all__ = ["IMAGE_EXTENSIONS", "PhotoFolder", "center_crop_to_aspect", "evenly_spaced", "list_photos",
           "random_resized_crop_box"]
