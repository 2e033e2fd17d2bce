"""The one evaluation path, shared by ``mtlsi-eval`` and the trainer's periodic evaluation.

Each validation frame goes through the network at the configured input size (the dataset's evaluation
transform); its raw outputs are activated (``mtlsi_core.tasks``), converted to the runtime's numpy layout,
mapped back onto the original ground-truth grid (``mtlsi_core.data.restore_prediction``: padding cut,
resized with the task's interpolation, evaluation zoom of depth undone) and fed to
``mtlsi_core.metrics.MultiTaskEvaluator`` with the original-resolution ground truth (``dataset.load_raw(i)``).

Metric depth: the zoom undone is the runtimes' focal-length correction (``mtlsi_core.runtime.processing.focal_zoom``):
the dataset's focal length (``dataset.focal_length``: its camera.json, else ``DatasetSpec.focal_length``) times the
evaluation resize, against the model's ``canonical_focal``. Where either is unknown the dataset's camera is taken
to be the training camera (zoom = the resize factor), as before.

The evaluation protocol (``mtlsi_core.metrics.protocol``) is the dataset's (``dataset.protocol``): its ground truth
is built by the loader, its metric options are given to the evaluator here.

Under DDP every rank evaluates the frames ``rank, rank + world, ...``; the evaluators' states are gathered
and merged on rank 0 (``state()`` / ``merge()``), so the figures are those of the whole split.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from mtlsi_core.checkpoint import atomic_write_bytes
from mtlsi_core.data import collate, loader_context, restore_prediction, worker_init
from mtlsi_core.tasks import get_task
from mtlsi_core.training.distributed import DistInfo, all_gather_objects
from mtlsi_core.training.rng import rng_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass
class EvalOutput:
    metrics: dict[str, Any]  # MultiTaskEvaluator.compute()
    num_frames: int
    seconds: float
    evaluator: Any = field(default=None, repr=False)  # the merged evaluator (rank 0), for format_table


def to_runtime_format(task: str, pred: torch.Tensor) -> np.ndarray:
    """One activated prediction (H, W) / (3, H, W) -> the runtime's numpy layout (labels int64, vectors (H, W, 3))."""
    if get_task(task).kind == "labels":
        return pred.to(torch.int64).cpu().numpy()
    if pred.ndim == 3:
        return pred.permute(1, 2, 0).contiguous().float().cpu().numpy()
    return pred.float().cpu().numpy()


def evaluation_zoom(meta: Mapping[str, Any], dataset_focal: float | None, canonical_focal: float | None) -> float:
    """How much closer the scene of an evaluation input looks to the network than to the training camera: the
    runtimes' ``focal_zoom`` of the dataset's focal length and the evaluation resize ``meta["scale"]``; the resize
    alone where the dataset's or the model's focal length is unknown."""
    from mtlsi_core.runtime.processing import focal_zoom

    scale = float(meta.get("scale", 1.0))
    if dataset_focal is None or canonical_focal is None:
        return scale
    return focal_zoom(dataset_focal, scale, canonical_focal)


def predictions_at_gt(activated: Mapping[str, torch.Tensor], index_in_batch: int, tasks: Sequence[str],
                      meta: Mapping[str, Any], zoom: float | None = None) -> dict[str, np.ndarray]:
    """Image ``index_in_batch`` of a batch of activated predictions, on its original ground-truth grid.

    ``mtlsi_core.data.restore_prediction`` cuts the padding (``meta["valid_box"]``), resizes to
    ``meta["orig_size"]`` with the task's interpolation and undoes the zoom of depth (``zoom``, see
    ``evaluation_zoom``; default the evaluation resize).
    """
    return {t: restore_prediction(t, to_runtime_format(t, activated[t][index_in_batch]), meta, zoom=zoom)
            for t in tasks}


