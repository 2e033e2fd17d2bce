"""DINOv2 ViT-S/14 (``transformers.Dinov2Backbone``) with a DPT-style resampling neck (M2H's backbone).

The input (sides multiples of 32) is resized to (H/16*14, W/16*14) so the patch grid is H/16 x W/16 (the
position embeddings are interpolated by transformers). Tokens of four layers become maps at stride 16;
the neck projects each (1x1 conv) and resamples it to strides 4 / 8 / 16 / 32 (deconv x4, deconv x2,
identity, 3x3 conv stride 2). The neck counts as part of the backbone.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtlsi_core.models.backbones.base import Backbone, register_backbone
from mtlsi_core.models.backbones.hf_weights import from_pretrained, load_original_checkpoint, rename_state_dict
from mtlsi_core.models.backbones.weights import resolve_weights
from mtlsi_core.models.config import BackboneConfig

FILES = ("dinov2_vits14_pretrain.pth", "dinov2-small")
HUB_ID = "facebook/dinov2-small"
DEFAULT_LAYERS = (3, 6, 9, 12)
DEFAULT_NECK = (48, 96, 192, 384)  # the DPT neck widths Depth-Anything uses for ViT-S

# original Meta key -> transformers 5 Dinov2Backbone key
_META_RULES = [
    (r"^cls_token$", "embeddings.cls_token"),
    (r"^mask_token$", "embeddings.mask_token"),
    (r"^pos_embed$", "embeddings.position_embeddings"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layer.\1.attention.{qkv}."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layer.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.ls1\.gamma$", r"encoder.layer.\1.layer_scale1.lambda1"),
    (r"^blocks\.(\d+)\.ls2\.gamma$", r"encoder.layer.\1.layer_scale2.lambda1"),
    (r"^blocks\.(\d+)\.", r"encoder.layer.\1."),  # norm1, norm2, mlp.fc1, mlp.fc2
    (r"^norm\.", "layernorm."),
]


def convert_meta_dinov2(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return rename_state_dict(sd, _META_RULES, qkv_suffix="attn.qkv")


class DinoV2Small(Backbone):
    patch = 14

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        from transformers import Dinov2Backbone, Dinov2Config

        layers = list(cfg.layers or DEFAULT_LAYERS)
        src = resolve_weights(cfg.pretrained, cfg.name, FILES, HUB_ID)
        kw = dict(out_indices=layers, reshape_hidden_states=True, apply_layernorm=True, drop_path_rate=cfg.drop_path_rate)
        if src is not None and (src.hub_id or src.path.is_dir()):
            self.net = from_pretrained(Dinov2Backbone, src.hub_id or str(src.path), cfg.name, FILES, HUB_ID, **kw)
        else:
            self.net = Dinov2Backbone(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                                   patch_size=14, image_size=518, layerscale_value=1.0, **kw))
            if src is not None:
                load_original_checkpoint(self.net, src.path, cfg.name, convert_meta_dinov2)
        width = int(self.net.config.hidden_size)
        c = tuple(cfg.neck_channels or DEFAULT_NECK)
        self.project = nn.ModuleList(nn.Conv2d(width, ci, 1) for ci in c)
        self.resample = nn.ModuleList([
            nn.ConvTranspose2d(c[0], c[0], 4, stride=4),
            nn.ConvTranspose2d(c[1], c[1], 2, stride=2),
            nn.Identity(),
            nn.Conv2d(c[3], c[3], 3, stride=2, padding=1),
        ])
        self.channels = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        x = F.interpolate(x, size=(h // 16 * self.patch, w // 16 * self.patch), mode="bilinear", align_corners=False)
        maps = self.net(pixel_values=x).feature_maps
        return [rs(pr(m)) for m, pr, rs in zip(maps, self.project, self.resample)]


@register_backbone("dinov2_s")
def build(cfg: BackboneConfig) -> Backbone:
    return DinoV2Small(cfg)
