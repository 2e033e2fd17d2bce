"""benchmarks/learning_proof.py end to end on a tiny budget (tiny config): files, verdict, exported weights."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mtlsi_core.checkpoint import load_checkpoint
from mtlsi_core.models import load_model_from_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "configs" / "tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load_script():
    spec = importlib.util.spec_from_file_location("learning_proof", REPO / "benchmarks" / "learning_proof.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_budget_reports_not_learned_and_exports(tmp_path):
    lp = _load_script()
    res, weights = tmp_path / "results", tmp_path / "w" / "demo.pt"
    argv = ["--config", str(TINY), "--data", str(tmp_path / "data"), "--num-train", "4", "--num-val", "2",
            "--size", "64x96", "--iterations", "2", "--batch-size", "2", "--eval-frames", "1", "--workers", "0",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(res), "--no-progress",
            "--export-weights", str(weights)]
    # two iterations cannot "clearly learn": the script must say so and exit 1
    assert lp.main(argv) == 1
    doc = json.loads((res / "learning_proof.json").read_text())
    assert [r["interaction"] for r in doc["runs"]] == ["mqlfb", "none"]
    assert all(r["iterations"] == 2 and r["val_frames"] == 2 for r in doc["runs"])
    assert all(r["seconds_per_iteration"] > 0 for r in doc["runs"])
    assert doc["verdict"]["learned"] is False and set(doc["verdict"]["mqlfb_beats_none"]) == set(doc["tasks"])
    assert set(doc["constant"]["headline"]) == set(doc["untrained"]["headline"]) == set(doc["tasks"])
    md = (res / "learning_proof.md").read_text()
    assert "| constant predictor |" in md and "| none (PD baseline) |" in md and "**Learned" in md and "NO" in md

    side = json.loads(weights.with_suffix(".json").read_text())
    assert side["reproduce"].startswith("python benchmarks/learning_proof.py") and side["data"]["seed"] == 0
    assert "optimizer" not in load_checkpoint(weights)
    model, cfg = load_model_from_checkpoint(weights)
    assert cfg.model.interaction == "mqlfb"

    # a second invocation resumes the finished runs instead of training again
    assert lp.main(argv) == 1
    again = json.loads((res / "learning_proof.json").read_text())
    assert [r["resumed_from_iteration"] for r in again["runs"]] == [2, 2]
    assert again["runs"][0]["headline"] == doc["runs"][0]["headline"]


def test_verdict_rule():
    lp = _load_script()
    assert lp.learned("semseg", 30.0, {"constant": 2.0, "untrained": 1.0})[0]
    assert not lp.learned("semseg", 6.0, {"constant": 2.0, "untrained": 1.0})[0]  # +5 over constant missed
    assert lp.learned("depth", 0.5, {"constant": 1.0, "untrained": 3.0})[0]
    assert not lp.learned("depth", 0.8, {"constant": 1.0, "untrained": 3.0})[0]
    assert not lp.learned("edge", 42.0, {"constant": 3.0, "untrained": 40.0})[0]  # not 5 above the untrained net


def test_interaction_overrides_reach_only_the_runs_with_an_interaction(tmp_path):
    lp = _load_script()
    args = lp.build_parser().parse_args(
        ["--config", "synth_edge_lite0", "--data", str(tmp_path), "--set", "train.lr=1.0e-3",
         "--interaction-set", "model.refinement.coarse_residual=true", "--interaction-set", "model.distiller.hidden=256"])
    mq, none = lp.run_config(args, "mqlfb"), lp.run_config(args, "none")
    assert mq.model.refinement.coarse_residual and mq.model.distiller.hidden == 256 and mq.train.lr == 1e-3
    assert not none.model.refinement.coarse_residual and none.model.interaction == "none" and none.train.lr == 1e-3
