"""The launch file and the packaged parameter file, checked without the (absent) launch package where possible."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from mtlsi_ros.params import PARAMS, validate

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "perception.launch.py"
CONFIG = REPO / "config" / "perception.yaml"
REQUIRED_ARGS = {"image", "camera_info", "namespace", "config", "backend", "model_path", "use_sim_time", "log_level",
                 "autostart"}


def test_config_yaml_matches_declared_parameters():
    raw = yaml.safe_load(CONFIG.read_text())
    assert list(raw) == ["/**"]
    values = raw["/**"]["ros__parameters"]
    declared = {p.name for p in PARAMS}
    assert set(values) - declared == set(), "unknown keys in config/perception.yaml"
    assert declared - set(values) == set(), "parameters missing from config/perception.yaml"
    p = validate(values)  # and every value is valid
    defaults = {s.name: s.default for s in PARAMS}
    assert values == defaults, "config/perception.yaml should state the declared defaults"
    assert p.qos_reliability == "best_effort" and p.qos_depth == 1 and p.autostart


def _launch_arguments() -> set[str]:
    tree = ast.parse(LAUNCH.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets):
            return {elt.elts[0].value for elt in node.value.elts}
    raise AssertionError("ARGUMENTS table not found in the launch file")


def test_launch_file_declares_the_arguments_and_remaps_inputs():
    assert REQUIRED_ARGS <= _launch_arguments()
    text = LAUNCH.read_text()
    compile(text, str(LAUNCH), "exec")
    # the parameters the node gets: test_launch_file.py
    for needle in ('("image", image)', '("camera_info", LaunchConfiguration("camera_info"))',
                   'executable="perception_node"', "LifecycleNode",
                   'additional_env={"OMP_WAIT_POLICY": EnvironmentVariable("OMP_WAIT_POLICY", default_value="PASSIVE")}'):
        assert needle in text


def test_launch_file_builds_a_description_when_launch_is_installed():
    if importlib.util.find_spec("launch") is None or importlib.util.find_spec("launch_ros") is None:
        pytest.skip("the launch / launch_ros packages are not installable from PyPI here; "
                    "the file is checked statically above")
    spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    names = {a.name for a in ld.get_launch_arguments()}
    assert REQUIRED_ARGS <= names
