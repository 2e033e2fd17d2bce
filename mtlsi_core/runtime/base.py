"""The inference runtime interface: a batch of RGB images in, per-task outputs out.

Every backend (PyTorch, ONNX Runtime, TensorRT) implements ``Runtime.infer``:

    outputs = runtime.infer([img0, img1, ...], output_size="input")

``images`` are uint8 RGB arrays (H, W, 3); they may differ in size (several cameras). The result has one
dict per image, keyed by task, in physical units (see ``mtlsi_core.tasks``):

    labels tasks (semseg, human_parts)  (H, W) uint8 class ids (uint16 above 255 classes)
    depth                               (H, W) float32 metres
    normals                             (H, W, 3) float32 unit vectors, optical frame
    edge, sal                           (H, W) float32 probability in [0, 1]

``output_size`` is "input" (each image's own size, the default), "network" (the model's input size), or an
explicit (H, W).

Auxiliary outputs (``tasks.AuxOutput``) are computed only when asked, with the option ``auxiliary`` (names, e.g.
("confidence",); every backend and ``auto`` accept it), and come under ``<task>_<name>``:

    <labels task>_confidence            (H, W) float32 probability of the predicted class (max softmax), resized
                                        nearest like the labels

A model file exported before an auxiliary output existed lacks it: its key is then absent (with a note in
``info.notes``). Off by default because it is not free: the max softmax over 40 classes costs 16-23 ms per frame
with ONNX Runtime fp32 on 2 CPU cores at 224x288 (the shipped model; see
``mtlsi_core/runtime/README.md``).

Backends implement two steps, which ``infer`` chains with the shared pre/post-processing of
``mtlsi_core.runtime.processing``:

    prepare(images) -> the backend's uint8 (B, H, W, 3) batch at the network size
    run(batch)      -> {task: (B, ...) activated outputs at network resolution} (model only; synchronous)

Benchmarks time ``run`` alone (model-only figures) and ``infer`` (end to end).

Metric scale from a known camera mount (floor anchoring) is applied to ``infer``'s outputs by whoever holds the
camera's state, not by the runtime: ``mtlsi_core.anchoring.anchor_outputs`` (the node, ``mtlsi-bag infer``, the API).
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Sequence, Union

import numpy as np
import torch

from mtlsi_core.runtime.processing import focal_zoom
from mtlsi_core.tasks import auxiliary_names, auxiliary_outputs, get_task, task_channels

log = logging.getLogger(__name__)

OutputSize = Union[str, tuple[int, int]]

@dataclass
class RuntimeInfo:
    backend: str
    device: str
    precision: str
    input_size: tuple[int, int]
    tasks: tuple[str, ...]
    dataset: str
    notes: list[str] = field(default_factory=list)  # e.g. "CUDA requested but not available: running on CPU"
    options: dict[str, Any] = field(default_factory=dict)  # backend details: providers, compile, engine path ...


class ModelFileError(RuntimeError):
    """A model file (checkpoint, ONNX, engine) is missing, corrupt or lacks what the backend needs; names the file."""

def check_images(images: Sequence[np.ndarray]) -> None:
    """Validate a batch before it reaches the network; raise ValueError naming the offending image."""
    if len(images) == 0:
        raise ValueError("empty image batch")
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray):
            raise ValueError(f"image {i}: expected a numpy array, got {type(img).__name__}")
        if img.dtype != np.uint8:
            raise ValueError(f"image {i}: expected uint8, got {img.dtype}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image {i}: expected shape (H, W, 3) RGB, got {img.shape}")
        if img.shape[0] < 1 or img.shape[1] < 1:
            raise ValueError(f"image {i}: zero-size image {img.shape}")

def resolve_output_size(output_size: OutputSize, image_hw: tuple[int, int], network_hw: tuple[int, int]) -> tuple[int, int]:
    if output_size == "input":
        return image_hw
    if output_size == "network":
        return network_hw
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2 and all(int(v) > 0 for v in output_size):
        return int(output_size[0]), int(output_size[1])
    raise ValueError(f"output_size must be 'input', 'network' or (H, W) with positive sides, got {output_size!r}")

def check_auxiliary(auxiliary: Collection[str] | None) -> tuple[str, ...]:
    """The ``auxiliary`` runtime option as a tuple of names (None: none); ValueError naming an unknown one."""
    if auxiliary is None:
        return ()
    if isinstance(auxiliary, str):
        auxiliary = (auxiliary,)
    names = tuple(dict.fromkeys(str(a) for a in auxiliary))
    unknown = [a for a in names if a not in auxiliary_names()]
    if unknown:
        raise ValueError(f"option auxiliary: unknown auxiliary output(s) {', '.join(unknown)}; the tasks declare: "
                         f"{', '.join(auxiliary_names()) or 'none'}")
    return names


def label_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)

class Runtime(ABC):
    """Base class of inference backends. Subclasses implement ``info``, ``prepare`` and ``run``."""

    def __init__(self, tasks: Sequence[str], dataset: str, input_size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], canonical_focal: float | None = None,
                 auxiliary: Collection[str] | None = ()):
        self.tasks = tuple(tasks)
        self.auxiliary = check_auxiliary(auxiliary)
        # the auxiliary output keys this runtime returns (a backend drops those its model file lacks)
        self.auxiliary_keys: tuple[str, ...] = tuple(auxiliary_outputs(self.tasks, self.auxiliary))
        self.canonical_focal = float(canonical_focal) if canonical_focal else None
        self.dataset = dataset
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.channels = task_channels(self.tasks, dataset)
        self.label_dtypes = {t: label_dtype(c) for t, c in self.channels.items() if get_task(t).kind == "labels"}

    @property
    @abstractmethod
    def info(self) -> RuntimeInfo:
        ...

    @abstractmethod
    def prepare(self, images: Sequence[np.ndarray]) -> Any:
        """Validated uint8 RGB images -> the backend's (B, H, W, 3) uint8 batch at the network size."""

    @abstractmethod
    def run(self, batch: Any) -> Mapping[str, torch.Tensor]:
        """Network only: prepared batch -> {task: activated (B, ...) tensor at network resolution}, computation done;
        plus {key: (B, H, W) float32} for each of ``auxiliary_keys``."""

    def infer(self, images: Sequence[np.ndarray], output_size: OutputSize = "input",
              focal_lengths: Sequence[float | None] | None = None) -> list[dict[str, np.ndarray]]:
        """Run the network on ``images``. ``focal_lengths``: each image's horizontal focal length in pixels at its
        own resolution (camera_info K[0]), or None where unknown; see ``zoom_factors``."""
        from mtlsi_core.runtime.processing import apply_zoom, finalize_outputs

        check_images(images)
        if focal_lengths is not None and len(focal_lengths) != len(images):
            raise ValueError(f"focal_lengths has {len(focal_lengths)} entries for {len(images)} images")
        sizes = [resolve_output_size(output_size, img.shape[:2], self.input_size) for img in images]
        preds = self.run(self.prepare(images))
        zooms = self.zoom_factors(images, focal_lengths)
        if zooms is not None:
            preds = apply_zoom(preds, zooms)
        return finalize_outputs(preds, self.tasks, sizes, self.label_dtypes)

    def zoom_factors(self, images: Sequence[np.ndarray],
                     focal_lengths: Sequence[float | None] | None) -> list[float] | None:
        """How much larger each image looks to the network than a training image at scale 1.

        An image of focal length f (pixels) and width W, resized to the network width W_n, has focal length
        f * W_n / W; the network learned the camera of ``canonical_focal``, so the scene looks
        zoom = f * W_n / (W * canonical_focal) times closer and zoom-dependent targets (depth) are corrected by
        zoom ** -exponent. Unknown focal length, or a model without ``canonical_focal``: zoom 1 (the camera is
        assumed to match the training camera at the network size). None when no correction applies.
        """
        if self.canonical_focal is None or focal_lengths is None or all(f is None for f in focal_lengths):
            return None
        w_net = self.input_size[1]
        zooms = []
        for img, f in zip(images, focal_lengths):
            if f is None:
                zooms.append(1.0)
                continue
            zooms.append(focal_zoom(f, w_net / img.shape[1], self.canonical_focal))  # shared with mtlsi-eval
        return zooms

    def warmup(self, iterations: int = 2) -> None:
        dummy = np.zeros((*self.input_size, 3), np.uint8)
        for _ in range(iterations):
            self.infer([dummy], output_size="network")

    def close(self) -> None:
        """Release device memory (the node calls this on deactivate / cleanup)."""

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
