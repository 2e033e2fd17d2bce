"""Shared code of the node tests (test_node_*.py): the installed node in its own process, a tiny checkpoint,
an rclpy context on a private DDS domain. Imported as a plain module (the test folder is on sys.path).

The node runs from the colcon install (``install/`` or ``$MTLSI_INSTALL``); a missing or stale install fails
the test with "run `make build`".
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import re
import signal
import subprocess
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "test" / "configs" / "tiny.yaml"
PARAMS_FILE = REPO / "config" / "perception.yaml"
# Shared memory + UDP loopback: without it, LOCALHOST discovery means UDP only and big best-effort images are lost.
FASTDDS_PROFILE = REPO / "config" / "fastdds_localhost_shm.xml"
EXECUTABLE = Path("mtlsi_ros") / "lib" / "mtlsi_ros" / "perception_node"


def install_dir() -> Path:
    return Path(os.environ.get("MTLSI_INSTALL", REPO / "install")).resolve()


def _site_packages(install: Path) -> Path | None:
    found = sorted((install / "mtlsi_ros" / "lib").glob("python3*/site-packages"))
    return found[0] if found else None


def check_install() -> Path:
    """The install folder, after checking it has the node and the same Python sources as the work tree."""
    install = install_dir()
    exe = install / EXECUTABLE
    site = _site_packages(install)
    if not exe.is_file() or site is None or not (install / "setup.bash").is_file():
        pytest.fail(f"the colcon install {install} is missing the perception node: run `make build`")
    stale = []
    for pkg in ("mtlsi_ros", "mtlsi_core"):
        for src in sorted((REPO / pkg).rglob("*.py")):
            dst = site / src.relative_to(REPO)
            if not dst.is_file() or hashlib.sha1(dst.read_bytes()).digest() != hashlib.sha1(src.read_bytes()).digest():
                stale.append(str(src.relative_to(REPO)))
    if stale:
        pytest.fail(f"the colcon install {install} is stale ({len(stale)} file(s) differ, e.g. {stale[:3]}): "
                    f"run `make build`")
    return install


def domain_id(name: str) -> int:
    """A ROS_DOMAIN_ID in 1..100 from the pid and a name, so parallel runs and modules do not hear each other."""
    return 1 + (os.getpid() * 7 + zlib.crc32(name.encode())) % 100


def ros_env(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0",
               RCUTILS_COLORIZED_OUTPUT="0", FASTDDS_DEFAULT_PROFILES_FILE=str(FASTDDS_PROFILE))
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


def make_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A real mtlsi checkpoint of the tiny test model (random weights)."""
    import torch

    from mtlsi_core.checkpoint import atomic_torch_save, make_checkpoint
    from mtlsi_core.config import load_config
    from mtlsi_core.models import build_model

    torch.manual_seed(seed)
    cfg = load_config(TINY_CONFIG)
    model = build_model(cfg)
    atomic_torch_save(make_checkpoint(model.state_dict(), cfg.to_dict(), meta={"note": "random weights (tests)"}),
                      path)
    return path


_TINY: Path | None = None


def tiny_checkpoint() -> Path:
    """The tiny checkpoint, built once per test process."""
    global _TINY
    if _TINY is None or not _TINY.is_file():
        folder = tempfile.mkdtemp(prefix="mtlsi_tiny_")
        atexit.register(shutil.rmtree, folder, True)
        _TINY = make_tiny_checkpoint(Path(folder) / "tiny.pt")
    return _TINY


def write_params(path: Path, params: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return path


class NodeProcess:
    """The installed perception node as a subprocess; log captured to a file."""

    def __init__(self, workdir: Path, domain: int, params: dict[str, Any], namespace: str = "/t",
                 name: str = "perception", base_params: Path | None = PARAMS_FILE):
        self.install = check_install()
        self.domain, self.namespace, self.name = domain, namespace, name
        self.fqn = f"{namespace.rstrip('/')}/{name}"
        workdir.mkdir(parents=True, exist_ok=True)
        tag = f"{namespace.strip('/').replace('/', '_') or 'root'}_{name}_{time.monotonic_ns()}"
        self.log_path = workdir / f"node_{tag}.log"
        overrides = write_params(workdir / f"params_{tag}.yaml", params)
        files = ([str(base_params)] if base_params else []) + [str(overrides)]
        args = " ".join(f"--params-file {f}" for f in files)
        cmd = (f"source {self.install}/setup.bash && exec {self.install / EXECUTABLE} --ros-args {args} "
               f"-r __ns:={namespace} -r __node:={name}")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["bash", "-c", cmd], stdout=self._log, stderr=subprocess.STDOUT,
                                     env=ros_env(domain), cwd=str(REPO), start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 60.0, start: int = 0) -> re.Match:
        """Wait until the log (from character ``start``) matches ``pattern``; fail with the log tail."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(), start)
            if m:
                return m
            if not self.alive():
                pytest.fail(f"node exited ({self.proc.returncode}) before logging {pattern!r}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"node did not log {pattern!r} within {timeout} s:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=timeout)
        self._log.close()


class RosSide:
    """An rclpy context on the test's domain, for clients in the pytest process."""

    def __init__(self, domain: int):
        import rclpy
        from rclpy.context import Context

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        # Read when this process creates its first DDS participant (a participant made earlier keeps UDP only).
        os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self.context)


def sample_image(h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (uint8)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(h // 8, 1), max(w // 8, 1), 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def intrinsics(h: int, w: int) -> np.ndarray:
    f = 0.8 * w
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], dtype=np.float64)


def node_session(tmp_root: Path, module: str, params: dict[str, Any], namespace: str = "/t",
                 name: str = "perception", wait_for: str | None = r"active: subscribed") -> Iterator[tuple]:
    """Generator for a module-scoped fixture: (node process, RosSide, domain); always stops the node."""
    dom = domain_id(module)
    node = NodeProcess(tmp_root, dom, params, namespace=namespace, name=name)
    ros = None
    try:
        if wait_for:
            node.wait_log(wait_for, timeout=180)
        ros = RosSide(dom)
        yield node, ros, dom
    finally:
        node.stop()
        if ros is not None:
            ros.close()


def tmp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
