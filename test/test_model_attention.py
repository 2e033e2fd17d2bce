"""Numerics of the head modules against explicit reference computations on small tensors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.cwib import CWIB, window_attention
from mtlsi_core.models.distiller import SemanticTokenDistiller
from mtlsi_core.models.interaction.mqlfb import MQLFB
from mtlsi_core.models.layers import (elu_feature_map, linear_attention, padding_key_mask, window_merge,
                                      window_partition)


def test_linear_attention_equals_explicit_normalised_kernel_attention():
    torch.manual_seed(0)
    q1, q2 = torch.randn(2, 3, 7, 5, dtype=torch.float64), torch.randn(2, 3, 7, 5, dtype=torch.float64)
    k, v = torch.randn(2, 3, 11, 5, dtype=torch.float64), torch.randn(2, 3, 11, 5, dtype=torch.float64)
    outs = linear_attention([q1, q2], k, v, eps=0.0)
    for q, o in zip((q1, q2), outs):
        sim = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)  # (phi(Q) phi(K)^T), Nq x Nk
        ref = (sim @ v) / sim.sum(dim=-1, keepdim=True)
        torch.testing.assert_close(o, ref)
    assert (elu_feature_map(torch.linspace(-30, 30, 101)) >= 0).all()  # fp32 rounds ELU(-30)+1 to 0


def test_linear_attention_stays_fp32_under_autocast():
    q, k, v = torch.randn(1, 1, 6, 4), torch.randn(1, 1, 9, 4), torch.randn(1, 1, 9, 4)
    ref = linear_attention([q], k, v)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = linear_attention([q.bfloat16()], k.bfloat16(), v.bfloat16())[0]
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)


def test_mqlfb_shares_one_context_across_scales_and_matches_eq4():
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate({"backbone": {"name": "efficientnet_lite0"}, "embed_dim": 8,
                                      "mqlfb": {"scales": [1, 3], "mlp_ratio": 1.0}})
    m = MQLFB(cfg, num_tasks=2).eval().double()
    feats = [torch.randn(1, 8, 4, 6, dtype=torch.float64) for _ in range(2)]
    out = m(feats)
    assert out.shape == (1, 2 * 2 * 3, 8)  # T * H/2 * W/2 tokens
    # Eq. 3-4 written out: K, V from LN(M), M = pooled task features; O_s = phi(Q_s) phi(K)^T V / normaliser.
    mtok = torch.cat([F.avg_pool2d(f, 2).flatten(2).transpose(1, 2) for f in feats], 1)
    mn = m.kv_norm(mtok)
    k, v = elu_feature_map(m.k_proj(mn)), m.v_proj(mn)
    o = []
    for q in m.queries(feats):
        sim = elu_feature_map(q[:, 0]) @ k.transpose(1, 2)
        o.append(sim @ v / sim.sum(-1, keepdim=True))
    o_agg = m.out_proj(torch.cat(o, -1))
    torch.testing.assert_close(out, o_agg + m.mlp(o_agg))


def test_mqlfb_single_scale_is_selectable():
    cfg = ModelConfig.model_validate({"backbone": {"name": "efficientnet_lite0"}, "embed_dim": 8, "mqlfb": {"scales": [3]}})
    m = MQLFB(cfg, num_tasks=3)
    assert len(m.query_convs) == 1 and m.query_convs[0][0][0].kernel_size == (3, 3)
    assert m.out_proj.in_features == 8
    assert m([torch.randn(1, 8, 4, 4) for _ in range(3)]).shape == (1, 12, 8)


@pytest.mark.parametrize("hw, window", [((8, 12), (4, 4)), ((6, 10), (3, 5)), ((4, 4), (4, 4))])
def test_window_partition_and_merge_round_trip(hw, window):
    x = torch.randn(2, *hw, 5)
    wins = window_partition(x, window)
    assert wins.shape == (2 * (hw[0] // window[0]) * (hw[1] // window[1]), window[0] * window[1], 5)
    # the first window holds the top-left window[0] x window[1] block, row-major
    torch.testing.assert_close(wins[0], x[0, :window[0], :window[1]].reshape(-1, 5))
    torch.testing.assert_close(window_merge(wins, window, 2, *hw), x)


def _naive_window_attention(q, k, v, window, heads):
    """Loop over windows (cropped at the border: padded keys are excluded) and heads."""
    b, h, w, c = q.shape
    out = torch.zeros_like(q)
    ch = c // heads
    for i in range(0, h, window[0]):
        for j in range(0, w, window[1]):
            sl = (slice(None), slice(i, i + window[0]), slice(j, j + window[1]))
            qq, kk, vv = (t[sl].reshape(b, -1, heads, ch).transpose(1, 2) for t in (q, k, v))
            att = torch.softmax(qq @ kk.transpose(-2, -1) / ch ** 0.5, dim=-1) @ vv
            out[sl] = att.transpose(1, 2).reshape(b, *q[sl].shape[1:3], c)
    return out


@pytest.mark.parametrize("hw", [(8, 8), (7, 10), (5, 3)])
def test_window_attention_matches_per_window_loop_with_padding(hw):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, *hw, 8, dtype=torch.float64) for _ in range(3))
    out = window_attention(q, k, v, (4, 4), heads=2)
    torch.testing.assert_close(out, _naive_window_attention(q, k, v, (4, 4), 2))


def test_padding_mask_marks_only_real_pixels():
    m = padding_key_mask(5, 3, (4, 4), torch.device("cpu"))
    assert m.shape == (2, 1, 1, 16)
    assert m[0].sum() == 12 and m[1].sum() == 3  # 4 rows x 3 cols, then 1 row x 3 cols
    assert padding_key_mask(8, 8, (4, 4), torch.device("cpu")) is None


def test_distiller_assignment_rows_sum_to_one_and_weight_tokens():
    torch.manual_seed(0)
    d = SemanticTokenDistiller(dim=16, num_tokens=5, hidden=12).eval()
    tokens = torch.randn(3, 40, 16)
    a = d.assignment(tokens)
    assert a.shape == (3, 5, 40)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 5))
    torch.testing.assert_close(d(tokens), a @ d.proj(tokens))  # Eq. 6
    # permuting the input tokens permutes the assignment columns and leaves I'_t unchanged
    perm = torch.randperm(40)
    torch.testing.assert_close(d(tokens[:, perm]), d(tokens), atol=1e-5, rtol=1e-5)


def test_cwib_cross_branch_reads_the_distilled_tokens():
    torch.manual_seed(0)
    blk = CWIB(channels=16, token_dim=8, num_tokens=6, window=(4, 4), heads=2, mlp_ratio=2.0).eval()
    p, tok = torch.randn(1, 16, 6, 10), torch.randn(1, 6, 8)
    out = blk(p, tok)
    assert out.shape == p.shape
    assert not torch.allclose(out, blk(p, tok + torch.randn_like(tok)))  # global semantics reach the pixels
    # the window branch is local: changing one window of P leaves pixels of other windows' W-MSA unchanged,
    # but the output differs only through attention/FFN at those pixels (residual path is per pixel)
    p2 = p.clone()
    p2[..., :4, :4] += 1.0
    diff = (blk(p2, tok) - out).abs().sum(1)[0]
    assert diff[:4, :4].min() > 0 and diff[4:, 4:].max() < 1e-6 and diff[:4, 4:].max() < 1e-6
