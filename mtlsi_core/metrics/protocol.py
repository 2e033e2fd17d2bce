"""Evaluation protocols: the one place that says how ground truth is built and metrics are configured for scoring.

What it does: names the two ways ``mtlsi-eval`` can score a model, as one small frozen dataclass each, consumed
by the dataset loaders (``mtlsi_core.data.nyud`` / ``pascal``: how boundary and normal ground truth are built) and by
the evaluator factory of ``mtlsi_core.training.evaluation`` (extra metric options per registry metric name).
What it may touch: nothing; it is data. Loaders and metric builders read it; no ``if protocol == ...`` elsewhere.

- ``project`` (default): the project's own, cleaner ground truth: the dataset's boundary map as stored (NYUD edge
  PNG > 127; PASCAL: one-pixel boundaries of the 459-class label map, non-zero Laplacian, thinned), NYUD normals
  whose stored vector is shorter than 0.5 (the (127, 127, 127) "no normal" code of PNG encodings) invalid,
  saliency thresholded on the probability itself.
- ``paper``: what InvPT / TaskPrompter and ATRC compute behind the published tables, quirks included:
  boundary ground truth ``thin(seg2bmap(X))`` as SEISM builds it (X = the NYUD edge PNG read as a label map, or
  the PASCAL-Context label map; the thinning is the boundary metric's ``thin_gt``); every stored normal counts
  (the (127, 127, 127) pixels become the direction (-1, -1, -1) / sqrt(3) in stored coordinates, as InvPT's
  ``normalize_tensor`` makes them); saliency maxF thresholds sigmoid(p) (InvPT's ``SaliencyMeter`` applies a
  second sigmoid to probabilities).

Effects of each difference, measured: ``docs/evaluation_protocol.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

from mtlsi_core.tasks import get_task

BOUNDARY_GT = ("dataset", "seg2bmap")


@dataclass(frozen=True)
class EvalProtocol:
    name: str
    description: str
    # How boundary ground truth is built by the loaders: "dataset" = the dataset's boundary map as the project
    # builds it; "seg2bmap" = SEISM's seg2bmap of the label map X (thinned by the boundary metric).
    boundary_gt: str
    # NYUD-MT loader: a stored ground-truth normal shorter than this (before normalisation) is invalid (zero
    # vector); 0: every non-zero stored vector counts, normalised to unit length. (PASCAL's distilled normals keep
    # the project's rule under both protocols: their validity comes from the context classes.)
    normals_min_norm: float
    # Extra keyword arguments per registry metric name (``TaskSpec.metric``), on top of ``TaskSpec.metric_kwargs``.
    # Plain dicts (not mappingproxy): datasets carry their protocol into DataLoader workers, so it must pickle.
    metric_options: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.boundary_gt not in BOUNDARY_GT:
            raise ValueError(f"protocol {self.name!r}: boundary_gt must be one of {BOUNDARY_GT}, got "
                             f"{self.boundary_gt!r}")
        if not 0.0 <= self.normals_min_norm < 1.0:
            raise ValueError(f"protocol {self.name!r}: normals_min_norm must lie in [0, 1), got "
                             f"{self.normals_min_norm}")

    def metric_kwargs(self, tasks: Sequence[str]) -> dict[str, dict[str, object]]:
        """{task: extra metric keyword arguments} for the tasks whose metric this protocol configures
        (``MultiTaskEvaluator(tasks, dataset, **protocol.metric_kwargs(tasks))``)."""
        out: dict[str, dict[str, object]] = {}
        for t in tasks:
            opts = self.metric_options.get(get_task(t).metric)
            if opts:
                out[t] = dict(opts)
        return out


PROTOCOLS: Mapping[str, EvalProtocol] = MappingProxyType({
    "project": EvalProtocol(
        name="project",
        description="the project's ground truth: dataset boundary maps, NYUD 'no normal' pixels dropped, "
                    "saliency maxF on the probabilities",
        boundary_gt="dataset", normals_min_norm=0.5,
    ),
    "paper": EvalProtocol(
        name="paper",
        description="InvPT/TaskPrompter/ATRC as published: boundary GT thin(seg2bmap(label map)) (SEISM), every "
                    "stored NYUD normal counted, saliency maxF on sigmoid(probability)",
        boundary_gt="seg2bmap", normals_min_norm=0.0,
        metric_options={
            "boundary": {"protocol": "invpt", "thin_gt": True},
            "maxf": {"invpt_double_sigmoid": True},
        },
    ),
})
DEFAULT_PROTOCOL = "project"


def get_protocol(protocol: "EvalProtocol | str | None" = None) -> EvalProtocol:
    """An ``EvalProtocol`` from itself, its name, or None (the default, ``project``)."""
    if protocol is None:
        return PROTOCOLS[DEFAULT_PROTOCOL]
    if isinstance(protocol, EvalProtocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except (KeyError, TypeError):
        raise ValueError(f"unknown evaluation protocol {protocol!r}; known: {', '.join(PROTOCOLS)}") from None


__all__ = ["DEFAULT_PROTOCOL", "EvalProtocol", "PROTOCOLS", "get_protocol"]
