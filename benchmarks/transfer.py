#!/usr/bin/env python3
"""Train the transfer recipe (``synth_transfer_lite0``) on synthetic data, resumably, and report it on the synthetic
val split (model selection) and on the real NYUDv2 frames (test set, report only) beside the issue's targets.

    # the full run, in the background (nice 19), resumable: re-run the same command after a kill
    python benchmarks/transfer.py --background --threads 2 --workers 0
    tail -f runs/transfer/synth_transfer_lite0/transfer.log
    # at the end of the schedule, ship the selected model (and its reproduce command) as the default one
    python benchmarks/transfer.py --threads 2 --workers 0 --export-weights mtlsi_core/weights/synth_transfer_lite0.pt
    # a report of where the run stands now (stops at 2000 iterations; the same command without it goes on)
    python benchmarks/transfer.py --threads 2 --workers 0 --max-iterations 2000
    # a smoke test (a minute): tiny data, 10 iterations at 64x96 (fx of 96-wide frames: 77.8287 px)
    python benchmarks/transfer.py --data /tmp/tr/data --num-train 8 --num-val 2 --size 64x96 --profile basic \
        --runs-dir /tmp/tr/runs --results-dir /tmp/tr/res --set train.iterations=10 --set data.input_size=[64,96] \
        --set data.canonical_focal=77.8287 --set model.backbone.pretrained=false --eval-frames 1 --workers 0

What it does: generates the synthetic set when ``--data`` lacks it (``mtlsi-synth``'s generator, ``--profile``
nyud by default: the NYUDv2-like rooms; the learning proof's stamp; a folder that holds a set is never
overwritten: one made by ``mtlsi-synth`` is used as it is), trains ``--config`` in ``<runs-dir>/<config name>``
with the Trainer (``--resume auto``: a kill loses at most ``train.checkpoint_every`` iterations; a run folder of
other settings, or one that another live process trains, is refused), appending progress to ``transfer.log``
there. When this invocation's training stops (the end of the schedule, or ``--max-iterations``) it scores, on the
whole synthetic val split, ``best.pt`` (the Trainer's best synthetic-val evaluation: the model this recipe
selects), ``last.pt`` and, for comparison, the shipped model (``--reference``); then the selected model and the
shipped one on the real frames of ``--real-data`` (``benchmarks/real_frames.py``'s scoring, as the node runs a
model). The real frames are never trained on and never select anything. Writes
``<results-dir>/transfer_<config>.json`` and ``.md`` (atomically) with the figures, the issue-10 targets met or
missed, the machine and the command; the real frames' contact sheets stay in the run folder (thumbnails of the
real frames: not for git). What it may touch: the data folder, the run folder and those two result files.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import learning_proof as lp  # noqa: E402
import real_frames as rf  # noqa: E402

from mtlsi_core.checkpoint import atomic_write_bytes, packaged_model  # noqa: E402
from mtlsi_core.data.synth import PROFILES  # noqa: E402
from mtlsi_core.training.evaluate import json_default  # noqa: E402

log = logging.getLogger("transfer")
# issue 10 compares with the demo model as it was (synthetic only), named so that shipping this recipe's model as
# the node's default (checkpoint.DEFAULT_MODEL_NAME) does not make the comparison one of the model with itself
REFERENCE_MODEL = packaged_model("synth_edge_lite0")

# issue 10's targets, pooled over the real frames: (task, figure, "<=" | ">=", value, frames); frames None = pooled
TARGETS = [
    ("depth", "rmse_m", "<=", 0.50, None),
    ("depth", "delta1_pct", ">=", 75.0, None),
    ("normals", "mErr_deg", "<=", 28.0, "nyu_0433"),
    ("semseg", "mIoU_gt_classes", ">=", 20.0, None),
    ("semseg", "pixel_acc", ">=", 65.0, None),
]
CHILD_ENV = "MTLSI_TRANSFER_BACKGROUND"  # set in the detached process: its stdout already is the log file
SYNTH_MAX_WORSE = 0.10  # the synthetic val figures may not get worse than the shipped model's by more than this


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config", default="synth_transfer_lite0", help="config name or path")
    p.add_argument("--data", default=str(REPO / "data" / "synth_transfer"),
                   help="synthetic data folder (generated when missing; git-ignored default)")
    p.add_argument("--num-train", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=200)
    p.add_argument("--size", type=lp.parse_size, default=(240, 320), help="frame size HxW of a generated set")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--gen-workers", type=int, help="generator processes of a generated set (default: its own)")
    p.add_argument("--profile", default="nyud", choices=PROFILES,
                   help="generator profile of a generated set (default nyud: NYUDv2-like rooms, light and camera)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override (repeatable); part of the run's settings")
    p.add_argument("--runs-dir", default=str(REPO / "runs" / "transfer"))
    p.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--max-iterations", type=int, help="stop this invocation here (the schedule still spans "
                                                      "train.iterations); report at that point")
    p.add_argument("--eval-frames", type=int, default=40,
                   help="val frames of the periodic evaluations during training (the report uses all)")
    p.add_argument("--workers", type=int, help="data loader workers (default data.num_workers)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--real-data", type=Path, default=rf.DEFAULT_DATA, help="real NYUDv2 frames (report only)")
    p.add_argument("--thresholds", type=int, help="boundary thresholds of the real-frame scores (default 101)")
    p.add_argument("--reference", type=Path, default=REFERENCE_MODEL,
                   help="model to compare with (default: the synthetic-only demo model the issue measures against, "
                        "also once this recipe's model is the node's default); 'none' to skip")
    p.add_argument("--background", action="store_true",
                   help="re-run this command detached at nice 19, output appended to <run>/transfer.log")
    p.add_argument("--export-weights", type=Path, metavar="PATH",
                   help="once the schedule is complete, ship the selected model here (fp32, fp16 if over --max-mb) "
                        "with a .json / .md beside it: the reproduce command and its synthetic-val figures")
    p.add_argument("--max-mb", type=float, default=25.0, help="size limit of the exported weights (MiB)")
    return p


DataFolderError = lp.DataFolderError
ensure_data = lp.ensure_data  # one data-folder rule for both benchmarks: a set made with other settings is kept


def run_dir(args: argparse.Namespace, cfg: Any) -> Path:
    return Path(args.runs_dir) / cfg.name


def load_cfg(args: argparse.Namespace):
    from mtlsi_core.config import load_config

    return load_config(args.config, [f"data.root={args.data}", *args.overrides])


class RunBusyError(RuntimeError):
    """Another process is training in the run folder."""


def running_pid(out: Path) -> int | None:
    """The pid in ``<run>/transfer.pid`` when that process is alive and is not this one."""
    try:
        pid = int((out / "transfer.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    try:  # a reused pid of another program does not count
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid
    return pid if b"transfer.py" in cmdline else None


def claim_run_dir(out: Path) -> None:
    """One training process per run folder: two would overwrite each other's last.pt."""
    pid = running_pid(out)
    if pid is not None:
        raise RunBusyError(f"{out} is being trained by process {pid} (see {out / 'transfer.log'}); stop it with "
                           f"kill {pid} or wait for it")
    atomic_write_bytes(out / "transfer.pid", f"{os.getpid()}\n".encode())


