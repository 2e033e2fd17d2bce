"""PASCAL-Context for multi-task learning in the layout of the PASCAL_MT archive that ASTMT / MTI-Net / InvPT use.

    ROOT/JPEGImages/<id>.jpg                       RGB (at most 500 x 500)
    ROOT/ImageSets/Context/{train,val}.txt         sample ids (4998 train / 5105 val images)
    ROOT/semseg/VOC12/<id>.png, or
    ROOT/semseg/pascal-context/<id>.png            21 classes 0..20 (VOC), 255 = ignore
    ROOT/human_parts/<id>.mat                      PASCAL-Part annotation (struct anno.objects[].{class,
                                                   class_ind, mask, parts[].{part_name, mask}})
    ROOT/normals_distill/<id>.png                  distilled normals, n = 2 v / 255 - 1
    ROOT/sal_distill/<id>.png                      distilled saliency, salient where v / 255 > 0.5
    ROOT/pascal-context/trainval/<id>.mat          'LabelMap': the 459-class PASCAL-Context labels

Conventions of the peers, implemented here:
- human parts: the people (VOC class 15) of an image with part annotations give 6 parts + background
  (head, torso, upper arm, lower arm, upper leg, lower leg; ``PART_GROUPS``); an image without annotated people
  is ignored entirely (all 255), as the peers' ignore-region and evaluation rules have it.
- normals: only pixels of PASCAL-Context classes that NYUDv2 also labels (``NORMALS_VALID_CONTEXT_IDS``) have
  valid distilled normals; the rest are invalid (zero vector).
- edges: boundaries of the 459-class label map (non-zero Laplacian), thinned to one pixel (Guo-Hall, the boundary
  metric's ``mtlsi_core.metrics.thinning``, equal to skimage.morphology.thin). Under the ``paper`` evaluation
  protocol (``mtlsi_core.metrics.protocol``): SEISM's ``seg2bmap`` of the label map instead (thinned by the boundary
  metric), as InvPT / ATRC are scored.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import scipy.io

from mtlsi_core.data.base import MultiTaskDataset, Transform, check_label_range, check_same_size, require_dir
from mtlsi_core.data.errors import DatasetError
from mtlsi_core.data.io import read_image, read_label_png, read_png_unchanged, require_file
from mtlsi_core.data.nyud import decode_normals
from mtlsi_core.metrics.boundary import seg2bmap
from mtlsi_core.metrics.protocol import EvalProtocol, get_protocol
from mtlsi_core.metrics.thinning import thin

PERSON_CLASS = 15  # VOC class index of "person" in PASCAL-Part
PART_GROUPS: dict[str, int] = {
    **{p: 1 for p in ("hair", "head", "lear", "lebrow", "leye", "mouth", "nose", "rear", "rebrow", "reye")},
    "neck": 2, "torso": 2,
    "luarm": 3, "ruarm": 3,
    "llarm": 4, "rlarm": 4, "lhand": 4, "rhand": 4,
    "luleg": 5, "ruleg": 5,
    "llleg": 6, "rlleg": 6, "lfoot": 6, "rfoot": 6,
}
# PASCAL-Context class ids (1..459) whose names also occur among NYUDv2's class names (excluding "unknown"),
# plus "tvmonitor": the classes with valid distilled normals. Derived from the two class lists
# (context_classes.json / nyu_classes.json of the ASTMT / MTL-PyTorch code bases); 170 ids.
NORMALS_VALID_CONTEXT_IDS = (
    3, 4, 6, 9, 10, 11, 13, 15, 17, 18, 22, 23, 29, 30, 33, 34, 36, 37, 38, 39, 41, 43, 46, 49, 50, 51, 53, 55, 56,
    59, 61, 62, 65, 66, 68, 69, 72, 73, 78, 83, 84, 85, 87, 88, 95, 96, 101, 104, 105, 107, 111, 113, 115, 122, 124,
    135, 141, 142, 143, 146, 150, 154, 157, 158, 159, 165, 172, 174, 181, 183, 184, 191, 193, 195, 197, 199, 202,
    213, 215, 216, 219, 220, 223, 225, 228, 230, 232, 233, 238, 239, 242, 243, 246, 250, 251, 252, 255, 260, 261,
    263, 269, 272, 273, 275, 281, 283, 284, 285, 286, 287, 288, 290, 291, 292, 293, 295, 304, 307, 309, 310, 314,
    315, 319, 323, 329, 330, 331, 336, 342, 345, 349, 350, 351, 352, 355, 357, 368, 370, 371, 374, 379, 380, 383,
    384, 397, 401, 403, 405, 407, 408, 411, 412, 413, 414, 417, 419, 421, 423, 427, 429, 430, 432, 440, 441, 442,
    443, 444, 446, 454, 457,
)
_VALID_LUT = np.zeros(65536, bool)
_VALID_LUT[list(NORMALS_VALID_CONTEXT_IDS)] = True


def _loadmat(path: Path, what: str) -> dict:
    require_file(path, f"{what} file")
    try:
        return scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as e:  # not a .mat, truncated ...
        raise DatasetError(f"cannot read {what} {path}: {type(e).__name__}: {e}") from None


def context_labels(path: Path) -> np.ndarray:
    mat = _loadmat(path, "PASCAL-Context label map")
    if "LabelMap" not in mat:
        raise DatasetError(f"{path} has no 'LabelMap' entry")
    lab = np.asarray(mat["LabelMap"])
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise DatasetError(f"'LabelMap' of {path} must be a 2-D integer array, got {lab.dtype} {lab.shape}")
    if lab.min() < 0 or lab.max() > 65535:
        raise DatasetError(f"'LabelMap' of {path} holds values outside 0..65535")
    return lab


def human_parts(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8: 0 background, 1..6 parts of annotated people; all 255 if the image has none."""
    anno = _loadmat(path, "human-parts annotation").get("anno")
    if anno is None or not hasattr(anno, "objects"):
        raise DatasetError(f"{path} is not a PASCAL-Part annotation (no anno.objects)")
    out = np.zeros(shape, np.uint8)
    found = False
    for obj in np.atleast_1d(anno.objects):
        if int(getattr(obj, "class_ind", -1)) != PERSON_CLASS:
            continue
        for part in np.atleast_1d(getattr(obj, "parts", [])):
            name = str(part.part_name)
            if name not in PART_GROUPS:
                raise DatasetError(f"{path}: unknown human part {name!r}")
            mask = np.asarray(part.mask).astype(bool)
            if mask.shape != shape:
                raise DatasetError(f"size mismatch: part {name!r} mask in {path} is {mask.shape}, image is {shape}")
            out[mask] = PART_GROUPS[name]
            found = True
    if not found:
        out[:] = 255
    return out


