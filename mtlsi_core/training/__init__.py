"""Training and evaluation: ``Trainer`` (mtlsi-train), ``evaluate_model`` / ``run_eval`` (mtlsi-eval).

Submodules import torch-heavy pieces lazily; ``from mtlsi_core.training import Trainer`` is the Python entry.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Trainer", "TrainResult", "TrainingError", "evaluate_model", "EvalOutput", "run_eval", "export_weights"]


def __getattr__(name: str) -> Any:
    if name in ("Trainer", "TrainResult", "TrainingError"):
        from mtlsi_core.training import trainer

        return getattr(trainer, name)
    if name in ("evaluate_model", "EvalOutput"):
        from mtlsi_core.training import evaluation

        return getattr(evaluation, name)
    if name == "run_eval":
        from mtlsi_core.training.evaluate import run_eval

        return run_eval
    if name == "export_weights":
        from mtlsi_core.training.export_weights import export_weights

        return export_weights
    raise AttributeError(f"module 'mtlsi_core.training' has no attribute {name!r}")
