"""File IO of the data package: reads that fail with a ``DatasetError`` naming the file, atomic writes.

Images are read and written with OpenCV; arrays with ``numpy.save`` / ``numpy.load``. Every write goes through
``mtlsi_core.checkpoint.atomic_write`` (temporary file beside the target, fsync, rename), so an interrupted run
never leaves a half-written file behind.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from pathlib import Path

import cv2
import numpy as np

from mtlsi_core.checkpoint import atomic_write, atomic_write_bytes
from mtlsi_core.data.errors import DatasetError

_CV2_THREADS_SET = False


def limit_cv2_threads(n: int = 1) -> None:
    """Limit OpenCV's own thread pool (call inside DataLoader / process-pool workers)."""
    global _CV2_THREADS_SET
    cv2.setNumThreads(n)
    _CV2_THREADS_SET = True


def cv2_threads_limited() -> bool:
    return _CV2_THREADS_SET


# what the fork server imports once, so that each worker forked from it starts warm
WORKER_PRELOAD = ["mtlsi_core.data", "mtlsi_core.data.synth"]


def worker_context() -> multiprocessing.context.BaseContext:
    """The start method of every worker process of the data package (DataLoader workers, the synth pool).

    Never a plain fork of the calling process: forking a process whose OpenCV, OpenMP or DDS threads run can
    deadlock the child (seen: ``cv2.setNumThreads`` in a forked DataLoader worker waiting forever on a condition
    variable copied from the parent's OpenCV pool). The fork server is started once from a clean interpreter
    that imports ``WORKER_PRELOAD``; each worker forks from it cheaply. ``spawn`` where there is no fork server.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(WORKER_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def loader_context(num_workers: int) -> multiprocessing.context.BaseContext | None:
    """``DataLoader(multiprocessing_context=...)`` for ``num_workers`` workers (None without workers)."""
    return worker_context() if num_workers > 0 else None


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    return path


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a colour image as uint8 RGB (H, W, 3)."""
    path = Path(path)
    require_file(path, "image file")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot read image {path} (not an image file or corrupt)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_png_unchanged(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Read a PNG/JPEG keeping its depth and channel count (labels, uint16 depth, RGB-encoded normals)."""
    path = Path(path)
    require_file(path, f"{what} file")
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DatasetError(f"cannot read {what} {path} (not an image file or corrupt)")
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = cv2.cvtColor(arr[:, :, :3], cv2.COLOR_BGR2RGB)
    return arr


def read_label_png(path: str | os.PathLike, what: str = "label map") -> np.ndarray:
    """Read a single-channel integer label PNG."""
    arr = read_png_unchanged(path, what)
    if arr.ndim != 2:
        raise DatasetError(f"{what} {path} must be a single-channel image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(f"{what} {path} must hold integers, got {arr.dtype}")
    return arr


def read_npy(path: str | os.PathLike, what: str = "array") -> np.ndarray:
    path = Path(path)
    require_file(path, f"{what} file")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # truncated, not npy, pickled object array ...
        raise DatasetError(f"cannot read {what} {path}: {type(e).__name__}: {e}") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise DatasetError(f"{what} {path} is not a numeric array")
    return arr


# Fast lossless PNG for photos: "up" filter + Huffman-only coding, about half the CPU time of zlib level 1
# for ~10 % larger files (OpenCV >= 4.10 knows the filter flag; older versions fall back to level 1).
FAST_PNG = ([cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
             cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
            if hasattr(cv2, "IMWRITE_PNG_FILTER") else [cv2.IMWRITE_PNG_COMPRESSION, 1])


def write_png(path: str | os.PathLike, arr: np.ndarray, params: list[int] | None = None) -> None:
    """Atomically write (H, W) grey / (H, W, 3) RGB uint8 or uint16 as PNG (default: zlib level 1)."""
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, params if params is not None else [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    atomic_write_bytes(path, buf.tobytes())


def write_npy(path: str | os.PathLike, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))
