"""Evaluation metrics, computed the way the peer methods (InvPT, ATRC, MTI-Net + SEISM) compute them.

``METRICS`` maps the registry's metric names (``TaskSpec.metric``) to accumulator classes
(``cls(task, dataset, **kw)``, ``update(pred, target)``, ``compute()``, ``state()``, ``merge(state)``); each module
states the source it follows. ``MultiTaskEvaluator`` runs them for all tasks, ``delta_m`` gives the multi-task gain;
``protocol`` names the ground-truth and metric choices of the project's and of the peers' (``paper``) evaluation.
"""
from __future__ import annotations

from typing import Mapping

from mtlsi_core.metrics.base import Metric, resolve_dataset
from mtlsi_core.metrics.boundary import BoundaryMetric, seg2bmap
from mtlsi_core.metrics.depth import DepthMetric
from mtlsi_core.metrics.multitask import (STL_REFERENCES, MultiTaskEvaluator, Reference, delta_m, format_table,
                                          headline_values, stl_reference)
from mtlsi_core.metrics.normals import NormalsMetric, angular_error_deg
from mtlsi_core.metrics.protocol import PROTOCOLS, EvalProtocol, get_protocol
from mtlsi_core.metrics.saliency import MaxFMetric
from mtlsi_core.metrics.segmentation import MeanIoU

METRICS: Mapping[str, type[Metric]] = {
    "miou": MeanIoU,
    "depth": DepthMetric,
    "normals": NormalsMetric,
    "boundary": BoundaryMetric,
    "maxf": MaxFMetric,
}

__all__ = [
    "METRICS", "Metric", "MeanIoU", "DepthMetric", "NormalsMetric", "BoundaryMetric", "MaxFMetric",
    "MultiTaskEvaluator", "delta_m", "format_table", "headline_values", "STL_REFERENCES", "Reference",
    "stl_reference", "seg2bmap", "angular_error_deg", "resolve_dataset", "EvalProtocol", "PROTOCOLS", "get_protocol",
]
