"""NYUD-MT: NYUDv2 for multi-task learning in the layout InvPT / ATRC / MTI-Net use (also written by mtlsi-synth).

    ROOT/images/<id>.jpg | .png        RGB (NYUD-MT: 425 x 560, the border-cropped NYUDv2 frames)
    ROOT/depth/<id>.npy                depth in metres (0 = invalid)
    ROOT/normals/<id>.npy | .png       unit normals; .png encodes n = 2 v / 255 - 1
    ROOT/edge/<id>.png | .npy          boundaries; .png holds 0 / 255 (value / 255), .npy 0 / 1
    ROOT/segmentation/<id>.png         labels 1..40, 0 = unlabelled (read as label - 1, 0 -> 255 = ignore)
    ROOT/gt_sets/{train,val}.txt       sample ids (795 train / 654 val images in NYUD-MT)

    ROOT/camera.json                   optional: {"K": 3x3} of the frames (written by mtlsi-synth); without it
                                       the dataset's ``DatasetSpec.focal_length`` (NYUDv2: 518.86 px)

Normals whose encoded length is below 0.5 (e.g. the (127, 127, 127) or (0, 0, 0) "no normal" pixels of PNG
encodings) are invalid and become the zero vector; valid ones are re-normalised to unit length, then rotated into
the camera optical frame with the dataset's ``DatasetSpec.normals_to_optical`` (NYUDv2 stores (right, away, up);
mtlsi-synth writes the optical frame already).

The evaluation protocol (``mtlsi_core.metrics.protocol``) may change two of these: ``paper`` counts every non-zero
stored normal (InvPT counts the (127, 127, 127) pixels) and builds the boundary ground truth as SEISM does,
``seg2bmap`` of the edge file read as a label map (the boundary metric thins it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mtlsi_core.data.base import MultiTaskDataset, Transform, check_label_range, check_same_size, require_dir
from mtlsi_core.data.errors import DatasetError
from mtlsi_core.data.io import read_image, read_label_png, read_npy, read_png_unchanged
from mtlsi_core.metrics.boundary import seg2bmap
from mtlsi_core.metrics.protocol import EvalProtocol, get_protocol
from mtlsi_core.tasks import get_dataset

IMAGE_EXTS = (".jpg", ".png", ".jpeg")
# task -> (folder, accepted extensions in order of preference)
LAYOUT: dict[str, tuple[str, tuple[str, ...]]] = {
    "semseg": ("segmentation", (".png",)),
    "depth": ("depth", (".npy",)),
    "normals": ("normals", (".npy", ".png")),
    "edge": ("edge", (".png", ".npy")),
}


def decode_normals(arr: np.ndarray, path: Path, min_norm: float = 0.5) -> np.ndarray:
    """(H, W, 3) float normals (already in [-1, 1]) -> unit vectors, zero where invalid (stored length not above
    ``min_norm``; 0: every non-zero vector is valid, as the peers' evaluation counts them)."""
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DatasetError(f"normals {path} must have shape (H, W, 3), got {arr.shape}")
    n = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    norm = np.linalg.norm(n, axis=2, keepdims=True)
    valid = norm > min_norm
    return np.where(valid, n / np.where(valid, norm, 1.0), 0.0).astype(np.float32)


def _semseg(path: Path, num_classes: int, protocol: EvalProtocol) -> np.ndarray:
    lab = read_label_png(path, "segmentation")
    check_label_range(path, lab, num_classes)
    out = lab.astype(np.int16) - 1
    out[lab == 0] = 255
    return out.astype(np.uint8)


def _depth(path: Path, num_classes: int, protocol: EvalProtocol) -> np.ndarray:
    d = read_npy(path, "depth")
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2:
        raise DatasetError(f"depth {path} must have shape (H, W), got {d.shape}")
    d = np.nan_to_num(d.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if (d < 0).any():
        raise DatasetError(f"depth {path} holds negative values (min {float(d.min()):.3f}); expected metres >= 0")
    return d


def _normals(path: Path, num_classes: int, protocol: EvalProtocol) -> np.ndarray:
    if path.suffix == ".npy":
        return decode_normals(read_npy(path, "normals"), path, protocol.normals_min_norm)
    raw = read_png_unchanged(path, "normals")
    if raw.dtype != np.uint8:
        raise DatasetError(f"normals {path} must be an 8-bit RGB PNG, got {raw.dtype}")
    return decode_normals(raw.astype(np.float32) * (2.0 / 255.0) - 1.0, path, protocol.normals_min_norm)


def _edge(path: Path, num_classes: int, protocol: EvalProtocol) -> np.ndarray:
    if path.suffix == ".npy":
        e = read_npy(path, "edge").astype(np.float32)
    else:
        raw = read_png_unchanged(path, "edge")
        if raw.ndim == 3:
            raw = raw[:, :, 0]
        if protocol.boundary_gt == "seg2bmap":  # SEISM reads the file as a label map: its boundaries are the GT
            return seg2bmap(raw).astype(np.uint8)
        if raw.max() == 1:
            raise DatasetError(f"edge map {path} holds 0/1; PNG edge maps hold 0/255 (edge = value / 255)")
        e = raw.astype(np.float32) / 255.0
    if e.ndim == 3 and e.shape[2] == 1:
        e = e[:, :, 0]
    if e.ndim != 2:
        raise DatasetError(f"edge map {path} must have shape (H, W), got {e.shape}")
    if e.min() < 0 or e.max() > 1:
        raise DatasetError(f"edge map {path} holds values outside [0, 1] ({float(e.min())}..{float(e.max())})")
    if protocol.boundary_gt == "seg2bmap":
        return seg2bmap(e).astype(np.uint8)
    return (e > 0.5).astype(np.uint8)


DECODERS: dict[str, Callable[[Path, int, EvalProtocol], np.ndarray]] = {
    "semseg": _semseg, "depth": _depth, "normals": _normals, "edge": _edge,
}


def read_focal_length(root: Path, default: float | None) -> float | None:
    """fx (pixels) of the frames in ``root``: ``camera.json``'s K[0][0] where the folder has one, else ``default``."""
    path = root / "camera.json"
    if not path.is_file():
        return default
    try:
        fx = float(json.loads(path.read_text())["K"][0][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise DatasetError(f"{path}: cannot read the focal length K[0][0]: {e}") from None
    if not np.isfinite(fx) or fx <= 0:
        raise DatasetError(f"{path}: focal length K[0][0] must be a positive number of pixels, got {fx}")
    return fx


def _find(folder: Path, listing: set[str], stem: str, exts: Sequence[str], what: str) -> Path:
    for ext in exts:
        if stem + ext in listing:
            return folder / (stem + ext)
    tried = " or ".join(str(folder / (stem + e)) for e in exts)
    raise DatasetError(f"{what} file not found: {tried}")


class NYUDMT(MultiTaskDataset):
    """NYUD-MT / mtlsi-synth folders (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, split: str, tasks: Sequence[str], transform: Transform,
                 dataset: str = "nyud", protocol: EvalProtocol | str | None = None):
        super().__init__(root, split, tasks, transform, dataset)
        self.protocol = get_protocol(protocol)
        self.focal_length = read_focal_length(self.root, get_dataset(dataset).focal_length)
        image_dir = require_dir(self.root / "images", "image folder")
        listings = {"image": set(os.listdir(image_dir))}
        for t in self.tasks:
            folder, _ = LAYOUT[t]
            listings[t] = set(os.listdir(require_dir(self.root / folder, f"{t} folder")))
        self.files: list[dict[str, Path]] = []
        for sid in self.ids:
            files = {"image": _find(image_dir, listings["image"], sid, IMAGE_EXTS, "image")}
            for t in self.tasks:
                folder, exts = LAYOUT[t]
                files[t] = _find(self.root / folder, listings[t], sid, exts, f"{t}")
            self.files.append(files)

    def split_file(self, split: str) -> Path:
        return self.root / "gt_sets" / f"{split}.txt"

    def load_raw(self, index: int) -> dict[str, np.ndarray]:
        files = self.files[index]
        image = read_image(files["image"])
        n = self.num_classes.get("semseg", 0)
        targets = {t: DECODERS[t](files[t], n, self.protocol) for t in self.tasks}
        if "normals" in targets:
            rot = np.asarray(get_dataset(self.dataset).normals_to_optical, dtype=np.float32)
            targets["normals"] = targets["normals"] @ rot.T
        check_same_size(files["image"], image, files, targets)
        return {"image": image, **targets}