def start_background(args: argparse.Namespace, argv: Sequence[str]) -> int:
    cfg = load_cfg(args)  # a bad config fails here, not in the detached process
    out = run_dir(args, cfg)
    out.mkdir(parents=True, exist_ok=True)
    pid = running_pid(out)
    if pid is not None:
        raise RunBusyError(f"{out} is being trained by process {pid} already (log {out / 'transfer.log'})")
    logf = open(out / "transfer.log", "ab")
    cmd = [sys.executable, str(Path(__file__).resolve()), *[a for a in argv if a != "--background"]]
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=os.getcwd(),
                            env={**os.environ, CHILD_ENV: "1"}, start_new_session=True,
                            preexec_fn=lambda: os.nice(19))
    logf.close()
    atomic_write_bytes(out / "transfer.pid", f"{proc.pid}\n".encode())
    print(f"transfer: training in the background, pid {proc.pid} (nice 19); log {out / 'transfer.log'}; "
          f"stop it with: kill {proc.pid}; resume with the same command")
    return 0


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


def score_synthetic(path: Path, val_set: Any, tasks: Sequence[str], device: str) -> dict[str, Any]:
    from mtlsi_core.models import load_model_from_checkpoint
    from mtlsi_core.training import scoring
    from mtlsi_core.training.evaluation import evaluate_model

    model, cfg = load_model_from_checkpoint(path)
    missing = [t for t in tasks if t not in cfg.tasks]
    if missing:
        return {"model": str(path), "error": f"predicts none of {missing}"}
    out = evaluate_model(model, val_set, list(tasks), device, batch_size=8)
    return {"model": str(path), "frames": out.num_frames,
            "headline": scoring.headline_metrics(out.metrics, list(tasks)), "metrics": out.metrics}


