#!/usr/bin/env python3
"""Proof that the network learns: train the CPU config twice (interaction ``mqlfb`` vs ``none``, the paper's
PD baseline), same data, seed and budget; score both and the constant predictors on the val split.

    python benchmarks/learning_proof.py                       # the full run (hours on a CPU; see --help)
    python benchmarks/learning_proof.py --num-train 40 --num-val 8 --iterations 20 \\
        --results-dir /tmp/lp --runs-dir /tmp/lp/runs          # a smoke test

Writes ``<results-dir>/learning_proof.json`` and ``learning_proof.md`` (atomically). The constant
predictors use training-set statistics: the majority class (mIoU), the mean valid depth (RMSE), the mean
normal (mErr), and a constant boundary probability (odsF; every threshold then marks all or no pixel).

"Clearly learned" (exit status 1 when the ``mqlfb`` run misses it): on every task the headline metric beats
both references, the constant predictor and the untrained network (the same network at iteration 0), by the
margin in ``LEARN_MARGINS``: mIoU and odsF at least 1.5x the constant predictor's and 5 points above both
references; RMSE and mErr at most 0.75x of both references. The untrained network is there because a
constant map is a very weak boundary baseline (thinned, it is one line). Whether ``mqlfb`` beats ``none``
(the paper's ablation expects it on at least three of four tasks) is reported, not enforced.

``--export-weights PATH`` writes the ``mqlfb`` run's final weights as the demo checkpoint (fp16 when fp32
would exceed ``--max-mb``) with ``PATH.json`` / ``PATH.md`` beside it (command, data seed, metrics).
Runs resume (``--resume auto`` semantics): re-running the same command continues an interrupted proof.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mtlsi_core.checkpoint import atomic_write_bytes  # noqa: E402
from mtlsi_core.config import Config, load_config  # noqa: E402
from mtlsi_core.tasks import get_task  # noqa: E402
from mtlsi_core.tools.machine import describe, summary  # noqa: E402
from mtlsi_core.training.evaluate import json_default  # noqa: E402

# metric family -> margins of ``learned``: higher is better: >= ratio x constant and >= gain + each reference;
# lower is better: <= ratio x each reference
LEARN_MARGINS: dict[str, dict[str, float]] = {
    "miou": {"ratio": 1.5, "gain": 5.0},
    "boundary": {"ratio": 1.5, "gain": 5.0},
    "maxf": {"ratio": 1.2, "gain": 5.0},
    "depth": {"ratio": 0.75},
    "normals": {"ratio": 0.75},
}


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 240x320, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config", default="synth_edge_lite0", help="config name or path (default synth_edge_lite0)")
    p.add_argument("--data", default=str(REPO / "data" / "synth_learning"),
                   help="synthetic data folder, generated when missing or made with other settings (git-ignored "
                        "default; about 1.3 MB per 240x320 frame)")
    p.add_argument("--num-train", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=200)
    p.add_argument("--size", type=parse_size, default=(240, 320), help="frame size HxW of the synthetic set")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--iterations", type=int, help="training budget (default: the config's train.iterations)")
    p.add_argument("--batch-size", type=int, help="default: the config's train.batch_size")
    p.add_argument("--seed", type=int, default=0, help="training seed (same for both runs)")
    p.add_argument("--interactions", nargs="+", default=["mqlfb", "none"])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for both runs")
    p.add_argument("--interaction-set", dest="interaction_overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="config override for the runs with an interaction module only (the "
                                             "refinement / distiller choices, which `none` does not have), e.g. the "
                                             "ablation's chosen ones: model.refinement.coarse_residual=true")
    p.add_argument("--runs-dir", default=str(REPO / "runs" / "learning_proof"))
    p.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--workers", type=int, default=None, help="data loader workers (default data.num_workers)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--eval-frames", type=int, default=40,
                   help="val frames of the periodic evaluations during training (the final one uses all)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--export-weights", metavar="PATH", help="write the mqlfb run's weights here (demo checkpoint)")
    p.add_argument("--max-mb", type=float, default=25.0, help="size limit of the exported weights")
    return p


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


class DataFolderError(ValueError):
    """``--data`` holds a data set made with other settings; it is not overwritten."""


def ensure_data(root: Path, num_train: int, num_val: int, size: tuple[int, int], seed: int,
                workers: int | None = None, profile: str = "basic") -> dict[str, Any]:
    """Generate the synthetic set in ``root`` (generator ``profile``, ``workers`` processes; None: the generator's
    default) unless it already holds one; the stamp ``learning_proof_data.json`` records the settings.

    A folder that already holds a data set is never overwritten: one stamped with the same settings is reused, one
    stamped with other settings is an error (:class:`DataFolderError`), one made by ``mtlsi-synth`` (no stamp) is
    used as it is (its camera.json says how it was made, and the returned spec says so)."""
    from mtlsi_core.data import synth

    spec: dict[str, Any] = {"num_train": num_train, "num_val": num_val, "size": list(size), "seed": seed}
    if profile != "basic":
        spec["profile"] = profile
    stamp = root / "learning_proof_data.json"
    if stamp.is_file():
        made = json.loads(stamp.read_text()).get("spec")
        if made == spec:
            return spec
        raise DataFolderError(f"{root} holds a synthetic set made with {made}, not {spec}: pass those settings, "
                              "another --data folder, or remove it")
    if (root / "gt_sets" / "train.txt").is_file():
        try:
            cam = json.loads((root / "camera.json").read_text())
        except (OSError, ValueError):
            cam = {}
        logging.getLogger(__name__).info("%s: an existing data set (not made by this script), used as it is", root)
        return {"existing": True, "profile": cam.get("profile"), "seed": cam.get("seed"),
                "size": [cam.get("height"), cam.get("width")]}
    t0 = time.perf_counter()
    kw: dict[str, Any] = {} if workers is None else {"workers": workers}
    if profile != "basic":
        kw["profile"] = profile
    synth.write_dataset(root, num_train=num_train, num_val=num_val, seed=seed, size=size, progress=True, **kw)
    atomic_write_bytes(stamp, json.dumps({"spec": spec, "seconds": time.perf_counter() - t0}, indent=2).encode())
    return spec


# --------------------------------------------------------------------------------------------------
# Constant predictors
# --------------------------------------------------------------------------------------------------


def train_statistics(dataset: Any, tasks: Sequence[str], max_frames: int = 500) -> dict[str, Any]:
    """Majority class, mean valid depth and mean normal over (up to ``max_frames`` of) the training split."""
    n = min(len(dataset), max_frames)
    counts = np.zeros(256, np.int64)
    depth_sum = depth_n = 0.0
    normal_sum = np.zeros(3)
    for i in range(n):
        gt = dataset.load_raw(i)
        if "semseg" in tasks:
            counts += np.bincount(np.asarray(gt["semseg"]).astype(np.int64).ravel(), minlength=256)[:256]
        if "depth" in tasks:
            d = np.asarray(gt["depth"], np.float64)
            v = d > 0
            depth_sum += d[v].sum()
            depth_n += v.sum()
        if "normals" in tasks:
            nm = np.asarray(gt["normals"], np.float64).reshape(-1, 3)
            normal_sum += nm[np.linalg.norm(nm, axis=1) > 1e-6].sum(0)
    counts[255] = 0
    mean_normal = normal_sum / max(np.linalg.norm(normal_sum), 1e-12)
    return {"frames": n, "majority_class": int(counts.argmax()), "mean_depth": depth_sum / max(depth_n, 1),
            "mean_normal": mean_normal.tolist()}


def constant_prediction(task: str, gt: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    spec = get_task(task)
    hw = gt.shape[:2]
    if spec.kind == "labels":
        return np.full(hw, stats["majority_class"], np.int64)
    if task == "depth":
        return np.full(hw, stats["mean_depth"], np.float32)
    if task == "normals":
        return np.broadcast_to(np.asarray(stats["mean_normal"], np.float32), (*hw, 3)).copy()
    return np.full(hw, 0.5, np.float32)  # binary tasks: a constant probability


def evaluate_constant(val_set: Any, tasks: Sequence[str], stats: dict[str, Any]) -> dict[str, Any]:
    from mtlsi_core.metrics import MultiTaskEvaluator

    ev = MultiTaskEvaluator(list(tasks), val_set)
    for i in range(len(val_set)):
        gt = val_set.load_raw(i)
        targets = {t: gt[t] for t in tasks}
        ev.update({t: constant_prediction(t, np.asarray(targets[t]), stats) for t in tasks}, targets)
    return ev.compute()


# --------------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------------


def learned(task: str, net: float, refs: dict[str, float]) -> tuple[bool, str]:
    """Whether ``net`` clearly beats the references ``{"constant": .., "untrained": ..}`` (``LEARN_MARGINS``)."""
    spec = get_task(task)
    m = LEARN_MARGINS[spec.metric]
    if spec.higher_is_better:
        ok = net >= m["ratio"] * refs["constant"] and all(net >= r + m["gain"] for r in refs.values())
        rule = f">= {m['ratio']:g}x constant and +{m['gain']:g} over " + " and ".join(refs)
    else:
        ok = all(net <= m["ratio"] * r for r in refs.values())
        rule = f"<= {m['ratio']:g}x " + " and ".join(refs)
    return ok, rule


def evaluate_untrained(args: argparse.Namespace, interaction: str, val_set: Any) -> dict[str, Any]:
    """The run's network at iteration 0 (same seed: pretrained backbone, random heads), cached in the runs dir."""
    from mtlsi_core.models import build_model
    from mtlsi_core.training import scoring
    from mtlsi_core.training.evaluation import evaluate_model
    from mtlsi_core.training.rng import seed_everything

    cfg = run_config(args, interaction)
    cache = Path(args.runs_dir) / interaction / "untrained_eval.json"
    key = {"config": cfg.to_dict(), "val_frames": len(val_set)}
    if cache.is_file():
        doc = json.loads(cache.read_text())
        if doc.get("key") == key:
            return doc["result"]
    seed_everything(cfg.train.seed)  # as the Trainer does before building its model
    model = build_model(cfg)
    out = evaluate_model(model, val_set, cfg.tasks, args.device, batch_size=cfg.train.batch_size)
    result = {"headline": scoring.headline_metrics(out.metrics, cfg.tasks), "metrics": out.metrics}
    atomic_write_bytes(cache, json.dumps({"key": key, "result": result}, indent=2, default=json_default).encode())
    return result


