"""DistributedDataParallel: two Gloo processes on CPU under torchrun keep identical replicas."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtlsi_core.checkpoint import load_checkpoint
from mtlsi_core.data import build_dataset
from mtlsi_core.data.synth import write_dataset
from mtlsi_core.models import load_model_from_checkpoint
from mtlsi_core.training import scoring
from mtlsi_core.training.evaluation import evaluate_model
from mtlsi_core.training.trainer import params_hash

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "test" / "configs" / "tiny.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_parameters(tmp_path):
    synth = tmp_path / "synth"
    write_dataset(synth, num_train=8, num_val=3, seed=3, size=(64, 96), workers=1)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "mtlsi_core.training.train",
           "--config", TINY, "--data", str(synth), "--output", str(out), "--device", "cpu", "--no-progress",
           "--set", "train.iterations=3", "--set", "train.eval_every=1000", "--set", "train.checkpoint_every=1000",
           "--set", "data.augment.hflip=true"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    rep = json.loads((out / "replicas.json").read_text())
    hashes = rep["rank_param_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1] and rep["identical"] is True
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["iteration"] == 3 and ckpt["sampler"]["world_size"] == 2 and len(ckpt["rng"]) == 2
    model, cfg = load_model_from_checkpoint(out / "last.pt")
    assert params_hash(model) == hashes[0]  # the hashes are of the weights rank 0 saved

    # The end-of-run evaluation was sharded over the two ranks (frames 0, 2 | 1) and merged on rank 0:
    # it must equal a single-process evaluation of the same weights.
    torch.set_num_threads(1)
    val = build_dataset(cfg, cfg.data.val_split, root=str(synth), train=False)
    single = evaluate_model(model, val, cfg.tasks, "cpu", batch_size=2)
    merged = ckpt["meta"]["metrics"]
    for t in cfg.tasks:
        assert scoring.headline_metrics(merged, [t])[t] == pytest.approx(
            scoring.headline_metrics(single.metrics, [t])[t], rel=1e-5, abs=1e-6), t
