"""MTLSI-Net output contract: shapes for NYUDv2 / PASCAL-Context with every interaction and every backbone."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtlsi_core.config import load_config
from mtlsi_core.models import build_model
from mtlsi_core.models.config import BACKBONES, INTERACTIONS
from mtlsi_core.tasks import DATASETS, task_channels

TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"


def tiny_cfg(dataset: str = "nyud", size=(64, 96), **overrides):
    sets = [f"data.dataset={dataset}", f"data.tasks=[{','.join(DATASETS[dataset].tasks)}]", f"data.input_size=[{size[0]},{size[1]}]"]
    sets += [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()]
    return load_config(TINY, sets)


def check_outputs(model, cfg, batch: int = 1) -> None:
    h, w = cfg.data.input_size
    with torch.no_grad():
        out = model(torch.randn(batch, 3, h, w))
    channels = task_channels(cfg.data.tasks, cfg.data.dataset)
    assert set(out) == {"final", "coarse"}
    assert list(out["final"]) == list(cfg.data.tasks)
    for t, c in channels.items():
        assert out["final"][t].shape == (batch, c, h, w), t
        assert torch.isfinite(out["final"][t]).all(), t
    if cfg.model.interaction == "none":
        assert out["coarse"] == {}
    else:
        assert {t: v.shape for t, v in out["coarse"].items()} == {t: (batch, c, h, w) for t, c in channels.items()}


@pytest.mark.parametrize("dataset", ["nyud", "pascal"])
@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_every_interaction_gives_input_resolution_outputs(dataset, interaction):
    torch.manual_seed(0)
    cfg = tiny_cfg(dataset, model__interaction=interaction)
    model = build_model(cfg).eval()
    assert model.tasks == list(cfg.data.tasks)
    check_outputs(model, cfg, batch=2)


@pytest.mark.parametrize("dataset", ["nyud", "pascal"])
@pytest.mark.parametrize("backbone", [pytest.param(b, marks=pytest.mark.slow) if b == "swin_l" else b for b in BACKBONES])
def test_every_backbone_gives_input_resolution_outputs(dataset, backbone, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = tiny_cfg(dataset, size=(64, 64), model__backbone__name=backbone)
    model = build_model(cfg).eval()
    feats = model.backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(c, 64 // s, 64 // s) for c, s in zip(model.backbone.channels, (4, 8, 16, 32))]
    check_outputs(model, cfg)


@pytest.mark.parametrize("size", [(96, 160), (160, 96), (32, 32)])
def test_windows_that_do_not_tile_are_padded(size):
    # 14x16 CWIB windows and 3x3 cross-task windows do not tile 24x40 / 40x24 / 8x8 maps.
    for inter in ("mqlfb", "window_xtask"):
        cfg = tiny_cfg("nyud", size=size, model__interaction=inter, model__cwib__window="[14,16]",
                       model__window_xtask__window="[3,3]")
        check_outputs(build_model(cfg).eval(), cfg)


def test_pd_baseline_has_no_refinement_modules():
    model = build_model(tiny_cfg(model__interaction="none"))
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"backbone", "preliminary"}


def test_backbone_and_head_parameters_partition_the_model():
    model = build_model(tiny_cfg())
    ids = [id(p) for p in model.backbone_parameters()] + [id(p) for p in model.head_parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert sum(p.numel() for p in model.backbone_parameters()) > 0 and sum(p.numel() for p in model.head_parameters()) > 0


@pytest.mark.parametrize("shape", [(1, 3, 65, 96), (1, 1, 64, 96), (3, 64, 96)])
def test_bad_input_shape_is_a_clear_error(shape):
    model = build_model(tiny_cfg()).eval()
    with pytest.raises(ValueError, match=r"multiples of 32, got"):
        model(torch.randn(*shape))


def test_stride8_task_features_for_edge_configs():
    cfg = tiny_cfg(size=(64, 96), model__decoder__stride=8, model__cwib__window="[4,4]")
    model = build_model(cfg).eval()
    feats = model.backbone(torch.randn(1, 3, 64, 96))
    p, coarse = model.preliminary["depth"](feats)
    assert p.shape[-2:] == (8, 12) and coarse.shape[-2:] == (8, 12)
    check_outputs(model, cfg)


def test_return_coarse_off_leaves_final_unchanged():
    model = build_model(tiny_cfg()).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        full = model(x)
        model.return_coarse = False
        lean = model(x)
    assert lean["coarse"] == {} and full["coarse"]
    for t in model.tasks:
        torch.testing.assert_close(lean["final"][t], full["final"][t])
