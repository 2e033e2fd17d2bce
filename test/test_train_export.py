"""Exporting deployable weights from a training checkpoint (the demo checkpoint's path)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtlsi_core.checkpoint import CheckpointError, atomic_torch_save, load_checkpoint, make_checkpoint
from mtlsi_core.config import load_config
from mtlsi_core.models import build_model, load_model_from_checkpoint
from mtlsi_core.training.export_weights import export_weights, main

TINY = Path(__file__).parent / "configs" / "tiny.yaml"


def test_fp16_export_strips_training_state_and_loads(tmp_path):
    cfg = load_config(TINY, ["model.backbone.pretrained=true"])
    torch.manual_seed(0)
    model = build_model(load_config(TINY)).eval()
    src = tmp_path / "last.pt"
    opt = torch.optim.AdamW(model.parameters())
    atomic_torch_save(make_checkpoint(model.state_dict(), cfg.to_dict(), {"iteration": 5},
                                      optimizer=opt.state_dict(), iteration=5, rng=[{}]), src)
    full = export_weights(src, tmp_path / "w32.pt")
    half = export_weights(src, tmp_path / "w16.pt", fp16=True, extra_meta={"note": "x"})
    assert half["dtype"] == "float16" and half["size_bytes"] < 0.6 * full["size_bytes"]
    ck = load_checkpoint(tmp_path / "w16.pt")
    assert set(ck) == {"format", "version", "config", "model", "meta"}
    assert ck["config"]["model"]["backbone"]["pretrained"] is False and ck["meta"]["note"] == "x"
    assert ck["meta"]["iteration"] == 5

    loaded, _ = load_model_from_checkpoint(tmp_path / "w16.pt")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = model(x)["final"], loaded(x)["final"]
    for t in a:
        assert torch.allclose(a[t], b[t], rtol=0.05, atol=0.05), t


def test_export_of_a_bad_file_fails_with_its_name(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"nope")
    with pytest.raises(CheckpointError, match=str(bad)):
        export_weights(bad, tmp_path / "y.pt")
    assert main([str(bad), str(tmp_path / "y.pt")]) == 2 and str(bad) in capsys.readouterr().err
    assert not (tmp_path / "y.pt").exists()