def save_prediction_pngs(out_dir: Path, name: str, preds: Mapping[str, np.ndarray]) -> None:
    """Colourised PNGs ``<name>_<task>.png`` (``mtlsi_core.viz``), written atomically."""
    from mtlsi_core.viz import visualize_outputs

    for task, rgb in visualize_outputs(preds).items():
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode the {task} prediction of {name} as PNG")
        atomic_write_bytes(out_dir / f"{name}_{task}.png", buf.tobytes())


def _default_evaluator_factory(tasks: Sequence[str], dataset: Dataset) -> Any:
    """The evaluator with the metric options of the dataset's evaluation protocol."""
    from mtlsi_core.metrics import MultiTaskEvaluator, get_protocol

    protocol = get_protocol(getattr(dataset, "protocol", None))
    return MultiTaskEvaluator(list(tasks), dataset, **protocol.metric_kwargs(tasks))


def _frame_name(meta: Any, index: int) -> str:
    if isinstance(meta, Mapping) and meta.get("name"):
        return str(meta["name"])
    return f"{index:06d}"


@torch.no_grad()
def evaluate_model(model: nn.Module, dataset: Dataset, tasks: Sequence[str], device: torch.device | str, *,
                   batch_size: int = 1, num_workers: int = 0, amp: bool = False,
                   dist_info: DistInfo | None = None, save_dir: str | Path | None = None,
                   max_frames: int | None = None, progress: bool = False,
                   evaluator_factory: Callable[[Sequence[str], Dataset], Any] | None = None,
                   canonical_focal: float | None = None) -> EvalOutput:
    """Evaluate ``model`` on ``dataset`` (a val/test split built with ``train=False``).

    ``canonical_focal``: the model's training focal length (``data.canonical_focal`` of its checkpoint), for the
    focal-length correction of depth (module docstring); None: zoom = the evaluation resize.

    Returns the merged metrics on rank 0; other ranks get their shard's figures (they only need to take part).
    The global RNG states are restored afterwards, so evaluating never changes a training run's randomness.
    """
    info = dist_info or DistInfo()
    device = torch.device(device)
    factory = evaluator_factory or _default_evaluator_factory
    if not hasattr(dataset, "load_raw"):
        raise TypeError(f"{type(dataset).__name__} has no load_raw(i): cannot get original-resolution ground truth")
    n = len(dataset)
    if max_frames is not None:
        n = min(n, max_frames)
    if n == 0:
        raise ValueError("the evaluation split is empty")
    indices = list(range(info.rank, n, info.world_size))
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate, worker_init_fn=worker_init, generator=torch.Generator(),
                        multiprocessing_context=loader_context(num_workers),
                        pin_memory=device.type == "cuda")
    out_dir = Path(save_dir) if save_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    saved_rng = rng_state()
    was_training = model.training
    model.eval()
    evaluator = factory(tasks, dataset)
    dataset_focal = getattr(dataset, "focal_length", None)
    t0 = time.perf_counter()
    pos = 0
    try:
        for batch in tqdm(loader, desc="eval", disable=not (progress and info.is_main), leave=False,
                          dynamic_ncols=True):
            x = batch["image"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
                raw = model(x)["final"]
            activated = {t: get_task(t).activate(raw[t].float()) for t in tasks}
            for i, meta in enumerate(batch["meta"]):
                index = indices[pos]
                pos += 1
                gt = dataset.load_raw(index)
                targets = {t: gt[t] for t in tasks}
                preds = predictions_at_gt(activated, i, tasks, meta,
                                          zoom=evaluation_zoom(meta, dataset_focal, canonical_focal))
                evaluator.update(preds, targets)
                if out_dir is not None:
                    save_prediction_pngs(out_dir, _frame_name(meta, index), preds)
    finally:
        model.train(was_training)
        set_rng_state(saved_rng)

    states = all_gather_objects(evaluator.state(), info) if info.enabled else None
    if info.enabled and info.is_main:
        merged = factory(tasks, dataset)
        for st in states:
            merged.merge(st)
        evaluator = merged
    metrics = evaluator.compute() if info.is_main else {}
    return EvalOutput(metrics=metrics, num_frames=n if info.is_main else len(indices),
                      seconds=time.perf_counter() - t0, evaluator=evaluator)
