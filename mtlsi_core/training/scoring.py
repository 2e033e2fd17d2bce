"""Headline metric per task and the rule that picks the best checkpoint.

Best rule: an evaluation replaces the best one when its multi-task gain over the best one is positive,

    gain(A vs B) = mean over tasks t of  s_t * (A_t - B_t) / max(|B_t|, eps),   s_t = +1 if higher is better else -1

(Delta_m of Maninis et al., CVPR 2019, with the current best as the reference; ``mtlsi_core.metrics.delta_m``
is the same formula but refuses a zero reference, which early evaluations do produce, e.g. odsF = 0).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from mtlsi_core.tasks import get_task


def headline_metrics(metrics: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, float]:
    """{task: headline} from ``MultiTaskEvaluator.compute()`` output, for ``tasks`` in order."""
    from mtlsi_core.metrics import headline_values

    missing = [t for t in tasks if t not in metrics]
    if missing:
        raise KeyError(f"evaluation results have no entry for task(s) {missing} (have: {', '.join(metrics)})")
    return headline_values({t: metrics[t] for t in tasks})


def gain(new: Mapping[str, float], ref: Mapping[str, float], eps: float = 1e-12) -> float:
    """Multi-task gain of ``new`` relative to ``ref`` (a fraction; > 0 means better), over ``ref``'s tasks."""
    if not ref:
        raise ValueError("gain: empty reference")
    total = 0.0
    for t, b in ref.items():
        sign = 1.0 if get_task(t).higher_is_better else -1.0
        total += sign * (new[t] - b) / max(abs(b), eps)
    return total / len(ref)


def metric_label(task: str) -> str:
    """Short name of the task's headline metric (mIoU, RMSE, mErr, odsF, maxF)."""
    from mtlsi_core.metrics import METRICS

    return METRICS[get_task(task).metric].headline_name.split(" ")[0]


def describe(headline_vals: Mapping[str, float]) -> str:
    return "  ".join(f"{t} {metric_label(t)} {v:.4g}" for t, v in headline_vals.items())


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested results -> {"task/key": number} (non-numbers dropped), for TensorBoard."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[key] = float(v)
        elif isinstance(v, Mapping):
            out.update(flat_metrics(v, key + "/"))
    return out
