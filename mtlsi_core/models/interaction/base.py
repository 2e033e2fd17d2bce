"""The interaction interface: per-task features in, fused cross-task tokens out.

``forward(feats)``: ``feats`` is a list of T task features F_t, each (B, d, H, W) at the stride of P_t
(4 as in the paper; 8 in the CPU edge configs).
Returns I: (B, T * H/2 * W/2, d), the tokens of all tasks on the H/2 x W/2 grid, task-major (task 0's
H/2 x W/2 tokens row-major, then task 1's, ...). The distillers and CWIBs downstream are the same for
every interaction module, so only the interaction differs between configs.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.layers import Mlp

INTERACTION_MODULES: dict[str, type["Interaction"]] = {}


def register_interaction(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        INTERACTION_MODULES[name] = cls
        cls.name = name
        return cls

    return deco


class Interaction(nn.Module):
    name: str = ""

    def __init__(self, cfg: ModelConfig, num_tasks: int):
        super().__init__()
        self.dim = cfg.embed_dim
        self.num_tasks = num_tasks

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def build_interaction(cfg: ModelConfig, num_tasks: int) -> Interaction | None:
    """The configured module; None for ``none`` (preliminary decoders only)."""
    if cfg.interaction == "none":
        return None
    try:
        cls = INTERACTION_MODULES[cfg.interaction]
    except KeyError:
        raise ValueError(f"model.interaction {cfg.interaction!r} has no implementation; "
                         f"known: none, {', '.join(INTERACTION_MODULES)}") from None
    return cls(cfg, num_tasks)


class TaskEmbedding(nn.Module):
    """A learnable (T, d) vector per task, added to that task's tokens (used where attention mixes tasks'
    tokens with no other way to tell them apart)."""

    def __init__(self, num_tasks: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_tasks, dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t + self.weight[i] for i, t in enumerate(tokens)]


class PooledTokenAttention(Interaction):
    """The peers' interaction layer shape: every task's F_t average-pooled to stride 8 and tagged with a task
    embedding, then one pre-norm transformer layer (LN, qkv, attention, proj, residual; LN, MLP, residual).
    Subclasses choose which tokens attend to which (``mhsa``: all; ``window_xtask``: one window of all tasks)."""

    def __init__(self, cfg: ModelConfig, num_tasks: int, heads: int, mlp_ratio: float):
        super().__init__(cfg, num_tasks)
        d = cfg.embed_dim
        self.heads = heads
        self.pool = nn.AvgPool2d(2)
        self.task_embed = TaskEmbedding(num_tasks, d)
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = Mlp(d, mlp_ratio)
