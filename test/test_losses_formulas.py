"""Task losses against values worked out by hand on tiny tensors (mtlsi_core.losses)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtlsi_core.losses import (LOSSES, BalancedBCELoss, BalancedCELoss, CrossEntropyLoss, MaskedL1Loss,
                               NormalsL1Loss, build_task_loss)
from mtlsi_core.tasks import TASKS

LN2 = math.log(2.0)


def test_registry_names_match_losses():
    assert set(LOSSES) == {spec.loss for spec in TASKS.values()}
    for name in TASKS:
        build_task_loss(name)  # registry kwargs are accepted


def test_cross_entropy_by_hand():
    # 3 pixels, 2 classes: logits (0, 0) label 0 -> ln 2; (ln 3, 0) label 0 -> -ln(3/4); third pixel ignored.
    logits = torch.tensor([[0.0, math.log(3.0), 5.0], [0.0, 0.0, -5.0]]).reshape(1, 2, 1, 3)
    target = torch.tensor([[[0, 0, 255]]])
    expected = (LN2 + math.log(4.0 / 3.0)) / 2
    assert CrossEntropyLoss(255)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_masked_l1_by_hand():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    target = torch.tensor([[0.0, 1.0], [5.0, 4.5]]).reshape(1, 1, 2, 2)
    # label 0 is invalid: |2 - 1| + |3 - 5| + |4 - 4.5| = 3.5 over 3 pixels
    assert MaskedL1Loss(0.0)(pred, target).item() == pytest.approx(3.5 / 3, rel=1e-6)
    # (B, H, W) targets are accepted for the single channel
    assert MaskedL1Loss(0.0)(pred, target[:, 0]).item() == pytest.approx(3.5 / 3, rel=1e-6)


def test_normals_l1_normalises_prediction_by_hand():
    pred = torch.tensor([[3.0, 1.0], [0.0, 1.0], [4.0, 1.0]]).reshape(1, 3, 1, 2)
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    # pixel 0: (3, 0, 4) -> (0.6, 0, 0.8); |0.6 - 1| + 0 + |0.8 - 0| = 1.2; pixel 1: zero label -> invalid
    assert NormalsL1Loss()(pred, target).item() == pytest.approx(1.2, rel=1e-6)


def test_balanced_bce_by_hand():
    w = 0.95
    x = torch.tensor([0.0, 0.0, math.log(3.0), math.log(3.0), 7.0]).reshape(1, 1, 1, 5)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 255.0]).reshape(1, 1, 1, 5)
    # -[w y log s(x) + (1-w)(1-y) log(1-s(x))]: x = 0 -> s = 1/2; x = ln 3 -> s = 3/4
    terms = [w * LN2, (1 - w) * LN2, w * math.log(4 / 3), (1 - w) * math.log(4)]
    assert BalancedBCELoss(w, 255)(x, y).item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_balanced_bce_equals_invpt_pos_weight_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 5, 6, generator=g) * 3
    y = (torch.rand(2, 1, 5, 6, generator=g) > 0.8).float()
    y[0, 0, 0, :3] = 255
    w = 0.95
    valid = y != 255
    ref = F.binary_cross_entropy_with_logits(x[valid], y[valid], pos_weight=torch.tensor(w / (1 - w))) * (1 - w)
    assert BalancedBCELoss(w, 255)(x, y).item() == pytest.approx(ref.item(), rel=1e-5)


def test_balanced_bce_adaptive_weight_by_hand():
    # pos_weight=None: w = #neg / #valid = 3/4
    x = torch.zeros(1, 1, 1, 4)
    y = torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 1, 4)
    expected = (0.75 * LN2 + 3 * 0.25 * LN2) / 4
    assert BalancedBCELoss(None)(x, y).item() == pytest.approx(expected, rel=1e-6)


def test_balanced_ce_by_hand():
    # labels 1, 0, 0, ignore: w_pos = #neg / #valid = 2/3, class weights (1/3, 2/3); zero logits -> nll ln 2
    logits = torch.zeros(1, 2, 1, 4)
    target = torch.tensor([[[1, 0, 0, 255]]])
    expected = (2 / 3 * LN2 + 1 / 3 * LN2 + 1 / 3 * LN2) / 3
    assert BalancedCELoss(255)(logits, target).item() == pytest.approx(expected, rel=1e-6)


CASES = {
    "cross_entropy": (lambda: torch.randn(2, 4, 6, 6), lambda: torch.full((2, 6, 6), 255, dtype=torch.long)),
    "masked_l1": (lambda: torch.randn(2, 1, 6, 6), lambda: torch.zeros(2, 1, 6, 6)),
    "normals_l1": (lambda: torch.randn(2, 3, 6, 6), lambda: torch.zeros(2, 3, 6, 6)),
    "balanced_bce": (lambda: torch.randn(2, 1, 6, 6), lambda: torch.full((2, 1, 6, 6), 255.0)),
    "balanced_ce": (lambda: torch.randn(2, 2, 6, 6), lambda: torch.full((2, 6, 6), 255, dtype=torch.long)),
}
KWARGS = {spec.loss: dict(spec.loss_kwargs) for spec in TASKS.values()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_valid_pixel_gives_zero_with_gradient(name):
    make_out, make_target = CASES[name]
    out = make_out().requires_grad_(True)
    loss = LOSSES[name](**KWARGS[name])(out, make_target())
    assert loss.item() == 0.0
    loss.backward()
    assert out.grad is not None and torch.all(out.grad == 0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_finite_and_autocast_fp32(name):
    make_out, _ = CASES[name]
    torch.manual_seed(1)
    out = (make_out() * 3).requires_grad_(True)
    c = out.shape[1]
    if name in ("cross_entropy", "balanced_ce"):
        target = torch.randint(0, c, (2, 6, 6))
        target[0, 0] = 255
    elif name == "balanced_bce":
        target = (torch.rand(2, 1, 6, 6) > 0.7).float()
        target[0, 0, 0] = 255
    elif name == "normals_l1":
        target = F.normalize(torch.randn(2, 3, 6, 6), dim=1)
        target[0, :, 0] = 0
    else:
        target = torch.rand(2, 1, 6, 6) * 5
        target[0, 0, 0] = 0
    loss_fn = LOSSES[name](**KWARGS[name])
    ref = loss_fn(out, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss_fn(out.to(torch.bfloat16), target)
    assert ref.dtype == torch.float32 and low.dtype == torch.float32
    assert low.item() == pytest.approx(ref.item(), rel=0.05)
    ref.backward()
    assert torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


def test_smaller_output_is_upsampled_bilinearly():
    out = torch.full((1, 1, 2, 2), 3.0)
    target = torch.full((1, 1, 8, 8), 1.0)
    assert MaskedL1Loss()(out, target).item() == pytest.approx(2.0)
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 8, 8))
    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False)
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(F.cross_entropy(up, target).item(), rel=1e-6)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="outside"):
        CrossEntropyLoss()(torch.randn(1, 3, 2, 2), torch.tensor([[[0, 1], [7, 255]]]))
    with pytest.raises(ValueError, match="saliency target"):
        BalancedCELoss()(torch.randn(1, 2, 2, 2), torch.tensor([[[0, 1], [2, 255]]]))
    with pytest.raises(ValueError, match="edge target"):
        BalancedBCELoss()(torch.randn(1, 1, 2, 2), torch.tensor([[[[0.0, 2.0], [1.0, 255.0]]]]))
    with pytest.raises(ValueError, match="3 output channel"):
        NormalsL1Loss()(torch.randn(1, 2, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="expected target"):
        MaskedL1Loss()(torch.randn(1, 1, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="pos_weight"):
        BalancedBCELoss(1.5)
