"""Shared code of the runtime / export tests (test_runtime_*.py, test_export_*.py): a tiny checkpoint whose
outputs vary over the image, and its ONNX export, each built once per test process.
Imported as a plain module (the test folder is on sys.path)."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from mtlsi_core.checkpoint import atomic_torch_save, make_checkpoint
from mtlsi_core.config import load_config
from mtlsi_core.models import build_model
from mtlsi_core.runtime.export import spread_outputs

TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"
MIXED_SIZES = [(64, 96), (120, 160), (37, 50)]  # network size, larger, smaller with another aspect ratio


def tiny_model(seed: int = 0):
    cfg = load_config(TINY)
    torch.manual_seed(seed)
    return spread_outputs(build_model(cfg).eval()), cfg


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    model, cfg = tiny_model(seed)
    atomic_torch_save(make_checkpoint(model.state_dict(), cfg.to_dict(), {"note": "runtime tests"}), path)
    return path


def images(sizes=MIXED_SIZES, seed: int = 0) -> list[np.ndarray]:
    """Smooth-ish random RGB images (so resizing changes them little) of the given sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x / max(w - 1, 1), y / max(h - 1, 1), (x + y) / max(h + w - 2, 1)], -1) * 200
        out.append(np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8))
    return out


def as_network_layout(task: str, arr: np.ndarray) -> np.ndarray:
    """A runtime output of one image, (H, W) or (H, W, 3), in the network layout of a batch of one."""
    return np.moveaxis(arr, -1, 0)[None] if arr.ndim == 3 else arr[None]


_CACHE: dict[str, Path] = {}


def _folder() -> Path:
    if "dir" not in _CACHE:
        folder = Path(tempfile.mkdtemp(prefix="mtlsi_runtime_"))
        atexit.register(shutil.rmtree, folder, True)
        _CACHE["dir"] = folder
    return _CACHE["dir"]


def tiny_checkpoint() -> Path:
    """The tiny checkpoint, saved once per test process (do not modify it; copy it)."""
    if "ckpt" not in _CACHE or not _CACHE["ckpt"].is_file():
        _CACHE["ckpt"] = save_tiny_checkpoint(_folder() / "tiny.pt")
    return _CACHE["ckpt"]


def tiny_onnx() -> Path:
    """The tiny checkpoint exported once per process with the (faster) TorchScript exporter, verified."""
    if "onnx" not in _CACHE or not _CACHE["onnx"].is_file():
        from mtlsi_core.runtime.export import export_onnx, load_for_export

        model, cfg, source = load_for_export(tiny_checkpoint())
        _CACHE["onnx"] = export_onnx(model, cfg, _folder() / "tiny_ts.onnx", exporter="torchscript",
                                     source=source).path
    return _CACHE["onnx"]
