"""The one-shot GPU measurement (benchmarks/gpu/) works before a GPU is ever lent: its dry run performs every stage
on the CPU at tiny sizes, and the wheel preparation selects what the GPU image lacks, one version each."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "benchmarks" / "gpu"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"gpu_{name}", GPU / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_prepare_selects_runtime_wheels_from_the_lock():
    prep = _load("prepare")
    lock = prep.pins(REPO / "requirements.lock")
    reqs = prep.wanted(ros=True)
    names = [r.split("==")[0] for r in reqs]
    assert len(names) == len(set(names)), "one version of each"
    for need in ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "efficientnet-lite-pytorch",
                 "ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-fastdds", "ros-sensor-msgs", "ros-diagnostic-msgs",
                 "ros-lifecycle-msgs", "ros-rosidl-parser", "ros-wheels-bootstrapper"):
        assert need in names, need
    for r in reqs:  # the lock's versions
        name, version = r.split("==")
        if name != "efficientnet-lite-pytorch":
            assert lock[name] == version, r
    assert not [n for n in names if n.startswith("ros-ament-cmake") or n == "ros-rosidl-cli"], "build-only left out"
    assert "torch" not in names and not [n for n in names if n.startswith("nvidia")]
    no_ros = [r.split("==")[0] for r in prep.wanted(ros=False)]
    assert no_ros and not [n for n in no_ros if n.startswith("ros-")]


def test_packed_wheels_unpack_to_the_same_files(tmp_path):
    import zipfile

    prep, run = _load("prepare"), _load("run")
    wheel = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    files = {"demo_pkg/__init__.py": b"X = 1\n", "demo_pkg/lib.so": bytes(range(256)) * 40,
             "demo_pkg-1.0.dist-info/RECORD": b"demo_pkg/__init__.py,,\n"}
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    prep.pack([wheel], tmp_path / "wheels.tar.xz")
    out = run.unpack(tmp_path / "wheels.tar.xz", tmp_path / "out")
    assert [w.name for w in out] == [wheel.name]
    with zipfile.ZipFile(out[0]) as z:
        assert {n: z.read(n) for n in z.namelist()} == files


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.timeout(400)
def test_dry_run_performs_every_stage(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(GPU / "run.py"), "--dry-run", "--out", str(tmp_path)],
                          cwd=str(REPO), env=env, capture_output=True, text=True, timeout=380)
    assert (tmp_path / "gpu_results.json").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_results.json").read_text())
    log = (tmp_path / "gpu_log.txt").read_text(errors="replace")
    stages = res["stages"]
    assert list(stages) == ["install", "env", "model_eager", "edge", "node", "model_compile"]
    bad = {n: s["status"] for n, s in stages.items() if s["status"] != "ok"}
    assert not bad, f"{bad}\n{log[-4000:]}"
    assert proc.returncode == 0
    assert res["dry_run"] is True and res["stages"]["env"]["result"]["machine"]["device"] == "cpu"
    for name, variants in (("model_eager", {"eager", "cudagraphs"}), ("edge", {"eager", "cudagraphs"}),
                           ("model_compile", {"compile+cudagraphs"})):
        cells = stages[name]["result"]["cells"]
        assert {c["variant"] for c in cells} == variants, name
        for c in cells:
            assert "failed" not in c, c
            assert c["model_only"]["p50_ms"] > 0 and c["model_only_fps"] > 0
            assert c["end_to_end_from_camera"]["p50_ms"] > 0
    assert {c["batch"] for c in stages["model_eager"]["result"]["cells"]} == {1, 2}
    cases = stages["node"]["result"]["cases"]
    assert [c["name"] for c in cases] == ["edge_random", "shipped"]
    for c in cases:
        assert "failed" not in c, c
        assert c["end_to_end"]["p50_ms"] > 0 and c["model_only_infer"]["p50_ms"] > 0
        assert c["node_diagnostics"]["device"] == "cpu"
    assert len(res["summary"]) == 4 + 2 + 1 + 2
