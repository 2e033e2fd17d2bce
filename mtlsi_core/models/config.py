"""Model section of the experiment config (owned by mtlsi_core.models).

Every width the paper leaves unstated is a field here with its default, and each packaged YAML states
the value it uses with a comment.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

INTERACTIONS = ("mqlfb", "none", "mhsa", "window_xtask", "deformable")
BACKBONES = ("swin_t", "swin_l", "hrnet18", "dinov2_s", "efficientnet_lite0")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BackboneConfig(_Strict):
    name: Literal["swin_t", "swin_l", "hrnet18", "dinov2_s", "efficientnet_lite0"]
    # false: random init; true: the default local file / packaged weights for this backbone;
    # a string: a local file path (or a hub id when online).
    pretrained: bool | str = False


class ModelConfig(_Strict):
    backbone: BackboneConfig
    interaction: Literal["mqlfb", "none", "mhsa", "window_xtask", "deformable"] = "mqlfb"
    embed_dim: int = Field(default=256, ge=8)  # d, the unified task feature width (Sec. II-A)
