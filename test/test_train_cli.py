"""mtlsi-train command line: bad input gives exit status 2 and a message naming what is wrong."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtlsi_core.training.train import main

TINY = str(Path(__file__).parent / "configs" / "tiny.yaml")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def test_missing_data_folder(capsys, tmp_path):
    rc, err = run(capsys, "--config", TINY, "--data", str(tmp_path / "absent"), "--output", str(tmp_path / "o"))
    assert rc == 2 and f"--data {tmp_path / 'absent'}: folder not found" in err


def test_unknown_config_key_is_named(capsys, tmp_path, tiny_synth):
    rc, err = run(capsys, "--config", TINY, "--data", str(tiny_synth), "--set", "train.learning_rate=0.1")
    assert rc == 2 and "train.learning_rate: unknown key" in err and "tiny.yaml" in err


def test_missing_config_file(capsys):
    rc, err = run(capsys, "--config", "no_such_config_here")
    assert rc == 2 and "no_such_config_here" in err and "not found" in err


def test_cuda_requested_without_cuda(capsys, tiny_synth, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rc, err = run(capsys, "--config", TINY, "--data", str(tiny_synth), "--output", str(tmp_path / "o"),
                  "--device", "cuda")
    assert rc == 2 and "CUDA is not available" in err


def test_corrupt_checkpoint_is_named(capsys, tiny_synth, tmp_path):
    out = tmp_path / "run"
    args = ["--config", TINY, "--data", str(tiny_synth), "--output", str(out), "--device", "cpu", "--no-progress",
            "--set", "train.iterations=2", "--set", "train.eval_every=100", "--eval-max-frames", "1"]
    assert main(args) == 0
    last = out / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])  # truncated, as a non-atomic writer killed mid-write would leave it
    rc, err = run(capsys, *args, "--resume")
    assert rc == 2 and f"checkpoint file {last} is corrupt" in err
    rc, err = run(capsys, *args, "--resume", str(tmp_path / "missing.pt"))
    assert rc == 2 and f"checkpoint file not found: {tmp_path / 'missing.pt'}" in err


def test_resume_path_alone_uses_the_stored_config(capsys, tiny_synth, tmp_path):
    out = tmp_path / "run"
    base = ["--data", str(tiny_synth), "--output", str(out), "--device", "cpu", "--no-progress",
            "--eval-max-frames", "1"]
    assert main(["--config", TINY, *base, "--set", "train.iterations=3", "--set", "train.eval_every=100",
                 "--max-iterations", "2"]) == 0
    assert main([*base, "--resume", str(out / "last.pt")]) == 0
    from mtlsi_core.checkpoint import load_checkpoint

    assert load_checkpoint(out / "last.pt")["iteration"] == 3
