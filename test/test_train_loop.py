"""Trainer on a tiny synthetic set with the tiny config: it learns, resumes exactly, writes its files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset

from mtlsi_core.checkpoint import CheckpointError, load_checkpoint
from mtlsi_core.config import load_config
from mtlsi_core.data import build_dataset
from mtlsi_core.training.trainer import Trainer, TrainingError

TINY = Path(__file__).parent / "configs" / "tiny.yaml"
QUIET = ["train.eval_every=1000", "train.checkpoint_every=1000", "train.log_every=1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(*overrides: str):
    return load_config(TINY, [*QUIET, *overrides])


def test_loss_goes_down_when_overfitting_two_frames(tiny_synth, tmp_path):
    cfg = tiny("train.iterations=25", "train.batch_size=2", "train.lr=1e-3", "data.augment.hflip=false")
    two = Subset(build_dataset(cfg, "train", root=str(tiny_synth)), [0, 1])  # every batch holds the same two frames
    res = Trainer(cfg, output_dir=tmp_path / "run", data_root=tiny_synth, train_set=two, eval_max_frames=1,
                  progress=False).train()
    losses = [v for _, v in res.loss_history]
    assert len(losses) == 25 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.75 * losses[0], losses


def _states_equal(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_resume_continues_exactly(tiny_synth, tmp_path):
    # hflip on: the augmentation draws from the RNG the checkpoint must restore; 6 frames / batch 2 crosses
    # an epoch boundary (new permutation) after the resume point.
    cfg = tiny("train.iterations=6", "train.batch_size=2", "train.checkpoint_every=3", "data.augment.hflip=true")
    kw = dict(data_root=tiny_synth, eval_max_frames=1, progress=False)
    straight = Trainer(cfg, output_dir=tmp_path / "straight", **kw).train()
    first = Trainer(cfg, output_dir=tmp_path / "split", max_iterations=3, **kw).train()
    second = Trainer(cfg, output_dir=tmp_path / "split", resume="auto", **kw).train()

    assert (first.iteration, second.start_iteration, second.iteration) == (3, 3, 6)
    assert second.resumed_from == tmp_path / "split" / "last.pt"
    assert [l for _, l in first.loss_history + second.loss_history] == [l for _, l in straight.loss_history]
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert _states_equal(a["model"], b["model"]) == []
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    assert all(_states_equal(sa[k], sb[k]) == [] for k in sa)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6


def test_run_folder_contents_and_checkpoints(tiny_synth, tmp_path):
    from mtlsi_core.models import load_model_from_checkpoint

    cfg = tiny("train.iterations=4", "train.eval_every=2", "train.checkpoint_every=2")
    out = tmp_path / "run"
    res = Trainer(cfg, output_dir=out, data_root=tiny_synth, progress=False).train()
    assert (out / "config.yaml").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(out / "tb"))
    tb.Reload()
    tags = set(tb.Tags()["scalars"])
    assert {"loss/total", "loss/semseg", "loss/semseg_coarse", "lr", "time/iterations_per_s",
            "eval/semseg/miou", "eval/depth/rmse", "eval/edge/headline"} <= tags, tags
    assert [e.step for e in tb.Scalars("loss/total")] == [1, 2, 3, 4]
    last = load_checkpoint(out / "last.pt")
    assert last["iteration"] == 4 and {"optimizer", "scheduler", "scaler", "rng", "sampler"} <= set(last)
    assert last["sampler"]["position"] == 4 * cfg.train.batch_size
    assert [e["iteration"] for e in res.eval_history] == [2, 4]
    assert res.best is not None and res.best["iteration"] in (2, 4)
    best = load_checkpoint(out / "best.pt")
    assert best["meta"]["iteration"] == res.best["iteration"] and "optimizer" not in best
    model, loaded_cfg = load_model_from_checkpoint(out / "best.pt")  # the deployable format
    assert loaded_cfg.name == "tiny"
    assert not list(out.glob(".*.tmp"))

    with pytest.raises(TrainingError, match="last.pt exists from an earlier run.*--resume auto"):
        Trainer(cfg, output_dir=out, data_root=tiny_synth, progress=False)
    with pytest.raises(CheckpointError, match=r"best\.pt is not a resumable training checkpoint"):
        Trainer(cfg, output_dir=tmp_path / "other", data_root=tiny_synth, resume=out / "best.pt", progress=False)
    changed = tiny("train.iterations=4", "model.embed_dim=16")
    with pytest.raises(CheckpointError, match="differs in model"):
        Trainer(changed, output_dir=out, data_root=tiny_synth, resume="auto", progress=False)

    # a checkpoint written before a model option existed (its stored config lacks the field) still resumes when
    # this run uses the option's default, and is still refused when it does not
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["config"]["model"].pop("refinement", None) is not None
    torch.save(ckpt, out / "last.pt")
    Trainer(tiny("train.iterations=4"), output_dir=out, data_root=tiny_synth, resume="auto", progress=False)
    with pytest.raises(CheckpointError, match="differs in model"):
        Trainer(tiny("train.iterations=4", "model.refinement.prelim_grad=0"), output_dir=out, data_root=tiny_synth,
                resume="auto", progress=False)


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(TrainingError, match=f"dataset folder not found: {tmp_path / 'nope'}"):
        Trainer(tiny(), output_dir=tmp_path / "run", data_root=tmp_path / "nope", progress=False)
