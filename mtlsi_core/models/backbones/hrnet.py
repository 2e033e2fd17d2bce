"""HRNetV2-W18 (4 branches, 18/36/72/144 channels at strides 4/8/16/32), the backbone of PAD-Net / ATRC.

Own implementation of the published architecture. Module names follow the ImageNet checkpoint
``hrnetv2_w18_imagenet_pretrained.pth`` (conv1/bn1/conv2/bn2, layer1, transition1-3, stage2-4 with
``branches`` and ``fuse_layers``) so it loads with its classification head dropped. Fusion upsamples with
bilinear interpolation (as the segmentation variant does); the checkpoint has no parameters there.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtlsi_core.models.backbones.base import Backbone, register_backbone
from mtlsi_core.models.backbones.weights import PretrainedWeightsError, check_load, load_state_dict_file, resolve_weights
from mtlsi_core.models.config import BackboneConfig

FILES = ("hrnetv2_w18_imagenet_pretrained.pth", "hrnet_w18_imagenet_pretrained.pth")
HEAD_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
BN_MOMENTUM = 0.1
WIDTH = 18


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, padding=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = None if cin == planes else nn.Sequential(nn.Conv2d(cin, planes, 1, bias=False), _bn(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + skip)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = _bn(cout)
        self.downsample = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + skip)


def _down(cin: int, cout: int, relu: bool) -> nn.Sequential:
    """3x3 conv stride 2 + BN (+ ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), _bn(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output resolution sums all inputs (resampled)."""

    def __init__(self, channels: list[int], blocks: int):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(c, c) for _ in range(blocks)]) for c in channels)
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:  # lower resolution -> 1x1 conv + BN, upsampled in forward
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), _bn(channels[i])))
                elif j == i:
                    row.append(None)
                else:  # higher resolution -> (i - j) strided 3x3 convs; channels change at the last one
                    steps = [_down(channels[j], channels[j], relu=True) for _ in range(i - j - 1)]
                    steps.append(_down(channels[j], channels[i], relu=False))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [b(x) for b, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            size = (int(xs[i].shape[-2]), int(xs[i].shape[-1]))
            y = xs[i]
            for j, layer in enumerate(row):
                if j > i:
                    y = y + F.interpolate(layer(xs[j]), size=size, mode="bilinear", align_corners=False)
                elif j < i:
                    y = y + layer(xs[j])
            out.append(F.relu(y))
        return out


class HRNet18(Backbone):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        c = [WIDTH, 2 * WIDTH, 4 * WIDTH, 8 * WIDTH]
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = _bn(64)
        self.layer1 = nn.Sequential(Bottleneck(64, 64), *[Bottleneck(256, 64) for _ in range(3)])
        self.transition1 = nn.ModuleList([
            nn.Sequential(nn.Conv2d(256, c[0], 3, padding=1, bias=False), _bn(c[0]), nn.ReLU()),
            nn.Sequential(_down(256, c[1], relu=True)),
        ])
        self.stage2 = nn.Sequential(HighResolutionModule(c[:2], 4))
        self.transition2 = nn.ModuleList([None, None, nn.Sequential(_down(c[1], c[2], relu=True))])
        self.stage3 = nn.Sequential(*[HighResolutionModule(c[:3], 4) for _ in range(4)])
        self.transition3 = nn.ModuleList([None, None, None, nn.Sequential(_down(c[2], c[3], relu=True))])
        self.stage4 = nn.Sequential(*[HighResolutionModule(c, 4) for _ in range(3)])
        self.channels = tuple(c)
        src = resolve_weights(cfg.pretrained, cfg.name, FILES)
        if src is not None:
            sd = load_state_dict_file(src.path, cfg.name)
            try:
                result = self.load_state_dict(sd, strict=False)
            except RuntimeError as e:
                raise PretrainedWeightsError(f"backbone 'hrnet18': {src.path} does not fit HRNetV2-W18: {e}") from None
            check_load(result, src.path, cfg.name, ignore_unexpected=HEAD_PREFIXES)

    @staticmethod
    def _transition(trans: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, t in enumerate(trans):
            if t is None:
                out.append(xs[i])
            else:  # a new, lower branch grows from the lowest existing one
                out.append(t(xs[min(i, len(xs) - 1)]))
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = [t(x) for t in self.transition1]
        for m in self.stage2:
            xs = m(xs)
        xs = self._transition(self.transition2, xs)
        for m in self.stage3:
            xs = m(xs)
        xs = self._transition(self.transition3, xs)
        for m in self.stage4:
            xs = m(xs)
        return xs


@register_backbone("hrnet18")
def build(cfg: BackboneConfig) -> Backbone:
    return HRNet18(cfg)
