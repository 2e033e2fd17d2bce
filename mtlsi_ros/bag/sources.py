"""Frames for ``mtlsi-bag make``: a dataset split in the NYUD-MT layout (NYUD-MT, mtlsi-synth sets) or a plain
image folder, each frame with its intrinsics and ground truth; camera calibration files.

Intrinsics: a synthetic set's ``camera.json`` (mtlsi-synth writes it; rescaled if an image has another size); for
NYUD-MT, which has none, the NYUDv2 Kinect colour camera (fx 518.86 px at 640 x 480), treating each frame as a
centred crop of the 640 x 480 frame (NYUD-MT frames are border crops, not resized) or, if larger, as a resize. An
image folder gets the calibration file given with ``--camera-info`` or none (no camera_info topic).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from mtlsi_core.data.errors import DatasetError
from mtlsi_core.data.io import read_image
from mtlsi_core.data.nyud import IMAGE_EXTS, LAYOUT, NYUDMT
from mtlsi_core.data.synth import KINECT_RGB_640x480
from mtlsi_core.outputs import scale_intrinsics
from mtlsi_core.tasks import get_dataset
from mtlsi_ros.bag.errors import BagError, read_yaml

IDENTITY_R = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Calibration:
    """A pinhole camera as sensor_msgs/CameraInfo holds it, for images of ``height`` x ``width`` pixels."""

    width: int
    height: int
    k: tuple[float, ...]  # 9, row-major
    d: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    distortion_model: str = "plumb_bob"
    r: tuple[float, ...] = IDENTITY_R
    p: tuple[float, ...] = ()  # 12; empty: [K | 0]

    def projection(self) -> tuple[float, ...]:
        if self.p:
            return self.p
        k = self.k
        return (k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0)

    def resized(self, hw: tuple[int, int]) -> "Calibration":
        """The same camera for images resized to ``hw`` = (H, W)."""
        if (self.height, self.width) == tuple(hw):
            return self
        k, p = scale_intrinsics(self.k, self.projection(), (self.height, self.width), hw)
        return Calibration(int(hw[1]), int(hw[0]), tuple(k.tolist()), self.d, self.distortion_model, self.r,
                           tuple(p.tolist()))

    def to_msg(self, header: Any) -> Any:
        from sensor_msgs.msg import CameraInfo

        info = CameraInfo()
        info.header = header
        info.height, info.width = int(self.height), int(self.width)
        info.distortion_model = self.distortion_model
        info.d = [float(v) for v in self.d]
        info.k = [float(v) for v in self.k]
        info.r = [float(v) for v in self.r]
        info.p = [float(v) for v in self.projection()]
        return info


def _matrix(doc: Any, key: str, n: int, path: Path) -> tuple[float, ...]:
    v = doc.get(key)
    if isinstance(v, dict):  # camera_calibration_parsers: {rows, cols, data}
        v = v.get("data")
    arr = np.asarray(v, dtype=np.float64).reshape(-1) if v is not None else np.zeros(0)
    if arr.size != n or not np.all(np.isfinite(arr)):
        raise BagError(f"camera info {path}: {key} must hold {n} finite numbers, got {v!r}")
    return tuple(float(x) for x in arr)


def read_calibration(path: str | os.PathLike) -> Calibration:
    """A camera calibration file: ROS ``camera_calibration_parsers`` YAML (image_width, image_height,
    camera_matrix, distortion_model, distortion_coefficients, rectification_matrix, projection_matrix) or the
    ``camera.json`` of mtlsi-synth (width, height, K, D)."""
    p = Path(path)
    doc = read_yaml(p, "camera info", kind="YAML/JSON")
    if not isinstance(doc, dict):
        raise BagError(f"camera info {p}: expected a mapping (ROS calibration YAML or camera.json)")
    if "camera_matrix" in doc:
        w, h, k = doc.get("image_width"), doc.get("image_height"), _matrix(doc, "camera_matrix", 9, p)
        model = doc.get("distortion_model") or "plumb_bob"
        d = doc.get("distortion_coefficients")
        d = tuple(float(x) for x in ((d.get("data") if isinstance(d, dict) else d) or []))
        r = _matrix(doc, "rectification_matrix", 9, p) if "rectification_matrix" in doc else IDENTITY_R
        proj = _matrix(doc, "projection_matrix", 12, p) if "projection_matrix" in doc else ()
    elif "K" in doc:
        w, h, k = doc.get("width"), doc.get("height"), _matrix(doc, "K", 9, p)
        model = doc.get("distortion_model") or "plumb_bob"
        d = tuple(float(x) for x in (doc.get("D") or []))
        r, proj = IDENTITY_R, ()
    else:
        raise BagError(f"camera info {p}: no camera_matrix (ROS calibration YAML) or K (camera.json)")
    if model == "none":  # camera.json of mtlsi-synth: no distortion
        model, d = "plumb_bob", (0.0,) * 5
    if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
        raise BagError(f"camera info {p}: image width and height must be positive integers, got {w!r} x {h!r}")
    if k[0] <= 0 or k[4] <= 0:
        raise BagError(f"camera info {p}: fx and fy must be > 0, got {k[0]}, {k[4]}")
    return Calibration(w, h, k, d, model, r, proj)


def kinect_calibration(hw: tuple[int, int]) -> Calibration:
    """NYUDv2's Kinect colour camera for a frame of ``hw``: a centred crop of 640 x 480 (or a resize if larger)."""
    h, w = int(hw[0]), int(hw[1])
    fx, fy, cx, cy = KINECT_RGB_640x480
    full = Calibration(640, 480, (fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0))
    if h > 480 or w > 640:
        return full.resized((h, w))
    ox, oy = (640 - w) / 2.0, (480 - h) / 2.0
    return Calibration(w, h, (fx, 0.0, cx - ox, 0.0, fy, cy - oy, 0.0, 0.0, 1.0))


