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
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from mtlsi_core.tasks import get_task, task_channels

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

def label_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)

class Runtime(ABC):
    """Base class of inference backends. Subclasses implement ``infer``."""

    def __init__(self, tasks: Sequence[str], dataset: str, input_size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float]):
        self.tasks = tuple(tasks)
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
    def infer(self, images: Sequence[np.ndarray], output_size: OutputSize = "input") -> list[dict[str, np.ndarray]]:
        ...

    def warmup(self, iterations: int = 2) -> None:
        dummy = np.zeros((*self.input_size, 3), np.uint8)
        for _ in range(iterations):
            self.infer([dummy], output_size="network")

    def close(self) -> None:
        """Release device memory (the node calls this on deactivate / cleanup)."""
