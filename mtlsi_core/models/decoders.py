"""Preliminary decoders (Sec. II-A) and output decoders (Sec. II-D, "structurally similar")."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtlsi_core.models.layers import conv_bn_relu, resize_to


class PreliminaryDecoder(nn.Module):
    """One task's preliminary decoder: fuse the 4 backbone scales, refine, predict coarsely.

    Fusion: per scale a 1x1 conv + BN to ``channels``, bilinear upsampling to the output stride (4; or 8,
    where the stride-4 map is average-pooled first), sum, ReLU (an FPN-style lateral sum; the paper does not
    specify it). Then ``blocks`` 3x3 conv-BN-ReLU blocks give the task features P_t, and a 1x1 conv gives
    the coarse prediction.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int, blocks: int, out_channels: int,
                 separable: bool = False, stride: int = 4):
        super().__init__()
        self.base = {4: 0, 8: 1}[stride]  # index of the backbone scale P_t lives at
        self.lateral = nn.ModuleList(nn.Sequential(nn.Conv2d(c, channels, 1, bias=False), nn.BatchNorm2d(channels))
                                     for c in in_channels)
        self.blocks = nn.Sequential(*[conv_bn_relu(channels, channels, 3, separable) for _ in range(blocks)])
        self.head = nn.Conv2d(channels, out_channels, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        size = (int(feats[self.base].shape[-2]), int(feats[self.base].shape[-1]))
        x = None
        for i, (lat, f) in enumerate(zip(self.lateral, feats)):
            if i < self.base:
                f = F.avg_pool2d(f, 2 ** (self.base - i))
            y = resize_to(lat(f), size)
            x = y if x is None else x + y
        p = self.blocks(F.relu(x))
        return p, self.head(p)


class OutputDecoder(nn.Module):
    """One task's output decoder: the preliminary decoder's refinement blocks and 1x1 prediction conv."""

    def __init__(self, channels: int, blocks: int, out_channels: int, separable: bool = False):
        super().__init__()
        self.blocks = nn.Sequential(*[conv_bn_relu(channels, channels, 3, separable) for _ in range(blocks)])
        self.head = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))