def better(task: str, a: float, b: float) -> bool:
    return a > b if get_task(task).higher_is_better else a < b


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------


def run_config(args: argparse.Namespace, interaction: str) -> Config:
    sets = [f"model.interaction={interaction}", f"train.seed={args.seed}", f"data.root={args.data}"]
    if args.iterations is not None:
        sets.append(f"train.iterations={args.iterations}")
    if args.batch_size is not None:
        sets.append(f"train.batch_size={args.batch_size}")
    extra = [*args.overrides, *(getattr(args, "interaction_overrides", []) if interaction != "none" else [])]
    base = load_config(args.config, args.overrides)
    cfg = load_config(args.config, [*sets, *extra])
    if interaction == base.model.interaction:  # the config's own model keeps the config's name (demo weights)
        return cfg
    return cfg.model_copy(update={"name": f"{cfg.name}_{interaction}"})


def same_run_settings(stored: dict[str, Any], cfg: Config) -> bool:
    """Whether a checkpoint's stored config is ``cfg`` (fields added since it was written take their defaults)."""
    from mtlsi_core.config import ConfigError, config_from_dict

    try:
        return config_from_dict(stored, source="stored config").to_dict() == cfg.to_dict()
    except ConfigError:
        return False


def train_run(cfg: Config, out_dir: Path, *, data_root: str, device: str = "cpu", workers: int | None = None,
              progress: bool = False, eval_frames: int | None = None, label: str = "") -> dict[str, Any]:
    """Train ``cfg`` in ``out_dir`` (resuming its ``last.pt`` when the settings are the same), then score the final
    weights on the whole val split. The returned dict holds the figures and, under ``_trainer``, the Trainer."""
    from mtlsi_core.training import scoring
    from mtlsi_core.training.trainer import Trainer

    if (out_dir / "last.pt").is_file():  # resume only the very same run
        from mtlsi_core.checkpoint import load_checkpoint

        if not same_run_settings(load_checkpoint(out_dir / "last.pt")["config"], cfg):
            raise SystemExit(f"{out_dir / 'last.pt'} is from a run with other settings; remove {out_dir} or "
                             "choose another --runs-dir")
    t0 = time.perf_counter()
    trainer = Trainer(cfg, output_dir=out_dir, data_root=data_root, device=device,
                      num_workers=workers, resume="auto", progress=progress, eval_max_frames=eval_frames)
    result = trainer.train()
    wall = time.perf_counter() - t0
    # The reported figures: the final weights on the whole val split. The run's own last evaluation is that when it
    # ran in this invocation, at the last iteration, on every val frame; otherwise evaluate once more.
    if eval_frames is None and result.last_eval is not None and result.iteration == cfg.train.iterations:
        metrics, frames, seconds = result.last_eval, len(trainer.val_set), None
    else:
        trainer.eval_max_frames = None
        final = trainer.evaluate()
        metrics, frames, seconds = final.metrics, final.num_frames, final.seconds
    logging.getLogger(__name__).info("%s final (%d val frames): %s", label or cfg.name, frames,
                                     scoring.describe(scoring.headline_metrics(metrics, cfg.tasks)))
    return {
        "config": cfg.to_dict(),
        "iterations": result.iteration,
        "batch_size": cfg.train.batch_size,
        "seconds_per_iteration": (result.timing["seconds"] / result.timing["iterations"]
                                  if result.timing.get("iterations") else float("nan")),
        "training_seconds": result.timing.get("seconds"),
        "wall_seconds_this_invocation": wall,
        "final_eval_seconds": seconds,  # None: the training's own last evaluation
        "val_frames": frames,
        "resumed_from_iteration": result.start_iteration,
        "loss_first_last": [result.loss_history[0], result.loss_history[-1]] if result.loss_history else None,
        "checkpoint": str(out_dir / "last.pt"),
        "headline": scoring.headline_metrics(metrics, cfg.tasks),
        "metrics": metrics,
        "_trainer": trainer,
    }


