"""The open-choice options of issue 9 (model.refinement, mqlfb.heads / v_conv, distiller hidden / norm, the coarse
loss weight): shapes, gradients really scaled / detached, the residual path, and that the defaults are the model
as it was (the shipped checkpoint loads and gives the outputs recorded before the options existed)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtlsi_core.config import load_config
from mtlsi_core.models import build_model, load_model_from_checkpoint
from mtlsi_core.models.config import ModelConfig
from mtlsi_core.models.distiller import SemanticTokenDistiller
from mtlsi_core.models.layers import scale_grad

REPO = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "configs" / "tiny.yaml"
WEIGHTS = REPO / "mtlsi_core" / "weights" / "synth_edge_lite0.pt"
REFERENCE = Path(__file__).parent / "data" / "synth_edge_lite0_reference_outputs.json"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(*sets: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(load_config(TINY, list(sets)))


def reference_input(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([torch.sin(3 * xx + yy), torch.cos(2 * yy - xx), xx * yy * 2], 0)[None]


def test_shipped_weights_load_and_give_the_recorded_outputs():
    """Outputs recorded from the shipped file with the code before the options were added (defaults = that code)."""
    ref = json.loads(REFERENCE.read_text())["outputs"]
    model, cfg = load_model_from_checkpoint(WEIGHTS)
    assert cfg.model.refinement.prelim_grad == 1.0 and not cfg.model.refinement.coarse_residual
    assert cfg.model.mqlfb.v_conv == 0 and cfg.model.distiller.norm == "batch"
    with torch.no_grad():
        out = model(reference_input(*cfg.data.input_size))
    for key, r in ref.items():
        kind, task = key.split("/")
        v = out[kind][task].double()
        assert list(v.shape) == r["shape"]
        assert float(v.sum()) == pytest.approx(r["sum"], rel=1e-5, abs=1e-3), key
        assert float(v.abs().sum()) == pytest.approx(r["abs_sum"], rel=1e-5), key
        torch.testing.assert_close(v[0, :, ::37, ::41].flatten()[:64].float(), torch.tensor(r["samples"]),
                                   rtol=1e-4, atol=1e-4)


def test_scale_grad_is_identity_forward_and_scales_backward():
    x = torch.randn(5, 3, requires_grad=True)
    for s in (1.0, 0.25, 0.0):
        x.grad = None
        y = scale_grad(x, s)
        assert torch.equal(y, x)
        (y * 3.0 + x).sum().backward()  # + x: a path that always reaches x
        torch.testing.assert_close(x.grad, torch.full_like(x, 3.0 * s + 1.0))


def _prelim_grad_from_interaction(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient on semseg's preliminary decoder from the other tasks' final outputs only (the path through F_t),
    and the forward output, for a given model.refinement.prelim_grad."""
    model = tiny_model(f"model.refinement.prelim_grad={scale}").train()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    out = model(x)
    loss = sum(out["final"][t].pow(2).mean() for t in ("depth", "normals", "edge"))
    loss.backward()
    g = torch.cat([p.grad.flatten() for p in model.preliminary["semseg"].parameters() if p.grad is not None]
                  or [torch.zeros(1)])
    return g, out["final"]["depth"].detach()


def test_prelim_grad_detaches_and_scales_the_path_through_F_t():
    full, y_full = _prelim_grad_from_interaction(1.0)
    half, y_half = _prelim_grad_from_interaction(0.5)
    none, y_none = _prelim_grad_from_interaction(0.0)
    assert full.norm() > 0  # today's graph: the other tasks push semseg's preliminary decoder
    torch.testing.assert_close(half, 0.5 * full, rtol=1e-4, atol=1e-7)
    assert float(none.abs().max()) == 0.0
    assert torch.equal(y_full, y_half) and torch.equal(y_full, y_none)  # same forward pass


def test_prelim_grad_keeps_the_own_losses_gradient():
    model = tiny_model("model.refinement.prelim_grad=0.0").train()
    out = model(torch.randn(2, 3, 64, 96))
    (out["final"]["semseg"].pow(2).mean() + out["coarse"]["semseg"].pow(2).mean()).backward()
    assert model.preliminary["semseg"].head.weight.grad.abs().sum() > 0  # via the CWIB's P_t and the coarse loss


def test_coarse_residual_adds_the_coarse_prediction():
    torch.manual_seed(0)
    cfg = load_config(TINY, ["model.refinement.coarse_residual=true"])
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
        model.residual_tasks = frozenset()
        plain = model(x)
    for t in out["final"]:
        torch.testing.assert_close(out["final"][t], plain["final"][t] + out["coarse"][t], rtol=1e-5, atol=1e-5)


