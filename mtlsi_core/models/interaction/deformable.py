"""`deformable`: deformable inter-task attention (seed 003, own formulation).

Each token of each task predicts, per head, ``points`` sampling offsets in every task's map around its own
position and a softmax weight per (task, point); values are bilinearly sampled (``grid_sample``) and summed.
Cost O(T^2 H W points d): linear in pixels.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.interaction.base import Interaction, TaskEmbedding, register_interaction
from mtlsi_core.models.layers import Mlp, to_tokens


@register_interaction("deformable")
class DeformableInterTask(Interaction):
    def __init__(self, cfg: ModelConfig, num_tasks: int):
        super().__init__(cfg, num_tasks)
        d, m = cfg.embed_dim, cfg.deformable
        self.heads, self.points = m.heads, m.points
        self.pool = nn.AvgPool2d(2)
        self.task_embed = TaskEmbedding(num_tasks, d)
        self.norm1 = nn.LayerNorm(d)
        self.value = nn.Linear(d, d)
        self.offsets = nn.Linear(d, self.heads * num_tasks * self.points * 2)
        self.weights = nn.Linear(d, self.heads * num_tasks * self.points)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = Mlp(d, m.mlp_ratio)
        nn.init.zeros_(self.offsets.weight)
        with torch.no_grad():  # start with points spread on a small ring around the reference position
            ang = torch.arange(self.heads * num_tasks * self.points, dtype=torch.float32) * (2.399963)  # golden angle
            self.offsets.bias.copy_(torch.stack([ang.cos(), ang.sin()], dim=-1).flatten())

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        pooled = [self.pool(f) for f in feats]
        b, d, h, w = pooled[0].shape
        t_num, hd, p = len(pooled), self.heads, self.points
        x = torch.cat(self.task_embed([to_tokens(f) for f in pooled]), dim=1)  # (B, N, d), N = T*h*w
        xn = self.norm1(x)
        n = x.shape[1]
        # reference positions of all N queries in normalised [-1, 1] coordinates (align_corners=False)
        ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h * 2 - 1
        xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w * 2 - 1
        ref = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(1, h * w, 1, 1, 2).repeat(1, t_num, 1, 1, 1)
        scale = torch.tensor([2.0 / w, 2.0 / h], device=x.device, dtype=x.dtype)  # one token step
        off = self.offsets(xn).reshape(b, n, hd, t_num * p, 2) * scale
        loc = (ref.reshape(1, n, 1, 1, 2) + off).reshape(b, n, hd, t_num, p, 2)
        attn = self.weights(xn).reshape(b, n, hd, t_num * p).softmax(-1).reshape(b, n, hd, t_num, p)
        values = self.value(xn).reshape(b, t_num, h, w, hd, d // hd)
        out = x.new_zeros(b * hd, d // hd, n)
        for u in range(t_num):  # sample task u's map for all queries of all tasks
            v = values[:, u].permute(0, 3, 4, 1, 2).reshape(b * hd, d // hd, h, w)
            grid = loc[:, :, :, u].permute(0, 2, 1, 3, 4).reshape(b * hd, n, p, 2)
            s = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B*hd, c, N, P)
            wgt = attn[:, :, :, u].permute(0, 2, 1, 3).reshape(b * hd, 1, n, p)
            out = out + (s * wgt).sum(-1)
        out = out.reshape(b, hd, d // hd, n).permute(0, 3, 1, 2).reshape(b, n, d)
        x = x + self.proj(out)
        return x + self.mlp(self.norm2(x))
