"""Mean-teacher self-training on real, unlabelled photos (``train.self_training``; Tarvainen & Valpola, NeurIPS 2017,
as used for domain adaptation by French et al., ICLR 2018).

The teacher is an exponential moving average (EMA) of the student's weights, run in eval mode (its BatchNorm
statistics are the EMA of the student's). Each training step draws ``photos_per_batch`` photos of
``data.target_photos`` (random resized crop and flip, ``PhotoFolder(train=True)``); the teacher labels each photo,
the student sees the same photo after a strong photometric perturbation (brightness, contrast, saturation, noise:
no geometric change, so the teacher's labels stay aligned and no flip- or crop-consistency is trained) and learns
the teacher's labels with the tasks' own losses:

- labels tasks (``semseg``): the teacher's arg-max where its softmax confidence is at least ``confidence``, the
  ignore value elsewhere;
- binary tasks (``edge``): 1 where the teacher's probability is at least ``binary_band[1]``, 0 where it is at most
  ``binary_band[0]``, ignored in between (the balanced loss's positive weight inflates the teacher's
  probabilities, so a hard band keeps the student from thickening boundaries step after step);
- dense tasks (``normals``): the teacher's activated prediction everywhere.

Depth is left out by default: its scale is what real photos cannot say. The unlabelled loss, weighted by ``weight``
(ramped up linearly over ``ramp_iterations``), is added to the synthetic frames' loss; both batches go through one
forward pass (so BatchNorm's batch statistics mix the two domains). The teacher's weights and the photo draw live in
the training checkpoint, so a resumed run continues the same teacher. This module changes only the teacher it owns;
the trainer calls it.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
from torch import nn

from mtlsi_core.data import collate
from mtlsi_core.data.photos import PhotoFolder
from mtlsi_core.losses import MultiTaskLoss
from mtlsi_core.tasks import get_task


def pseudo_target(task: str, raw: torch.Tensor, confidence: float, binary_band: tuple[float, float]) -> torch.Tensor:
    """The teacher's raw output of ``task`` (B, C, H, W) as a training target in the task's ground-truth format
    (module docstring), with the task's ignore value where the teacher is not confident."""
    spec = get_task(task)
    raw = raw.float()
    if spec.kind == "labels":
        prob = torch.softmax(raw, dim=1)
        conf, labels = prob.max(dim=1)
        return torch.where(conf >= confidence, labels, torch.full_like(labels, int(spec.ignore_value)))
    pred = spec.activate(raw)
    if spec.kind == "binary":
        lo, hi = binary_band
        out = torch.full_like(pred, float(spec.ignore_value))
        out[pred >= hi] = 1.0
        out[pred <= lo] = 0.0
        return out
    return pred


def strong_perturbation(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                        gen: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random brightness (x0.6-1.4), contrast (x0.6-1.4), saturation (x0.3-1.5) and Gaussian noise
    (sigma 0-0.04) on a normalised batch (B, 3, H, W); returns the perturbed batch, normalised again."""
    b = x.shape[0]

    def draw(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=gen)).to(x)

    img = x * std + mean  # [0, 1] RGB
    img = img * draw(0.6, 1.4)
    grey = (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3])
    img = (img - grey.mean(dim=(2, 3), keepdim=True)) * draw(0.6, 1.4) + grey.mean(dim=(2, 3), keepdim=True)
    grey = (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3])
    img = grey + (img - grey) * draw(0.3, 1.5)
    img = img + draw(0.0, 0.04) * torch.randn(img.shape, generator=gen).to(x)
    return (img.clamp(0.0, 1.0) - mean) / std


class MeanTeacher:
    """The teacher, its photo source and its loss (module docstring). ``cfg``: a full ``Config`` whose
    ``train.self_training.weight`` is > 0 and whose ``data.target_photos`` is set."""

    def __init__(self, cfg: Any, student: nn.Module, device: torch.device):
        st = cfg.train.self_training
        self.st = st
        self.tasks = [t for t in st.tasks if t in cfg.data.tasks]
        if not self.tasks:
            raise ValueError(f"train.self_training.tasks {list(st.tasks)} names none of data.tasks "
                             f"{list(cfg.data.tasks)}")
        self.photos = PhotoFolder.from_config(cfg.data, cfg.data.target_photos, train=True)
        self.device = device
        self.teacher = copy.deepcopy(student).to(device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        weights = {t: float(cfg.train.loss_weights.get(t, get_task(t).weight)) for t in self.tasks}
        self.criterion = MultiTaskLoss(self.tasks, weights=weights, deep_supervision=cfg.train.deep_supervision,
                                       coarse_weight=cfg.train.coarse_loss_weight)
        self.mean = torch.tensor(cfg.data.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.data.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def weight(self, iteration: int) -> float:
        """The unlabelled loss's weight at (0-based) ``iteration``: linear ramp over ``ramp_iterations``."""
        ramp = self.st.ramp_iterations
        return self.st.weight * (1.0 if ramp == 0 else min(1.0, (iteration + 1) / ramp))

    def photo_batch(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Draw photos (torch's global generator, restored on resume): the student's perturbed input and the
        teacher's pseudo-targets."""
        idx = torch.randint(0, len(self.photos), (self.st.photos_per_batch,)).tolist()
        x = collate([self.photos[i] for i in idx])["image"].to(self.device)
        with torch.no_grad():
            raw = self.teacher(x)["final"]
        targets = {t: pseudo_target(t, raw[t], self.st.confidence, tuple(self.st.binary_band)) for t in self.tasks}
        return strong_perturbation(x, self.mean, self.std), targets

    def loss(self, out: Mapping[str, Mapping[str, torch.Tensor]],
             targets: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The student's loss on the photos (its outputs of the other tasks are left out): ``(total, parts)``."""
        return self.criterion({k: {t: v for t, v in d.items() if t in self.tasks} for k, d in out.items()}, targets)

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """teacher <- decay * teacher + (1 - decay) * student, for parameters and floating buffers; integer
        buffers (BatchNorm's step counters) are copied."""
        d = self.st.ema_decay
        t_state = self.teacher.state_dict()
        for k, v in student.state_dict().items():
            if v.dtype.is_floating_point:
                t_state[k].mul_(d).add_(v.detach(), alpha=1.0 - d)
            else:
                t_state[k].copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.teacher.load_state_dict(state["teacher"])


def split_outputs(out: Mapping[str, Mapping[str, torch.Tensor]], n: int) -> tuple[dict, dict]:
    """A model output of a concatenated batch -> (outputs of the first ``n`` samples, outputs of the rest)."""
    first = {k: {t: v[:n] for t, v in d.items()} for k, d in out.items() if isinstance(d, Mapping)}
    rest = {k: {t: v[n:] for t, v in d.items()} for k, d in out.items() if isinstance(d, Mapping)}
    return first, rest


__all__ = ["MeanTeacher", "pseudo_target", "split_outputs", "strong_perturbation"]
