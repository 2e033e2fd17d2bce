"""Swin-T / Swin-L (``transformers.SwinBackbone``): stage outputs at strides 4, 8, 16, 32.

Weights: a Hugging Face directory or hub id (``from_pretrained``), or an original Microsoft ``.pth``
(``swin_*_22k.pth``), whose keys are renamed here. The per-stage output LayerNorms of SwinBackbone are not
part of classification checkpoints and start at identity.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mtlsi_core.models.backbones.base import Backbone, register_backbone
from mtlsi_core.models.backbones.hf_weights import from_pretrained, load_original_checkpoint, rename_state_dict
from mtlsi_core.models.backbones.weights import PretrainedWeightsError, resolve_weights
from mtlsi_core.models.config import BackboneConfig

STAGES = ["stage1", "stage2", "stage3", "stage4"]


@dataclass(frozen=True)
class SwinVariant:
    embed_dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    default_window: int
    files: dict[int, tuple[str, ...]]  # window size -> default file / directory names
    hub_ids: dict[int, str]


VARIANTS = {
    "swin_t": SwinVariant(96, (2, 2, 6, 2), (3, 6, 12, 24), 7,
                          {7: ("swin_tiny_patch4_window7_224_22k.pth", "swin_tiny_patch4_window7_224.pth",
                               "swin-tiny-patch4-window7-224")},
                          {7: "microsoft/swin-tiny-patch4-window7-224"}),
    "swin_l": SwinVariant(192, (2, 2, 18, 2), (6, 12, 24, 48), 12,
                          {12: ("swin_large_patch4_window12_384_22k.pth", "swin-large-patch4-window12-384-in22k"),
                           7: ("swin_large_patch4_window7_224_22k.pth", "swin-large-patch4-window7-224-in22k")},
                          {12: "microsoft/swin-large-patch4-window12-384-in22k",
                           7: "microsoft/swin-large-patch4-window7-224-in22k"}),
}

# original Microsoft key -> transformers 5 SwinBackbone key
_MS_RULES = [
    (r"^patch_embed\.proj\.", "swin.embeddings.patch_embeddings.projection."),
    (r"^patch_embed\.norm\.", "swin.embeddings.norm."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.norm1\.", r"swin.encoder.layers.\1.blocks.\2.layernorm_before."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.norm2\.", r"swin.encoder.layers.\1.blocks.\2.layernorm_after."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.", r"swin.encoder.layers.\1.blocks.\2.attention.{qkv}."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.proj\.", r"swin.encoder.layers.\1.blocks.\2.attention.o_proj."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table",
     r"swin.encoder.layers.\1.blocks.\2.attention.relative_position_bias.relative_position_bias_table"),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.mlp\.", r"swin.encoder.layers.\1.blocks.\2.mlp."),
    (r"^layers\.(\d+)\.downsample\.", r"swin.encoder.layers.\1.downsample."),
    (r"^norm\.", "swin.layernorm."),
]
_MS_DROP = (r"^head\.", r"relative_position_index$", r"attn_mask$")


def convert_microsoft_swin(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return rename_state_dict(sd, _MS_RULES, qkv_suffix="attn.qkv", drop=_MS_DROP)


class Swin(Backbone):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        from transformers import SwinBackbone, SwinConfig

        v = VARIANTS[cfg.name]
        window = cfg.window_size or v.default_window
        files = v.files.get(window) or (f"a {cfg.name} checkpoint with window {window}",)
        hub_id = v.hub_ids.get(window)
        src = resolve_weights(cfg.pretrained, cfg.name, files, hub_id)
        if src is not None and (src.hub_id or src.path.is_dir()):
            self.net = from_pretrained(SwinBackbone, src.hub_id or str(src.path), cfg.name, files, hub_id,
                                       out_features=STAGES, window_size=window, drop_path_rate=cfg.drop_path_rate)
        else:
            config = SwinConfig(embed_dim=v.embed_dim, depths=list(v.depths), num_heads=list(v.heads), window_size=window,
                                drop_path_rate=cfg.drop_path_rate, out_features=STAGES)
            self.net = SwinBackbone(config)
            if src is not None:
                load_original_checkpoint(self.net, src.path, cfg.name, convert_microsoft_swin,
                                         allowed_missing=("hidden_states_norms.",))
        got = (self.net.config.embed_dim, tuple(self.net.config.depths))
        if got != (v.embed_dim, v.depths):
            raise PretrainedWeightsError(f"backbone {cfg.name!r}: weights from {src} are a Swin with embed_dim/depths "
                                         f"{got}, not {(v.embed_dim, v.depths)}")
        # Eager attention: windows are only 49-144 tokens, and the SDPA path does not export to ONNX
        # (the dynamo exporter fails to decompose its reshape of a transposed output; transformers 5.23).
        self.net.set_attn_implementation("eager")
        self.channels = tuple(int(c) for c in self.net.num_features[1:])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(pixel_values=x).feature_maps)


@register_backbone("swin_t")
@register_backbone("swin_l")
def build(cfg: BackboneConfig) -> Backbone:
    return Swin(cfg)
