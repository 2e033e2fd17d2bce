"""Multi-Task Multi-scale Query Linear Fusion Block, MT-MQLFB (Sec. II-B, Eq. 1-4)."""
from __future__ import annotations

import torch
import torch.nn as nn

from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.interaction.base import Interaction, register_interaction
from mtlsi_core.models.layers import Mlp, linear_attention, merge_heads, split_heads, to_tokens


@register_interaction("mqlfb")
class MQLFB(Interaction):
    """Multi-scale queries, one shared global context phi(K)^T V, linear in H*W.

    Choices the paper leaves open: the depth-wise conv blocks are task-specific (each task its own filter
    and BN statistics), each scale has its own LN + W^Q, and the MLP of Eq. 4 is pre-normed (LN, Linear,
    GELU, Linear). Options (``model.mqlfb``): ``heads`` splits the linear attention into heads (each its own
    context phi(K_h)^T V_h, still shared by all scales); ``v_conv`` > 0 adds Conv^{v x v}(V), a depth-wise
    conv over each task's token map of V (shared by the tasks), to every O_s: a local, position-dependent
    term that the kernelised attention (one context for all queries) cannot produce.
    """

    def __init__(self, cfg: ModelConfig, num_tasks: int):
        super().__init__(cfg, num_tasks)
        d, m = cfg.embed_dim, cfg.mqlfb
        self.scales = tuple(m.scales)
        self.heads = m.heads
        # Conv^{s x s} of Eq. 2: depth-wise conv (stride 2) + BN + ReLU, per scale and per task.
        self.query_convs = nn.ModuleList(
            nn.ModuleList(nn.Sequential(nn.Conv2d(d, d, s, stride=2, padding=s // 2, groups=d, bias=False),
                                        nn.BatchNorm2d(d), nn.ReLU()) for _ in range(num_tasks))
            for s in self.scales)
        self.query_norms = nn.ModuleList(nn.LayerNorm(d) for _ in self.scales)
        self.query_proj = nn.ModuleList(nn.Linear(d, d) for _ in self.scales)  # W^Q per scale
        self.pool = nn.AvgPool2d(2) if m.pool == "avg" else nn.MaxPool2d(2)
        self.kv_norm = nn.LayerNorm(d)
        self.k_proj = nn.Linear(d, d)  # W^K
        self.v_proj = nn.Linear(d, d)  # W^V
        self.out_proj = nn.Linear(len(self.scales) * d, d)  # W^O of Eq. 4
        self.mlp = nn.Sequential(nn.LayerNorm(d), Mlp(d, m.mlp_ratio))
        self.v_conv = nn.Conv2d(d, d, m.v_conv, padding=m.v_conv // 2, groups=d) if m.v_conv else None

    def queries(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Q_s for every scale (Eq. 2-3), (B, heads, T*HW/4, d/heads), before the kernel."""
        out = []
        for convs, norm, proj in zip(self.query_convs, self.query_norms, self.query_proj):
            g = torch.cat([to_tokens(conv(f)) for conv, f in zip(convs, feats)], dim=1)  # G_s, Eq. 2
            out.append(split_heads(proj(norm(g)), self.heads))
        return out

    def local_v(self, v: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Conv^{v x v}(V): (B, T*h*w, d) tokens -> the depth-wise conv of each task's (d, h, w) map, as tokens."""
        b, n, d = v.shape
        t = n // (h * w)
        maps = v.reshape(b * t, h, w, d).permute(0, 3, 1, 2)
        return self.v_conv(maps).permute(0, 2, 3, 1).reshape(b, n, d)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        pooled = [self.pool(f) for f in feats]
        m = self.kv_norm(torch.cat([to_tokens(p) for p in pooled], dim=1))  # LN(M), Eq. 3
        v_tok = self.v_proj(m)
        k = split_heads(self.k_proj(m), self.heads)
        v = split_heads(v_tok, self.heads)
        outs = [merge_heads(o) for o in linear_attention(self.queries(feats), k, v)]  # O_s, Eq. 4; shared context
        if self.v_conv is not None:
            lv = self.local_v(v_tok, int(pooled[0].shape[-2]), int(pooled[0].shape[-1]))
            outs = [o + lv for o in outs]
        o_agg = self.out_proj(torch.cat(outs, dim=-1))
        return o_agg + self.mlp(o_agg)  # I = O_agg + MLP(O_agg)
