"""Sim-to-real with real unlabelled photos (issue 20): Fourier domain adaptation (FDA) as a training augmentation,
BatchNorm statistics re-estimated on photos (AdaBN, ``mtlsi-adapt bn``), and fine-tuning from a checkpoint or
packaged model (``train.init_from``). Photos and datasets are tiny ones made here, in tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mtlsi_core.adaptation.batchnorm import batchnorm_layers, reestimate_bn
from mtlsi_core.adaptation.cli import main as adapt_main
from mtlsi_core.adaptation.fourier import FourierStyle, band_half_width, fourier_style, low_band_mask
from mtlsi_core.checkpoint import (CheckpointError, load_checkpoint, make_checkpoint, packaged_model,
                                   resolve_checkpoint)
from mtlsi_core.config import ConfigError, load_config, packaged_config_names
from mtlsi_core.data import DatasetError, PhotoFolder, build_dataset
from mtlsi_core.data.transforms import TrainTransform
from mtlsi_core.models import build_model, load_model_from_checkpoint
from mtlsi_core.training.trainer import Trainer
from synth_helpers import scene

TINY = Path(__file__).parent / "configs" / "tiny.yaml"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
QUIET = ["train.eval_every=1000", "train.checkpoint_every=1000", "train.log_every=1"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_photos(root: Path, n: int = 6, size=(40, 56), seed: int = 0, bright: bool = True) -> Path:
    """``n`` noisy, warm, bright photos (unlike the synthetic images below) in two class folders."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.normal((220, 170, 110) if bright else (60, 60, 60), 25, size + (3,)).clip(0, 255).astype(np.uint8)
        path = root / ("kitchen" if i % 2 else "bedroom") / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return root


