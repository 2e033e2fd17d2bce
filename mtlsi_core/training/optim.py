"""Optimizer and learning-rate schedule of the paper's recipe (Sec. III-A): AdamW with polynomial decay.

Parameter groups: weights of rank >= 2 (convolution kernels, linear matrices) get ``weight_decay``;
1-D parameters (biases, norm scales and shifts) and 0-/1-D learned tokens get none. The paper only says
"AdamW"; exempting norms and biases from decay is the usual choice of its peers' code bases and keeps
the normalisation layers' scale free.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from mtlsi_core.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
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
