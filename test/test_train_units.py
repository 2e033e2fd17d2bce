"""Unit tests of the training building blocks: LR schedule, parameter groups, resumable sampler, best rule."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from mtlsi_core.config import TrainConfig
from mtlsi_core.training.optim import build_optimizer, build_scheduler, param_groups, poly_factor
from mtlsi_core.training.sampling import ResumableInfiniteSampler
from mtlsi_core.training.scoring import gain, headline_metrics


def test_poly_factor_matches_formula_and_warmup():
    assert poly_factor(0, 100, 0.9) == 1.0
    assert poly_factor(50, 100, 0.9) == pytest.approx(0.5 ** 0.9)
    assert poly_factor(100, 100, 0.9) == 0.0
    assert poly_factor(150, 100, 0.9) == 0.0
    assert poly_factor(0, 100, 0.9, warmup=10) == pytest.approx(0.1)
    assert poly_factor(9, 100, 0.9, warmup=10) == pytest.approx(1.0)
    assert poly_factor(10, 100, 0.9, warmup=10) == pytest.approx(0.9 ** 0.9)


def test_scheduler_drives_adamw_lr_along_the_poly_curve():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    cfg = TrainConfig(iterations=10, lr=2e-5, poly_power=0.9, weight_decay=0.01)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([2e-5 * (1 - i / 10) ** 0.9 for i in range(10)])


def test_no_weight_decay_on_norms_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    groups = {g["name"]: g for g in param_groups(model, 0.05)}
    assert groups["decay"]["weight_decay"] == 0.05 and groups["no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in groups["decay"]["params"])
    assert {id(p) for p in groups["no_decay"]["params"]} == {
        id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias)}


@pytest.mark.parametrize("world", [1, 2])
def test_sampler_restarted_at_a_position_continues_the_same_stream(world):
    data = list(range(7))
    for rank in range(world):
        full = list(itertools.islice(iter(ResumableInfiniteSampler(data, seed=3, rank=rank, world_size=world)), 40))
        for start in (0, 5, 13):
            resumed = ResumableInfiniteSampler(data, seed=3, rank=rank, world_size=world, start=start)
            assert list(itertools.islice(iter(resumed), 40 - start)) == full[start:]
    # every epoch is a permutation (world 1), and epochs differ
    s = list(itertools.islice(iter(ResumableInfiniteSampler(data, seed=3)), 21))
    epochs = [s[i:i + 7] for i in (0, 7, 14)]
    assert all(sorted(e) == data for e in epochs) and epochs[0] != epochs[1]


def test_sampler_rejects_empty_dataset():
    with pytest.raises(ValueError, match="empty"):
        ResumableInfiniteSampler([], seed=0)


def test_best_rule_gain_signs_follow_the_registry():
    ref = {"semseg": 40.0, "depth": 0.60}
    assert gain({"semseg": 44.0, "depth": 0.60}, ref) == pytest.approx(0.05)  # +10 % mIoU / 2 tasks
    assert gain({"semseg": 40.0, "depth": 0.66}, ref) == pytest.approx(-0.05)  # RMSE up 10 % is worse
    assert gain(ref, ref) == 0.0
    assert gain({"edge": 5.0}, {"edge": 0.0}) > 0  # a zero reference (early odsF) does not break the rule


def test_headline_metrics_reads_the_evaluators_headline_entries():
    res = {"depth": {"rmse": 0.5, "headline": 0.5, "headline_name": "RMSE"}, "edge": {"odsF": 70.0, "headline": 70.0}}
    assert headline_metrics(res, ["edge", "depth"]) == {"edge": 70.0, "depth": 0.5}
    with pytest.raises(KeyError, match="normals"):
        headline_metrics(res, ["normals"])


def test_canonical_focal_must_match_the_dataset_camera(tmp_path):
    """A synthetic set states its camera; a config whose canonical focal length disagrees would make the deployed
    model's metric depth wrong by the ratio, so training refuses it with the value to use."""
    import json as _json

    from mtlsi_core.config import load_config
    from mtlsi_core.training.trainer import TrainingError, check_canonical_focal

    cfg = load_config("synth_edge_lite0")  # canonical_focal 259.43: 240x320 frames
    (tmp_path / "camera.json").write_text(_json.dumps({"K": [[259.43, 0, 160], [0, 259.7, 120], [0, 0, 1]]}))
    check_canonical_focal(cfg, tmp_path)
    (tmp_path / "camera.json").write_text(_json.dumps({"K": [[518.86, 0, 320], [0, 519.5, 240], [0, 0, 1]]}))
    with pytest.raises(TrainingError, match=r"canonical_focal=518\.86"):
        check_canonical_focal(cfg, tmp_path)
