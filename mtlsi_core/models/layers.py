"""Small building blocks shared by the head modules.

Everything here is export-friendly: shapes are Python ints derived from tensor shapes (static under
``torch.onnx.export`` at a fixed input size), no data-dependent control flow and no in-place ops on views.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, separable: bool = False) -> nn.Sequential:
    """k x k conv (or depth-wise k x k + point-wise 1 x 1) -> BN -> ReLU, 'same' padding."""
    if separable and kernel > 1:
        return nn.Sequential(
            nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False),
            nn.BatchNorm2d(cin), nn.ReLU(),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        )
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Mlp(nn.Module):
    """Linear -> GELU -> Linear on the last dimension."""

    def __init__(self, dim: int, ratio: float, out_dim: int | None = None):
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def from_tokens(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, heads, N, C / heads)."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, c) -> (B, N, heads * c)."""
    b, h, n, c = x.shape
    return x.transpose(1, 2).reshape(b, n, h * c)


def window_pad(h: int, w: int, window: tuple[int, int]) -> tuple[int, int]:
    """Bottom / right padding that makes an (h, w) map tile into windows."""
    return (-h) % window[0], (-w) % window[1]


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of the window -> (B * nWindows, wh * ww, C)."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.reshape(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * (h // wh) * (w // ww), wh * ww, c)


def window_merge(x: torch.Tensor, window: tuple[int, int], b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (B * nWindows, wh * ww, C) -> (B, H, W, C)."""
    wh, ww = window
    c = x.shape[-1]
    x = x.reshape(b, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def padding_key_mask(h: int, w: int, window: tuple[int, int], device: torch.device) -> torch.Tensor | None:
    """Boolean attention mask (nWindows, 1, 1, wh*ww), True where a key is a real (not padded) pixel.

    None when the window tiles the map. Built from Python ints only, so it is a constant under export.
    """
    ph, pw = window_pad(h, w, window)
    if ph == 0 and pw == 0:
        return None
    valid = torch.zeros(1, h + ph, w + pw, 1, dtype=torch.bool, device=device)
    valid[:, :h, :w] = True
    m = window_partition(valid.float(), window)[..., 0] > 0.5  # (nW, wh*ww)
    return m[:, None, None, :]


def windows_as_heads(x: torch.Tensor, window: tuple[int, int], heads: int) -> torch.Tensor:
    """(B, H, W, C), H and W tiled by the window -> (B, nW * heads, wh * ww, C / heads) for 4-D attention."""
    b, c = x.shape[0], x.shape[-1]
    t = window_partition(x, window)  # (B * nW, n, C)
    nw, n = t.shape[0] // b, t.shape[1]
    return t.reshape(b, nw, n, heads, c // heads).permute(0, 1, 3, 2, 4).reshape(b, nw * heads, n, c // heads)


def window_mask_as_heads(h: int, w: int, window: tuple[int, int], heads: int, device: torch.device,
                         repeat: int = 1) -> torch.Tensor | None:
    """``padding_key_mask`` laid out for ``windows_as_heads``: (1, nW * heads, 1, n * repeat); None if no padding."""
    m = padding_key_mask(h, w, window, device)
    if m is None:
        return None
    nw, n = m.shape[0], m.shape[-1]
    return m.reshape(nw, 1, 1, n).expand(nw, heads, 1, n).repeat(1, 1, 1, repeat).reshape(1, nw * heads, 1, n * repeat)


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient flowing back into ``x`` by ``scale``.

    ``scale`` 1: ``x`` itself (no op in the graph); 0: ``x.detach()``; otherwise
    ``x.detach() + scale * (x - x.detach())``, whose value is exactly ``x`` (the bracket is exactly zero).
    """
    if scale == 1.0:
        return x
    if scale == 0.0:
        return x.detach()
    d = x.detach()
    return d + scale * (x - d)


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """The linear-attention kernel phi(x) = ELU(x) + 1 (positive)."""
    return F.elu(x) + 1.0


_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps")


def _linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float) -> list[torch.Tensor]:
    """phi(K)^T V and the normaliser computed once, applied to every query set in ``q``."""
    k = elu_feature_map(k)
    context = k.transpose(-2, -1) @ v  # (..., c, c): the global context matrix, independent of Q
    ksum = k.sum(dim=-2, keepdim=True)  # (..., 1, c) = (phi(K)^T 1)^T
    outs = []
    for qs in q:
        qs = elu_feature_map(qs)
        norm = (qs * ksum).sum(dim=-1, keepdim=True)  # phi(Q) (phi(K)^T 1)
        outs.append((qs @ context) / (norm + eps))
    return outs


def linear_attention(queries: list[torch.Tensor], k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> list[torch.Tensor]:
    """Kernelised linear attention (Eq. 1 / 4) for several query sets sharing one K, V.

    ``queries``: tensors (..., Nq, c) before the kernel; ``k``: (..., Nk, c); ``v``: (..., Nk, c).
    Returns one (..., Nq, c) tensor per query set. Runs in fp32 even under autocast: the sums over
    tens of thousands of tokens overflow / lose precision in fp16.
    """
    dev = k.device.type
    if dev in _AUTOCAST_DEVICES and torch.is_autocast_enabled(dev):
        with torch.autocast(dev, enabled=False):
            outs = _linear_attention([q.float() for q in queries], k.float(), v.float(), eps)
        return [o.to(v.dtype) for o in outs]
    return _linear_attention(queries, k, v, eps)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False); a no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
