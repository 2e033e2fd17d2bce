"""Optimizer and learning-rate schedule of the paper's recipe (Sec. III-A): AdamW with polynomial decay.

Parameter groups: weights of rank >= 2 (convolution kernels, linear matrices) get ``weight_decay``;
1-D parameters (biases, norm scales and shifts) and 0-/1-D learned tokens get none. The paper only says
"AdamW"; exempting norms and biases from decay is the usual choice of its peers' code bases and keeps
the normalisation layers' scale free. With ``train.backbone_lr_mult`` != 1 the parameters whose names start
with ``backbone.`` form their own two groups at ``lr x backbone_lr_mult`` (the schedule scales every group's
lr by the same factor); with 1 the groups are the two above, as checkpoints written before it expect.
Parameters with ``requires_grad`` false (a frozen backbone stage) are in no group.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from mtlsi_core.config import TrainConfig


BACKBONE_PREFIX = "backbone."


def param_groups(model: nn.Module, weight_decay: float, lr: float | None = None,
                 backbone_lr_mult: float = 1.0) -> list[dict]:
    """Decay / no-decay groups; with ``backbone_lr_mult`` != 1 (needs ``lr``) also split head / backbone."""
    split = backbone_lr_mult != 1.0
    if split and lr is None:
        raise ValueError("param_groups: backbone_lr_mult needs the base lr")
    buckets: dict[tuple[str, str], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if split and name.startswith(BACKBONE_PREFIX) else "head"
        buckets.setdefault((part, "decay" if p.ndim >= 2 else "no_decay"), []).append(p)
    if split and not any(part == "backbone" for part, _ in buckets):
        raise ValueError(f"train.backbone_lr_mult={backbone_lr_mult:g} but the model has no trainable parameter "
                         f"named '{BACKBONE_PREFIX}*' (is the whole backbone frozen?)")
    groups = []
    for part in ("head", "backbone"):
        for kind in ("decay", "no_decay"):
            params = buckets.get((part, kind))
            if not params:
                continue
            g = {"params": params, "weight_decay": weight_decay if kind == "decay" else 0.0,
                 "name": kind if not split else f"{part}_{kind}"}
            if split:
                g["lr"] = lr * (backbone_lr_mult if part == "backbone" else 1.0)
            groups.append(g)
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.lr, cfg.backbone_lr_mult)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    # `foreach` is the fast multi-tensor path; it is numerically the same update.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay)


def poly_factor(iteration: int, total: int, power: float, warmup: int = 0) -> float:
    """LR multiplier at ``iteration``: linear warm-up from 1/warmup, then ``(1 - it / total) ** power``."""
    if warmup > 0 and iteration < warmup:
        return (iteration + 1) / warmup
    frac = min(max(iteration, 0), total) / total
    return max(0.0, 1.0 - frac) ** power


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> LambdaLR:
    total, power, warmup = cfg.iterations, cfg.poly_power, cfg.warmup_iterations
    return LambdaLR(optimizer, lambda it: poly_factor(it, total, power, warmup))


def count_parameters(params: Iterable[nn.Parameter]) -> int:
    seen: set[int] = set()
    n = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n
