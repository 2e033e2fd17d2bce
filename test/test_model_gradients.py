"""Every parameter of MTLSI-Net receives a gradient, with every interaction module."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtlsi_core.config import load_config
from mtlsi_core.models import build_model
from mtlsi_core.models.config import INTERACTIONS

TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"


@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_every_parameter_gets_a_gradient(interaction):
    torch.manual_seed(0)
    cfg = load_config(TINY, [f"model.interaction={interaction}"])
    model = build_model(cfg).train()
    h, w = cfg.data.input_size
    out = model(torch.randn(2, 3, h, w))
    # deep supervision: losses on the final and the coarse predictions
    loss = sum(v.pow(2).mean() for group in out.values() for v in group.values())
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert dead == []


def test_final_outputs_depend_on_the_other_tasks_through_the_interaction():
    # Cross-task interaction: the final semseg output must change when only the depth branch changes.
    torch.manual_seed(0)
    cfg = load_config(TINY)
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, *cfg.data.input_size)
    with torch.no_grad():
        before = model(x)
        model.preliminary["depth"].head.bias.add_(1.0)
        after = model(x)
    assert torch.equal(before["coarse"]["semseg"], after["coarse"]["semseg"])
    assert not torch.allclose(before["final"]["semseg"], after["final"]["semseg"])
