"""Delta_m against a published table, the multi-task evaluator's API and the results table."""
from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from mtlsi_core.metrics import (STL_REFERENCES, MultiTaskEvaluator, delta_m, format_table, headline_values,
                                stl_reference)
from mtlsi_core.tasks import get_dataset

# Rows of SAK (ICLR 2025) Table 6 (NYUD-v2) and Table 5 (PASCAL-Context), ViT-L, with their printed Delta_m (%),
# computed there against the single-task row that STL_REFERENCES holds.
NYUD_ROWS = [
    ({"semseg": 52.42, "depth": 0.5413, "normals": 19.29, "edge": 76.50}, -0.76),  # multi-task baseline
    ({"semseg": 53.56, "depth": 0.5183, "normals": 19.04, "edge": 78.10}, 1.64),  # InvPT
    ({"semseg": 55.30, "depth": 0.5152, "normals": 18.47, "edge": 78.20}, 3.36),  # TaskPrompter
    ({"semseg": 63.18, "depth": 0.4313, "normals": 16.25, "edge": 79.43}, 14.05),  # SAK
]
PASCAL_ROWS = [
    ({"semseg": 80.22, "human_parts": 69.12, "sal": 84.74, "normals": 13.73, "edge": 74.20}, -1.19),  # InvPT++
    ({"semseg": 80.89, "human_parts": 68.89, "sal": 84.83, "normals": 13.72, "edge": 73.50}, -1.24),  # TaskPrompter
    ({"semseg": 84.01, "human_parts": 76.99, "sal": 84.65, "normals": 13.82, "edge": 76.27}, 2.30),  # SAK
]


@pytest.mark.parametrize("row,printed", NYUD_ROWS)
def test_delta_m_reproduces_published_nyud(row, printed):
    assert round(delta_m(row, stl_reference("nyud")), 2) == printed


@pytest.mark.parametrize("row,printed", PASCAL_ROWS)
def test_delta_m_reproduces_published_pascal(row, printed):
    assert round(delta_m(row, stl_reference("pascal")), 2) == printed


def test_delta_m_by_hand_and_errors():
    # depth (lower is better) 0.5 vs 0.4 -> -25 %; semseg 50 vs 40 -> +25 %; mean 0
    assert delta_m({"semseg": 50.0, "depth": 0.5}, {"semseg": 40.0, "depth": 0.4}) == pytest.approx(0.0)
    assert delta_m({"depth": 0.3}, {"depth": 0.4}) == pytest.approx(25.0)
    # evaluator output is accepted
    assert delta_m({"depth": {"headline": 0.3, "rmse": 0.3}}, {"depth": 0.4}) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="no reference value for task"):
        delta_m({"semseg": 1.0, "sal": 2.0}, {"semseg": 1.0})
    with pytest.raises(ValueError, match="is 0"):
        delta_m({"semseg": 1.0}, {"semseg": 0.0})
    with pytest.raises(KeyError, match="no single-task reference"):
        stl_reference("synth")


def test_references_cover_dataset_tasks_and_cite_a_source():
    for ref in STL_REFERENCES.values():
        assert set(ref.values) == set(get_dataset(ref.dataset).tasks)
        assert "Table" in ref.source and "arXiv" in ref.source


def test_evaluator_options_and_errors():
    ev = MultiTaskEvaluator(["semseg", "edge"], "nyud", edge={"thresholds": 5})
    assert ev.metrics["edge"].thresholds.size == 5
    with pytest.raises(ValueError, match="not among the tasks"):
        MultiTaskEvaluator(["semseg"], "nyud", edge={"thresholds": 5})
    with pytest.raises(ValueError, match="dataset 'nyud' has no task 'sal'"):
        MultiTaskEvaluator(["sal"], "nyud")
    seg = np.zeros((4, 5), np.uint8)
    with pytest.raises(KeyError, match="predictions lack task 'edge'"):
        ev.update({"semseg": seg}, {"semseg": seg, "edge": seg})
    with pytest.raises(ValueError, match="'edge': prediction shape"):
        ev.update({"semseg": seg, "edge": np.zeros((5, 4), np.float32)}, {"semseg": seg, "edge": seg})


def test_evaluator_accepts_dataset_objects_and_pickles_state():
    spec = get_dataset("pascal")
    for ds in (spec, SimpleNamespace(spec=spec), SimpleNamespace(dataset_name="pascal")):
        assert MultiTaskEvaluator(["human_parts"], ds).dataset is spec
    with pytest.raises(TypeError, match="cannot tell which dataset"):
        MultiTaskEvaluator(["semseg"], object())
    ev = MultiTaskEvaluator(["human_parts", "sal"], "pascal")
    ev.update({"human_parts": np.array([[1, 0]]), "sal": np.array([[0.7, 0.2]], np.float32)},
              {"human_parts": np.array([[1, 0]]), "sal": np.array([[1, 0]])})
    other = MultiTaskEvaluator(["human_parts", "sal"], "pascal")
    other.merge(pickle.loads(pickle.dumps(ev.state())))
    assert other.compute() == ev.compute()
    assert other.compute()["human_parts"]["miou"] == pytest.approx(100 * 2 / 7)
    assert other.compute()["sal"]["maxf"] == pytest.approx(100.0)


def test_format_table_paper_layout():
    ev = MultiTaskEvaluator(["semseg", "depth", "normals", "edge"], "nyud", edge={"thresholds": 3})
    results = {"semseg": 53.56, "depth": 0.5183, "normals": 19.04, "edge": 78.10}
    table = ev.format_table(results, params_m=38.27, name="Ours (Swin-L)", references=stl_reference("nyud"))
    lines = table.splitlines()
    assert lines[0] == ("| Method | Seg. (mIoU↑) | Depth (RMSE↓) | Normal (mErr↓) | Boundary (odsF↑) | Δm (%)↑ "
                        "| Params (M) |")
    assert lines[2] == "| Ours (Swin-L) | 53.56 | 0.5183 | 19.04 | 78.10 | +1.64 | 38.27 |"
    assert "Parsing (mIoU↑)" in format_table({"human_parts": 69.9, "sal": 84.52})
    assert headline_values({"sal": {"headline": 84.5}}) == {"sal": 84.5}