def write_nyud(root: Path, n: int = 3, size=(48, 64)) -> Path:
    """A minimal NYUD-MT folder (every frame in train and val) with ``scene`` frames."""
    for sub in ("images", "depth", "normals", "edge", "segmentation", "gt_sets"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"{i:04d}" for i in range(n)]
    for i, name in enumerate(ids):
        img, gt = scene(*size, seed=i)
        cv2.imwrite(str(root / "images" / f"{name}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        np.save(root / "depth" / f"{name}.npy", gt["depth"])
        np.save(root / "normals" / f"{name}.npy", gt["normals"])
        np.save(root / "edge" / f"{name}.npy", gt["edge"])
        cv2.imwrite(str(root / "segmentation" / f"{name}.png"), gt["semseg"] + 1)
    for split in ("train", "val"):
        (root / "gt_sets" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


class Photos:
    """A PhotoSource in memory."""

    def __init__(self, images):
        self.images = list(images)

    def __len__(self):
        return len(self.images)

    def image(self, index):
        return self.images[index]


# --------------------------------------------------------------------------------------------------
# Fourier domain adaptation
# --------------------------------------------------------------------------------------------------


def test_beta_zero_is_the_identity():
    img, _ = scene()
    tgt = np.full((30, 30, 3), 250, np.uint8)
    out = fourier_style(img, tgt, 0.0)
    assert out.dtype == np.uint8 and np.array_equal(out, img) and out is not img
    f = img.astype(np.float32) / 255
    assert np.array_equal(fourier_style(f, tgt, 0.0), f)
    assert np.array_equal(fourier_style(img, tgt, (0.0, 0.0), np.random.default_rng(0)), img)


def test_keeps_the_phase_and_changes_only_the_low_band():
    rng = np.random.default_rng(0)
    src = rng.random((48, 64, 3))
    tgt = rng.random((48, 64, 3)) * 0.5 + 0.4
    beta = 0.1
    out = fourier_style(src, tgt, beta)
    assert out.dtype == np.float32 and out.shape == src.shape
    fs, ft, fo = (np.fft.rfft2(x.astype(np.float64), axes=(0, 1)) for x in (src, tgt, out))
    mask = low_band_mask((48, 64), beta)
    b = band_half_width((48, 64), beta)
    assert b == 4 and mask.sum() == (2 * b + 1) * (b + 1)  # |fy| <= 4 (9 rows) x fx 0..4 (5 columns)
    scale = np.abs(fs).max()
    # outside the band: the source's spectrum, untouched
    assert np.abs(fo[~mask] - fs[~mask]).max() < 1e-4 * scale
    # inside: the photo's amplitude with the source's phase
    assert np.allclose(np.abs(fo[mask]), np.abs(ft[mask]), atol=1e-4 * scale)
    assert np.allclose(fo[mask] / np.abs(fo[mask]), fs[mask] / np.abs(fs[mask]), atol=1e-4)
    # the mean colour (the DC term) is the photo's
    assert np.allclose(out.mean((0, 1)), tgt.mean((0, 1)), atol=1e-5)


def test_photo_of_another_size_and_uint8_range():
    img, _ = scene()
    tgt = np.zeros((120, 90, 3), np.uint8)
    tgt[:] = (230, 180, 90)
    out = fourier_style(img, tgt, 0.05)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.reshape(-1, 3).mean(0) - (230, 180, 90)).max() < 3  # the photo's colour ...
    hi = img.astype(float) - cv2.GaussianBlur(img.astype(float), (0, 0), 3)
    hi_out = out.astype(float) - cv2.GaussianBlur(out.astype(float), (0, 0), 3)
    assert np.corrcoef(hi.ravel(), hi_out.ravel())[0, 1] > 0.9  # ... on the source's edges and texture
    with pytest.raises(ValueError, match="beta 0.7 must be in"):
        fourier_style(img, tgt, 0.7)
    with pytest.raises(ValueError, match="needs a random generator"):
        fourier_style(img, tgt, (0.01, 0.05))
    with pytest.raises(ValueError, match=r"tgt must be an \(H, W, 3\) image"):
        fourier_style(img, tgt[:, :, 0], 0.05)


def test_fourier_style_augment_is_deterministic_given_the_generator():
    img, _ = scene()
    photos = Photos([np.full((32, 32, 3), c, np.uint8) for c in (20, 120, 240)])
    fs = FourierStyle(1.0, (0.01, 0.05), photos)
    a = fs(img, np.random.default_rng(5))
    assert np.array_equal(a, fs(img, np.random.default_rng(5)))
    assert not np.array_equal(a, img)
    assert any(not np.array_equal(a, fs(img, np.random.default_rng(s))) for s in range(6, 10))
    off, r1, r2 = FourierStyle(0.0, (0.01, 0.05), photos), np.random.default_rng(3), np.random.default_rng(3)
    assert off(img, r1) is img and off.draw(r1) is None
    assert r1.random() == r2.random()  # p = 0 draws nothing: the training stream is unchanged
    with pytest.raises(ValueError, match="beta range"):
        FourierStyle(0.5, (0.2, 0.1), photos)


def test_in_the_training_transform_only_the_image_changes(tmp_path):
    photos = PhotoFolder(write_photos(tmp_path / "photos"))
    cfg = load_config(TINY, ["data.augment.fourier_style.p=1.0", f"data.target_photos={tmp_path / 'photos'}",
                             "data.augment.hflip=false"])
    tf = TrainTransform.from_config(cfg.data, style_photos=photos)
    plain = TrainTransform.from_config(load_config(TINY, ["data.augment.hflip=false"]).data)
    assert tf.fourier is not None and tf.fourier.p == 1.0 and plain.fourier is None
    img, gt = scene()
    ref_img, ref_gt, _ = plain(img.copy(), {k: v.copy() for k, v in gt.items()}, np.random.default_rng(5))
    out_img, out_gt, _ = tf(img.copy(), {k: v.copy() for k, v in gt.items()}, np.random.default_rng(5))
    again, _, _ = tf(img.copy(), {k: v.copy() for k, v in gt.items()}, np.random.default_rng(5))
    assert np.array_equal(out_img, again) and not np.array_equal(out_img, ref_img)
    for t in gt:
        assert np.array_equal(out_gt[t], ref_gt[t]), t
    # the photos are warm and bright: so is the restyled image (normalised colour means go up in red)
    assert out_img[..., 0].mean() > ref_img[..., 0].mean() + 0.5
    with pytest.raises(ValueError, match="needs the photos of data.target_photos"):
        TrainTransform.from_config(cfg.data)


def test_build_dataset_draws_the_style_from_target_photos(tmp_path):
    root = write_nyud(tmp_path / "nyud")
    write_photos(tmp_path / "photos")
    on = ["data.augment.fourier_style.p=1.0", "data.augment.fourier_style.beta=[0.02, 0.04]"]
    cfg = load_config(TINY, [*on, f"data.target_photos={tmp_path / 'photos'}"])
    ds = build_dataset(cfg, "train", root=str(root))
    assert isinstance(ds.transform.fourier.photos, PhotoFolder) and len(ds.transform.fourier.photos) == 6
    plain = build_dataset(load_config(TINY), "train", root=str(root))
    torch.manual_seed(0)
    a = ds[0]
    torch.manual_seed(0)
    b = plain[0]
    assert not torch.equal(a["image"], b["image"])
    assert all(torch.equal(a[t], b[t]) for t in cfg.data.tasks)
    assert build_dataset(cfg, "val", root=str(root)).transform.random is False  # evaluation: never restyled
    missing = load_config(TINY, [*on, f"data.target_photos={tmp_path / 'nope'}"])
    with pytest.raises(DatasetError, match=f"photo folder not found: {tmp_path / 'nope'}"):
        build_dataset(missing, "train", root=str(root))


@pytest.mark.parametrize("overrides, message", [
    (["data.augment.fourier_style.gamma=1"], r"data\.augment\.fourier_style\.gamma: unknown key"),
    (["data.augment.fourier_style.p=0.5"], r"fourier_style\.p = 0\.5 needs data\.target_photos"),
    (["data.augment.fourier_style.p=1.5", "data.target_photos=x"], r"data\.augment\.fourier_style\.p"),
    (["data.augment.fourier_style.beta=[0.1, 0.6]"], r"data\.augment\.fourier_style\.beta"),
    (["data.augment.fourier_style.beta=[0.05, 0.01]"], r"data\.augment\.fourier_style\.beta"),
    (["data.target_photo=x"], r"data\.target_photo: unknown key"),
    (["train.init_form=x"], r"train\.init_form: unknown key"),
])
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TINY, overrides)


@pytest.mark.parametrize("name", packaged_config_names())
def test_packaged_configs_have_it_all_off(name):
    cfg = load_config(name)
    assert cfg.data.augment.fourier_style.p == 0 and cfg.data.target_photos is None and cfg.train.init_from is None
    assert TrainTransform.from_config(cfg.data).fourier is None


# --------------------------------------------------------------------------------------------------
# AdaBN
# --------------------------------------------------------------------------------------------------


def tiny_model(*overrides: str):
    torch.manual_seed(0)
    cfg = load_config(TINY, list(overrides))
    return build_model(cfg), cfg


def running(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}


def photo_batch(tmp_path: Path, cfg) -> torch.Tensor:
    ds = PhotoFolder.from_config(cfg.data, write_photos(tmp_path / "photos"))
    return torch.stack([ds[i]["image"] for i in range(len(ds))])


def test_reestimate_bn_gives_the_photos_statistics_even_with_freeze_bn(tmp_path):
    model, cfg = tiny_model("model.backbone.freeze_bn=true")
    bb = model.backbone
    x = photo_batch(tmp_path, cfg)
    before = running(model)
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    model.train()  # as during training: freeze_bn keeps the backbone's norms in eval mode
    flags = {n: m.training for n, m in model.named_modules()}
    momenta = {n: m.momentum for n, m in batchnorm_layers(model, "all").items()}
    report = reestimate_bn(model, [x[:3], {"image": x[3:]}], modules="backbone")
    assert report.images == 6 and report.batches == 2 and report.layers == tuple(batchnorm_layers(model))
    assert all(n.startswith("backbone.") for n in report.layers)
    # the stem's BatchNorm sees the stem convolution of the photos: its statistics are theirs (two equal batches:
    # the cumulative average of the batch means is the mean over all photos)
    stem_bn = bb.stem[1]
    with torch.no_grad():
        y = bb.stem[0](x)
    assert torch.allclose(stem_bn.running_mean, y.mean((0, 2, 3)), atol=1e-5)
    var = 0.5 * (y[:3].var((0, 2, 3)) + y[3:].var((0, 2, 3)))  # the mean of the batches' unbiased variances
    assert torch.allclose(stem_bn.running_var, var, rtol=1e-4)
    after = running(model)
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert {k for k in changed if "running_mean" in k} == {k for k in after if k.startswith("backbone.")
                                                            and "running_mean" in k}
    assert all(k.startswith("backbone.") for k in changed)
    assert all(torch.equal(p, params[k]) for k, p in model.named_parameters())
    assert {n: m.training for n, m in model.named_modules()} == flags
    assert {n: m.momentum for n, m in batchnorm_layers(model, "all").items()} == momenta
    # frozen norms keep the re-estimated statistics through training steps
    model(torch.randn(2, 3, 64, 96))
    assert all(torch.equal(v, after[f"backbone.{k}"]) for k, v in running(bb).items())


def test_reestimate_bn_head_all_and_errors(tmp_path):
    model, cfg = tiny_model("model.backbone.freeze_bn=true")
    x = photo_batch(tmp_path, cfg)
    before = running(model)
    report = reestimate_bn(model, [x], modules="head")
    head = running(model)
    assert report.layers and not any(n.startswith("backbone.") for n in report.layers)
    assert set(report.layers) | set(batchnorm_layers(model, "backbone")) == set(batchnorm_layers(model, "all"))
    changed = {k for k in head if not torch.equal(head[k], before[k])}
    assert changed and not any(k.startswith("backbone.") for k in changed)  # the backbone keeps its statistics
    report = reestimate_bn(model, [x], modules="all")
    after = running(model)
    assert len(report.layers) == len(batchnorm_layers(model, "all")) > len(batchnorm_layers(model, "backbone"))
    assert any(k.startswith("backbone.") and not torch.equal(after[k], before[k]) for k in after)
    with pytest.raises(ValueError, match="no images"):
        reestimate_bn(model, [], modules="backbone")
    assert all(torch.equal(v, after[k]) for k, v in running(model).items())  # a failed pass changes nothing
    with pytest.raises(ValueError, match="modules must be one of backbone, head, all"):
        reestimate_bn(model, [x], modules="decoders")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no backbone submodule"):
        reestimate_bn(torch.nn.Sequential(torch.nn.BatchNorm2d(3)), [x])


def test_mtlsi_adapt_bn_writes_a_checkpoint_that_loads_with_the_new_statistics(tmp_path, capsys):
    model, cfg = tiny_model("model.backbone.freeze_bn=true")
    src = tmp_path / "in.pt"
    torch.save(make_checkpoint(model.state_dict(), cfg.to_dict(), {"kind": "best", "iteration": 7}), src)
    photos = write_photos(tmp_path / "photos")
    out = tmp_path / "out" / "adapted.pt"
    rc = adapt_main(["bn", "--checkpoint", str(src), "--photos", str(photos), "--out", str(out), "--batch-size", "3",
                     "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert f"wrote {out}" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt["config"] == cfg.to_dict() and "optimizer" not in ckpt
    assert ckpt["meta"]["kind"] == "best" and ckpt["meta"]["adapted_from"] == str(src)
    rec = ckpt["meta"]["adaptation"][-1]
    assert {k: rec[k] for k in ("method", "photos", "images", "modules", "batch_size")} == {
        "method": "adabn", "photos": str(photos), "images": 6, "modules": "backbone", "batch_size": 3}
    assert rec["layers"] == len(batchnorm_layers(model)) and json.dumps(rec)
    loaded, _ = load_model_from_checkpoint(out)
    x = photo_batch(tmp_path / "again", cfg)
    with torch.no_grad():
        y = loaded.backbone.stem[0](x)
    assert torch.allclose(loaded.backbone.stem[1].running_mean, y.mean((0, 2, 3)), atol=1e-5)
    stats = running(loaded)
    original = running(model)
    assert all(torch.equal(stats[k], ckpt["model"][k]) for k in stats)
    assert not torch.equal(stats["backbone.stem.1.running_mean"], original["backbone.stem.1.running_mean"])
    assert all(torch.equal(stats[k], original[k]) for k in stats if not k.startswith("backbone."))
    assert all(torch.equal(p, model.state_dict()[k]) for k, p in loaded.state_dict().items() if k not in stats)
    loaded.train()
    loaded(torch.randn(2, 3, 64, 96))
    assert all(torch.equal(v, stats[k]) for k, v in running(loaded).items() if k.startswith("backbone."))


def test_mtlsi_adapt_errors_name_the_input(tmp_path, capsys):
    model, cfg = tiny_model()
    src = tmp_path / "in.pt"
    torch.save(make_checkpoint(model.state_dict(), cfg.to_dict()), src)
    photos = write_photos(tmp_path / "photos", n=2)
    cases = [
        (["--checkpoint", str(src), "--photos", str(tmp_path / "nope"), "--out", str(tmp_path / "o.pt")],
         f"photo folder not found: {tmp_path / 'nope'}"),
        (["--checkpoint", str(tmp_path / "missing.pt"), "--photos", str(photos), "--out", str(tmp_path / "o.pt")],
         f"checkpoint '{tmp_path / 'missing.pt'}' not found"),
        (["--checkpoint", str(src), "--photos", str(photos), "--out", str(src)], "is the input checkpoint"),
    ]
    for args, message in cases:
        assert adapt_main(["bn", *args, "--no-progress"]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()


# --------------------------------------------------------------------------------------------------
# train.init_from
# --------------------------------------------------------------------------------------------------


def test_packaged_names_resolve(tmp_path):
    assert resolve_checkpoint("synth_transfer_lite0") == packaged_model("synth_transfer_lite0")
    with pytest.raises(CheckpointError, match="'no_such_model' not found: .*synth_transfer_lite0"):
        resolve_checkpoint("no_such_model")


def test_init_from_loads_the_weights_only_and_resume_wins(tmp_path):
    root = write_nyud(tmp_path / "nyud", n=2)
    source, cfg = tiny_model("model.backbone.freeze_bn=true")
    with torch.no_grad():
        for m in batchnorm_layers(source, "all").values():
            m.running_mean.uniform_(-1, 1)  # statistics too, as an AdaBN checkpoint has them
    ckpt = tmp_path / "adapted.pt"
    torch.save(make_checkpoint(source.state_dict(), cfg.to_dict()), ckpt)
    cfg = load_config(TINY, [*QUIET, "model.backbone.freeze_bn=true", f"train.init_from={ckpt}",
                             "train.iterations=3"])
    kw = dict(data_root=root, eval_max_frames=1, progress=False)
    tr = Trainer(cfg, output_dir=tmp_path / "run", **kw)
    assert tr.initialised_from == ckpt and tr.iteration == 0
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in tr.model.state_dict().items())
    assert tr.optimizer.state_dict()["state"] == {} and tr.scheduler.last_epoch == 0
    fresh = Trainer(load_config(TINY, QUIET), output_dir=tmp_path / "fresh", **kw)
    assert fresh.initialised_from is None
    assert not torch.equal(fresh.model.state_dict()["backbone.stem.1.running_mean"],
                           source.state_dict()["backbone.stem.1.running_mean"])
    res = Trainer(cfg, output_dir=tmp_path / "run2", max_iterations=1, **kw).train()
    assert res.iteration == 1
    last = load_checkpoint(tmp_path / "run2" / "last.pt")
    assert last["config"]["train"]["init_from"] == str(ckpt)
    # frozen norms: the initial statistics survive the training step
    key = "backbone.stem.1.running_mean"
    assert torch.equal(last["model"][key], source.state_dict()[key])
    # resuming: the run's own weights, not init_from's (which is not even read)
    gone = load_config(TINY, [*QUIET, "model.backbone.freeze_bn=true", f"train.init_from={tmp_path / 'gone.pt'}",
                              "train.iterations=3"])
    resumed = Trainer(gone, output_dir=tmp_path / "run2", resume="auto", **kw)
    assert resumed.initialised_from is None and resumed.iteration == 1
    assert all(torch.equal(v, last["model"][k]) for k, v in resumed.model.state_dict().items())


def test_init_from_takes_a_wrapped_checkpoint_as_the_runtimes_do(tmp_path):
    """A state dict saved from a DDP / torch.compile wrapper (every key prefixed) loads, as in the runtimes."""
    root = write_nyud(tmp_path / "nyud", n=1)
    source, cfg = tiny_model()
    ckpt = tmp_path / "ddp.pt"
    torch.save(make_checkpoint({f"module.{k}": v for k, v in source.state_dict().items()}, cfg.to_dict()), ckpt)
    load_model_from_checkpoint(ckpt)  # the runtimes' loader takes it
    tr = Trainer(load_config(TINY, [*QUIET, f"train.init_from={ckpt}"]), output_dir=tmp_path / "run", data_root=root,
                 progress=False)
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in tr.model.state_dict().items())


def test_init_from_errors_name_the_file(tmp_path):
    root = write_nyud(tmp_path / "nyud", n=1)
    other, other_cfg = tiny_model("data.tasks=[semseg,depth]")
    ckpt = tmp_path / "two_tasks.pt"
    torch.save(make_checkpoint(other.state_dict(), other_cfg.to_dict()), ckpt)
    kw = dict(data_root=root, progress=False)
    with pytest.raises(CheckpointError, match=f"weights of {ckpt} do not fit the model of config 'tiny': .* missing"):
        Trainer(load_config(TINY, [f"train.init_from={ckpt}"]), output_dir=tmp_path / "a", **kw)
    with pytest.raises(CheckpointError, match=f"'{tmp_path / 'nope.pt'}' not found"):
        Trainer(load_config(TINY, [f"train.init_from={tmp_path / 'nope.pt'}"]), output_dir=tmp_path / "b", **kw)
    with pytest.raises(CheckpointError, match="synth_transfer_lite0.pt do not fit the model of config 'tiny'"):
        Trainer(load_config(TINY, ["train.init_from=synth_transfer_lite0"]), output_dir=tmp_path / "c", **kw)


def test_init_from_the_packaged_model(tmp_path):
    root = write_nyud(tmp_path / "nyud", n=1)
    cfg = load_config("synth_transfer_lite0", ["model.backbone.pretrained=false",
                                               "train.init_from=synth_transfer_lite0", "data.num_workers=0"])
    tr = Trainer(cfg, output_dir=tmp_path / "run", data_root=root, progress=False)
    shipped = load_checkpoint(packaged_model("synth_transfer_lite0"))["model"]
    assert tr.initialised_from == packaged_model("synth_transfer_lite0")
    assert all(torch.equal(v, shipped[k].to(v.dtype)) for k, v in tr.model.state_dict().items())