@dataclass
class SourceFrame:
    name: str  # sample id or file name
    rgb: np.ndarray  # (H, W, 3) uint8
    calibration: Calibration | None
    gt: dict[str, np.ndarray] = field(default_factory=dict)  # task -> target (dataset format)


@dataclass
class Source:
    """What ``make`` writes: frames (lazily), their ground-truth tasks, and a description."""

    frames: Iterator[SourceFrame]
    count: int
    tasks: tuple[str, ...]
    dataset: str
    info: dict[str, str]


def dataset_name(root: Path, dataset: str | None) -> str:
    """``dataset`` if given, else "synth" for a folder with mtlsi-synth's camera.json, else "nyud"."""
    if dataset is not None:
        get_dataset(dataset)
        return dataset
    return "synth" if (root / "camera.json").is_file() else "nyud"


def dataset_source(root: str | os.PathLike, split: str = "val", dataset: str | None = None,
                   tasks: Sequence[str] | None = None, max_frames: int | None = None) -> Source:
    """Frames of a split of an NYUD-MT-layout folder. ``tasks`` default: the dataset's tasks whose folder exists."""
    root = Path(root)
    if not root.is_dir():
        raise BagError(f"dataset folder not found: {root}")
    name = dataset_name(root, dataset)
    spec = get_dataset(name)
    if tasks is None:
        tasks = tuple(t for t in spec.tasks if t in LAYOUT and (root / LAYOUT[t][0]).is_dir())
    else:
        bad = [t for t in tasks if t not in spec.tasks or t not in LAYOUT]
        if bad:
            raise BagError(f"dataset {name!r} has no ground truth for task(s) {bad}; it has {', '.join(spec.tasks)}")
    try:
        ds = NYUDMT(root, split, tuple(tasks), None, dataset=name)
    except (DatasetError, KeyError) as e:
        raise BagError(f"dataset {root} split {split!r}: {e}") from None
    cam = read_calibration(root / "camera.json") if (root / "camera.json").is_file() else None
    n = len(ds) if max_frames is None else min(len(ds), max_frames)

    def frames() -> Iterator[SourceFrame]:
        for i in range(n):
            try:
                raw = ds.load_raw(i)
            except DatasetError as e:
                raise BagError(f"dataset {root} split {split!r} sample {ds.ids[i]}: {e}") from None
            rgb = raw.pop("image")
            hw = rgb.shape[:2]
            calib = cam.resized(hw) if cam is not None else kinect_calibration(hw)
            yield SourceFrame(ds.ids[i], rgb, calib, {t: raw[t] for t in tasks})

    info = {"source": str(root), "dataset": name, "split": split,
            "intrinsics": "camera.json" if cam is not None else "NYUDv2 Kinect colour camera"}
    return Source(frames(), n, tuple(tasks), name, info)


def folder_source(folder: str | os.PathLike, camera_info: str | os.PathLike | None = None,
                  max_frames: int | None = None) -> Source:
    """The images of a folder (``.png``, ``.jpg``, ``.jpeg``; sorted by name), no ground truth."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BagError(f"image folder not found: {folder}")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS and f.is_file())
    if not files:
        raise BagError(f"image folder {folder} holds no {', '.join(IMAGE_EXTS)} files")
    if max_frames is not None:
        files = files[:max_frames]
    calib = read_calibration(camera_info) if camera_info is not None else None

    def frames() -> Iterator[SourceFrame]:
        for f in files:
            try:
                rgb = read_image(f)
            except DatasetError as e:
                raise BagError(str(e)) from None
            yield SourceFrame(f.stem, rgb, calib)

    info = {"source": str(folder), "dataset": "", "split": "",
            "intrinsics": str(camera_info) if camera_info is not None else "none"}
    return Source(frames(), len(files), (), "", info)


__all__ = ["Calibration", "Source", "SourceFrame", "dataset_name", "dataset_source", "folder_source",
           "kinect_calibration", "read_calibration"]
