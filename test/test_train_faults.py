"""Faults: a training process killed with SIGKILL mid-run resumes from its last complete checkpoint."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtlsi_core.checkpoint import load_checkpoint
from mtlsi_core.training.train import main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "test" / "configs" / "tiny.yaml")
EVERY = 3


def _args(tiny_synth: Path, out: Path, total: int) -> list[str]:
    return ["--config", TINY, "--data", str(tiny_synth), "--output", str(out), "--device", "cpu", "--no-progress",
            "--workers", "0", "--eval-max-frames", "1", "--set", f"train.iterations={total}",
            "--set", f"train.checkpoint_every={EVERY}", "--set", "train.eval_every=1000",
            "--set", "train.log_every=1"]


def _logged_iterations(text: str) -> list[int]:
    return [int(m) for m in re.findall(r" it (\d+)/\d+ ", text)]


@pytest.mark.slow
def test_sigkill_then_resume_loses_at_most_one_interval(tiny_synth, tmp_path, caplog):
    out, log_path, total = tmp_path / "run", tmp_path / "train.log", 16
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mtlsi_core.training.train", *_args(tiny_synth, out, total)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # kill once a couple of checkpoints are behind it
                its = _logged_iterations(log_path.read_text())
                if its and its[-1] >= 2 * EVERY + 1:
                    break
                if proc.poll() is not None:
                    pytest.fail(f"training ended early (rc {proc.returncode}):\n{log_path.read_text()}")
                time.sleep(0.05)
            else:
                pytest.fail(f"training made no progress in 120 s:\n{log_path.read_text()}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reached = _logged_iterations(log_path.read_text())[-1]
    assert reached < total, "the run finished before it was killed; the test proves nothing"

    saved = load_checkpoint(out / "last.pt")["iteration"]
    assert saved % EVERY == 0 and 0 <= reached - saved <= EVERY, (saved, reached)
    # a half-written temporary file as a kill during torch.save leaves it: never read, cleaned up on resume
    stale = out / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"PK\x03\x04 half a zip file")

    torch.set_num_threads(1)
    caplog.set_level("INFO")
    assert main(_args(tiny_synth, out, total) + ["--resume", "auto"]) == 0
    assert f"resumed from {out / 'last.pt'} at iteration {saved})" in caplog.text
    final = load_checkpoint(out / "last.pt")
    assert final["iteration"] == total
    assert not stale.exists()
