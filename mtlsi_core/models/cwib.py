"""Cross-Window Integrated attention Block (Sec. II-D, Eq. 7-11)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtlsi_core.models.layers import (Mlp, merge_heads, split_heads, window_mask_as_heads, window_merge, window_pad,
                                      windows_as_heads)


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: tuple[int, int],
                     heads: int) -> torch.Tensor:
    """Multi-head self-attention inside non-overlapping windows.

    q, k, v: (B, H, W, C). Maps that the window does not tile are padded at the bottom / right (as Swin
    does) and the padded keys are masked out. Returns (B, H, W, C).
    """
    b, h, w, c = q.shape
    ph, pw = window_pad(h, w, window)
    if ph or pw:
        q, k, v = (F.pad(t, (0, 0, 0, pw, 0, ph)) for t in (q, k, v))
    hp, wp = h + ph, w + pw
    nw = (hp // window[0]) * (wp // window[1])
    n = window[0] * window[1]
    # windows go into the heads axis, (B, nW * heads, n, C / heads): 4-D SDPA keeps the fused CPU/GPU kernels
    o = F.scaled_dot_product_attention(*(windows_as_heads(t, window, heads) for t in (q, k, v)),
                                       attn_mask=window_mask_as_heads(h, w, window, heads, q.device))
    o = merge_heads(o.reshape(b * nw, heads, n, c // heads))
    o = window_merge(o, window, b, hp, wp)
    if ph or pw:
        o = o[:, :h, :w]
    return o


class CWIB(nn.Module):
    """Inject the distilled tokens I'_t into the task features P_t.

    W-MSA on P_t (Eq. 7-8) in parallel with cross-attention from P_t to I'_t + E_t (Eq. 9-10), sharing the
    query projection Q'; concat, linear, residual; LN + FFN residual (Eq. 11). Windows carry no relative
    position bias (the paper names none; P_t comes from convolutions and carries position).
    """

    def __init__(self, channels: int, token_dim: int, num_tokens: int, window: tuple[int, int], heads: int,
                 mlp_ratio: float):
        super().__init__()
        self.window = tuple(window)
        self.heads = heads
        self.norm_p = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)  # W^{Q'}
        self.kv_w = nn.Linear(channels, 2 * channels)  # W^{K_w}, W^{V_w}
        self.pos = nn.Parameter(torch.zeros(num_tokens, token_dim))  # E_t
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.norm_i = nn.LayerNorm(token_dim)
        self.kv_c = nn.Linear(token_dim, 2 * channels)  # W^{K_c}, W^{V_c}
        self.proj = nn.Linear(2 * channels, channels)
        self.norm_z = nn.LayerNorm(channels)
        self.ffn = Mlp(channels, mlp_ratio)

    def forward(self, p: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """p: (B, C, H, W) task features; tokens: (B, K, d) distilled tokens -> (B, C, H, W)."""
        b, c, h, w = p.shape
        x = p.permute(0, 2, 3, 1)  # (B, H, W, C)
        xn = self.norm_p(x)
        q = self.q(xn)
        kw, vw = self.kv_w(xn).chunk(2, dim=-1)
        o_w = window_attention(q, kw, vw, self.window, self.heads).reshape(b, h * w, c)  # Eq. 8
        kc, vc = self.kv_c(self.norm_i(tokens + self.pos)).chunk(2, dim=-1)  # Eq. 9
        o_c = merge_heads(F.scaled_dot_product_attention(  # Eq. 10
            split_heads(q.reshape(b, h * w, c), self.heads), split_heads(kc, self.heads), split_heads(vc, self.heads)))
        z = self.proj(torch.cat([o_w, o_c], dim=-1)) + x.reshape(b, h * w, c)  # Eq. 11
        z = z + self.ffn(self.norm_z(z))
        return z.transpose(1, 2).reshape(b, c, h, w)
