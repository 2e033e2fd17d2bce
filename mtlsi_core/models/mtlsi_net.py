"""MTLSI-Net (Fig. 1): backbone -> preliminary decoders -> interaction -> distillers -> CWIBs -> output decoders."""
from __future__ import annotations

from typing import Iterator, Mapping

import torch
import torch.nn as nn

from mtlsi_core.models.backbones import build_backbone
from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.cwib import CWIB
from mtlsi_core.models.decoders import OutputDecoder, PreliminaryDecoder
from mtlsi_core.models.distiller import SemanticTokenDistiller
from mtlsi_core.models.interaction import build_interaction
from mtlsi_core.models.layers import resize_to, scale_grad


class MTLSINet(nn.Module):
    """``forward(x)``: x (B, 3, H, W) ImageNet-normalised, H and W multiples of 32 ->
    ``{"final": {task: raw}, "coarse": {task: raw}}``, raw pre-activation outputs (B, C_t, H, W) at the
    input resolution. With ``interaction: none`` (the paper's PD baseline) "final" holds the preliminary
    decoders' predictions and "coarse" is empty. Setting ``return_coarse = False`` (inference only) also
    leaves "coarse" empty and skips upsampling it.

    ``model.refinement``: ``prelim_grad`` scales (0: detaches) the gradient that reaches the preliminary
    decoders through F_t (training only; the forward pass is the same); ``coarse_residual`` adds coarse_t to the
    output decoder's prediction (true: every task; a list: those tasks).
    """

    def __init__(self, cfg: ModelConfig, tasks: list[str], channels: Mapping[str, int]):
        super().__init__()
        missing = [t for t in tasks if t not in channels]
        if missing or not tasks:
            raise ValueError(f"MTLSINet: no output channel count for tasks {missing}" if missing else "MTLSINet: no tasks")
        self.tasks = list(tasks)
        self.out_channels = {t: int(channels[t]) for t in tasks}
        self.interaction_name = cfg.interaction
        self.return_coarse = True  # deep supervision needs the coarse predictions; inference does not
        d, dec = cfg.embed_dim, cfg.decoder
        self.backbone = build_backbone(cfg.backbone)
        self.preliminary = nn.ModuleDict({
            t: PreliminaryDecoder(self.backbone.channels, dec.channels, dec.blocks, self.out_channels[t], dec.separable,
                                  dec.stride)
            for t in self.tasks})
        self.interaction = build_interaction(cfg, len(self.tasks))
        self.prelim_grad = float(cfg.refinement.prelim_grad)
        res = cfg.refinement.coarse_residual
        unknown = [t for t in res if t not in self.tasks] if isinstance(res, list) else []
        if unknown:
            raise ValueError(f"MTLSINet: model.refinement.coarse_residual names tasks {unknown} not in {self.tasks}")
        # the tasks whose final output is a correction of their coarse prediction
        self.residual_tasks = frozenset(self.tasks if res is True else res or ())
        if self.interaction is not None:
            # F_t = proj(concat(P_t, coarse prediction_t)) to (H, W, d), Sec. II-A
            self.task_proj = nn.ModuleDict({
                t: nn.Sequential(nn.Conv2d(dec.channels + self.out_channels[t], d, 1, bias=False), nn.BatchNorm2d(d))
                for t in self.tasks})
            k = cfg.distiller.num_tokens
            self.distillers = nn.ModuleDict({t: SemanticTokenDistiller(d, k, cfg.distiller.hidden, cfg.distiller.norm)
                                             for t in self.tasks})
            self.cwibs = nn.ModuleDict({
                t: CWIB(dec.channels, d, k, cfg.cwib.window, cfg.cwib.heads, cfg.cwib.mlp_ratio) for t in self.tasks})
            self.output_decoders = nn.ModuleDict({
                t: OutputDecoder(dec.channels, dec.blocks, self.out_channels[t], dec.separable) for t in self.tasks})

    def forward(self, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"MTLSINet input must be (B, 3, H, W) with H and W multiples of 32, got {tuple(x.shape)}")
        size = (int(x.shape[-2]), int(x.shape[-1]))
        feats = self.backbone(x)
        prelim = [self.preliminary[t](feats) for t in self.tasks]
        if self.interaction is None:
            return {"final": {t: resize_to(c, size) for t, (_, c) in zip(self.tasks, prelim)}, "coarse": {}}
        g = self.prelim_grad if self.training else 1.0  # the gradient scale only matters when training
        fused = self.interaction([self.task_proj[t](scale_grad(torch.cat([p, c], dim=1), g))
                                  for t, (p, c) in zip(self.tasks, prelim)])
        final = {}
        for t, (p, c) in zip(self.tasks, prelim):
            x_t = self.cwibs[t](p, self.distillers[t](fused))
            y = self.output_decoders[t](x_t)
            final[t] = resize_to(y + c if t in self.residual_tasks else y, size)
        coarse = {t: resize_to(c, size) for t, (_, c) in zip(self.tasks, prelim)} if self.return_coarse else {}
        return {"final": final, "coarse": coarse}

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return (p for n, p in self.named_parameters() if not n.startswith("backbone."))

    def head_modules(self) -> dict[str, list[nn.Module]]:
        """Head parts by paper module, for the parameter breakdown of mtlsi-info."""
        parts: dict[str, list[nn.Module]] = {"preliminary_decoders": [self.preliminary]}
        if self.interaction is not None:
            parts.update(task_projections=[self.task_proj], interaction=[self.interaction],
                         distillers=[self.distillers], cwibs=[self.cwibs], output_decoders=[self.output_decoders])
        return parts
