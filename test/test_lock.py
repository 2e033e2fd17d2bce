"""The lock file must be installable from an index on a fresh machine."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from freeze_lock import canonical, filter_freeze  # noqa: E402


def _pins():
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_lock_pins_every_line_exactly():
    for pin in _pins():
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.!+-]+", pin), pin


def test_lock_has_no_egg_info_shadow_of_a_ros_wheel():
    names = {canonical(p.split("==")[0]) for p in _pins()}
    shadows = sorted(n for n in names if not n.startswith("ros-") and f"ros-{n}" in names)
    assert shadows == [], f"not on PyPI, only egg-info names of ros-* wheels: {shadows}"


def test_filter_freeze_drops_shadows_and_local_tags():
    freeze = ["rclpy==9.1.2", "ros-rclpy==9.1.2", "action_msgs==2.3.0", "ros-action-msgs==2.3.0",
              "torch==2.13.0+cpu", "-e git+file:///x#egg=mtlsi_ros", "pip==25.0", "numpy==2.3.0",
              "rosbags==0.11.9"]
    assert filter_freeze(freeze) == ["ros-rclpy==9.1.2", "ros-action-msgs==2.3.0", "torch==2.13.0",
                                     "numpy==2.3.0", "rosbags==0.11.9"]
