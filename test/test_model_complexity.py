"""Linear vs quadratic cost of the interaction blocks, measured as FLOPs (FlopCounterMode) at side L and 2L."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.interaction import build_interaction

D, TASKS = 32, 4


def interaction_flops(name: str, side: int) -> int:
    """FLOPs of the interaction block alone on T task maps of (D, side, side) (stride-4 features)."""
    cfg = ModelConfig.model_validate({"backbone": {"name": "efficientnet_lite0"}, "interaction": name, "embed_dim": D,
                                      "mhsa": {"heads": 4}, "window_xtask": {"heads": 4, "window": [4, 4]},
                                      "deformable": {"heads": 4}})
    with torch.device("meta"):
        block = build_interaction(cfg, TASKS).eval()
        feats = [torch.empty(1, D, side, side) for _ in range(TASKS)]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = block(feats)
    assert out.shape == (1, TASKS * (side // 2) ** 2, D)
    return counter.get_total_flops()


@pytest.mark.parametrize("name, lo, hi", [("mqlfb", 3.5, 4.6), ("window_xtask", 3.5, 4.6), ("deformable", 3.5, 4.6),
                                          ("mhsa", 12.0, 16.0)])
def test_flops_grow_linearly_or_quadratically_with_pixels(name, lo, hi):
    side = 32  # stride-4 map 32x32 (a 128x128 input): 4 x 256 tokens
    ratio = interaction_flops(name, 2 * side) / interaction_flops(name, side)
    assert lo <= ratio <= hi, f"{name}: FLOPs ratio {ratio:.2f} at 2x side, expected in [{lo}, {hi}]"


def test_mqlfb_is_cheaper_than_global_attention_at_paper_resolution():
    # NYUDv2 448x576 -> 112x144 stride-4 maps: quadratic attention costs far more than MT-MQLFB.
    cfg_side = 112
    assert interaction_flops("mhsa", cfg_side) > 5 * interaction_flops("mqlfb", cfg_side)