def edges_from_labels(labels: np.ndarray) -> np.ndarray:
    """One-pixel boundaries of a label map: non-zero Laplacian, thinned."""
    lap = cv2.Laplacian(labels.astype(np.float32), cv2.CV_32F)
    return thin(lap != 0).astype(np.uint8)


def _semseg_file(root: Path, sid: str) -> Path:
    voc = root / "semseg" / "VOC12" / f"{sid}.png"
    return voc if voc.is_file() else root / "semseg" / "pascal-context" / f"{sid}.png"


def _context_file(root: Path, sid: str) -> Path:
    return root / "pascal-context" / "trainval" / f"{sid}.mat"


# task -> (folders it needs, its ground-truth file)
TASK_FILES: dict[str, tuple[tuple[str, ...], Callable[[Path, str], Path]]] = {
    "semseg": (("semseg",), _semseg_file),
    "human_parts": (("human_parts",), lambda root, sid: root / "human_parts" / f"{sid}.mat"),
    "normals": (("normals_distill", "pascal-context/trainval"),
                lambda root, sid: root / "normals_distill" / f"{sid}.png"),
    "sal": (("sal_distill",), lambda root, sid: root / "sal_distill" / f"{sid}.png"),
    "edge": (("pascal-context/trainval",), _context_file),
}
NEEDS_CONTEXT = frozenset({"normals", "edge"})  # tasks that read the 459-class label map