def score_real(path: Path, args: argparse.Namespace, out_dir: Path, name: str) -> dict[str, Any] | None:
    """``benchmarks/real_frames.py``'s figures of one model; None where the frames are absent."""
    if not (args.real_data / "multitask").is_dir() and not (args.real_data / "rgb_seg40").is_dir():
        return None
    argv = ["--model", str(path), "--data", str(args.real_data), "--out", str(out_dir), "--name", name,
            "--device", args.device]
    if args.thresholds:
        argv += ["--thresholds", str(args.thresholds)]
    doc = rf.run(rf.build_parser().parse_args(argv))
    keep = ("model", "tasks", "frames_per_task", "pooled", "per_frame", "canonical_focal", "boundary_thresholds",
            "inference_ms_median")
    return {k: doc[k] for k in keep}


def target_figure(real: dict[str, Any], task: str, key: str, frame: str | None) -> float | None:
    if frame is None:
        return real["pooled"]["model"].get(task, {}).get(key)
    for e in real["per_frame"]:
        if e["frame"] == frame:
            return e["model"].get(task, {}).get(key)
    return None


def check_targets(real: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for task, key, op, value, frame in TARGETS:
        v = None if real is None else target_figure(real, task, key, frame)
        met = None if v is None else (v <= value if op == "<=" else v >= value)
        rows.append({"task": task, "figure": key, "where": frame or "pooled", "target": f"{op} {value:g}",
                     "value": v, "met": met})
    return rows


def check_synthetic(model: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per task: the relative change against ``ref`` (positive = worse) and whether it is within 10 %."""
    from mtlsi_core.tasks import get_task

    if ref is None or "headline" not in ref or "headline" not in model:
        return None
    out = {}
    for t, v in model["headline"].items():
        r = ref["headline"].get(t)
        if r is None or r == 0:
            continue
        worse = (r - v) / abs(r) if get_task(t).higher_is_better else (v - r) / abs(r)
        out[t] = {"model": v, "reference": r, "worse_by": worse, "ok": worse <= SYNTH_MAX_WORSE}
    return out


def markdown(doc: dict[str, Any]) -> str:
    from mtlsi_core.tools.machine import summary

    lines = [f"# Transfer recipe: {doc['config']}", "", f"Date {doc['date']}; machine: {summary(doc['machine'])}; "
             f"command:", "", f"    {doc['command']}", "",
             f"Synthetic data {doc['data']}; iteration {doc['iteration']} of {doc['iterations_total']} "
             f"({doc['seconds_per_iteration']:.2f} s/iteration over {doc['timed_iterations']} timed iterations). "
             f"Selected model: `{Path(doc['selected']).name}` (best synthetic-val evaluation, iteration "
             f"{doc['best_iteration']}); the real frames are the test set and select nothing.", "",
             "## Synthetic val (all frames)", "", "| model | " + " | ".join(doc["tasks"]) + " |",
             "|---|" + "---|" * len(doc["tasks"])]
    for label, s in doc["synthetic"].items():
        if s and "headline" in s:
            lines.append(f"| {label} | " + " | ".join(f"{s['headline'][t]:.4g}" for t in doc["tasks"]) + " |")
    lines.append("")
    if doc.get("synthetic_vs_reference"):
        lines.append(f"Selected vs the reference model `{doc['reference_model']}` (the issue allows at most 10 % "
                     "worse): " + ", ".join(f"{t} {100 * r['worse_by']:+.1f} % worse ({'ok' if r['ok'] else 'NOT ok'})"
                                            for t, r in doc["synthetic_vs_reference"].items()))
        lines.append("")
    lines += ["## Real NYUDv2 frames (report only)", ""]
    if not doc["real"]:
        lines.append("Real frames absent: not scored.")
    else:
        lines += ["| task | figure | where | target | selected model | reference model | met |",
                  "|---|---|---|---|---|---|---|"]
        base = doc["real"].get("reference")
        for row in doc["targets"]:
            b = None if not base else target_figure(base, row["task"], row["figure"],
                                                      None if row["where"] == "pooled" else row["where"])
            fmt = lambda x: "-" if x is None else f"{x:.4g}"  # noqa: E731
            lines.append(f"| {row['task']} | {row['figure']} | {row['where']} | {row['target']} | {fmt(row['value'])} "
                         f"| {fmt(b)} | {'-' if row['met'] is None else ('yes' if row['met'] else 'no')} |")
        sel = doc["real"]["selected"]["pooled"]
        lines += ["", "Pooled, all figures (selected model / trivial baseline):", ""]
        for t, figs in sel["model"].items():
            lines.append(f"- {t}: " + ", ".join(
                f"{k} {v:.4g} / {sel['baseline'][t].get(k, float('nan')):.4g}" for k, v in figs.items()
                if k not in ("pixels", "classes_in_gt")))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from mtlsi_core.checkpoint import CheckpointError
    from mtlsi_core.config import ConfigError
    from mtlsi_core.data.errors import DatasetError
    from mtlsi_core.training.trainer import TrainingError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.background:
            return start_background(args, argv)
        return run(args, argv)
    except (ConfigError, CheckpointError, DatasetError, TrainingError, FileNotFoundError, RunBusyError,
            DataFolderError) as e:
        print(f"transfer: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_cfg(args)
    out = run_dir(args, cfg)
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(out)
    handler = None
    if not os.environ.get(CHILD_ENV):  # a foreground run also logs to the file (in the background stdout is it)
        handler = logging.FileHandler(out / "transfer.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    loggers = [logging.getLogger(n) for n in ("transfer", "mtlsi_core")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.INFO)
        if handler is not None:
            lg.addHandler(handler)
    try:
        return train_and_report(args, argv, cfg, out)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
            if handler is not None:
                lg.removeHandler(handler)
        if handler is not None:
            handler.close()


def train_and_report(args: argparse.Namespace, argv: Sequence[str], cfg: Any, out: Path) -> int:
    from mtlsi_core.checkpoint import load_checkpoint
    from mtlsi_core.tools.machine import describe
    from mtlsi_core.training.trainer import Trainer

    log.info("transfer: %s", " ".join(shlex.quote(a) for a in argv))
    data_spec = ensure_data(Path(args.data), args.num_train, args.num_val, args.size, args.data_seed,
                            args.gen_workers, args.profile)
    if (out / "last.pt").is_file() and not lp.same_run_settings(load_checkpoint(out / "last.pt")["config"], cfg):
        print(f"transfer: error: {out / 'last.pt'} is from a run with other settings; remove {out} or choose "
              "another --runs-dir", file=sys.stderr)
        return 2
    trainer = Trainer(cfg, output_dir=out, data_root=args.data, device=args.device, num_workers=args.workers,
                      resume="auto", max_iterations=args.max_iterations, progress=False,
                      eval_max_frames=args.eval_frames)
    result = trainer.train()
    log.info("training stopped at iteration %d of %d", result.iteration, cfg.train.iterations)

    best = out / "best.pt"
    selected = best if best.is_file() else out / "last.pt"
    tasks = list(cfg.tasks)
    synthetic = {"selected (best.pt)" if selected == best else "selected (last.pt)":
                 score_synthetic(selected, trainer.val_set, tasks, args.device)}
    if selected == best:
        synthetic["last.pt"] = score_synthetic(out / "last.pt", trainer.val_set, tasks, args.device)
    reference = None if str(args.reference) == "none" else args.reference
    if reference is not None and reference.is_file():
        synthetic["reference"] = score_synthetic(reference, trainer.val_set, tasks, args.device)
    for label, s in synthetic.items():
        log.info("synthetic val, %s: %s", label, s.get("headline", s.get("error")))
    real: dict[str, Any] = {}
    sel_real = score_real(selected, args, out, f"real_frames_{cfg.name}")
    if sel_real is not None:
        real["selected"] = sel_real
        if reference is not None and reference.is_file():
            real["reference"] = score_real(reference, args, out, f"real_frames_reference_{reference.stem}")
    sel_key = next(iter(synthetic))
    best_info = load_checkpoint(selected).get("best") or {}
    doc = {
        "config": cfg.name, "config_dict": cfg.to_dict(), "tasks": tasks,
        "command": "python benchmarks/transfer.py " + " ".join(shlex.quote(a) for a in argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": describe(args.device),
        "load_average_at_end": os.getloadavg(),
        "data": {**data_spec, "root": str(args.data)}, "run_dir": str(out),
        "iteration": result.iteration, "iterations_total": cfg.train.iterations,
        "seconds_per_iteration": (result.timing["seconds"] / result.timing["iterations"]
                                  if result.timing.get("iterations") else float("nan")),
        "timed_iterations": int(result.timing.get("iterations", 0)),
        "selected": str(selected), "best_iteration": best_info.get("iteration"),
        "selection_rule": "best synthetic-val evaluation (Trainer's multi-task gain rule); real frames: report only",
        "synthetic": synthetic,
        "synthetic_vs_reference": check_synthetic(synthetic[sel_key], synthetic.get("reference")),
        "real": real, "targets": check_targets(real.get("selected")),
        "reference_model": None if reference is None else str(reference),
    }
    if args.export_weights is not None:
        if result.iteration < cfg.train.iterations:
            log.info("not exported: the schedule is at iteration %d of %d", result.iteration, cfg.train.iterations)
        else:
            from mtlsi_core.training.export_weights import export_release

            facts = {"data": doc["data"], "iterations": result.iteration, "selected": doc["selected"],
                     "best_iteration": doc["best_iteration"], "selection_rule": doc["selection_rule"],
                     "real_frames": (real.get("selected") or {}).get("pooled"), "date": doc["date"],
                     "machine": doc["machine"]}
            reproduce = doc["command"].replace(" --background", "")
            doc["exported"] = export_release(selected, args.export_weights, max_mb=args.max_mb,
                                             val_set=trainer.val_set, reproduce=reproduce, facts=facts,
                                             about=f"trained by the transfer recipe `{cfg.name}` on synthetic scenes "
                                                   "only (`benchmarks/transfer.py`)", device=args.device)
            log.info("exported %s (%s MiB)", args.export_weights, doc["exported"]["size_mib"])
    res = Path(args.results_dir)
    stem = f"transfer_{cfg.name}"
    atomic_write_bytes(res / f"{stem}.json", json.dumps(doc, indent=2, default=json_default).encode())
    md = markdown(doc)
    atomic_write_bytes(res / f"{stem}.md", md.encode())
    print(md)
    log.info("written %s and %s", res / f"{stem}.json", res / f"{stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
