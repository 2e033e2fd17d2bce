"""Task losses (the names of ``TaskSpec.loss``) and the weighted multi-task sum.

The formulas follow InvPT (``prismformore/Multi-Task-Transformer``, ``InvPT/losses/loss_functions.py``), which takes
them from ATRC (``brdav/atrc``, ``src/model/criterion.py``) and ASTMT; the paper takes its loss weights from them
(Sec. III-A). Each loss is an ``nn.Module`` built with the registry's ``loss_kwargs``::

    loss = LOSSES[spec.loss](**spec.loss_kwargs)
    value = loss(raw_output, target)          # raw (B, C, h, w); target in the dataset layout (below)

Targets: labels (semseg, human_parts, sal) int64 (B, H, W) with the ignore value; depth float (B, 1, H, W), 0 = invalid;
normals float (B, 3, H, W), zero vector = invalid; edge float (B, 1, H, W) 0/1 with the ignore value. A raw output
whose spatial size differs from its target's is upsampled bilinearly (``align_corners=False``) to it first. Every
loss runs in fp32 with autocast disabled, and is the sum over valid pixels divided by max(#valid pixels, 1): a batch
without a valid pixel gives 0 (connected to the graph, so ``backward`` works), never NaN.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtlsi_core.tasks import get_task

__all__ = [
    "LOSSES", "CrossEntropyLoss", "MaskedL1Loss", "NormalsL1Loss", "BalancedBCELoss", "BalancedCELoss",
    "MultiTaskLoss", "build_task_loss",
]


def _as_label_map(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Target (B, H, W) or (B, 1, H, W) integer labels -> (B, H, W) int64."""
    if target.dim() == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.dim() != 3:
        raise ValueError(f"expected label target (B, H, W), got shape {tuple(target.shape)}")
    if target.is_floating_point():
        if not torch.equal(target, target.round()):
            raise ValueError("label target has non-integer values")
    if target.shape[0] != out.shape[0]:
        raise ValueError(f"batch size mismatch: output {out.shape[0]}, target {target.shape[0]}")
    return target.long()


def _as_dense(out: torch.Tensor, target: torch.Tensor, channels: int) -> torch.Tensor:
    """Target (B, C, H, W) (or (B, H, W) where C == 1) -> float32 (B, C, H, W)."""
    if target.dim() == 3 and channels == 1:
        target = target[:, None]
    if target.dim() != 4 or target.shape[1] != channels:
        raise ValueError(f"expected target (B, {channels}, H, W), got shape {tuple(target.shape)}")
    if target.shape[0] != out.shape[0]:
        raise ValueError(f"batch size mismatch: output {out.shape[0]}, target {target.shape[0]}")
    return target.float()


def _match_size(out: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if out.shape[-2:] == size:
        return out
    return F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)


