"""Semantic Token Distiller (Sec. II-C)."""
from __future__ import annotations

import torch
import torch.nn as nn


class SemanticTokenDistiller(nn.Module):
    """Compress the fused tokens I (B, N, d) into K task-specific semantic tokens I'_t (B, K, d)."""

    def __init__(self, dim: int, num_tokens: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or dim
        # MLP of Eq. 5: BN + 1-D (point-wise) convolutions over the token axis, d -> hidden -> K.
        self.assign = nn.Sequential(nn.BatchNorm1d(dim), nn.Conv1d(dim, hidden, 1), nn.GELU(),
                                    nn.Conv1d(hidden, num_tokens, 1))
        self.proj = nn.Linear(dim, dim)  # Proj_t of Eq. 6

    def assignment(self, tokens: torch.Tensor) -> torch.Tensor:
        """A_t = Softmax(MLP(I^T)) over the N tokens (Eq. 5): (B, K, N), each row sums to 1."""
        return torch.softmax(self.assign(tokens.transpose(1, 2)).float(), dim=-1).to(tokens.dtype)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.assignment(tokens) @ self.proj(tokens)  # Eq. 6: I'_t = A_t Proj_t(I)
