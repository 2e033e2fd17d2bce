"""benchmarks/ablation.py on a tiny budget: every arm's config validates, results per (arm, seed), summary with
mean / std / per-seed values, a rerun skips finished runs and resumes an interrupted one from its checkpoint."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def ablation(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("ablation_under_test", REPO / "benchmarks" / "ablation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("ablation_under_test", None)


def test_every_arm_validates(ablation, tmp_path):
    names = []
    for arm, overrides in ablation.ARMS.items():
        if overrides is None:
            continue
        cfg = ablation.arm_config(tmp_path, overrides, 0, name=arm)
        names.append(cfg.model.interaction)
        assert cfg.train.iterations == ablation.ITERATIONS and cfg.data.input_size == (128, 160)
    assert {"none", "mqlfb", "mhsa", "window_xtask", "deformable"} <= set(names)
    # Fig. 3's K values stay below N = 4 tasks x (128/16) x (160/16) tokens (Sec. II-C: K < N)
    ks = [ablation.arm_config(tmp_path, o, 0).model.distiller.num_tokens for a, o in ablation.ARMS.items()
          if a.startswith("K_")]
    assert len(ks) == 3 and max(ks) < 4 * 8 * 10


def test_tiny_run_summary_skip_and_resume(ablation, tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "DATA_SPEC", {"num_train": 4, "num_val": 2, "size": (64, 96), "seed": 0})
    monkeypatch.setattr(ablation, "BASE_SETS", ["data.input_size=[64,96]", "model.cwib.window=[4,6]",
                                                "train.batch_size=2", "train.warmup_iterations=0",
                                                "train.checkpoint_every=1", "data.num_workers=0",
                                                "model.backbone.pretrained=false"])
    res, runs = tmp_path / "res", tmp_path / "runs"
    argv = ["--arms", "constant", "none", "mqlfb", "--seeds", "0", "1", "--iterations", "2", "--data",
            str(tmp_path / "data"), "--runs-dir", str(runs), "--results-dir", str(res)]
    assert ablation.main(argv) == 0
    files = sorted(p.name for p in (res / "ablation").glob("*__s*.json"))
    assert files == ["constant__s0.json", "mqlfb__s0.json", "mqlfb__s1.json", "none__s0.json", "none__s1.json"]
    doc = json.loads((res / "ablation.json").read_text())
    m = doc["summary"]["arms"]["mqlfb"]
    assert m["seeds_done"] == ["0", "1"] and set(m["mean"]) == set(doc["tasks"]) == set(m["std"])
    for t in doc["tasks"]:
        vals = [m["per_seed"][s][t] for s in ("0", "1")]
        assert m["mean"][t] == pytest.approx(sum(vals) / 2)
    assert m["cost"]["head_params"] > doc["summary"]["arms"]["none"]["cost"]["head_params"] > 0
    assert m["cost"]["cpu_ms_per_forward_median"] > 0 and m["cost"]["gflops"]["total"] > 0
    assert doc["vs_none"]["mqlfb"] is not None and (res / "ablation.md").is_file() and (res / "ablation.png").is_file()

    # a rerun skips finished runs (files untouched) ...
    before = {p: p.stat().st_mtime_ns for p in (res / "ablation").glob("*__s*.json")}
    assert ablation.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before
    # ... and an interrupted run (checkpoint written, result file not) resumes from its checkpoint
    (res / "ablation" / "none__s1.json").unlink()
    assert ablation.main(argv) == 0
    again = json.loads((res / "ablation" / "none__s1.json").read_text())
    assert again["resumed_from_iteration"] == 2 and again["iterations"] == 2
    # a result file from other settings is never silently mixed in
    with pytest.raises(SystemExit, match="other settings"):
        ablation.main([*argv[:-6], "--iterations", "3", *argv[-6:]])
