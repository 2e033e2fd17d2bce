"""requirements-robot.txt lists exactly the third-party packages that mtlsi_core/ and mtlsi_ros/ import (at module
level or inside functions), less what a ROS 2 install provides: adding an import of an unlisted package fails here."""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
ROBOT = REPO / "requirements-robot.txt"
NODEPS = REPO / "requirements-nodeps.txt"  # installed with --no-deps beside requirements-robot.txt
OWN = {"mtlsi_core", "mtlsi_ros"}
# provided by apt's ROS 2 (mtlsi_ros_msgs: built from msg/ by the same colcon build)
ROS_PROVIDED = {"rclpy", "rcl_interfaces", "builtin_interfaces", "std_msgs", "sensor_msgs", "diagnostic_msgs",
                "lifecycle_msgs", "rosgraph_msgs", "mtlsi_ros_msgs"}
# imported inside try/except, with a message saying how to install them where wanted
OPTIONAL = {"tensorrt": "backend tensorrt only, NVIDIA GPUs; its own install (mtlsi_core/runtime/tensorrt_runtime.py)"}
# listed but imported by another package, not by ours
RUNTIME_ONLY = {"onnxscript": "torch.onnx.export(dynamo=True) imports it (mtlsi_core/runtime/export.py)",
                "tensorboard": "torch.utils.tensorboard imports it (mtlsi_core/training/trainer.py)"}


def _requirements(path: Path) -> dict[str, str]:
    """canonical name -> the requirement line, comments dropped (parsed as pip does: ``packaging``)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {canonicalize_name(Requirement(req).name): req for req in lines if req}


def _imported_modules() -> dict[str, str]:
    """Top-level module name -> one file importing it, for every absolute import in the package sources."""
    found: dict[str, str] = {}
    for root in sorted(OWN):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def _third_party() -> dict[str, str]:
    return {m: where for m, where in _imported_modules().items()
            if m not in sys.stdlib_module_names and m not in OWN and m not in ROS_PROVIDED and m not in OPTIONAL}


@functools.lru_cache(maxsize=1)
def _module_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str, where: str) -> set[str]:
    dists = _module_distributions().get(module)
    assert dists, f"{where} imports {module}, which no installed distribution provides (list it or mark it optional)"
    return {canonicalize_name(d) for d in dists}


def test_every_imported_package_is_listed():
    listed = set(_requirements(ROBOT)) | set(_requirements(NODEPS))
    missing = {f"{m} ({where})": sorted(_distributions(m, where)) for m, where in _third_party().items()
               if not _distributions(m, where) & listed}
    assert missing == {}, f"imported but not in {ROBOT.name}: {missing}"


def test_every_listed_package_is_needed():
    imported = set()
    for module, where in _third_party().items():
        imported |= _distributions(module, where)
    unused = sorted(set(_requirements(ROBOT)) - imported - set(RUNTIME_ONLY))
    assert unused == [], f"{ROBOT.name} lists packages nothing imports: {unused}"


def test_requirements_are_lower_bounds():
    for name, req in _requirements(ROBOT).items():
        assert re.fullmatch(r"[A-Za-z0-9._-]+>=[0-9][0-9.]*", req), f"{ROBOT.name}: {req!r} is not name>=version"
