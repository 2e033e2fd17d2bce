"""Evaluation protocols (mtlsi_core.metrics.protocol): each quirk of the peers' ``paper`` protocol against a
hand-made case, worked out by hand, beside the project's default."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from mtlsi_core.checkpoint import atomic_torch_save, make_checkpoint
from mtlsi_core.config import load_config
from mtlsi_core.data.nyud import NYUDMT
from mtlsi_core.data.pascal import PascalContext, edges_from_labels
from mtlsi_core.data.synth import write_dataset
from mtlsi_core.data.transforms import EvalTransform
from mtlsi_core.metrics import MaxFMetric, NormalsMetric, get_protocol
from mtlsi_core.metrics.boundary import BoundaryMetric
from mtlsi_core.models import build_model
from mtlsi_core.training.evaluate import main
from mtlsi_core.training.evaluation import _default_evaluator_factory

TINY = Path(__file__).parent / "configs" / "tiny.yaml"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _nyud_folder(root: Path, edge: np.ndarray | None = None, normals: np.ndarray | None = None) -> Path:
    """A one-frame NYUD-MT folder of the given edge PNG (uint8 0/255) and/or normals PNG (uint8 RGB)."""
    shape = (edge if edge is not None else normals).shape[:2]
    for f in ("images", "edge", "normals", "gt_sets"):
        (root / f).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / "a.png"), np.full((*shape, 3), 100, np.uint8))
    if edge is not None:
        cv2.imwrite(str(root / "edge" / "a.png"), edge)
    if normals is not None:
        cv2.imwrite(str(root / "normals" / "a.png"), cv2.cvtColor(normals, cv2.COLOR_RGB2BGR))
    (root / "gt_sets" / "val.txt").write_text("a\n")
    return root


def _load(root: Path, task: str, protocol: str) -> np.ndarray:
    ds = NYUDMT(root, "val", [task], EvalTransform((64, 64), (0.5,) * 3, (0.25,) * 3), protocol=protocol)
    return ds.load_raw(0)[task]


def test_protocols_are_declared_once():
    project, paper = get_protocol(), get_protocol("paper")
    assert project.name == "project" and get_protocol("project") is project
    assert project.metric_kwargs(["semseg", "depth", "normals", "edge", "sal"]) == {}
    assert paper.metric_kwargs(["semseg", "sal", "edge"]) == {
        "sal": {"invpt_double_sigmoid": True}, "edge": {"protocol": "invpt", "thin_gt": True}}
    with pytest.raises(ValueError, match="unknown evaluation protocol 'bogus'.*project, paper"):
        get_protocol("bogus")


# -- quirk 1: boundary ground truth = thin(seg2bmap(X)) --------------------------------------------------------

def test_nyud_boundary_gt_is_seg2bmap_of_the_edge_png(tmp_path):
    # a 2-pixel-wide vertical boundary line (columns 4 and 5) in an 6x10 edge PNG
    png = np.zeros((6, 10), np.uint8)
    png[:, 4:6] = 255
    root = _nyud_folder(tmp_path, edge=png)
    project = _load(root, "edge", "project")
    np.testing.assert_array_equal(project, png // 255)  # the line itself (thinned to one column by the metric)
    paper = _load(root, "edge", "paper")
    # seg2bmap of the PNG read as labels: a pixel whose east / south / south-east neighbour differs. Column 3
    # (0 next to 255) and column 5 (255 next to 0) in every row; the last row compares east only (same columns).
    expect = np.zeros((6, 10), np.uint8)
    expect[:, 3] = 1
    expect[:, 5] = 1
    np.testing.assert_array_equal(paper, expect)


def test_boundary_gt_constructions_score_the_same_prediction_differently():
    """A prediction on the line itself: against the project's GT (the line) it is perfect; against SEISM's two
    outlines, 1 px away on either side, each predicted pixel matches one of two GT pixels: recall 1/2."""
    h, w = 40, 40
    png = np.zeros((h, w), np.uint8)
    png[:, 19:21] = 255
    from mtlsi_core.metrics import seg2bmap

    pred = np.zeros((h, w), np.float32)
    pred[:, 19] = 1.0  # one-pixel line
    # tolerance 0.03 x diagonal 56.6 = 1.7 px (NYUD's 0.011 would be 0.6 px on this small image)
    m_proj = BoundaryMetric("edge", "nyud", thresholds=[0.5], nms=False, max_dist=0.03)
    m_proj.update(pred, (png // 255).astype(np.uint8))
    m_paper = BoundaryMetric("edge", "nyud", thresholds=[0.5], nms=False, max_dist=0.03)
    m_paper.update(pred, seg2bmap(png).astype(np.uint8))
    r_proj, r_paper = m_proj.compute(), m_paper.compute()
    from mtlsi_core.metrics.thinning import thin

    # project: the 2-px line thinned to one column (39 of its 40 rows survive the thinning), all matched
    kept = int(thin(png > 0).sum())
    assert kept == 39
    assert r_proj["ods_recall"] == pytest.approx(100.0)
    assert r_proj["ods_precision"] == pytest.approx(100.0 * kept / 40)
    # SEISM GT: columns 18 and 20 (all 40 rows each; the last row too): 80 pixels, 40 predicted, 40 matches
    assert r_paper["ods_precision"] == pytest.approx(100.0)
    assert r_paper["ods_recall"] == pytest.approx(50.0)
    assert r_paper["odsf"] == pytest.approx(100 * 2 * 0.5 / 1.5)


def test_pascal_boundary_gt_is_seg2bmap_of_the_label_map():
    ctx = np.zeros((7, 9), np.int32)
    ctx[2:5, 3:7] = 12  # a 3x4 block of class 12
    paper = PascalContext._edge(SimpleNamespace(protocol=get_protocol("paper")), {}, ctx.shape, ctx)
    expect = np.zeros((7, 9), np.uint8)
    # seg2bmap: rows 1..4, columns 2..6 minus the interior whose E, S and SE neighbours are all 12
    expect[1, 2:7] = 1   # row above the block: its south / south-east neighbour is 12
    expect[2:5, 2] = 1   # column left of the block: east neighbour 12
    expect[4, 3:7] = 1   # the block's last row: south neighbour 0
    expect[2:4, 6] = 1   # the block's last column: east neighbour 0
    np.testing.assert_array_equal(paper, expect)
    project = PascalContext._edge(SimpleNamespace(protocol=get_protocol("project")), {}, ctx.shape, ctx)
    np.testing.assert_array_equal(project, edges_from_labels(ctx))
    assert not np.array_equal(project, paper)


# -- quirk 2: NYUD normals stored as (127, 127, 127) count ------------------------------------------------------

def test_nyud_grey_normals_count_in_the_paper_protocol(tmp_path):
    png = np.zeros((1, 2, 3), np.uint8)
    png[0, 0] = (128, 0, 128)      # stored (0.004, -1, 0.004): "away" = -1, a surface facing the camera
    png[0, 1] = (127, 127, 127)    # the "no normal" code
    root = _nyud_folder(tmp_path, normals=png)
    project, paper = _load(root, "normals", "project"), _load(root, "normals", "paper")
    np.testing.assert_array_equal(project[0, 1], 0.0)  # dropped (invalid)
    # kept: (-1, -1, -1) / sqrt(3) in stored (right, away, up) -> optical (x, -up, away) = (-1, 1, -1) / sqrt(3)
    np.testing.assert_allclose(paper[0, 1], np.array([-1, 1, -1]) / math.sqrt(3), atol=1e-6)
    np.testing.assert_allclose(project[0, 0], paper[0, 0])
    pred = np.zeros((1, 2, 3), np.float32)
    pred[..., 2] = -1.0  # facing the camera everywhere
    m_proj, m_paper = NormalsMetric("normals", "nyud"), NormalsMetric("normals", "nyud")
    m_proj.update(pred, project)
    m_paper.update(pred, paper)
    e0 = math.degrees(math.atan2(math.hypot(2 * 128 / 255 - 1, 2 * 128 / 255 - 1), 1.0))  # 0.32 degrees
    assert m_proj.compute()["mean"] == pytest.approx(e0, abs=1e-3)
    assert m_proj.compute()["pixels"] == 1 and m_paper.compute()["pixels"] == 2
    # the grey pixel: angle between (0, 0, -1) and (-1, 1, -1) / sqrt(3) = acos(1 / sqrt(3)) = 54.7356 degrees
    assert m_paper.compute()["mean"] == pytest.approx((e0 + math.degrees(math.acos(1 / math.sqrt(3)))) / 2, abs=1e-3)


# -- quirk 3: saliency maxF after a second sigmoid ---------------------------------------------------------------

def test_saliency_maxf_second_sigmoid():
    p = np.array([[0.6, 0.5, 0.45, 0.1]], np.float32)
    gt = np.array([[1, 1, 0, 0]], np.uint8)
    kw = get_protocol("paper").metric_kwargs(["sal"])["sal"]
    proj, paper = MaxFMetric("sal", "pascal"), MaxFMetric("sal", "pascal", **kw)
    proj.update(p, gt)
    paper.update(p, gt)
    # project: threshold 0.5 keeps exactly the two positives: F = 1
    assert proj.compute()["maxf"] == pytest.approx(100.0)
    # paper: sigmoid(p) = 0.6457, 0.6225, 0.6106, 0.5250; at 0.55 and 0.60 three pixels pass (P 2/3, R 1),
    # at 0.65 none: maxF = 1.3 (2/3) / (0.3 (2/3) + 1)
    assert paper.compute()["maxf"] == pytest.approx(100 * 1.3 * (2 / 3) / (0.3 * 2 / 3 + 1))


def test_evaluator_factory_applies_the_datasets_protocol():
    ds = SimpleNamespace(dataset="pascal", protocol=get_protocol("paper"))
    ev = _default_evaluator_factory(["semseg", "sal", "edge"], ds)
    assert ev.metrics["sal"].double_sigmoid is True and ev.metrics["edge"].thin_gt is True
    ds.protocol = get_protocol("project")
    assert _default_evaluator_factory(["sal"], ds).metrics["sal"].double_sigmoid is False


def test_cli_protocol_option(tmp_path, capsys):
    write_dataset(tmp_path / "synth", num_train=1, num_val=1, seed=6, size=(64, 96), workers=1)
    cfg = load_config(TINY)
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    atomic_torch_save(make_checkpoint(build_model(cfg).state_dict(), cfg.to_dict(), {}), ckpt)
    docs = {}
    for proto in ("project", "paper"):
        out = tmp_path / f"{proto}.json"
        assert main(["--checkpoint", str(ckpt), "--data", str(tmp_path / "synth"), "--json", str(out),
                     "--device", "cpu", "--protocol", proto]) == 0
        docs[proto] = json.loads(out.read_text())
        assert docs[proto]["protocol"] == proto
        assert f"({proto} protocol)" in capsys.readouterr().out
    # synthetic normals are all valid and the labels the same: only the boundary ground truth differs
    for t in ("semseg", "depth", "normals"):
        assert docs["paper"]["headline"][t] == pytest.approx(docs["project"]["headline"][t])
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(ckpt), "--protocol", "bogus"])
    assert e.value.code == 2


def test_datasets_with_a_protocol_pickle(tmp_path):
    """DataLoader workers start from a fork server: the dataset, protocol included, must pickle."""
    import pickle

    png = np.zeros((6, 10), np.uint8)
    png[:, 4:6] = 255
    root = _nyud_folder(tmp_path, edge=png)
    ds = NYUDMT(root, "val", ["edge"], EvalTransform((64, 64), (0.5,) * 3, (0.25,) * 3), protocol="paper")
    back = pickle.loads(pickle.dumps(ds))
    assert back.protocol == get_protocol("paper")
    np.testing.assert_array_equal(back.load_raw(0)["edge"], ds.load_raw(0)["edge"])