def train_and_score(args: argparse.Namespace, interaction: str) -> dict[str, Any]:
    run = train_run(run_config(args, interaction), Path(args.runs_dir) / interaction, data_root=args.data,
                    device=args.device, workers=args.workers, progress=not args.no_progress,
                    eval_frames=args.eval_frames, label=interaction)
    return {"interaction": interaction, **run}


def markdown(doc: dict[str, Any]) -> str:
    from mtlsi_core.training.scoring import metric_label

    tasks = doc["tasks"]
    head = "| predictor | " + " | ".join(
        f"{t} {metric_label(t)} {'↑' if get_task(t).higher_is_better else '↓'}" for t in tasks) + " |"
    lines = [f"# Learning proof: {doc['config']}", "",
             f"Date {doc['date']}; machine: {summary(doc['machine'])}; command:", "", f"    {doc['command']}", "",
             f"Data: synthetic, {doc['data']['num_train']} train / {doc['data']['num_val']} val frames at "
             f"{doc['data']['size'][0]}x{doc['data']['size'][1]}, data seed {doc['data']['seed']}; training seed "
             f"{doc['seed']}, {doc['runs'][0]['iterations']} iterations at batch {doc['runs'][0]['batch_size']}.", "",
             head, "|" + "---|" * (len(tasks) + 1)]
    rows = [("constant predictor", doc["constant"]["headline"]),
            (f"untrained network ({doc['untrained']['interaction']}, iteration 0)", doc["untrained"]["headline"])]
    rows += [(f"{r['interaction']}" + (" (PD baseline)" if r["interaction"] == "none" else ""), r["headline"])
             for r in doc["runs"]]
    for name, vals in rows:
        lines.append(f"| {name} | " + " | ".join(f"{vals[t]:.4g}" for t in tasks) + " |")
    lines += ["", "Seconds per iteration: " + ", ".join(f"{r['interaction']} {r['seconds_per_iteration']:.2f}"
                                                      for r in doc["runs"]), ""]
    v = doc["verdict"]
    per_task = "; ".join(f"{t}: {'ok' if ok else 'missed'} ({rule})" for t, (ok, rule) in v["learned_per_task"].items())
    lines.append(f"**Learned ({v['judged_run']} vs the references):** {'yes' if v['learned'] else 'NO'} — {per_task}")
    if "mqlfb_beats_none" in v:
        wins = v["mqlfb_beats_none"]
        lines.append("")
        lines.append(f"**mqlfb beats none on {sum(wins.values())} of {len(wins)} tasks** "
                     f"({', '.join(t for t, w in wins.items() if w) or 'none'}); the paper's ablation expects "
                     f"at least 3 of 4: {'met' if sum(wins.values()) >= 3 else 'NOT met'}.")
    return "\n".join(lines) + "\n"