class _TaskLoss(nn.Module):
    """Shared checks: a 4-D raw output with the expected channel count, fp32 arithmetic, size matching."""

    channels: int | None = None  # None: any (the class count of the dataset)

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            raise ValueError(f"expected a raw output (B, C, H, W), got {getattr(out, 'shape', type(out))}")
        if self.channels is not None and out.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} output channel(s), got {out.shape[1]}")
        with torch.autocast(device_type=out.device.type, enabled=False):
            return self._loss(out.float(), target)

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _LabelLoss(_TaskLoss):
    """Base of the losses on class-id targets with an ignore value."""

    def __init__(self, ignore_index: int = 255):
        super().__init__()
        self.ignore_index = int(ignore_index)

    def _labels(self, out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits at the target's size, (B, H, W) long labels, mask of the non-ignored pixels)."""
        target = _as_label_map(out, target)
        return _match_size(out, target.shape[-2:]), target, target != self.ignore_index


class CrossEntropyLoss(_LabelLoss):
    """Softmax cross-entropy over the non-ignored pixels (InvPT/ATRC ``CrossEntropyLoss``, semseg and human_parts).

    loss = sum_{valid p} -log softmax(x_p)[y_p] / max(#valid, 1).
    """

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out, target, valid = self._labels(out, target)
        bad = valid & ((target < 0) | (target >= out.shape[1]))
        if bool(bad.any()):
            raise ValueError(f"label values outside [0, {out.shape[1] - 1}] (and not the ignore value "
                             f"{self.ignore_index}): {sorted(set(target[bad].unique().tolist()))[:10]}")
        total = F.cross_entropy(out, target, ignore_index=self.ignore_index, reduction="sum")
        return total / valid.sum().clamp_min(1)


class MaskedL1Loss(_TaskLoss):
    """L1 over pixels whose label differs from ``invalid_value`` (InvPT/ATRC ``L1Loss`` for depth).

    loss = sum_{valid p} |x_p - y_p| / max(#valid, 1); non-finite labels are invalid too.
    """

    channels = 1

    def __init__(self, invalid_value: float = 0.0):
        super().__init__()
        self.invalid_value = float(invalid_value)

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _as_dense(out, target, 1)
        out = _match_size(out, target.shape[-2:])
        valid = torch.isfinite(target) & (target != self.invalid_value)
        safe = torch.where(valid, target, torch.zeros_like(target))
        err = torch.where(valid, (out - safe).abs(), torch.zeros_like(out))
        return err.sum() / valid.sum().clamp_min(1)


class NormalsL1Loss(_TaskLoss):
    """L1 between the L2-normalised prediction and the label over valid pixels (InvPT/ATRC ``L1Loss(normalize=True)``).

    loss = sum_{valid p} sum_c |n_hat_pc - y_pc| / max(#valid pixels, 1), n_hat = x / max(||x||, 1e-12); a pixel is
    valid where its label vector is finite and not the zero vector.
    """

    channels = 3

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _as_dense(out, target, 3)
        out = _match_size(out, target.shape[-2:])
        valid = (torch.isfinite(target).all(dim=1, keepdim=True) & (target != 0).any(dim=1, keepdim=True))
        safe = torch.where(valid, target, torch.zeros_like(target))
        err = torch.where(valid, (F.normalize(out, p=2, dim=1, eps=1e-12) - safe).abs(), torch.zeros_like(out))
        return err.sum() / valid.sum().clamp_min(1)


class BalancedBCELoss(_TaskLoss):
    """Class-balanced binary cross-entropy on logits over non-ignored pixels (InvPT/ATRC
    ``BalancedBinaryCrossEntropyLoss``, edge).

    With positive weight w: loss = sum_{valid p} -[w y log s(x) + (1 - w)(1 - y) log(1 - s(x))] / max(#valid, 1),
    which is InvPT's ``BCEWithLogits(pos_weight=w / (1 - w)) * (1 - w)`` written without the division (so w = 1 is
    finite). ``pos_weight=None`` is the HED-style adaptive weight w = #negatives / #valid of the batch.
    """

    channels = 1

    def __init__(self, pos_weight: float | None = 0.95, ignore_index: float = 255):
        super().__init__()
        if pos_weight is not None and not 0.0 < float(pos_weight) < 1.0:
            raise ValueError(f"pos_weight must lie in (0, 1), got {pos_weight}")
        self.pos_weight = None if pos_weight is None else float(pos_weight)
        self.ignore_index = float(ignore_index)

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _as_dense(out, target, 1)
        out = _match_size(out, target.shape[-2:])
        valid = target != self.ignore_index
        y = torch.where(valid, target, torch.zeros_like(target))
        if bool(((y < 0) | (y > 1) | ~torch.isfinite(y)).any()):
            raise ValueError(f"edge target values must be in [0, 1] or the ignore value {self.ignore_index:g}")
        n_valid = valid.sum()
        if self.pos_weight is None:
            w = (valid.float() * (1.0 - y)).sum() / n_valid.clamp_min(1)
        else:
            w = torch.tensor(self.pos_weight, device=out.device)
        per_pixel = -(w * y * F.logsigmoid(out) + (1.0 - w) * (1.0 - y) * F.logsigmoid(-out))
        return torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).sum() / n_valid.clamp_min(1)


class BalancedCELoss(_LabelLoss):
    """Two-class softmax cross-entropy with class weights from the batch's label balance (InvPT/ATRC
    ``CrossEntropyLoss(balanced=True)``, saliency).

    w_pos = #negatives / #valid; class weights (1 - w_pos, w_pos) for (background, foreground);
    loss = sum_{valid p} weight[y_p] * -log softmax(x_p)[y_p] / max(#valid, 1) (divided by the pixel count, not by
    the weight sum, as InvPT does).
    """

    channels = 2

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out, target, valid = self._labels(out, target)
        if bool((valid & (target != 0) & (target != 1)).any()):
            raise ValueError(f"saliency target values must be 0, 1 or the ignore value {self.ignore_index}")
        n_valid = valid.sum().clamp_min(1)
        w_pos = (valid & (target == 0)).sum().float() / n_valid
        weight = torch.stack((1.0 - w_pos, w_pos)).float()
        total = F.cross_entropy(out, target, weight=weight, ignore_index=self.ignore_index, reduction="sum")
        return total / n_valid


