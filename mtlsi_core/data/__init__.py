"""Datasets (NYUD-MT, PASCAL-Context, synthetic scenes, folders of unlabelled photos: ``PhotoFolder``), augmentation
and the synthetic scene generator.

    ds = build_dataset(cfg, "train")               # cfg.data.dataset: "nyud" | "synth" | "pascal"
    loader = DataLoader(ds, batch_size=8, collate_fn=collate, worker_init_fn=worker_init, num_workers=2,
                        multiprocessing_context=loader_context(2))   # never a plain fork (see data.io)
    image, gt = ds.load_raw(i)                    # original-resolution numpy ground truth for metrics
    pred_orig = restore_prediction("depth", pred, sample["meta"])

No ROS imports here (mtlsi_core stays ROS-free).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from mtlsi_core.data.base import MultiTaskDataset, collate, worker_init
from mtlsi_core.data.errors import DatasetError
from mtlsi_core.data.io import loader_context
from mtlsi_core.data.nyud import NYUDMT
from mtlsi_core.data.pascal import PascalContext
from mtlsi_core.data.photos import PhotoFolder
from mtlsi_core.data.transforms import EvalTransform, TrainTransform, restore_prediction, target_layout

if TYPE_CHECKING:
    from mtlsi_core.config import Config

# cfg.data.dataset -> dataset class ("synth" is written in the NYUD-MT layout by mtlsi-synth)
DATASET_CLASSES: dict[str, type[MultiTaskDataset]] = {"nyud": NYUDMT, "synth": NYUDMT, "pascal": PascalContext}


def build_dataset(cfg: "Config", split: str, root: str | None = None, train: bool | None = None,
                  protocol: str | None = None) -> MultiTaskDataset:
    """The dataset of ``cfg.data`` for ``split``; ``root`` overrides ``cfg.data.root``; ``train`` (default: whether
    ``split`` is ``cfg.data.train_split``) selects the augmenting transform; ``protocol`` (``project`` by default)
    the evaluation protocol's ground-truth construction (``mtlsi_core.metrics.protocol``)."""
    data = cfg.data
    root = root if root is not None else data.root
    if root is None:
        raise DatasetError(f"no dataset folder for {data.dataset!r}: set data.root in the config or pass --data DIR")
    if train is None:
        train = split == data.train_split
    if train:
        # data.augment.fourier_style draws real photos' style from data.target_photos (a DatasetError names a
        # missing or empty folder here, before training starts)
        photos = PhotoFolder(data.target_photos) if data.augment.fourier_style.p > 0 else None
        transform = TrainTransform.from_config(data, style_photos=photos)
    else:
        transform = EvalTransform.from_config(data)
    extra = {} if protocol is None else {"protocol": protocol}
    return DATASET_CLASSES[data.dataset](root, split, data.tasks, transform, dataset=data.dataset, **extra)


__all__ = [
    "DATASET_CLASSES", "DatasetError", "EvalTransform", "MultiTaskDataset", "NYUDMT", "PascalContext",
    "PhotoFolder", "TrainTransform", "build_dataset", "collate", "loader_context", "restore_prediction",
    "target_layout", "worker_init",
]
