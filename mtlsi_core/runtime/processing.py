"""Pre- and post-processing shared by every backend, as torch ops on any device (no per-pixel Python).

The pipeline of one ``Runtime.infer`` call::

    camera images (uint8 RGB, any sizes)
      -> prepare_batch: resize each to the network size, (B, H, W, 3) uint8         [torch, on the device]
      -> InferenceModule: normalise -> MTLSINet -> per-task activation               [torch / ONNX / TensorRT]
      -> finalize_outputs: resize each task back the registry's way, numpy per image  [torch, on the device]

``InferenceModule`` is both what the torch runtime runs and what ``mtlsi-export`` writes to ONNX, so the
backends differ only in who executes the network. Its input is uint8 NHWC (4x fewer bytes to move than
float NCHW); its outputs are one tensor per task, in task order, named after the task:

    labels tasks   (B, H, W) int32 class ids
    depth          (B, H, W) float32 metres
    normals        (B, 3, H, W) float32 unit vectors
    edge, sal      (B, H, W) float32 probability

then the auxiliary outputs asked for (``tasks.AuxOutput``, ``output_names``), named ``<task>_<name>``:

    <labels task>_confidence   (B, H, W) float32 max softmax probability
"""
from __future__ import annotations

from typing import Collection, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mtlsi_core.tasks import ACTIVATIONS, TASKS, auxiliary_outputs, get_task, output_spec, unit_vectors

LABEL_TORCH_DTYPE = torch.int32  # labels leave the network as int32 (TensorRT has no int64 argmax output)


def output_names(tasks: Sequence[str], auxiliary: Collection[str] | None = ()) -> tuple[str, ...]:
    """The outputs of ``InferenceModule(tasks, auxiliary=...)`` in order: the tasks, then the auxiliary outputs."""
    return (*tasks, *auxiliary_outputs(tasks, auxiliary))