class PascalContext(MultiTaskDataset):
    """PASCAL-Context multi-task folders (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, split: str, tasks: Sequence[str], transform: Transform,
                 dataset: str = "pascal", protocol: EvalProtocol | str | None = None):
        super().__init__(root, split, tasks, transform, dataset)
        self.protocol = get_protocol(protocol)
        self.focal_length = None  # PASCAL images come from unknown cameras
        image_dir = require_dir(self.root / "JPEGImages", "image folder")
        for t in self.tasks:
            for folder in TASK_FILES[t][0]:
                require_dir(self.root / folder, f"{t} folder")
        self.needs_context = bool(NEEDS_CONTEXT & set(self.tasks))
        self.files: list[dict[str, Path]] = []
        for sid in self.ids:
            files = {"image": image_dir / f"{sid}.jpg"}
            if self.needs_context:
                files["context"] = _context_file(self.root, sid)
            files.update({t: TASK_FILES[t][1](self.root, sid) for t in self.tasks})
            for key, path in files.items():
                require_file(path, f"{key} file")
            self.files.append(files)

    def split_file(self, split: str) -> Path:
        return self.root / "ImageSets" / "Context" / f"{split}.txt"

    def load_raw(self, index: int) -> dict[str, np.ndarray]:
        files = self.files[index]
        image = read_image(files["image"])
        ctx = None
        if self.needs_context:
            ctx = context_labels(files["context"])
            check_same_size(files["image"], image, files, {"context": ctx})
        targets = {t: LOADERS[t](self, files, image.shape[:2], ctx) for t in self.tasks}
        check_same_size(files["image"], image, files, targets)
        return {"image": image, **targets}

    # per-task decoders: (files, image shape, context label map or None) -> ground truth
    def _semseg(self, files, shape, ctx):
        lab = read_label_png(files["semseg"], "segmentation")
        check_label_range(files["semseg"], lab, self.num_classes["semseg"] - 1, extra=(255,))
        return lab.astype(np.uint8)

    def _human_parts(self, files, shape, ctx):
        return human_parts(files["human_parts"], shape)

    def _normals(self, files, shape, ctx):
        raw = read_png_unchanged(files["normals"], "normals")
        if raw.ndim != 3 or raw.dtype != np.uint8:
            raise DatasetError(f"normals {files['normals']} must be an 8-bit RGB PNG, got {raw.dtype} {raw.shape}")
        n = decode_normals(raw.astype(np.float32) * (2.0 / 255.0) - 1.0, files["normals"])
        if ctx.shape != n.shape[:2]:
            raise DatasetError(f"size mismatch: {files['normals']} is {n.shape[:2]}, {files['context']} is {ctx.shape}")
        n[~_VALID_LUT[ctx]] = 0.0
        return n

    def _sal(self, files, shape, ctx):
        raw = read_png_unchanged(files["sal"], "saliency")
        if raw.ndim == 3:
            raw = raw[:, :, 0]
        scale = 255.0 if raw.dtype == np.uint8 else 65535.0
        return (raw.astype(np.float32) / scale > 0.5).astype(np.uint8)

    def _edge(self, files, shape, ctx):
        if self.protocol.boundary_gt == "seg2bmap":
            return seg2bmap(ctx).astype(np.uint8)
        return edges_from_labels(ctx)


LOADERS: dict[str, Callable] = {
    "semseg": PascalContext._semseg, "human_parts": PascalContext._human_parts, "normals": PascalContext._normals,
    "sal": PascalContext._sal, "edge": PascalContext._edge,
}
