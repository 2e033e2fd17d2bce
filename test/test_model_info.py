"""Packaged model configs and the mtlsi-info tool (parameter fidelity vs the paper)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mtlsi_core.config import load_config, packaged_config_names, resolve_config_path
from mtlsi_core.tools.info import PAPER_HEAD_PARAMS_M, main, model_info

TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"
MODEL_CONFIGS = ["nyud_hrnet18", "nyud_swin_t", "nyud_swin_l", "pascal_swin_l", "nyud_dinov2_s", "nyud_edge_lite0",
                 "synth_edge_lite0", "synth_transfer_lite0"]


def test_all_model_configs_are_packaged_and_valid():
    assert set(MODEL_CONFIGS) <= set(packaged_config_names())
    for name in MODEL_CONFIGS:
        cfg = load_config(name)
        assert cfg.name == name


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_value_in_a_packaged_config_carries_a_comment(name):
    lines = resolve_config_path(name).read_text().splitlines()
    start = lines.index("model:")
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" "))
    bare = [ln for ln in lines[start + 1:end] if ":" in ln and not ln.rstrip().endswith(":") and "#" not in ln]
    assert bare == [], f"{name}: model values without a comment: {bare}"
    commented = [ln for ln in lines[start + 1:end] if "#" in ln]
    assert len(commented) >= 8


@pytest.mark.parametrize("key", sorted(PAPER_HEAD_PARAMS_M))
def test_head_parameters_within_15_percent_of_the_paper(key, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dataset, backbone = key
    name = f"{dataset}_{backbone}"
    info = model_info(load_config(name), flops=False)
    assert abs(info["paper"]["deviation"]) <= 0.15, (name, info["params"]["head"])
    assert info["params"]["head"] == sum(info["params"]["head_parts"].values())


def test_pascal_swin_l_total_within_15_percent_of_table_ii(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    info = model_info(load_config("pascal_swin_l"), flops=False)
    assert abs(info["paper"]["deviation"]) <= 0.15


def test_info_cli_prints_json_with_flops(capsys):
    assert main(["--config", str(TINY), "--json", "--input-size", "64x128", "--set", "model.embed_dim=48"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_size"] == [64, 128]
    p, g = info["params"], info["gflops"]
    assert p["total"] == p["backbone"] + p["head"] and p["head"] == sum(p["head_parts"].values())
    assert set(p["head_parts"]) == {"preliminary_decoders", "task_projections", "interaction", "distillers", "cwibs",
                                    "output_decoders"}
    assert g["backbone"] > 0 and g["head"] > 0
    assert g["total"] == pytest.approx(g["backbone"] + g["head"])
    assert g["head"] == pytest.approx(sum(g["head_parts"].values()), rel=1e-6)


def test_info_cli_table_and_bad_input(capsys):
    assert main(["--config", str(TINY), "--no-flops"]) == 0
    out = capsys.readouterr().out
    assert "head.interaction" in out and "params" in out
    assert main(["--config", str(TINY), "--set", "model.embed_dims=3"]) == 2
    assert "model.embed_dims: unknown key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", str(TINY), "--input-size", "65x96"])


def test_tiny_config_is_the_documented_small_model():
    raw = yaml.safe_load(TINY.read_text())
    assert raw["model"]["backbone"] == {"name": "efficientnet_lite0", "pretrained": False}
    assert raw["model"]["embed_dim"] == 32 and raw["data"]["input_size"] == [64, 96]
