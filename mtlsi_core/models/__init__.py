"""MTLSI-Net and its peers' interaction modules.

``build_model(cfg)`` builds the network of a ``mtlsi_core.config.Config``; ``load_model_from_checkpoint``
rebuilds it from a checkpoint's stored config (backbone pretrained forced off: no weight file needed).
"""
from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING

import torch

from mtlsi_core.models.backbones import PretrainedWeightsError
from mtlsi_core.models.mtlsi_net import MTLSINet
from mtlsi_core.tasks import task_channels

if TYPE_CHECKING:
    from mtlsi_core.config import Config

_WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile, DDP


def build_model(cfg: "Config") -> MTLSINet:
    """The network of an experiment config: tasks and channels from ``cfg.data``, the rest from ``cfg.model``."""
    return MTLSINet(cfg.model, list(cfg.data.tasks), task_channels(cfg.data.tasks, cfg.data.dataset))


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict without the key prefix a torch.compile or DDP wrapper gave every key."""
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_model_from_checkpoint(path: str | os.PathLike,
                               map_location: str | torch.device = "cpu") -> tuple[MTLSINet, "Config"]:
    """Rebuild the model from a checkpoint and load its weights strictly; returns (model in eval mode, config).

    The returned config is the stored one with ``model.backbone.pretrained`` set to false. Any problem
    (unreadable file, invalid stored config, weights that do not fit) raises CheckpointError naming the file.
    """
    from mtlsi_core.checkpoint import CheckpointError, load_checkpoint
    from mtlsi_core.config import ConfigError, config_from_dict

    ckpt = load_checkpoint(path, map_location=map_location)
    raw = copy.deepcopy(ckpt["config"])
    try:
        raw["model"]["backbone"]["pretrained"] = False
    except (KeyError, TypeError):
        raise CheckpointError(f"{path}: stored config has no model.backbone section") from None
    try:
        cfg = config_from_dict(raw, source=f"{path} (stored config)")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    model = build_model(cfg)
    try:
        model.load_state_dict(strip_wrappers(dict(ckpt["model"])), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the model built from its stored config: {e}") from None
    return model.eval(), cfg


__all__ = ["MTLSINet", "PretrainedWeightsError", "build_model", "load_model_from_checkpoint", "strip_wrappers"]
