"""Base class of the per-task metric accumulators and the input checks they share.

An accumulator is fed one image at a time with ``update(pred, target)``: ``pred`` in the runtime's output format
(``mtlsi_core.runtime.base``) and ``target`` in the dataset's ground-truth format (``mtlsi_core.tasks``), both numpy
arrays at the same resolution. ``compute()`` returns plain floats in the paper's units with a ``"headline"`` entry
(and ``"headline_name"``). ``state()`` is a picklable dict of numbers and arrays; ``merge(state)`` adds another
accumulator's state (same metric, task and settings), so shards of a distributed evaluation can be summed.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np

from mtlsi_core.tasks import DatasetSpec, TaskSpec, get_dataset, get_task


def resolve_dataset(dataset: Any) -> DatasetSpec:
    """A dataset name, a ``DatasetSpec``, or an object carrying one (``.spec``/``.dataset_spec``) or its name
    (``.dataset_name``/``.dataset``)."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    if isinstance(dataset, str):
        return get_dataset(dataset)
    for attr in ("spec", "dataset_spec"):
        val = getattr(dataset, attr, None)
        if isinstance(val, DatasetSpec):
            return val
    for attr in ("dataset_name", "dataset"):
        val = getattr(dataset, attr, None)
        if isinstance(val, str):
            return get_dataset(val)
        if isinstance(val, DatasetSpec):
            return val
    raise TypeError(f"cannot tell which dataset {type(dataset).__name__} is: give a dataset name, a DatasetSpec, "
                    "or an object with .spec (DatasetSpec) or .dataset_name (str)")


def as_plane(arr: Any, what: str) -> np.ndarray:
    """(H, W) array; a leading or trailing singleton axis is dropped."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{what}: expected an (H, W) array, got shape {a.shape}")
    return a


def check_same_shape(pred: np.ndarray, target: np.ndarray, task: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"task {task!r}: prediction shape {pred.shape} does not match ground-truth shape "
                         f"{target.shape} (resize the prediction to the ground truth first)")


def probability_and_binary_gt(pred: Any, target: Any, task: str, ignore: float) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """(probability plane as float32, ground-truth plane, mask of its labelled pixels) of a binary task
    (saliency, boundaries); ValueError naming the task for a non-probability prediction or a label other than
    0, 1 and ``ignore``."""
    p = as_plane(pred, f"{task} prediction")
    g = as_plane(target, f"{task} ground truth")
    check_same_shape(p, g, task)
    p = p.astype(np.float32, copy=False)
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0 or p.max(initial=0.0) > 1:
        raise ValueError(f"task {task!r}: prediction must be a probability map in [0, 1]")
    valid = g != ignore
    labelled = g[valid]
    if labelled.size and not np.all((labelled == 0) | (labelled == 1)):
        raise ValueError(f"task {task!r}: ground truth must be 0, 1 or {ignore:g}, "
                         f"got values {np.unique(labelled)[:10].tolist()}")
    return p, g, valid


class Metric:
    """Accumulator base. Subclasses set ``name`` (the registry's metric name), ``headline_key``,
    ``headline_name`` and ``decimals``, keep their sums in ``self._acc`` (name -> float or array) and their
    settings in ``self._config`` (compared on merge)."""

    name: ClassVar[str] = ""
    headline_key: ClassVar[str] = ""
    headline_name: ClassVar[str] = ""
    decimals: ClassVar[int] = 2  # how the paper prints the headline

    def __init__(self, task: str, dataset: Any):
        self.spec: TaskSpec = get_task(task)
        self.task = self.spec.name
        self.dataset: DatasetSpec = resolve_dataset(dataset)
        if self.spec.metric != self.name:
            raise ValueError(f"task {self.task!r} is scored with metric {self.spec.metric!r}, not {self.name!r}")
        if self.task not in self.dataset.tasks:
            raise ValueError(f"dataset {self.dataset.name!r} has no task {self.task!r} "
                             f"(its tasks: {', '.join(self.dataset.tasks)})")
        self._config: dict[str, Any] = {}
        self._acc: dict[str, Any] = {}
        self.reset()

    # subclasses -----------------------------------------------------------------------------------
    def _zero(self) -> dict[str, Any]:
        raise NotImplementedError

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:
        raise NotImplementedError

    # shared ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._acc = self._zero()

    def _result(self, values: Mapping[str, float]) -> dict[str, Any]:
        out: dict[str, Any] = {k: float(v) for k, v in values.items()}
        out["headline"] = out[self.headline_key]
        out["headline_name"] = self.headline_name
        return out

    def state(self) -> dict[str, Any]:
        return {
            "metric": self.name, "task": self.task, "dataset": self.dataset.name,
            "config": dict(self._config),
            "acc": {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self._acc.items()},
        }

    def merge(self, state: Mapping[str, Any]) -> None:
        for key, mine in (("metric", self.name), ("task", self.task), ("dataset", self.dataset.name)):
            if state.get(key) != mine:
                raise ValueError(f"cannot merge a state of {key} {state.get(key)!r} into {key} {mine!r}")
        if _normalise(state.get("config")) != _normalise(self._config):
            raise ValueError(f"task {self.task!r}: cannot merge states computed with different settings "
                             f"({state.get('config')} vs {self._config})")
        acc = state.get("acc", {})
        if set(acc) != set(self._acc):
            raise ValueError(f"task {self.task!r}: state has entries {sorted(acc)}, expected {sorted(self._acc)}")
        for k, v in acc.items():
            if isinstance(self._acc[k], np.ndarray):
                v = np.asarray(v)
                if v.shape != self._acc[k].shape:
                    raise ValueError(f"task {self.task!r}: state entry {k!r} has shape {v.shape}, "
                                     f"expected {self._acc[k].shape}")
                self._acc[k] = self._acc[k] + v
            else:
                self._acc[k] = self._acc[k] + v


def _normalise(cfg: Any) -> Any:
    if isinstance(cfg, Mapping):
        return {k: _normalise(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple, np.ndarray)):
        return [_normalise(v) for v in np.asarray(cfg).tolist()] if isinstance(cfg, np.ndarray) \
            else [_normalise(v) for v in cfg]
    return cfg
