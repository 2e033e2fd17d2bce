"""mtlsi-eval: the Table-I-style table, the JSON file, prediction PNGs, and clear errors on bad input."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from mtlsi_core.checkpoint import atomic_torch_save, make_checkpoint
from mtlsi_core.config import load_config
from mtlsi_core.data.synth import write_dataset
from mtlsi_core.models import build_model
from mtlsi_core.training.evaluate import main

TINY = Path(__file__).parent / "configs" / "tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, object]:
    tmp = tmp_path_factory.mktemp("eval_cli")
    write_dataset(tmp / "synth", num_train=1, num_val=2, seed=6, size=(80, 120), workers=1)
    cfg = load_config(TINY)
    torch.manual_seed(0)
    model = build_model(cfg)
    ckpt = tmp / "model.pt"
    atomic_torch_save(make_checkpoint(model.state_dict(), cfg.to_dict(), {"iteration": 7}), ckpt)
    return tmp / "synth", ckpt, model


def test_prints_table_writes_json_and_pngs(setup, tmp_path, capsys):
    synth, ckpt, model = setup
    out_json, pngs = tmp_path / "res.json", tmp_path / "pngs"
    rc = main(["--checkpoint", str(ckpt), "--data", str(synth), "--json", str(out_json),
               "--save-predictions", str(pngs), "--device", "cpu", "--batch-size", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    doc = json.loads(out_json.read_text())
    assert doc["num_frames"] == 2 and doc["split"] == "val" and doc["iteration"] == 7 and doc["config"] == "tiny"
    assert list(doc["headline"]) == ["semseg", "depth", "normals", "edge"]
    heads = sum(p.numel() for p in model.head_parameters()) / 1e6
    assert doc["params_m"]["heads"] == pytest.approx(heads)
    header, rule, row = printed.strip().splitlines()[:3]
    assert header.startswith("| Method | Seg. (mIoU↑) | Depth (RMSE↓) | Normal (mErr↓) | Boundary (odsF↑)")
    assert header.endswith("Params (M) |")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "tiny" and float(cells[-1]) == pytest.approx(heads, abs=0.005)
    assert float(cells[2]) == pytest.approx(doc["headline"]["depth"], abs=1e-4)
    files = sorted(pngs.glob("*.png"))
    assert len(files) == 2 * 4 and all(cv2.imread(str(f)).shape == (80, 120, 3) for f in files)


def test_config_override_must_fit_the_weights(setup, tmp_path, capsys):
    synth, ckpt, _ = setup
    rc = main(["--checkpoint", str(ckpt), "--data", str(synth), "--json", str(tmp_path / "r.json"),
               "--set", "model.embed_dim=16"])
    err = capsys.readouterr().err
    assert rc == 2 and str(ckpt) in err and "do not fit" in err


@pytest.mark.parametrize("case", ["corrupt", "missing_data", "unknown_key", "not_a_checkpoint"])
def test_bad_input_is_named(setup, tmp_path, capsys, case):
    synth, ckpt, _ = setup
    args = ["--checkpoint", str(ckpt), "--data", str(synth), "--json", str(tmp_path / "r.json")]
    if case == "corrupt":
        bad = tmp_path / "cut.pt"
        bad.write_bytes(ckpt.read_bytes()[:5000])
        args[1], expect = str(bad), f"checkpoint file {bad} is corrupt"
    elif case == "not_a_checkpoint":
        bad = tmp_path / "plain.pt"
        torch.save({"weights": torch.zeros(2)}, bad)
        args[1], expect = str(bad), f"{bad} is not an mtlsi checkpoint"
    elif case == "missing_data":
        args[3], expect = str(tmp_path / "nowhere"), f"dataset folder not found: {tmp_path / 'nowhere'}"
    else:
        args += ["--set", "data.resolution=3"]
        expect = "data.resolution: unknown key"
    assert main(args) == 2
    assert expect in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
