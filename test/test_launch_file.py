"""launch/perception.launch.py evaluated with stand-ins of the launch / launch_ros classes it imports (those packages
have no wheels here): the node gets the params file, then only the launch arguments given on the command line."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "perception.launch.py"
PACKAGED_CONFIG = REPO / "config" / "perception.yaml"
USER_CONFIG = "/home/robot/my_perception.yaml"
PARAMETER_ARGS = ("autostart", "backend", "model_path", "device", "use_sim_time")


class _Recorded:
    """Keeps what it was constructed with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchDescription(_Recorded):
    pass


class DeclareLaunchArgument(_Recorded):
    pass


class OpaqueFunction(_Recorded):
    pass


class PathJoinSubstitution(_Recorded):
    pass


class EnvironmentVariable(_Recorded):
    pass


class FindPackageShare(_Recorded):
    pass


class LifecycleNode(_Recorded):
    pass


class ParameterValue(_Recorded):
    pass


class LaunchConfiguration(_Recorded):
    def perform(self, context) -> str:
        return context.launch_configurations[self.args[0]]


STAND_INS = {
    "launch": {"LaunchDescription": LaunchDescription},
    "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument, "OpaqueFunction": OpaqueFunction},
    "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration, "PathJoinSubstitution": PathJoinSubstitution,
                             "EnvironmentVariable": EnvironmentVariable},
    "launch_ros": {},
    "launch_ros.actions": {"LifecycleNode": LifecycleNode},
    "launch_ros.parameter_descriptions": {"ParameterValue": ParameterValue},
    "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
}


@pytest.fixture
def launch_file(monkeypatch):
    """The launch file's module, imported against the stand-ins."""
    for name, attrs in STAND_INS.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("perception_launch_under_test", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _arguments(description: LaunchDescription) -> dict[str, DeclareLaunchArgument]:
    return {e.args[0]: e for e in description.args[0] if isinstance(e, DeclareLaunchArgument)}


def _launch(launch_file, **given: str) -> tuple[LifecycleNode, types.SimpleNamespace]:
    """What ``ros2 launch ... config:=USER_CONFIG <given>`` starts: the node, and the context it was built in."""
    description = launch_file.generate_launch_description()
    configurations = {name: a.kwargs["default_value"] for name, a in _arguments(description).items()}
    configurations.update(config=USER_CONFIG, **given)
    context = types.SimpleNamespace(launch_configurations=configurations)
    entities = list(description.args[0])
    nodes = []
    while entities:
        entity = entities.pop(0)
        if isinstance(entity, OpaqueFunction):
            entities += entity.kwargs["function"](context, *entity.kwargs.get("args", ()))
        elif isinstance(entity, LifecycleNode):
            nodes.append(entity)
    assert len(nodes) == 1, f"the launch file starts {len(nodes)} nodes, expected one"
    return nodes[0], context


def _value(value, context):
    """A parameter value as launch_ros evaluates it: substitutions performed; text typed by value_type, else YAML."""
    if isinstance(value, ParameterValue):
        inner, value_type = value.args[0], value.kwargs.get("value_type")
        text = inner.perform(context) if isinstance(inner, LaunchConfiguration) else inner
        if value_type is str:
            return str(text)
        typed = yaml.safe_load(text) if isinstance(text, str) else text
        assert value_type is None or isinstance(typed, value_type), f"{text!r} is not a {value_type}"
        return typed
    if isinstance(value, LaunchConfiguration):
        return yaml.safe_load(value.perform(context))
    if isinstance(value, str):
        return yaml.safe_load(value)
    return value


def _parameters(launch_file, **given: str) -> list:
    """The node's parameters list evaluated: the params file's path, then the override dicts (empty ones dropped)."""
    node, context = _launch(launch_file, **given)
    out = []
    for entry in node.kwargs["parameters"]:
        if isinstance(entry, dict):
            evaluated = {name: _value(v, context) for name, v in entry.items()}
            if evaluated:
                out.append(evaluated)
        else:
            out.append(entry.perform(context) if isinstance(entry, LaunchConfiguration) else entry)
    return out


def test_no_arguments_given_leaves_the_params_file_alone(launch_file):
    assert _parameters(launch_file) == [USER_CONFIG]


def test_one_argument_given_overrides_only_that_parameter(launch_file):
    assert _parameters(launch_file, backend="onnx") == [USER_CONFIG, {"backend": "onnx"}]


def test_arguments_given_are_typed(launch_file):
    assert _parameters(launch_file, autostart="false") == [USER_CONFIG, {"autostart": False}]
    assert _parameters(launch_file, use_sim_time="True", model_path="0001", device="cuda:1") == [
        USER_CONFIG, {"use_sim_time": True, "model_path": "0001", "device": "cuda:1"}]  # "0001" stays a string


def test_a_bad_boolean_argument_names_itself(launch_file):
    with pytest.raises(ValueError, match="autostart"):
        _parameters(launch_file, autostart="maybe")


def test_descriptions_state_the_default(launch_file):
    arguments = _arguments(launch_file.generate_launch_description())
    packaged = yaml.safe_load(PACKAGED_CONFIG.read_text())["/**"]["ros__parameters"]
    for name in PARAMETER_ARGS:
        assert arguments[name].kwargs["default_value"] == "", f"launch argument {name} must default to '' (not given)"
        text = arguments[name].kwargs["description"]
        assert "default: the params file's value" in text, f"launch argument {name}: description lacks the default"
    for name in ("backend", "device", "autostart"):  # the packaged file's value, as the description says
        assert f"{str(packaged[name]).lower()} in the packaged one" in arguments[name].kwargs["description"], name


def test_remappings_log_level_and_environment_are_kept(launch_file):
    node, context = _launch(launch_file, namespace="perception", image="/cam/image_raw", log_level="debug")
    assert node.kwargs["namespace"].perform(context) == "perception"
    remaps = {src: (dst.perform(context) if isinstance(dst, LaunchConfiguration) else
                    "".join(d.perform(context) if isinstance(d, LaunchConfiguration) else d for d in dst))
              for src, dst in node.kwargs["remappings"]}
    assert remaps == {"image": "/cam/image_raw", "image/compressed": "/cam/image_raw/compressed",
                      "camera_info": "camera_info"}
    assert [a.perform(context) if isinstance(a, LaunchConfiguration) else a for a in node.kwargs["arguments"]] == [
        "--ros-args", "--log-level", "debug"]
    env = node.kwargs["additional_env"]["OMP_WAIT_POLICY"]
    assert (env.args, env.kwargs) == (("OMP_WAIT_POLICY",), {"default_value": "PASSIVE"})
