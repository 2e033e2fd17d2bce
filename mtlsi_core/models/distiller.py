"""Semantic Token Distiller (Sec. II-C)."""
from __future__ import annotations

import torch
import torch.nn as nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, N) sequence (each token normalised on its own)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def _assign_norm(kind: str, dim: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return ChannelLayerNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"distiller norm must be batch, layer or none, got {kind!r}")


class SemanticTokenDistiller(nn.Module):
    """Compress the fused tokens I (B, N, d) into K task-specific semantic tokens I'_t (B, K, d).

    ``hidden``: width of the assignment MLP (None: d); ``norm``: its leading normalisation, ``batch`` (BN1d,
    the paper's), ``layer`` (per-token LayerNorm) or ``none``.
    """

    def __init__(self, dim: int, num_tokens: int, hidden: int | None = None, norm: str = "batch"):
        super().__init__()
        hidden = hidden or dim
        # MLP of Eq. 5: BN + 1-D (point-wise) convolutions over the token axis, d -> hidden -> K.
        self.assign = nn.Sequential(_assign_norm(norm, dim), nn.Conv1d(dim, hidden, 1), nn.GELU(),
                                    nn.Conv1d(hidden, num_tokens, 1))
        self.proj = nn.Linear(dim, dim)  # Proj_t of Eq. 6

    def assignment(self, tokens: torch.Tensor) -> torch.Tensor:
        """A_t = Softmax(MLP(I^T)) over the N tokens (Eq. 5): (B, K, N), each row sums to 1."""
        return torch.softmax(self.assign(tokens.transpose(1, 2)).float(), dim=-1).to(tokens.dtype)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.assignment(tokens) @ self.proj(tokens)  # Eq. 6: I'_t = A_t Proj_t(I)
