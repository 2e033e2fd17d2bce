"""The multi-task dataset base class: split handling, checks, transforms, tensors.

``load_raw(i)`` gives a dict with ``"image"`` ((H, W, 3) uint8 RGB) and the ground truth of each task in
numpy, at the original resolution, in the conventions the metrics use:

    semseg, human_parts   (H, W) uint8 0-based class ids, 255 = ignore
    depth                 (H, W) float32 metres, 0 = invalid
    normals               (H, W, 3) float32 unit vectors, zero vector = invalid
    edge                  (H, W) uint8 0 / 1
    sal                   (H, W) uint8 0 / 1, 255 = ignore

A sample (``dataset[i]``) holds torch tensors at the network input size: ``"image"`` float32 (3, H, W)
normalised with cfg.data.mean / std; per task: index maps int64 (H, W) (semseg, human_parts, sal) or float maps
(C, H, W) (depth (1, ...), normals (3, ...), edge (1, ...)), padding filled with each task's registry
``ignore_value``; and ``"meta"``: ``name``, ``index``, ``orig_size`` (H, W before any transform),
``valid_box`` (top, left, bottom, right; bottom/right exclusive: the image inside the padded input),
``input_size``, and ``scale`` (evaluation resize factor, 1 if none) or ``aug_scale`` / ``hflip`` (training).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from mtlsi_core.data.errors import DatasetError
from mtlsi_core.data.io import cv2_threads_limited, limit_cv2_threads
from mtlsi_core.data.transforms import to_tensors
from mtlsi_core.tasks import get_dataset

Transform = Callable[[np.ndarray, dict, np.random.Generator], tuple[np.ndarray, dict, dict]]


def read_split(path: Path) -> list[str]:
    """Sample ids of a split file (one per line; blank lines and surrounding spaces ignored)."""
    if not path.is_file():
        raise DatasetError(f"split file not found: {path}")
    try:
        ids = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read split file {path}: {e}") from None
    if not ids:
        raise DatasetError(f"split file {path} lists no samples")
    return ids


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path}")
    return path


def check_same_size(image_file: Path, image: np.ndarray, files: Mapping[str, Path],
                    arrays: Mapping[str, np.ndarray]) -> None:
    h, w = image.shape[:2]
    for task, arr in arrays.items():
        if arr.shape[:2] != (h, w):
            raise DatasetError(f"size mismatch: {files[task]} is {arr.shape[1]}x{arr.shape[0]} (WxH) but the image "
                               f"{image_file} is {w}x{h}")


def check_label_range(path: Path, labels: np.ndarray, allowed_max: int, extra: Sequence[int] = ()) -> None:
    """Raise if a label map holds a value above ``allowed_max`` other than those in ``extra``."""
    bad = labels > allowed_max
    for v in extra:
        bad &= labels != v
    if bad.any():
        vals = np.unique(labels[bad])[:5].tolist()
        allowed = f"0..{allowed_max}" + "".join(f", {v}" for v in extra)
        raise DatasetError(f"label map {path} holds value(s) {vals} outside the class range ({allowed})")


class MultiTaskDataset(Dataset):
    """Base of the NYUD-MT and PASCAL-Context datasets. Subclasses set ``split_file`` and implement ``load_raw``."""

    def __init__(self, root: str | os.PathLike, split: str, tasks: Sequence[str], transform: Transform,
                 dataset: str):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"dataset root not found: {self.root}")
        spec = get_dataset(dataset)
        for t in tasks:
            if t not in spec.tasks:
                raise DatasetError(f"task {t!r} is not annotated in dataset {dataset!r} ({', '.join(spec.tasks)})")
        self.dataset = dataset
        self.split = split
        self.tasks = tuple(tasks)
        self.transform = transform
        self.num_classes = dict(spec.num_classes)
        self.ids = read_split(self.split_file(split))

    def split_file(self, split: str) -> Path:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def load_raw(self, index: int) -> dict[str, np.ndarray]:
        """``{"image": (H, W, 3) uint8 RGB, task: ground truth, ...}`` at the original resolution (module docstring)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        if get_worker_info() is not None and not cv2_threads_limited():
            limit_cv2_threads(1)
        targets = self.load_raw(index)
        image = targets.pop("image")
        orig = image.shape[:2]
        rng = None
        if getattr(self.transform, "random", True):
            # drawn from torch's generator so that torch.manual_seed and DataLoader worker seeding govern it
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))
        img, tgt, meta = self.transform(image, targets, rng)
        sample = to_tensors(img, tgt)
        sample["meta"] = {"name": self.ids[index], "index": index, "orig_size": (int(orig[0]), int(orig[1])), **meta}
        return sample

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, tasks={self.tasks}, "
                f"n={len(self)})")


def collate(batch: Sequence[dict]) -> dict:
    """Stack tensors; ``meta`` becomes a list of per-sample dicts."""
    if not batch:
        raise ValueError("empty batch")
    out = {k: torch.stack([b[k] for b in batch]) for k in batch[0] if k != "meta"}
    out["meta"] = [b["meta"] for b in batch]
    return out


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one OpenCV thread per worker (pair it with
    ``multiprocessing_context=loader_context(num_workers)``: workers must not be plain forks)."""
    limit_cv2_threads(1)
