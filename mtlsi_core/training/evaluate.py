"""``mtlsi-eval``: evaluate a checkpoint on a dataset split; print a Table-I-style table and write JSON.

Examples::

    mtlsi-eval --checkpoint runs/nyud_swin_t/best.pt --data /data/NYUD_MT
    mtlsi-eval --checkpoint mtlsi_core/weights/synth_edge_lite0.pt --data /tmp/synth --json out.json \\
               --save-predictions out/pngs

The config defaults to the one stored in the checkpoint. Predictions are mapped back to the original
ground-truth resolution before scoring (``mtlsi_core.training.evaluation``); depth gets the runtimes'
focal-length correction (the dataset's camera: its camera.json, else the dataset type's focal length, e.g. NYUDv2
518.86 px; against the checkpoint's data.canonical_focal). "Params" is the parameter count without the backbone,
as in the paper's tables.

--protocol project (default) scores with the project's ground truth; --protocol paper as InvPT / TaskPrompter /
ATRC compute their published numbers (SEISM boundary ground truth, NYUD "no normal" pixels counted, saliency maxF
after a second sigmoid): see mtlsi_core/metrics/protocol.py and docs/evaluation_protocol.md.

Exit status: 0 done, 2 bad input (checkpoint, config, data folder), 1 anything else.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from mtlsi_core.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint
from mtlsi_core.config import Config, ConfigError, apply_overrides, config_from_dict, load_config
from mtlsi_core.data.errors import DatasetError
from mtlsi_core.metrics.protocol import DEFAULT_PROTOCOL, PROTOCOLS, get_protocol

log = logging.getLogger("mtlsi_core.training")


class EvalError(RuntimeError):
    """Evaluation cannot run; the message says which input is wrong."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtlsi-eval",
                                description="Evaluate a checkpoint on a dataset split; print a Table-I-style "
                                            "table and write JSON.",
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="mtlsi checkpoint (.pt): last.pt, best.pt or exported weights")
    p.add_argument("--config", help="YAML path or packaged name (default: the config stored in the checkpoint)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override (repeatable)")
    p.add_argument("--data", help="dataset folder (overrides data.root)")
    p.add_argument("--split", help="split to evaluate (default data.val_split)")
    p.add_argument("--json", help="results file (default: eval_<checkpoint stem>_<split>.json beside the "
                                  "checkpoint, or in the current folder where that one is read-only)")
    p.add_argument("--save-predictions", metavar="DIR", help="write colourised prediction PNGs here")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--max-frames", type=int, help="evaluate the first N frames only")
    p.add_argument("--protocol", choices=tuple(PROTOCOLS), default=DEFAULT_PROTOCOL,
                   help="evaluation protocol: 'project' (default: the project's ground truth) or 'paper' (the "
                        "peers' published protocol, quirks included; docs/evaluation_protocol.md)")
    return p


