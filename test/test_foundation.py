"""Foundation checks: layout rules, the task registry and the config loader."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mtlsi_core.config import ConfigError, apply_overrides, config_from_dict, load_config
from mtlsi_core.tasks import DATASETS, TASKS, activate, get_task, task_channels

REPO = Path(__file__).resolve().parents[1]


def test_core_has_no_ros_imports():
    pat = re.compile(r"^\s*(import|from)\s+(rclpy|rosbags|sensor_msgs|std_msgs|diagnostic_msgs|builtin_interfaces)\b", re.M)
    offenders = [str(p) for p in (REPO / "mtlsi_core").rglob("*.py") if pat.search(p.read_text())]
    assert offenders == []


def test_registry_is_consistent():
    for name, spec in TASKS.items():
        assert spec.name == name
        assert spec.ros.encodings, name
    for ds in DATASETS.values():
        for t in ds.tasks:
            assert get_task(t).num_channels(ds) > 0
    assert task_channels(["semseg", "depth", "normals", "edge"], "nyud") == {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}
    assert task_channels(["semseg", "human_parts", "sal"], "pascal") == {"semseg": 21, "human_parts": 7, "sal": 2}


def test_activations_give_physical_units():
    import torch

    raw = {"semseg": torch.randn(2, 40, 5, 6), "depth": torch.randn(2, 1, 5, 6), "normals": torch.randn(2, 3, 5, 6),
           "edge": torch.randn(2, 1, 5, 6), "sal": torch.randn(2, 2, 5, 6)}
    out = activate(raw)
    assert out["semseg"].shape == (2, 5, 6) and out["semseg"].dtype == torch.int64
    assert (out["depth"] >= 0).all()
    assert torch.allclose(out["normals"].norm(dim=1), torch.ones(2, 5, 6), atol=1e-5)
    assert ((out["edge"] >= 0) & (out["edge"] <= 1)).all() and ((out["sal"] >= 0) & (out["sal"] <= 1)).all()


def _raw():
    return {"name": "t", "data": {"dataset": "nyud", "tasks": ["semseg", "depth"], "input_size": [64, 96]},
            "model": {"backbone": {"name": "efficientnet_lite0"}}}


def test_config_rejects_unknown_keys_and_names_them():
    raw = _raw()
    raw["train"] = {"iterations": 3, "learning_rate": 0.1}
    with pytest.raises(ConfigError, match=r"train\.learning_rate: unknown key"):
        config_from_dict(raw, "x.yaml")


@pytest.mark.parametrize("patch, msg", [
    ({"data": {"dataset": "nyud", "tasks": ["sal"], "input_size": [64, 96]}}, "not annotated in dataset"),
    ({"data": {"dataset": "nyud", "tasks": ["semseg"], "input_size": [65, 96]}}, "multiples of 32"),
    ({"data": {"dataset": "mars", "tasks": ["semseg"], "input_size": [64, 96]}}, "data.dataset"),
])
def test_config_rejects_bad_values(patch, msg):
    raw = _raw()
    raw.update(patch)
    with pytest.raises(ConfigError, match=msg):
        config_from_dict(raw, "x.yaml")


def test_overrides_and_packaged_names(tmp_path):
    raw = apply_overrides(_raw(), ["train.iterations=7", "data.tasks=[semseg]"])
    cfg = config_from_dict(raw)
    assert cfg.train.iterations == 7 and cfg.tasks == ["semseg"]
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides(_raw(), ["train.iterations"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_config_anywhere")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_colcon_identifies_ament_python_package():
    out = subprocess.run([str(REPO / ".venv" / "bin" / "colcon"), "list", "--base-paths", str(REPO)],
                         capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert re.search(r"^mtlsi_ros\s+\S+\s+\(ros\.ament_python\)$", out, re.M), out