LOSSES: Mapping[str, type[nn.Module]] = {
    "cross_entropy": CrossEntropyLoss,
    "masked_l1": MaskedL1Loss,
    "normals_l1": NormalsL1Loss,
    "balanced_bce": BalancedBCELoss,
    "balanced_ce": BalancedCELoss,
}


def build_task_loss(task: str) -> nn.Module:
    """The loss module of ``task`` as declared in the registry (name and kwargs)."""
    spec = get_task(task)
    if spec.loss not in LOSSES:
        raise KeyError(f"task {task!r} names loss {spec.loss!r}, which mtlsi_core.losses does not define "
                       f"(known: {', '.join(LOSSES)})")
    return LOSSES[spec.loss](**dict(spec.loss_kwargs))


class MultiTaskLoss(nn.Module):
    """Weighted sum of the task losses of the final and (with deep supervision) the coarse predictions.

    total = sum_t w_t L_t(final_t) + coarse_weight * sum_{t in coarse} w_t L_t(coarse_t), as InvPT's
    ``MultiTaskLoss`` with intermediate supervision. ``weights`` (task -> weight) override the registry's
    ``TaskSpec.weight`` for the tasks they name. ``forward(outputs, targets)`` takes the model output
    ``{"final": {task: raw}, "coarse": {task: raw}}`` (``coarse`` may be missing or empty) and ``{task: target}``, and
    returns ``(total, parts)``; ``parts`` holds the unweighted losses, keys ``task`` and ``task + "_coarse"``.
    """

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None,
                 deep_supervision: bool = True, coarse_weight: float = 1.0):
        super().__init__()
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("MultiTaskLoss needs at least one task")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"duplicate tasks in {self.tasks}")
        self.losses = nn.ModuleDict({t: build_task_loss(t) for t in self.tasks})
        self.weights = {t: float(get_task(t).weight) for t in self.tasks}
        for t, w in (weights or {}).items():
            if t not in self.weights:
                raise ValueError(f"loss weight given for task {t!r}, which is not among the tasks {self.tasks}")
            if not float(w) >= 0.0:
                raise ValueError(f"loss weight of task {t!r} must be >= 0, got {w}")
            self.weights[t] = float(w)
        if not float(coarse_weight) >= 0.0:
            raise ValueError(f"coarse_weight must be >= 0, got {coarse_weight}")
        self.deep_supervision = bool(deep_supervision)
        self.coarse_weight = float(coarse_weight)

    def _one(self, task: str, raw: torch.Tensor, target: torch.Tensor, which: str) -> torch.Tensor:
        try:
            return self.losses[task](raw, target)
        except ValueError as e:
            raise ValueError(f"{which} loss of task {task!r}: {e}") from e

    def forward(self, outputs: Mapping[str, Mapping[str, torch.Tensor]],
                targets: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not isinstance(outputs, Mapping) or "final" not in outputs:
            keys = list(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise ValueError(f"model output must be a dict with a 'final' entry, got {keys}")
        final = outputs["final"]
        coarse = outputs.get("coarse") or {}
        missing = [t for t in self.tasks if t not in final]
        if missing:
            raise ValueError(f"model output 'final' lacks task(s) {missing} (has {list(final)})")
        missing = [t for t in self.tasks if t not in targets]
        if missing:
            raise ValueError(f"targets lack task(s) {missing} (have {list(targets)})")
        extra = [t for t in coarse if t not in self.losses]
        if extra:
            raise ValueError(f"model output 'coarse' has task(s) {extra} not among the tasks {self.tasks}")

        parts: dict[str, torch.Tensor] = {}
        total = None
        for t in self.tasks:
            parts[t] = self._one(t, final[t], targets[t], "final")
            term = self.weights[t] * parts[t]
            total = term if total is None else total + term
        if self.deep_supervision:
            for t in self.tasks:
                if t in coarse:
                    parts[f"{t}_coarse"] = self._one(t, coarse[t], targets[t], "coarse")
                    total = total + self.coarse_weight * self.weights[t] * parts[f"{t}_coarse"]
        return total, parts
