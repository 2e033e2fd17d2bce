"""Backbones: ``build_backbone(cfg) -> Backbone`` with ``forward(x) -> [f4, f8, f16, f32]`` and ``.channels``."""
from __future__ import annotations

from importlib import import_module

from mtlsi_core.models.backbones.base import BACKBONE_BUILDERS, STRIDES, Backbone, register_backbone
from mtlsi_core.models.backbones.weights import PretrainedWeightsError
from mtlsi_core.models.config import BackboneConfig

# name -> module that registers it (imported lazily: transformers is slow to import)
_MODULES = {
    "efficientnet_lite0": "mtlsi_core.models.backbones.efficientnet",
    "efficientnet_lite2": "mtlsi_core.models.backbones.efficientnet",
    "swin_t": "mtlsi_core.models.backbones.swin",
    "swin_l": "mtlsi_core.models.backbones.swin",
    "dinov2_s": "mtlsi_core.models.backbones.dinov2",
    "hrnet18": "mtlsi_core.models.backbones.hrnet",
}


def build_backbone(cfg: BackboneConfig) -> Backbone:
    if cfg.name not in _MODULES:
        raise ValueError(f"model.backbone.name: unknown backbone {cfg.name!r}; known: {', '.join(_MODULES)}")
    import_module(_MODULES[cfg.name])
    return BACKBONE_BUILDERS[cfg.name](cfg)


__all__ = ["Backbone", "BACKBONE_BUILDERS", "PretrainedWeightsError", "STRIDES", "build_backbone", "register_backbone"]