def export_demo_weights(run: dict[str, Any], doc: dict[str, Any], path: Path, max_mb: float) -> dict[str, Any]:
    from mtlsi_core.training.export_weights import export_release

    facts = {"data": doc["data"], "train_seed": doc["seed"], "iterations": run["iterations"],
             "headline_val_training_run": run["headline"], "constant_predictor": doc["constant"]["headline"],
             "date": doc["date"], "machine": doc["machine"]}
    return export_release(run["checkpoint"], path, max_mb=max_mb, val_set=run["_trainer"].val_set,
                          reproduce=doc["command"], facts=facts,
                          about=f"trained on the synthetic set ({doc['data']}, training seed {doc['seed']}, "
                                f"{run['iterations']} iterations) by `benchmarks/learning_proof.py`")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data_spec = ensure_data(Path(args.data), args.num_train, args.num_val, args.size, args.data_seed)
    except DataFolderError as e:
        print(f"learning_proof: error: {e}", file=sys.stderr)
        return 2

    runs = [train_and_score(args, it) for it in args.interactions]
    trainer = runs[0]["_trainer"]
    tasks = list(trainer.tasks)
    stats = train_statistics(trainer.train_set, tasks)
    from mtlsi_core.training import scoring

    const_metrics = evaluate_constant(trainer.val_set, tasks, stats)
    constant = {"statistics": stats, "headline": scoring.headline_metrics(const_metrics, tasks),
                "metrics": const_metrics}
    main_run = next((r for r in runs if r["interaction"] == "mqlfb"), runs[0])
    untrained = evaluate_untrained(args, main_run["interaction"], trainer.val_set)
    per_task = {t: learned(t, main_run["headline"][t], {"constant": constant["headline"][t],
                                                          "untrained": untrained["headline"][t]}) for t in tasks}
    verdict: dict[str, Any] = {"learned": all(ok for ok, _ in per_task.values()), "learned_per_task": per_task,
                               "judged_run": main_run["interaction"]}
    base = next((r for r in runs if r["interaction"] == "none"), None)
    if base is not None and main_run is not base:
        verdict["mqlfb_beats_none"] = {t: better(t, main_run["headline"][t], base["headline"][t]) for t in tasks}

    doc = {
        "config": args.config, "tasks": tasks, "seed": args.seed, "data": {**data_spec, "root": args.data},
        "command": "python benchmarks/learning_proof.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": describe(args.device),
        "constant": constant, "untrained": {"interaction": main_run["interaction"], **untrained},
        "runs": [{k: v for k, v in r.items() if k != "_trainer"} for r in runs],
        "verdict": verdict,
    }
    if args.export_weights:
        doc["exported"] = export_demo_weights(main_run, doc, Path(args.export_weights), args.max_mb)
    res = Path(args.results_dir)
    atomic_write_bytes(res / "learning_proof.json", json.dumps(doc, indent=2, default=json_default).encode())
    md = markdown(doc)
    atomic_write_bytes(res / "learning_proof.md", md.encode())
    print(md)
    return 0 if verdict["learned"] else 1


if __name__ == "__main__":
    sys.exit(main())
