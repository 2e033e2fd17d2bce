"""PyTorch runtime: pre-processing, network, activation and resizing all on the device."""
from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mtlsi_core.runtime.base import OutputSize, Runtime, RuntimeInfo, check_images, resolve_output_size
from mtlsi_core.tasks import get_task

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str, notes: list[str]) -> torch.device:
    """'cuda' falls back to CPU (with a note) where CUDA is absent."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = f"device {device!r} requested but CUDA is not available: running on CPU"
        log.warning(msg)
        notes.append(msg)
        return torch.device("cpu")
    return dev


def resize_prediction(task: str, pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize one activated prediction (H, W) or (3, H, W) to ``size`` the way its task says."""
    if tuple(pred.shape[-2:]) == tuple(size):
        return pred
    spec = get_task(task)
    x = pred[None, None] if pred.ndim == 2 else pred[None]
    if spec.interpolation == "nearest":
        out = F.interpolate(x.float(), size=size, mode="nearest").to(pred.dtype)
    else:
        out = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
        if spec.visual == "normals":
            out = F.normalize(out, dim=1, eps=1e-12)
    return out[0, 0] if pred.ndim == 2 else out[0]


class TorchRuntime(Runtime):
    def __init__(self, model: torch.nn.Module, tasks: Sequence[str], dataset: str, input_size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], device: str = "cpu", precision: str = "fp32",
                 channels_last: bool = False):
        super().__init__(tasks, dataset, input_size, mean, std)
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
        self._notes: list[str] = []
        self.device = resolve_device(device, self._notes)
        if self.device.type == "cpu" and precision == "fp16":
            self._notes.append("fp16 on CPU is slow and inexact: using fp32")
            precision = "fp32"
        self.precision = precision
        self.model = model.eval().to(self.device)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1) * 255.0

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", precision: str = "fp32", **kw) -> "TorchRuntime":
        from mtlsi_core.models import load_model_from_checkpoint

        model, cfg = load_model_from_checkpoint(path)
        return cls(model, cfg.data.tasks, cfg.data.dataset, cfg.data.input_size, cfg.data.mean, cfg.data.std,
                   device=device, precision=precision, **kw)

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo("torch", str(self.device), self.precision, self.input_size, self.tasks, self.dataset,
                           list(self._notes))

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 RGB images of any sizes -> normalised (B, 3, H, W) float batch at the network size."""
        h, w = self.input_size
        batch = []
        for img in images:
            t = torch.from_numpy(np.ascontiguousarray(img)).to(self.device, non_blocking=True)
            t = t.permute(2, 0, 1)[None].float()
            if tuple(t.shape[-2:]) != (h, w):
                down = t.shape[-2] > h or t.shape[-1] > w
                t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=down)
            batch.append(t)
        x = torch.cat(batch, 0)
        x = (x - self._mean) / self._std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def forward_activated(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised batch -> activated predictions at network resolution (float32 / int64), on the device."""
        amp = (torch.autocast(self.device.type, dtype=_DTYPES[self.precision])
               if self.precision != "fp32" else nullcontext())
        with amp:
            raw = self.model(x)["final"]
        return {t: get_task(t).activate(raw[t].float()) for t in self.tasks}

    @torch.inference_mode()
    def infer(self, images: Sequence[np.ndarray], output_size: OutputSize = "input") -> list[dict[str, np.ndarray]]:
        check_images(images)
        preds = self.forward_activated(self.preprocess(images))
        results = []
        for i, img in enumerate(images):
            size = resolve_output_size(output_size, img.shape[:2], self.input_size)
            out = {}
            for t in self.tasks:
                p = resize_prediction(t, preds[t][i], size)
                if t in self.label_dtypes:
                    out[t] = p.to(torch.int32).cpu().numpy().astype(self.label_dtypes[t])
                elif p.ndim == 3:  # (3, H, W) -> (H, W, 3)
                    out[t] = p.permute(1, 2, 0).contiguous().cpu().numpy().astype(np.float32)
                else:
                    out[t] = p.cpu().numpy().astype(np.float32)
            results.append(out)
        return results

    def close(self) -> None:
        self.model.to("cpu")
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
