"""`mhsa`: quadratic global self-attention over all tasks' tokens (the DeMT / InvPT style baseline)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.interaction.base import PooledTokenAttention, register_interaction
from mtlsi_core.models.layers import merge_heads, split_heads, to_tokens


@register_interaction("mhsa")
class GlobalMHSA(PooledTokenAttention):
    """One pre-norm transformer layer over the T x HW/4 tokens (F_t average-pooled to stride 8, plus a
    task embedding). Attention cost is O((T H W / 4)^2 d): the comparison the paper's complexity claim is about."""

    def __init__(self, cfg: ModelConfig, num_tasks: int):
        super().__init__(cfg, num_tasks, cfg.mhsa.heads, cfg.mhsa.mlp_ratio)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(self.task_embed([to_tokens(self.pool(f)) for f in feats]), dim=1)
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        x = x + self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))
        return x + self.mlp(self.norm2(x))
