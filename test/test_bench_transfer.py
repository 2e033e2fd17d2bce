"""benchmarks/transfer.py: trains the recipe resumably and reports; the targets are read from real-frame figures."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import transfer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def smoke_args(tmp: Path, *extra: str) -> list[str]:
    return ["--data", str(tmp / "data"), "--num-train", "4", "--num-val", "1", "--size", "64x96", "--gen-workers", "1",
            "--profile", "basic",  # the nyud profile renders ~1 frame/s even at 64x96
            "--runs-dir", str(tmp / "runs"), "--results-dir", str(tmp / "res"), "--real-data", str(tmp / "no_frames"),
            "--reference", "none", "--workers", "0", "--eval-frames", "1",
            "--set", "train.iterations=4", "--set", "data.input_size=[64, 96]",
            "--set", "data.canonical_focal=77.8287",
            "--set", "model.backbone.pretrained=false", "--set", "train.checkpoint_every=2",
            "--set", "train.eval_every=2",
            "--set", "train.batch_size=2", "--set", "model.distiller.num_tokens=8", *extra]


def test_trains_resumes_and_reports_on_synthetic_val(tmp_path, capsys):
    ship = tmp_path / "weights" / "shipped.pt"
    assert transfer.main(smoke_args(tmp_path, "--max-iterations", "2", "--export-weights", str(ship))) == 0
    run = tmp_path / "runs" / "synth_transfer_lite0"
    res = tmp_path / "res" / "transfer_synth_transfer_lite0.json"
    first = json.loads(res.read_text())
    assert first["iteration"] == 2 and (run / "last.pt").is_file() and (run / "transfer.log").stat().st_size > 0
    assert not ship.exists() and "exported" not in first  # half a schedule is not shipped
    assert transfer.main(smoke_args(tmp_path, "--export-weights", str(ship))) == 0  # goes on from last.pt
    doc = json.loads(res.read_text())
    assert doc["iteration"] == 4 and doc["iterations_total"] == 4
    side = json.loads(ship.with_suffix(".json").read_text())
    assert ship.is_file() and side["reproduce"].startswith("python benchmarks/transfer.py") and side["iterations"] == 4
    assert set(side["headline_val"]) == {"semseg", "depth", "normals", "edge"} and doc["exported"] == side
    assert "resumed from" in (run / "transfer.log").read_text()
    assert doc["selected"].endswith("best.pt") and doc["best_iteration"] in (2, 4)
    sel = doc["synthetic"]["selected (best.pt)"]
    assert sel["frames"] == 1 and set(sel["headline"]) == {"semseg", "depth", "normals", "edge"}
    assert doc["real"] == {} and all(t["met"] is None for t in doc["targets"])  # no frames: nothing claimed
    cfg = doc["config_dict"]
    assert cfg["data"]["augment"]["jpeg"]["p"] > 0 and cfg["train"]["backbone_lr_mult"] < 1
    assert (tmp_path / "res" / "transfer_synth_transfer_lite0.md").read_text().startswith("# Transfer recipe")
    # another setting in the same run folder is refused, not mixed in
    assert transfer.main(smoke_args(tmp_path, "--set", "train.lr=0.1")) == 2
    assert "other settings" in capsys.readouterr().err


def test_targets_are_read_from_the_real_frame_figures():
    real = {"pooled": {"model": {"depth": {"rmse_m": 0.45, "delta1_pct": 70.0},
                                 "semseg": {"mIoU_gt_classes": 21.0, "pixel_acc": 60.0}}},
            "per_frame": [{"frame": "nyu_0433", "model": {"normals": {"mErr_deg": 27.5}}},
                          {"frame": "nyu_0464", "model": {"normals": {"mErr_deg": 40.0}}}]}
    rows = {(r["task"], r["figure"]): r for r in transfer.check_targets(real)}
    assert rows[("depth", "rmse_m")]["met"] is True and rows[("depth", "delta1_pct")]["met"] is False
    assert rows[("normals", "mErr_deg")]["value"] == 27.5 and rows[("normals", "mErr_deg")]["met"] is True
    assert rows[("semseg", "mIoU_gt_classes")]["met"] is True and rows[("semseg", "pixel_acc")]["met"] is False
    syn = transfer.check_synthetic({"headline": {"semseg": 18.0, "depth": 0.44}},
                                   {"headline": {"semseg": 20.0, "depth": 0.40}})
    assert syn["semseg"]["worse_by"] == pytest.approx(0.1) and syn["semseg"]["ok"]
    assert syn["depth"]["worse_by"] == pytest.approx(0.1) and syn["depth"]["ok"]
    assert not transfer.check_synthetic({"headline": {"depth": 0.5}}, {"headline": {"depth": 0.4}})["depth"]["ok"]


def test_a_run_folder_in_use_is_refused(tmp_path, capsys):
    import subprocess

    run = tmp_path / "runs" / "synth_transfer_lite0"
    run.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "transfer.py"])
    try:
        (run / "transfer.pid").write_text(f"{other.pid}\n")
        assert transfer.main(smoke_args(tmp_path)) == 2
        assert f"being trained by process {other.pid}" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    (run / "transfer.pid").write_text(f"{other.pid}\n")  # a dead process's file does not block
    assert transfer.running_pid(run) is None


def test_a_data_folder_is_never_overwritten(tmp_path):
    from mtlsi_core.data.synth import write_dataset

    made = tmp_path / "made"
    write_dataset(made, num_train=2, num_val=1, seed=3, size=(64, 96), workers=1)  # mtlsi-synth's way: no stamp
    before = sorted(p.name for p in (made / "images").iterdir())
    spec = transfer.ensure_data(made, 20, 5, (64, 96), 0, 1, "basic")
    assert spec["existing"] and spec["seed"] == 3 and sorted(p.name for p in (made / "images").iterdir()) == before
    stamped = tmp_path / "stamped"
    assert transfer.ensure_data(stamped, 2, 1, (64, 96), 0, 1, "basic")["num_train"] == 2
    with pytest.raises(transfer.DataFolderError, match="made with"):
        transfer.ensure_data(stamped, 3, 1, (64, 96), 0, 1, "basic")


def test_the_default_reference_is_the_synthetic_demo_model():
    """The issue compares with the synthetic-only demo model; once the recipe's model is the node's default
    (checkpoint.DEFAULT_MODEL_NAME), a default of "the node's model" would compare the model with itself."""
    ref = transfer.build_parser().parse_args([]).reference
    assert ref.name == "synth_edge_lite0.pt" and ref.is_file()