def json_default(o: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays, tensors and paths as JSON values."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def model_from_checkpoint(ckpt: dict[str, Any], cfg: Config, path: str | Path) -> nn.Module:
    """Build ``cfg``'s model (no pretrained download: the checkpoint overwrites it) and load the weights."""
    from mtlsi_core.models import build_model

    build_cfg = cfg.model_copy(deep=True)
    build_cfg.model.backbone.pretrained = False
    model = build_model(build_cfg)
    state = ckpt["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model of config {cfg.name!r}: {e}") from None
    return model.float()


def param_counts(model: nn.Module) -> dict[str, float]:
    """Millions of parameters: heads (everything but the backbone, as the paper counts), backbone, total."""
    from mtlsi_core.training.optim import count_parameters

    total = count_parameters(model.parameters())
    backbone = count_parameters(model.backbone_parameters()) if hasattr(model, "backbone_parameters") else 0
    heads = (count_parameters(model.head_parameters()) if hasattr(model, "head_parameters") else total - backbone)
    return {"heads": heads / 1e6, "backbone": backbone / 1e6, "total": total / 1e6}


def format_results_table(evaluator: Any, metrics: dict[str, Any], params_m: float, name: str) -> str:
    if evaluator is not None and hasattr(evaluator, "format_table"):
        return evaluator.format_table(metrics, params_m=params_m, name=name)
    from mtlsi_core.training import scoring

    return f"{name}: {scoring.describe(scoring.headline_metrics(metrics, list(metrics)))}  params {params_m:.2f} M"


def run_eval(checkpoint: str | Path, *, config: str | None = None, overrides: Sequence[str] = (),
             data: str | None = None, split: str | None = None, json_out: str | Path | None = None,
             save_predictions: str | Path | None = None, device: str = "auto", batch_size: int = 4,
             workers: int = 0, max_frames: int | None = None, progress: bool = True,
             protocol: str = DEFAULT_PROTOCOL) -> dict[str, Any]:
    """Evaluate ``checkpoint`` under the evaluation ``protocol``; return the JSON document (also written to
    ``json_out``)."""
    from mtlsi_core.data import build_dataset
    from mtlsi_core.training import scoring
    from mtlsi_core.training.evaluation import evaluate_model

    ckpt = load_checkpoint(checkpoint)
    if config:
        cfg = load_config(config, overrides)
    else:
        cfg = config_from_dict(apply_overrides(ckpt["config"], overrides, origin=f"{checkpoint} (stored config)"),
                               source=f"{checkpoint} (stored config)")
    root = data if data is not None else cfg.data.root
    if root is None:
        raise EvalError(f"config {cfg.name!r}: no dataset folder; give --data DIR or set data.root")
    if not Path(root).is_dir():
        raise EvalError(f"dataset folder not found: {root} (from --data or data.root)")
    split = split or cfg.data.val_split
    try:
        proto = get_protocol(protocol)
    except ValueError as e:
        raise EvalError(str(e)) from None
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EvalError(f"--device {device}: CUDA is not available on this machine")

    model = model_from_checkpoint(ckpt, cfg, checkpoint).to(dev)
    dataset = build_dataset(cfg, split, root=str(root), train=False, protocol=proto.name)
    out = evaluate_model(model, dataset, cfg.tasks, dev, batch_size=batch_size, num_workers=workers,
                         save_dir=save_predictions, max_frames=max_frames, progress=progress,
                         canonical_focal=cfg.data.canonical_focal)
    params = param_counts(model)
    table = format_results_table(out.evaluator, out.metrics, params["heads"], cfg.name)
    doc = {
        "checkpoint": str(checkpoint),
        "config": cfg.name,
        "dataset": cfg.dataset,
        "data_root": str(root),
        "split": split,
        "protocol": proto.name,
        "canonical_focal": cfg.data.canonical_focal,
        "dataset_focal": getattr(dataset, "focal_length", None),
        "num_frames": out.num_frames,
        "iteration": (ckpt.get("meta") or {}).get("iteration", ckpt.get("iteration")),
        "headline": scoring.headline_metrics(out.metrics, cfg.tasks),
        "metrics": out.metrics,
        "params_m": params,
        "device": str(dev),
        "seconds": round(out.seconds, 3),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        "table": table,
    }
    if json_out is not None:
        atomic_write_bytes(json_out, json.dumps(doc, indent=2, default=json_default).encode())
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.batch_size < 1 or args.workers < 0 or (args.max_frames is not None and args.max_frames < 1):
        print("mtlsi-eval: error: --batch-size and --max-frames must be >= 1, --workers >= 0", file=sys.stderr)
        return 2
    json_out = args.json
    if json_out is None:  # beside the checkpoint, or here where that folder is read-only (installed weights)
        ck = Path(args.checkpoint)
        folder = ck.parent if os.access(ck.parent, os.W_OK) else Path.cwd()
        json_out = folder / f"eval_{ck.stem}_{args.split or 'val'}.json"
    try:
        doc = run_eval(args.checkpoint, config=args.config, overrides=args.overrides, data=args.data,
                       split=args.split, json_out=json_out, save_predictions=args.save_predictions,
                       device=args.device, batch_size=args.batch_size, workers=args.workers,
                       max_frames=args.max_frames, protocol=args.protocol)
    except (ConfigError, CheckpointError, DatasetError, EvalError, FileNotFoundError, NotADirectoryError) as e:
        print(f"mtlsi-eval: error: {e}", file=sys.stderr)
        return 2
    print(doc["table"])
    print(f"{doc['num_frames']} frames of {doc['split']} in {doc['seconds']:.1f} s ({doc['protocol']} protocol); "
          f"results written to {json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
