"""MultiTaskLoss: registry weights, overrides, deep supervision, error messages (mtlsi_core.losses)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mtlsi_core.losses import MultiTaskLoss, build_task_loss
from mtlsi_core.tasks import get_dataset, get_task, task_channels


def _batch(tasks, dataset, size=(8, 10), coarse_size=(4, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    ch = task_channels(tasks, dataset)
    h, w = size
    final = {t: torch.randn(2, c, h, w, generator=g, requires_grad=True) for t, c in ch.items()}
    coarse = {t: torch.randn(2, c, *coarse_size, generator=g, requires_grad=True) for t, c in ch.items()}
    targets = {}
    for t in tasks:
        spec = get_task(t)
        if spec.loss == "cross_entropy":
            y = torch.randint(0, ch[t], (2, h, w), generator=g)
            y[:, 0] = 255
        elif spec.loss == "balanced_ce":
            y = torch.randint(0, 2, (2, h, w), generator=g)
            y[:, 0] = 255
        elif spec.loss == "balanced_bce":
            y = (torch.rand(2, 1, h, w, generator=g) > 0.8).float()
            y[:, :, 0] = 255
        elif spec.loss == "normals_l1":
            y = F.normalize(torch.randn(2, 3, h, w, generator=g), dim=1)
            y[:, :, 0] = 0
        else:
            y = torch.rand(2, 1, h, w, generator=g) * 4 + 0.5
            y[:, :, 0] = 0
        targets[t] = y
    return {"final": final, "coarse": coarse}, targets


@pytest.mark.parametrize("dataset", ["nyud", "pascal"])
def test_total_is_registry_weighted_sum_with_coarse(dataset):
    tasks = list(get_dataset(dataset).tasks)
    outputs, targets = _batch(tasks, dataset)
    crit = MultiTaskLoss(tasks, coarse_weight=0.5)
    total, parts = crit(outputs, targets)
    assert set(parts) == set(tasks) | {f"{t}_coarse" for t in tasks}
    expected = 0.0
    for t in tasks:
        fn = build_task_loss(t)
        final = fn(outputs["final"][t], targets[t])
        coarse = fn(outputs["coarse"][t], targets[t])  # upsampled from 4x5 to 8x10 inside the loss
        assert parts[t].item() == pytest.approx(final.item(), rel=1e-6)
        assert parts[f"{t}_coarse"].item() == pytest.approx(coarse.item(), rel=1e-6)
        expected += get_task(t).weight * (final.item() + 0.5 * coarse.item())
    assert total.item() == pytest.approx(expected, rel=1e-5)
    total.backward()
    for t in tasks:
        assert torch.isfinite(outputs["final"][t].grad).all()
        assert torch.isfinite(outputs["coarse"][t].grad).all()


def test_weight_override_and_no_deep_supervision():
    tasks = ["semseg", "depth"]
    outputs, targets = _batch(tasks, "nyud")
    total, parts = MultiTaskLoss(tasks, weights={"depth": 3.0}, deep_supervision=False)(outputs, targets)
    assert set(parts) == {"semseg", "depth"}
    assert total.item() == pytest.approx(1.0 * parts["semseg"].item() + 3.0 * parts["depth"].item(), rel=1e-6)
    outputs["coarse"] = {}
    total2, parts2 = MultiTaskLoss(tasks)(outputs, targets)
    assert set(parts2) == {"semseg", "depth"}
    assert total2.item() == pytest.approx(parts2["semseg"].item() + parts2["depth"].item(), rel=1e-6)


def test_errors_name_the_problem():
    tasks = ["semseg", "depth"]
    outputs, targets = _batch(tasks, "nyud")
    with pytest.raises(ValueError, match="not among the tasks"):
        MultiTaskLoss(tasks, weights={"sal": 1.0})
    with pytest.raises(ValueError, match=r"targets lack task\(s\) \['depth'\]"):
        MultiTaskLoss(tasks)(outputs, {"semseg": targets["semseg"]})
    with pytest.raises(ValueError, match="'final'"):
        MultiTaskLoss(tasks)(outputs["final"], targets)
    bad = dict(targets)
    bad["semseg"] = targets["semseg"].clone()
    bad["semseg"][0, 1, 1] = 77
    with pytest.raises(ValueError, match="final loss of task 'semseg'.*outside"):
        MultiTaskLoss(tasks)(outputs, bad)
