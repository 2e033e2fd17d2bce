"""Mean-teacher self-training on real photos (train.self_training, mtlsi_core.adaptation.mean_teacher): the
pseudo-labels, the perturbation, the EMA, and the trainer with it on (its loss, its checkpoint, a bit-exact resume)."""
from __future__ import annotations

import pytest
import torch
from test_adaptation import QUIET, TINY, write_nyud, write_photos

from mtlsi_core.adaptation.mean_teacher import MeanTeacher, pseudo_target, split_outputs, strong_perturbation
from mtlsi_core.checkpoint import CheckpointError, load_checkpoint
from mtlsi_core.config import ConfigError, load_config
from mtlsi_core.models import build_model
from mtlsi_core.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def test_labels_keep_only_confident_pixels():
    raw = torch.zeros(1, 3, 1, 3)
    raw[0, 2, 0, 0] = 5.0  # confident class 2 (softmax 0.99)
    raw[0, 1, 0, 1] = 0.5  # class 1 at softmax 0.45: not confident
    # pixel 2: all equal (1/3 each): not confident
    assert pseudo_target("semseg", raw, 0.8, (0.3, 0.9)).tolist() == [[[2, 255, 255]]]
    assert pseudo_target("semseg", raw, 0.4, (0.3, 0.9)).tolist() == [[[2, 1, 255]]]


def test_boundaries_take_a_hard_band_and_normals_the_unit_prediction():
    logits = torch.logit(torch.tensor([0.05, 0.3, 0.5, 0.9, 0.99])).view(1, 1, 1, 5)
    assert pseudo_target("edge", logits, 0.8, (0.3, 0.9)).tolist() == [[[0.0, 0.0, 255.0, 1.0, 1.0]]]
    raw = torch.tensor([3.0, 0.0, 4.0]).view(1, 3, 1, 1)
    n = pseudo_target("normals", raw, 0.8, (0.3, 0.9))
    assert torch.allclose(n[0, :, 0, 0], torch.tensor([0.6, 0.0, 0.8]))


def test_strong_perturbation_changes_colours_only_and_is_seeded():
    x = (torch.rand(2, 3, 8, 10) - MEAN) / STD
    a = strong_perturbation(x, MEAN, STD, torch.Generator().manual_seed(1))
    b = strong_perturbation(x, MEAN, STD, torch.Generator().manual_seed(1))
    c = strong_perturbation(x, MEAN, STD, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c) and not torch.allclose(a, x)
    img = a * STD + MEAN
    assert img.min() >= -1e-6 and img.max() <= 1 + 1e-6


def test_split_outputs_cuts_every_task_at_n():
    out = {"final": {"semseg": torch.arange(5)}, "coarse": {"depth": torch.arange(5) * 2}}
    first, rest = split_outputs(out, 3)
    assert first["final"]["semseg"].tolist() == [0, 1, 2] and rest["coarse"]["depth"].tolist() == [6, 8]


def st_config(photos, *extra: str):
    return load_config(TINY, [*QUIET, f"data.target_photos={photos}", "train.self_training.weight=1.0",
                              "train.self_training.photos_per_batch=2", "train.self_training.ramp_iterations=2",
                              "train.batch_size=2", *extra])


def test_the_teacher_is_the_ema_of_the_student(tmp_path):
    cfg = st_config(write_photos(tmp_path / "photos"), "train.self_training.ema_decay=0.75")
    torch.manual_seed(0)
    student = build_model(cfg)
    mt = MeanTeacher(cfg, student, torch.device("cpu"))
    assert not mt.teacher.training and not any(p.requires_grad for p in mt.teacher.parameters())
    before = {k: v.clone() for k, v in mt.teacher.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        for name, b in student.named_buffers():
            if "num_batches" in name:
                b.add_(7)
    mt.update(student)
    after, s = mt.teacher.state_dict(), student.state_dict()
    for k, v in after.items():
        want = 0.75 * before[k] + 0.25 * s[k] if v.dtype.is_floating_point else s[k]
        assert torch.allclose(v, want), k
    assert [mt.weight(i) for i in range(3)] == [0.5, 1.0, 1.0]
    x, targets = mt.photo_batch()
    assert x.shape == (2, 3, 64, 96) and set(targets) == {"semseg", "normals", "edge"}
    assert targets["semseg"].shape == (2, 64, 96) and targets["normals"].shape == (2, 3, 64, 96)


def test_training_with_it_logs_its_loss_keeps_the_teacher_and_resumes_exactly(tmp_path):
    root = write_nyud(tmp_path / "nyud", n=3)
    photos = write_photos(tmp_path / "photos")
    cfg = st_config(photos, "train.iterations=4", "train.checkpoint_every=2", "train.self_training.ema_decay=0.5",
                    "data.augment.hflip=true")
    kw = dict(data_root=root, eval_max_frames=1, progress=False)
    straight = Trainer(cfg, output_dir=tmp_path / "straight", **kw).train()
    Trainer(cfg, output_dir=tmp_path / "split", max_iterations=2, **kw).train()
    second = Trainer(cfg, output_dir=tmp_path / "split", resume="auto", **kw).train()
    assert second.start_iteration == 2 and second.iteration == 4
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    for ckpt_a, ckpt_b in ((a["model"], b["model"]), (a["mean_teacher"]["teacher"], b["mean_teacher"]["teacher"])):
        assert [k for k in ckpt_a if not torch.equal(ckpt_a[k], ckpt_b[k])] == []
    # the teacher trails the student
    assert any(not torch.equal(a["model"][k], v) for k, v in a["mean_teacher"]["teacher"].items())
    assert straight.loss_history[-1][1] == second.loss_history[-1][1]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(tmp_path / "straight" / "tb"))
    tb.Reload()
    tags = set(tb.Tags()["scalars"])
    assert {"loss/photos_semseg", "loss/photos_normals", "loss/photos_edge"} <= tags, tags
    assert "loss/photos_depth" not in tags
    # a checkpoint written without it cannot continue with it
    plain = load_config(TINY, [*QUIET, "train.iterations=2", "train.batch_size=2"])
    Trainer(plain, output_dir=tmp_path / "plain", **kw).train()
    with pytest.raises(CheckpointError, match="holds no mean teacher"):
        Trainer(st_config(photos, "train.iterations=4"), output_dir=tmp_path / "plain", resume="auto", **kw)


@pytest.mark.parametrize("overrides, message", [
    (["train.self_training.weight=1"], r"self_training\.weight = 1 needs data\.target_photos"),
    (["train.self_training.tasks=[depht]"], r"unknown task 'depht'"),
    (["train.self_training.binary_band=[0.9, 0.3]"], r"binary_band"),
    (["train.self_training.ema_decay=1.0"], r"self_training\.ema_decay"),
    (["data.tasks=[semseg,depth]", "train.self_training.tasks=[edge]", "train.self_training.weight=1",
      "data.target_photos=x"], r"names none of data\.tasks"),
    (["train.self_training.decay=0.9"], r"self_training\.decay: unknown key"),
])
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TINY, overrides)


def test_a_missing_photo_folder_is_named(tmp_path):
    root = write_nyud(tmp_path / "nyud", n=1)
    with pytest.raises(Exception, match=str(tmp_path / "nope")):
        Trainer(st_config(tmp_path / "nope"), output_dir=tmp_path / "run", data_root=root, progress=False)