def test_coarse_residual_per_task():
    torch.manual_seed(0)
    full = build_model(load_config(TINY, ["model.refinement.coarse_residual=true"])).eval()
    torch.manual_seed(0)
    some = build_model(load_config(TINY, ["model.refinement.coarse_residual=[semseg]"])).eval()
    assert some.residual_tasks == {"semseg"} and full.residual_tasks == set(full.tasks)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = full(x), some(x)
    torch.testing.assert_close(a["final"]["semseg"], b["final"]["semseg"])  # same weights, same residual
    for t in full.tasks:
        if t != "semseg":  # the others without it: the full model's output minus the coarse one
            torch.testing.assert_close(b["final"][t], a["final"][t] - a["coarse"][t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("value, match", [("[semseg, semseg]", "twice"), ("[sal]", r"not among data.tasks")])
def test_coarse_residual_task_list_is_checked(value, match):
    with pytest.raises(Exception, match=match):
        load_config(TINY, [f"model.refinement.coarse_residual={value}"])


def test_refinement_options_are_rejected_for_the_pd_baseline():
    with pytest.raises(Exception, match="model.refinement applies only"):
        load_config(TINY, ["model.interaction=none", "model.refinement.coarse_residual=true"])
    load_config(TINY, ["model.interaction=none"])  # the defaults are fine


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_mqlfb_heads_shapes_and_effect(heads):
    base = ModelConfig.model_validate({"backbone": {"name": "efficientnet_lite0"}, "embed_dim": 32})
    from mtlsi_core.models.interaction import build_interaction

    torch.manual_seed(0)
    one = build_interaction(base, 3).eval()
    cfg = base.model_copy(update={"mqlfb": base.mqlfb.model_copy(update={"heads": heads})})
    many = build_interaction(cfg, 3).eval()
    many.load_state_dict(one.state_dict())  # heads change no parameter shape
    feats = [torch.randn(2, 32, 8, 12) for _ in range(3)]
    with torch.no_grad():
        a, b = one(feats), many(feats)
    assert b.shape == (2, 3 * 4 * 6, 32)
    assert torch.equal(a, b) if heads == 1 else not torch.allclose(a, b, atol=1e-4)


def test_v_conv_is_a_local_signal_on_each_task_map():
    base = ModelConfig.model_validate({"backbone": {"name": "efficientnet_lite0"}, "embed_dim": 16,
                                       "mqlfb": {"v_conv": 3}})
    from mtlsi_core.models.interaction import build_interaction

    torch.manual_seed(0)
    block = build_interaction(base, 2).eval()
    assert block.v_conv.weight.shape == (16, 1, 3, 3)
    v = torch.zeros(1, 2 * 4 * 6, 16)
    v[0, 4 * 6 + 2 * 6 + 3] = 1.0  # one token of task 1 at (2, 3)
    with torch.no_grad():
        lv = block.local_v(v, 4, 6) - block.v_conv.bias
    hit = lv.abs().sum(-1)[0].reshape(2, 4, 6)
    assert hit[0].sum() == 0  # nothing leaks into task 0's map
    assert set(map(tuple, hit[1].nonzero().tolist())) <= {(i, j) for i in (1, 2, 3) for j in (2, 3, 4)}
    with pytest.raises(Exception, match="odd kernel"):
        ModelConfig.model_validate({"backbone": {"name": "efficientnet_lite0"}, "mqlfb": {"v_conv": 2}})
    # and the full model trains with it
    model = tiny_model("model.mqlfb.v_conv=3").train()
    out = model(torch.randn(2, 3, 64, 96))
    out["final"]["depth"].mean().backward()
    assert model.interaction.v_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("norm, kind", [("batch", torch.nn.BatchNorm1d), ("layer", torch.nn.Module),
                                        ("none", torch.nn.Identity)])
def test_distiller_norm_and_width(norm, kind):
    dist = SemanticTokenDistiller(16, 5, hidden=24, norm=norm)
    assert isinstance(dist.assign[0], kind) and dist.assign[1].out_channels == 24
    tokens = torch.randn(2, 30, 16)
    a = dist.assignment(tokens)
    assert a.shape == (2, 5, 30)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 5))  # the paper's softmax over the N tokens stays
    assert dist(tokens).shape == (2, 5, 16)
    if norm == "layer":  # per-token: each token normalised on its own, independent of the batch
        torch.testing.assert_close(dist.assignment(tokens[:1]), a[:1])


def test_coarse_loss_weight_scales_the_coarse_terms():
    from mtlsi_core.losses import MultiTaskLoss

    torch.manual_seed(0)
    out = {"final": {"depth": torch.rand(1, 1, 8, 8)}, "coarse": {"depth": torch.rand(1, 1, 8, 8)}}
    target = {"depth": torch.rand(1, 1, 8, 8) + 0.5}
    t1, parts = MultiTaskLoss(["depth"], coarse_weight=1.0)(out, target)
    t3, _ = MultiTaskLoss(["depth"], coarse_weight=3.0)(out, target)
    w = MultiTaskLoss(["depth"]).weights["depth"]
    torch.testing.assert_close(t3 - t1, 2.0 * w * parts["depth_coarse"])
    cfg = load_config(TINY, ["train.coarse_loss_weight=0.5"])
    assert cfg.train.coarse_loss_weight == 0.5
