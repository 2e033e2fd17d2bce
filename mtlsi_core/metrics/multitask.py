"""All tasks at once: the multi-task evaluator, the multi-task gain Delta_m and the paper's results table.

Delta_m (Maninis et al., CVPR 2019; Vandenhende et al., MTI-Net, ECCV 2020), in %:

    Delta_m = 100 / T * sum_t (-1)^{l_t} (M_t - M_ref,t) / M_ref,t,   l_t = 1 where lower is better

over the tasks of ``results``; the sign comes from ``TaskSpec.higher_is_better``. Positive = better than the
reference (usually single-task baselines). ``STL_REFERENCES`` holds single-task numbers from a peer table (below);
any other reference dict can be passed.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from mtlsi_core.metrics.base import Metric, resolve_dataset
from mtlsi_core.tasks import get_task


@dataclass(frozen=True)
class Reference:
    """Headline numbers of single-task baselines, in the units of ``compute()`` (mIoU/maxF/odsF %, RMSE m, mErr
    deg)."""

    dataset: str
    backbone: str
    values: Mapping[str, float]
    source: str


_SAK = ("Lu, Cao & Wang, 'Swiss Army Knife: Synergizing Biases in Knowledge from Vision Foundation Models for "
        "Multi-Task Learning', ICLR 2025 (arXiv 2410.14633), {table}, row 'Single-task baseline'")

STL_REFERENCES: Mapping[str, Reference] = MappingProxyType({
    # The same tables list InvPT 53.56 / 0.5183 / 19.04 / 78.10 (Delta_m 1.64) and TaskPrompter
    # 55.30 / 0.5152 / 18.47 / 78.20 (3.36), the ViT-L rows of the MTLSI-Net paper's Table I.
    "nyud/vit-l": Reference("nyud", "ViT-L", MappingProxyType(
        {"semseg": 54.19, "depth": 0.5560, "normals": 19.22, "edge": 78.09}),
        _SAK.format(table="Table 6 (NYUD-v2, ViT-L)")),
    "pascal/vit-l": Reference("pascal", "ViT-L", MappingProxyType(
        {"semseg": 81.61, "human_parts": 72.77, "sal": 83.80, "normals": 13.87, "edge": 75.24}),
        _SAK.format(table="Table 5 (PASCAL-Context, ViT-L)")),
})


def stl_reference(dataset: str, backbone: str = "vit-l") -> dict[str, float]:
    """Single-task reference numbers of ``dataset`` for ``backbone`` from ``STL_REFERENCES``."""
    key = f"{dataset.lower()}/{backbone.lower()}"
    if key not in STL_REFERENCES:
        raise KeyError(f"no single-task reference for {key!r}; available: {', '.join(STL_REFERENCES)} "
                       "(pass your own reference dict to delta_m)")
    return dict(STL_REFERENCES[key].values)


def headline_values(results: Mapping[str, Any]) -> dict[str, float]:
    """{task: number} from {task: number} or from ``MultiTaskEvaluator.compute()`` output ({task: {"headline": ..}})."""
    out: dict[str, float] = {}
    for task, val in results.items():
        if isinstance(val, Mapping):
            if "headline" not in val:
                raise KeyError(f"results of task {task!r} have no 'headline' entry (have: {', '.join(val)})")
            val = val["headline"]
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise TypeError(f"result of task {task!r} must be a number, got {type(val).__name__}")
        out[task] = float(val)
    return out


def delta_m(results: Mapping[str, Any], references: Mapping[str, float]) -> float:
    """Multi-task gain of ``results`` over ``references`` in % (see module docstring); tasks = those of ``results``."""
    res = headline_values(results)
    if not res:
        raise ValueError("delta_m: no results given")
    missing = [t for t in res if t not in references]
    if missing:
        raise ValueError(f"delta_m: no reference value for task(s) {missing} (references have {list(references)})")
    total = 0.0
    for task, value in res.items():
        ref = float(references[task])
        if ref == 0.0:
            raise ValueError(f"delta_m: reference value of task {task!r} is 0")
        sign = 1.0 if get_task(task).higher_is_better else -1.0
        total += sign * (value - ref) / ref
    return 100.0 * total / len(res)


# Column titles of the paper's Tables I and II (presentation only).
_TITLES: Mapping[str, str] = MappingProxyType({
    "semseg": "Seg.", "depth": "Depth", "normals": "Normal", "edge": "Boundary", "human_parts": "Parsing",
    "sal": "Sal.",
})


class MultiTaskEvaluator:
    """One metric accumulator per task, each ``METRICS[spec.metric](task, dataset, **kwargs)``.

    ``metric_kw`` maps a task name to extra keyword arguments of its metric; they override the registry's
    ``TaskSpec.metric_kwargs`` (e.g. ``MultiTaskEvaluator(tasks, "nyud", edge={"thresholds": 9})``).
    """

    def __init__(self, tasks: Sequence[str], dataset: Any, **metric_kw: Mapping[str, Any]):
        from mtlsi_core.metrics import METRICS

        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("MultiTaskEvaluator needs at least one task")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"duplicate tasks in {self.tasks}")
        self.dataset = resolve_dataset(dataset)
        unknown = [k for k in metric_kw if k not in self.tasks]
        if unknown:
            raise ValueError(f"metric options given for {unknown}, which are not among the tasks {self.tasks}")
        self.metrics: dict[str, Metric] = {}
        for t in self.tasks:
            spec = get_task(t)
            if spec.metric not in METRICS:
                raise KeyError(f"task {t!r} names metric {spec.metric!r}, unknown to mtlsi_core.metrics")
            kwargs = {**dict(spec.metric_kwargs), **dict(metric_kw.get(t, {}))}
            self.metrics[t] = METRICS[spec.metric](t, self.dataset, **kwargs)

    def update(self, preds: Mapping[str, Any], targets: Mapping[str, Any]) -> None:
        """One image: ``preds`` in the runtime format, ``targets`` in the dataset format, keyed by task."""
        for t in self.tasks:
            if t not in preds:
                raise KeyError(f"predictions lack task {t!r} (have: {', '.join(preds)})")
            if t not in targets:
                raise KeyError(f"ground truth lacks task {t!r} (have: {', '.join(targets)})")
        for t in self.tasks:
            self.metrics[t].update(preds[t], targets[t])

    def compute(self) -> dict[str, dict[str, Any]]:
        return {t: m.compute() for t, m in self.metrics.items()}

    def reset(self) -> None:
        for m in self.metrics.values():
            m.reset()

    def state(self) -> dict[str, Any]:
        return {t: m.state() for t, m in self.metrics.items()}

    def merge(self, state: Mapping[str, Any]) -> None:
        if set(state) != set(self.tasks):
            raise ValueError(f"cannot merge a state of tasks {sorted(state)} into tasks {sorted(self.tasks)}")
        for t, st in state.items():
            self.metrics[t].merge(st)

    def format_table(self, results: Mapping[str, Any], params_m: float | None = None, name: str = "Ours",
                     references: Mapping[str, float] | None = None) -> str:
        """The paper's Table I/II layout (Method | Seg. (mIoU↑) | Depth (RMSE↓) | ... | Params (M)) for the tasks of
        this evaluator, in their order; with ``references`` a Delta_m (%) column is added."""
        return format_table(results, self.tasks, params_m=params_m, name=name, references=references)


def format_table(results: Mapping[str, Any], tasks: Sequence[str] | None = None, params_m: float | None = None,
                 name: str = "Ours", references: Mapping[str, float] | None = None) -> str:
    """Markdown table in the form of the paper's Tables I and II; ``results`` as in :func:`headline_values`."""
    from mtlsi_core.metrics import METRICS

    vals = headline_values(results)
    tasks = tuple(tasks) if tasks is not None else tuple(vals)
    missing = [t for t in tasks if t not in vals]
    if missing:
        raise KeyError(f"format_table: no result for task(s) {missing}")
    header = ["Method"]
    row = [name]
    for t in tasks:
        spec = get_task(t)
        metric = METRICS[spec.metric]
        short = metric.headline_name.split(" ")[0]
        arrow = "↑" if spec.higher_is_better else "↓"
        header.append(f"{_TITLES.get(t, t)} ({short}{arrow})")
        row.append(f"{vals[t]:.{metric.decimals}f}")
    if references is not None:
        header.append("Δm (%)↑")
        row.append(f"{delta_m({t: vals[t] for t in tasks}, references):+.2f}")
    header.append("Params (M)")
    row.append("-" if params_m is None else f"{params_m:.2f}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
             "| " + " | ".join(row) + " |"]
    return "\n".join(lines)
