"""build_model / load_model_from_checkpoint contract."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mtlsi_core.checkpoint import CheckpointError, atomic_torch_save, atomic_write_bytes, make_checkpoint
from mtlsi_core.config import load_config
from mtlsi_core.models import build_model, load_model_from_checkpoint

TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"


def _save(tmp_path, model, cfg, name="ckpt.pt", state=None):
    path = tmp_path / name
    atomic_torch_save(make_checkpoint(state if state is not None else model.state_dict(), cfg.to_dict()), path)
    return path


def test_round_trip_restores_outputs_without_weight_files(tmp_path):
    torch.manual_seed(0)
    # The stored config asks for a weight file that does not exist: loading must not need it.
    cfg = load_config(TINY, ["model.backbone.pretrained=/nonexistent/efficientnet-lite0.pth"])
    model = build_model(load_config(TINY)).eval()
    path = _save(tmp_path, model, cfg)
    loaded, loaded_cfg = load_model_from_checkpoint(path)
    assert loaded_cfg.model.backbone.pretrained is False
    assert loaded_cfg.data.tasks == cfg.data.tasks and not loaded.training
    x = torch.randn(1, 3, *cfg.data.input_size)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for t in cfg.data.tasks:
        torch.testing.assert_close(a["final"][t], b["final"][t])


def test_compiled_or_ddp_prefixes_are_accepted(tmp_path):
    cfg = load_config(TINY)
    model = build_model(cfg)
    path = _save(tmp_path, model, cfg, state={f"_orig_mod.{k}": v for k, v in model.state_dict().items()})
    load_model_from_checkpoint(path)


def test_mismatched_weights_raise_naming_the_file(tmp_path):
    cfg = load_config(TINY)
    model = build_model(load_config(TINY, ["model.embed_dim=48"]))
    path = _save(tmp_path, model, cfg, name="wrong.pt")
    with pytest.raises(CheckpointError, match="wrong.pt"):
        load_model_from_checkpoint(path)


def test_invalid_stored_config_raises_checkpoint_error(tmp_path):
    cfg = load_config(TINY)
    raw = cfg.to_dict()
    raw["model"]["cwib"]["windows"] = [4, 4]
    path = tmp_path / "badcfg.pt"
    atomic_torch_save(make_checkpoint(build_model(cfg).state_dict(), raw), path)
    with pytest.raises(CheckpointError, match=r"badcfg\.pt.*\n.*model\.cwib\.windows: unknown key"):
        load_model_from_checkpoint(path)


def test_missing_file_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model_from_checkpoint(tmp_path / "nope.pt")


def test_atomic_writes_get_the_modes_open_would_give(tmp_path):
    """mkstemp makes 0600 files: a model, map or bag written atomically must still be readable by others as a
    plain open() would make it (0666 less the umask), and a replaced file keeps its own mode."""
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.json", b"{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.json", b"{}")
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    (tmp_path / "new.json").chmod(0o640)
    atomic_write_bytes(tmp_path / "new.json", b"[]")
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640 and (tmp_path / "new.json").read_bytes() == b"[]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "private.json"]  # no temporary file left