class InferenceModule(nn.Module):
    """uint8 (B, H, W, 3) RGB at the network size -> tuple of activated outputs (see module docstring).

    ``auxiliary``: the auxiliary output names to add (e.g. ("confidence",)); None: every one the tasks declare
    (what ``mtlsi-export`` writes); empty: the tasks only."""

    def __init__(self, model: nn.Module, tasks: Sequence[str], mean: Sequence[float], std: Sequence[float],
                 channels_last: bool = False, auxiliary: Collection[str] | None = ()):
        super().__init__()
        self.model = model
        self.tasks = tuple(tasks)
        self.auxiliary = auxiliary_outputs(self.tasks, auxiliary)  # output key -> (task, AuxOutput)
        self.output_names = (*self.tasks, *self.auxiliary)
        self.channels_last = channels_last
        self.register_buffer("mean", torch.tensor([float(m) * 255.0 for m in mean]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([float(s) * 255.0 for s in std]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = images.permute(0, 3, 1, 2).float()
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        raw = self.model(x)["final"]
        outs = []
        for t in self.tasks:
            spec = get_task(t)
            y = spec.activate(raw[t].float())
            if spec.kind == "labels":
                y = y.to(LABEL_TORCH_DTYPE)
            outs.append(y)
        for t, aux in self.auxiliary.values():
            outs.append(ACTIVATIONS[aux.activation](raw[t].float()))
        return tuple(outs)


def prepare_batch(images: Sequence[np.ndarray], size: tuple[int, int], device: torch.device | str) -> torch.Tensor:
    """uint8 RGB images (H_i, W_i, 3) -> (B, H, W, 3) uint8 on ``device`` at the network ``size``.

    Images already at ``size`` are copied as they are; others are resized bilinearly (antialiased when
    shrinking) in float and rounded back to uint8, so every backend sees the same bytes.
    """
    h, w = int(size[0]), int(size[1])
    batch = []
    for img in images:
        t = torch.from_numpy(np.ascontiguousarray(img)).to(device, non_blocking=True)
        if tuple(t.shape[:2]) != (h, w):
            down = t.shape[0] > h or t.shape[1] > w
            x = t.permute(2, 0, 1)[None].float()
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=down)
            t = x.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0)
        batch.append(t)
    return torch.stack(batch, 0).contiguous()


def resize_batch(task: str, pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a batch of one output's activated predictions, (B, H, W) or (B, C, H, W), to ``size``.

    ``task``: a task, or an auxiliary output key (``<task>_<name>``). Interpolation follows the registry
    (``TaskSpec.interpolation``, ``AuxOutput.interpolation``); unit normals are re-normalised after bilinear
    resizing. Labels keep their dtype.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(pred.shape[-2:]) == size:
        return pred
    spec, aux = output_spec(task)
    interpolation, unit = (aux.interpolation, False) if aux else (spec.interpolation, spec.visual == "normals")
    x = pred[:, None] if pred.ndim == 3 else pred
    if interpolation == "nearest":
        out = F.interpolate(x.float(), size=size, mode="nearest").to(pred.dtype)
    else:
        out = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
        if unit:
            out = unit_vectors(out, dim=1)
    return out[:, 0] if pred.ndim == 3 else out


def resize_prediction(task: str, pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize one activated prediction, (H, W) or (C, H, W), to ``size`` the way its task says."""
    return resize_batch(task, pred[None], size)[0]


def focal_zoom(focal_px: float, resize_scale: float, canonical_focal: float) -> float:
    """How much closer the scene looks to the network than to the training camera: the one focal-length
    correction of metric depth, shared by the runtimes (``Runtime.zoom_factors``) and ``mtlsi-eval``.

    An image of horizontal focal length ``focal_px`` (pixels, at its own resolution) resized by ``resize_scale``
    (network width / image width) has focal length ``focal_px * resize_scale`` at the network; the network learned
    the camera of ``canonical_focal`` (``data.canonical_focal``), so zoom = focal_px * resize_scale /
    canonical_focal, and zoom-dependent predictions are corrected by zoom ** -exponent (``apply_zoom``).
    """
    f = float(focal_px)
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"focal length must be a positive number of pixels, got {focal_px!r}")
    if not np.isfinite(resize_scale) or resize_scale <= 0:
        raise ValueError(f"resize scale must be a positive number, got {resize_scale!r}")
    if not np.isfinite(canonical_focal) or canonical_focal <= 0:
        raise ValueError(f"canonical focal length must be a positive number of pixels, got {canonical_focal!r}")
    return f * float(resize_scale) / float(canonical_focal)


def apply_zoom(preds: Mapping[str, torch.Tensor], zooms: Sequence[float]) -> dict[str, torch.Tensor]:
    """Correct zoom-dependent predictions (``TaskSpec.zoom_exponent``, e.g. depth) image by image:
    a target that training multiplied by zoom ** e is multiplied by zoom ** -e here."""
    out = dict(preds)
    for t, p in preds.items():
        e = TASKS[t].zoom_exponent if t in TASKS else 0.0  # auxiliary outputs (probabilities) do not scale
        if e:
            f = torch.tensor([z ** -e for z in zooms], dtype=p.dtype, device=p.device)
            out[t] = p * f.view(-1, *([1] * (p.ndim - 1)))
    return out


def _to_numpy(task: str, pred: torch.Tensor, label_dtypes: Mapping[str, np.dtype]) -> np.ndarray:
    """(B, H, W) or (B, C, H, W) device tensor -> numpy in the ``base.py`` output format, one host copy."""
    if task in label_dtypes:
        want = label_dtypes[task]
        if want == np.uint8:
            return pred.to(torch.uint8).cpu().numpy()
        return pred.to(torch.int32).cpu().numpy().astype(want)
    if pred.ndim == 4:  # (B, C, H, W) -> (B, H, W, C)
        pred = pred.permute(0, 2, 3, 1)
    return np.ascontiguousarray(pred.float().cpu().numpy())


def finalize_outputs(preds: Mapping[str, torch.Tensor], tasks: Sequence[str], out_sizes: Sequence[tuple[int, int]],
                     label_dtypes: Mapping[str, np.dtype]) -> list[dict[str, np.ndarray]]:
    """Batched network outputs at network resolution -> one dict per image, each task at its ``out_sizes[i]``,
    and each auxiliary output of those tasks that ``preds`` holds (``<task>_<name>``, float32) likewise.

    Images sharing an output size are resized together; each output crosses to the host once per size group.
    """
    n = len(out_sizes)
    results: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(out_sizes):
        groups.setdefault((int(s[0]), int(s[1])), []).append(i)
    for size, idx in groups.items():
        sel = None if len(idx) == n else torch.as_tensor(idx, device=next(iter(preds.values())).device)
        for t in (*tasks, *(k for k in auxiliary_outputs(tasks) if k in preds)):
            p = preds[t] if sel is None else preds[t].index_select(0, sel)
            arr = _to_numpy(t, resize_batch(t, p, size), label_dtypes)
            for j, i in enumerate(idx):
                results[i][t] = arr[j]
    return results
