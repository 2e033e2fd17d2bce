"""The backbone interface and registry."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from mtlsi_core.models.config import BackboneConfig

STRIDES = (4, 8, 16, 32)


class Backbone(nn.Module):
    """``forward(x) -> [f4, f8, f16, f32]``: feature maps at strides 4, 8, 16, 32; widths in ``channels``."""

    channels: tuple[int, int, int, int]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


BACKBONE_BUILDERS: dict[str, Callable[[BackboneConfig], Backbone]] = {}


def register_backbone(name: str) -> Callable:
    def deco(fn: Callable[[BackboneConfig], Backbone]) -> Callable[[BackboneConfig], Backbone]:
        BACKBONE_BUILDERS[name] = fn
        return fn

    return deco
