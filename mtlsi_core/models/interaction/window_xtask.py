"""`window_xtask`: M2H-style window-based cross-task attention (seed 004)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.interaction.base import PooledTokenAttention, register_interaction
from mtlsi_core.models.layers import (merge_heads, to_tokens, window_mask_as_heads, window_merge, window_pad,
                                      window_partition)


@register_interaction("window_xtask")
class WindowCrossTask(PooledTokenAttention):
    """Partition every task's stride-8 token map into windows; inside each window the tokens of all T tasks
    attend jointly (T*wh*ww tokens); then merge back. Cost O(T^2 H W wh ww d): linear in pixels, local."""

    def __init__(self, cfg: ModelConfig, num_tasks: int):
        super().__init__(cfg, num_tasks, cfg.window_xtask.heads, cfg.window_xtask.mlp_ratio)
        self.window = tuple(cfg.window_xtask.window)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        pooled = [self.pool(f) for f in feats]
        b, d, h, w = pooled[0].shape
        t_num = len(pooled)
        tokens = self.task_embed([to_tokens(p) for p in pooled])  # T x (B, h*w, d)
        ph, pw = window_pad(h, w, self.window)
        hp, wp = h + ph, w + pw
        n = self.window[0] * self.window[1]
        wins = [window_partition(F.pad(t.reshape(b, h, w, d), (0, 0, 0, pw, 0, ph)), self.window) for t in tokens]
        x = torch.cat(wins, dim=1)  # (B*nW, T*n, d): all tasks' tokens of one window
        nw = x.shape[0] // b
        hd, ch = self.heads, d // self.heads
        # (B*nW, T*n, d) -> (B, nW*heads, T*n, d/heads): windows in the heads axis keep SDPA 4-D (fused kernels)
        q, k, v = (t.reshape(b, nw, t_num * n, hd, ch).permute(0, 1, 3, 2, 4).reshape(b, nw * hd, t_num * n, ch)
                   for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        mask = window_mask_as_heads(h, w, self.window, hd, x.device, repeat=t_num)  # same padding in every task
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(merge_heads(o.reshape(b * nw, hd, t_num * n, ch)))
        x = x + self.mlp(self.norm2(x))
        outs = []
        for i in range(t_num):
            m = window_merge(x[:, i * n:(i + 1) * n], self.window, b, hp, wp)[:, :h, :w]
            outs.append(m.reshape(b, h * w, d))
        return torch.cat(outs, dim=1)
