#!/usr/bin/env python3
"""Ablation of the interaction stage over training seeds, small enough to run many times on one CPU core.

Every arm trains the CPU config (``synth_edge_lite0``) with the same data, budget and seeds, changing only the
config overrides of its row in ``ARMS``; the ``constant`` arm is the constant predictor (training-set statistics,
as in ``benchmarks/learning_proof.py``, whose data, training and scoring pieces this script reuses).

    python benchmarks/ablation.py --threads 1                                    # every arm, seeds 0 1 2
    python benchmarks/ablation.py --threads 1 --arms constant none mqlfb         # the sanity set
    python benchmarks/ablation.py --threads 1 --arms K_32 --seeds 0 --iterations 20 \\
        --results-dir /tmp/abl --runs-dir /tmp/abl/runs                          # a smoke test
    python benchmarks/ablation.py --list                                         # the arms and their overrides
    python benchmarks/ablation.py --report                                       # re-write the summary only

Size and budget (``BASE_SETS``, ``DATA_SPEC``): 480 train / 60 val synthetic frames at 144x192, network input
128x160 (P_t at stride 8: 16x20; interaction tokens N = 4 tasks x 8x10 = 320), 300 iterations at batch 8, lr 1e-3.
One run: about 5 min of training on one idle core (0.6-1 s per iteration) plus about 1 min of evaluation.

Resumable: each finished (arm, seed) is written atomically to ``<results-dir>/ablation/<arm>__s<seed>.json``
with the resolved config; a rerun skips it when the config is the same and resumes an interrupted run from its
``last.pt`` (``<runs-dir>/<arm>/s<seed>``, the Trainer's bit-exact resume). After each run the summary
``ablation.json`` / ``ablation.md`` / ``ablation.png`` (mean ± sample std per task over the finished seeds,
per-seed values, head parameters, GFLOPs and CPU time per forward of each arm) is re-written.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import learning_proof as lp  # noqa: E402
from mtlsi_core.checkpoint import atomic_write_bytes  # noqa: E402
from mtlsi_core.config import Config, load_config  # noqa: E402
from mtlsi_core.tasks import get_task  # noqa: E402
from mtlsi_core.tools.machine import describe, summary  # noqa: E402
from mtlsi_core.training.evaluate import json_default  # noqa: E402

log = logging.getLogger("ablation")

BASE_CONFIG = "synth_edge_lite0"
DEFAULT_DATA = REPO / "data" / "synth_ablation"
DATA_SPEC = {"num_train": 480, "num_val": 60, "size": (144, 192), "seed": 0}
ITERATIONS = 300
# The small bench: input 128x160 from 144x192 frames (the config's 0.75-1.25 rescale + crop), CWIB windows that
# tile the 16x20 stride-8 map 2x2 (the config's [7, 9] tile its 28x36 map 4x4), window_xtask windows that tile the
# 8x10 token grid 2x2; one evaluation at the end of training; no data workers (one process, one core).
# lr 1e-3 (the config's 3e-4 is for 2000 iterations): a pilot at 3e-4 and 300 iterations left the depth output far
# from the metric scale (none: depth RMSE 2.55 m, worse than the constant predictor's 1.17; depth L1 2.2 at the
# end), while at 1e-3 the depth L1 reached 0.78 by iteration 150 (benchmarks/results/ablation_pilot/).
BASE_SETS = ["data.input_size=[128,160]", "model.cwib.window=[8,10]", "model.window_xtask.window=[4,5]",
             "train.lr=1.0e-3", "train.warmup_iterations=30", "train.eval_every=1000000", "train.checkpoint_every=50",
             "train.log_every=50", "data.num_workers=0"]

# name -> config overrides on top of the base; None: the constant predictor (no training). Groups order the report.
ARMS: dict[str, list[str] | None] = {
    # sanity: the comparison of benchmarks/results/learning_proof.md at the small size
    "constant": None,
    "none": ["model.interaction=none"],  # the paper's PD baseline, recipe as for every arm
    "mqlfb": [],  # today's MT-MQLFB as synth_edge_lite0 ships it
    # item 2: the choices the paper leaves open
    "prelim_grad_0": ["model.refinement.prelim_grad=0.0"],
    "prelim_grad_0.1": ["model.refinement.prelim_grad=0.1"],
    "heads_4": ["model.mqlfb.heads=4"],
    "v_conv_3": ["model.mqlfb.v_conv=3"],
    "distiller_hidden_256": ["model.distiller.hidden=256"],
    "distiller_norm_layer": ["model.distiller.norm=layer"],
    "distiller_norm_none": ["model.distiller.norm=none"],
    "coarse_residual": ["model.refinement.coarse_residual=true"],
    "coarse_weight_0.5": ["train.coarse_loss_weight=0.5"],
    "coarse_weight_2": ["train.coarse_loss_weight=2.0"],
    # Table III: scales {1} vs {1, 3, 5} (the default)
    "scales_1": ["model.mqlfb.scales=[1]"],
    # Fig. 3: K (distilled tokens), K < N = 320 (Sec. II-C); K = 64, the config's, is the `mqlfb` arm
    "K_32": ["model.distiller.num_tokens=32"],
    "K_128": ["model.distiller.num_tokens=128"],
    "K_256": ["model.distiller.num_tokens=256"],
    # the peers' interaction styles, same backbone, data, budget and seeds
    "mhsa": ["model.interaction=mhsa"],
    "window_xtask": ["model.interaction=window_xtask"],
    "deformable": ["model.interaction=deformable"],
}
# Item 3: the open choices chosen by the numbers of the arms above over 3 seeds (benchmarks/results/ablation.md):
# the coarse residual (semseg +2.8 mIoU over `none`, beyond the seeds' std; depth -0.03 m) and the distiller's
# assignment MLP at 256 (depth 0.49 m against none's 0.53, beyond std). On top of them, Table III, Fig. 3 and the
# peers again, so that every comparison of the chosen model is on identical footing.
CHOSEN = ["model.refinement.coarse_residual=true", "model.distiller.hidden=256"]
ARMS.update({
    "chosen": CHOSEN,
    "chosen_scales_1": [*CHOSEN, "model.mqlfb.scales=[1]"],
    "chosen_K_32": [*CHOSEN, "model.distiller.num_tokens=32"],
    "chosen_K_128": [*CHOSEN, "model.distiller.num_tokens=128"],
    "chosen_K_256": [*CHOSEN, "model.distiller.num_tokens=256"],
    "chosen_mhsa": [*CHOSEN, "model.interaction=mhsa"],
    "chosen_window_xtask": [*CHOSEN, "model.interaction=window_xtask"],
    "chosen_deformable": [*CHOSEN, "model.interaction=deformable"],
    # the residual costs depth in every seed of `chosen`: the same without it on depth. Over 3 seeds it keeps the
    # others' gains and wins depth back (0.495 vs 0.560 m): the choice synth_transfer_lite0 (the next shipped model)
    # trains with. The chosen_* arms above stay on `chosen`, so that they compare on one footing.
    "chosen_residual_no_depth": ["model.refinement.coarse_residual=[semseg,normals,edge]", "model.distiller.hidden=256"],
})
SANITY = ["constant", "none", "mqlfb"]


def ensure_ablation_data(root: Path) -> dict[str, Any]:
    return lp.ensure_data(root, DATA_SPEC["num_train"], DATA_SPEC["num_val"], DATA_SPEC["size"], DATA_SPEC["seed"])


def canonical_focal(size: Sequence[int]) -> float:
    from mtlsi_core.data.synth import kinect_intrinsics

    return float(kinect_intrinsics(tuple(size))[0, 0])


def arm_config(data_root: str | Path, overrides: Sequence[str], seed: int, iterations: int = ITERATIONS,
               name: str = "") -> Config:
    sets = [*BASE_SETS, f"data.canonical_focal={canonical_focal(DATA_SPEC['size'])!r}", f"data.root={data_root}",
            f"train.iterations={iterations}", f"train.seed={seed}", *overrides]
    cfg = load_config(BASE_CONFIG, sets)
    return cfg.model_copy(update={"name": f"ablation_{name}"}) if name else cfg


def result_path(results: Path, arm: str, seed: int) -> Path:
    return results / "ablation" / f"{arm}__s{seed}.json"


def _json(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, default=json_default).encode()


def run_arm_seed(args: argparse.Namespace, arm: str, seed: int) -> dict[str, Any]:
    """Train and score one (arm, seed) unless its result file exists with the same config."""
    path = result_path(Path(args.results_dir), arm, seed)
    overrides = ARMS[arm]
    if overrides is None:  # the constant predictor: no training, the same figures for every seed
        return constant_result(args, path)
    cfg = arm_config(args.data, overrides, seed, args.iterations, arm)
    if path.is_file():
        doc = json.loads(path.read_text())
        if lp.same_run_settings(doc["config"], cfg):
            log.info("%s seed %d: done before (%s), skipped", arm, seed, path)
            return doc
        raise SystemExit(f"{path} holds a run with other settings: remove it (and {Path(args.runs_dir) / arm}) "
                         "or use another --results-dir / --runs-dir")
    t_cpu = time.process_time()
    run = lp.train_run(cfg, Path(args.runs_dir) / arm / f"s{seed}", data_root=args.data, workers=0,
                       progress=False, eval_frames=1, label=f"{arm} seed {seed}")
    run.pop("_trainer")
    doc = {"arm": arm, "seed": seed, "overrides": overrides, **run,
           "cpu_seconds_this_invocation": time.process_time() - t_cpu, "threads": torch.get_num_threads(),
           "load_average_at_end": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
           "source": source_revision()}
    atomic_write_bytes(path, _json(doc))
    return doc


def source_revision() -> str:
    """The code that ran: ``SOURCE_REVISION`` beside this script (a ``git archive`` snapshot) or git's HEAD."""
    stamp = REPO / "SOURCE_REVISION"
    if stamp.is_file():
        return stamp.read_text().strip()
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "mtlsi_core", "benchmarks"],
                               capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def constant_result(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    from mtlsi_core.data import build_dataset
    from mtlsi_core.training import scoring

    cfg = arm_config(args.data, [], 0, args.iterations)
    key = {"data": {**DATA_SPEC, "size": list(DATA_SPEC["size"])}, "tasks": list(cfg.data.tasks),
           "input_size": list(cfg.data.input_size)}
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        return json.loads(path.read_text())
    train = build_dataset(cfg, cfg.data.train_split, root=str(args.data), train=True)
    val = build_dataset(cfg, cfg.data.val_split, root=str(args.data), train=False)
    stats = lp.train_statistics(train, cfg.data.tasks)
    metrics = lp.evaluate_constant(val, cfg.data.tasks, stats)
    doc = {"arm": "constant", "key": key, "statistics": stats, "val_frames": len(val),
           "headline": scoring.headline_metrics(metrics, cfg.data.tasks), "metrics": metrics}
    atomic_write_bytes(path, _json(doc))
    return doc


def arm_cost(args: argparse.Namespace, arm: str, reps: int = 10) -> dict[str, Any] | None:
    """Head parameters, GFLOPs (batch 1) and CPU time per forward (batch 1, inference, this process's threads)."""
    overrides = ARMS[arm]
    if overrides is None:
        return None
    from mtlsi_core.models import build_model
    from mtlsi_core.tools.info import model_info

    cfg = arm_config(args.data, overrides, 0, args.iterations, arm)
    path = Path(args.results_dir) / "ablation" / f"{arm}__cost.json"
    key = {"model": cfg.to_dict()["model"], "input_size": list(cfg.data.input_size), "threads": torch.get_num_threads()}
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        return json.loads(path.read_text())
    info = model_info(cfg)
    cpu_cfg = cfg.model_copy(deep=True)
    cpu_cfg.model.backbone.pretrained = False
    torch.manual_seed(0)
    model = build_model(cpu_cfg).eval()
    model.return_coarse = False
    x = torch.randn(1, 3, *cfg.data.input_size)
    times = []
    with torch.inference_mode():
        for i in range(reps + 2):
            t0 = time.process_time()
            model(x)
            if i >= 2:
                times.append(time.process_time() - t0)
    doc = {"arm": arm, "key": key, "head_params": info["params"]["head"], "params_total": info["params"]["total"],
           "head_parts": info["params"]["head_parts"], "gflops": info["gflops"],
           "cpu_ms_per_forward_median": 1e3 * statistics.median(times), "cpu_ms_per_forward_min": 1e3 * min(times),
           "forward_reps": reps, "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    atomic_write_bytes(path, _json(doc))
    return doc


# --------------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------------


def summarise(args: argparse.Namespace, arms: Sequence[str]) -> dict[str, Any]:
    """Collect every finished result file of ``arms`` (all seeds found) into one document."""
    res = Path(args.results_dir)
    tasks: list[str] = list(arm_config(args.data, [], 0, args.iterations).data.tasks)
    out: dict[str, Any] = {}
    for arm in arms:
        per_seed: dict[str, dict[str, float]] = {}
        if ARMS[arm] is None:
            p = result_path(res, arm, 0)
            if p.is_file():
                per_seed["-"] = json.loads(p.read_text())["headline"]
        else:  # every finished seed, not only this invocation's: jobs run disjoint seeds side by side
            found = sorted(int(q.name[len(arm) + 3:-5]) for q in (res / "ablation").glob(f"{arm}__s*.json")
                           if q.name[len(arm) + 3:-5].isdigit())
            for s in found:
                per_seed[str(s)] = json.loads(result_path(res, arm, s).read_text())["headline"]
        cost_p = res / "ablation" / f"{arm}__cost.json"
        cost = json.loads(cost_p.read_text()) if cost_p.is_file() else None
        entry: dict[str, Any] = {"overrides": ARMS[arm], "seeds_done": list(per_seed), "per_seed": per_seed}
        if per_seed:
            entry["mean"] = {t: statistics.fmean(v[t] for v in per_seed.values()) for t in tasks}
            entry["std"] = {t: (statistics.stdev(v[t] for v in per_seed.values()) if len(per_seed) > 1 else 0.0)
                            for t in tasks}
        if cost:
            entry["cost"] = {k: cost[k] for k in ("head_params", "gflops", "cpu_ms_per_forward_median",
                                                  "cpu_ms_per_forward_min", "load_average")}
        out[arm] = entry
    return {"tasks": tasks, "arms": out}


def compare(summary_doc: dict[str, Any], arm: str, ref: str = "none") -> dict[str, Any] | None:
    """Per task: does ``arm`` beat ``ref`` in the mean, and by more than the larger of the two seed stds?"""
    a, b = summary_doc["arms"].get(arm), summary_doc["arms"].get(ref)
    if not a or not b or "mean" not in a or "mean" not in b:
        return None
    out = {}
    for t in summary_doc["tasks"]:
        sign = 1.0 if get_task(t).higher_is_better else -1.0
        diff = sign * (a["mean"][t] - b["mean"][t])
        out[t] = {"better": diff > 0, "diff": diff, "beyond_std": diff > max(a["std"][t], b["std"][t])}
    return out


def markdown(doc: dict[str, Any]) -> str:
    from mtlsi_core.training.scoring import metric_label

    tasks = doc["tasks"]
    lines = [f"# Ablation of the interaction stage ({BASE_CONFIG}, small bench)", "",
             f"Date {doc['date']}; machine: {summary(doc['machine'])}; written by:", "", f"    {doc['command']}", "",
             "Runs are pooled from every invocation (jobs with disjoint arms / seeds side by side): one run is "
             "`python benchmarks/ablation.py --arms ARM --seeds SEED`, its code revision and figures in "
             "`ablation/<arm>__s<seed>.json`.", "",
             f"Data: synthetic, {DATA_SPEC['num_train']} train / {DATA_SPEC['num_val']} val frames at "
             f"{DATA_SPEC['size'][0]}x{DATA_SPEC['size'][1]} (data seed {DATA_SPEC['seed']}); input "
             f"{doc['input_size'][0]}x{doc['input_size'][1]}; {doc['iterations']} iterations at batch "
             f"{doc['batch_size']}; seeds {doc['seeds']}. Mean ± sample std over the finished seeds (n); "
             "cost: head parameters, GFLOPs of the whole network (batch 1), CPU ms per inference forward "
             "(batch 1, median).", "",
             "| arm | n | " + " | ".join(f"{t} {metric_label(t)} {'↑' if get_task(t).higher_is_better else '↓'}"
                                        for t in tasks) + " | head params | GFLOPs | CPU ms |",
             "|---|---|" + "---|" * (len(tasks) + 3)]
    for arm, e in doc["summary"]["arms"].items():
        if "mean" not in e:
            lines.append(f"| {arm} | 0 | " + " | ".join("–" for _ in tasks) + " | | | |")
            continue
        n = len(e["seeds_done"])
        cells = [f"{e['mean'][t]:.4g} ± {e['std'][t]:.2g}" if n > 1 else f"{e['mean'][t]:.4g}" for t in tasks]
        c = e.get("cost")
        cost = (f"{c['head_params'] / 1e6:.3f} M | {c['gflops']['total']:.2f} | {c['cpu_ms_per_forward_median']:.0f}"
                if c else " | | ")
        lines.append(f"| {arm} | {len(e['seeds_done'])} | " + " | ".join(cells) + f" | {cost} |")
    lines += ["", "Per-seed values: `ablation.json` (`summary.arms.<arm>.per_seed`).", ""]
    for arm, cmp in doc["vs_none"].items():
        if cmp is None:
            continue
        wins = [t for t, c in cmp.items() if c["better"]]
        clear = [t for t, c in cmp.items() if c["beyond_std"]]
        lines.append(f"- **{arm} vs none**: better on {len(wins)} of {len(tasks)} ({', '.join(wins) or '-'}); "
                     f"by more than the seeds' std on {len(clear)} ({', '.join(clear) or '-'}).")
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = doc["tasks"]
    # trained arms only: the constant predictor (in the table) would squash every axis
    arms = [a for a, e in doc["summary"]["arms"].items() if "mean" in e and ARMS.get(a) is not None]
    if not arms:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 0.32 * len(arms) + 1.6), sharey=True)
    for ax, t in zip(axes, tasks):
        for i, a in enumerate(arms):
            e = doc["summary"]["arms"][a]
            ax.errorbar(e["mean"][t], i, xerr=e["std"][t], fmt="o", color="C0" if a != "none" else "C3", capsize=3)
            ax.scatter([v[t] for v in e["per_seed"].values()], [i] * len(e["per_seed"]), s=8, color="k", zorder=3)
        if "none" in arms:
            ax.axvline(doc["summary"]["arms"]["none"]["mean"][t], color="C3", lw=0.8, ls="--")
        ax.set_title(f"{t} ({'higher' if get_task(t).higher_is_better else 'lower'} is better)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(arms)), arms)
    axes[0].invert_yaxis()
    fig.suptitle(f"Ablation ({BASE_CONFIG}, {doc['iterations']} it.), mean ± std over seeds (dots: seeds; dashed: "
                 f"none); constant predictor in the table; {summary(doc['machine'])}", fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(args: argparse.Namespace, arms: Sequence[str], seeds: Sequence[int], argv: Sequence[str]) -> str:
    cfg = arm_config(args.data, [], 0, args.iterations)
    s = summarise(args, list(ARMS))  # every arm and seed with results, not only this invocation's
    doc = {"config": BASE_CONFIG, "tasks": s["tasks"], "base_overrides": BASE_SETS, "data": DATA_SPEC,
           "iterations": args.iterations,
           "batch_size": cfg.train.batch_size, "input_size": list(cfg.data.input_size),
           "seeds": sorted({int(k) for e in s["arms"].values() for k in e["per_seed"] if k != "-"}),
           "command": "python benchmarks/ablation.py " + " ".join(shlex.quote(a) for a in argv),
           "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": describe("cpu"), "summary": s,
           "vs_none": {a: compare(s, a) for a in s["arms"] if a not in ("none", "constant")}}
    res = Path(args.results_dir)
    if args.report and (res / "ablation.json").is_file():  # a re-written summary keeps the command of the runs
        doc["command"] = json.loads((res / "ablation.json").read_text()).get("command", doc["command"])
    atomic_write_bytes(res / "ablation.json", _json(doc))
    md = markdown(doc)
    atomic_write_bytes(res / "ablation.md", md.encode())
    try:
        plot(doc, res / "ablation.png")
    except Exception as e:  # the figures matter more than the picture
        log.warning("plot failed: %s", e)
    return md


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--arms", nargs="+", default=list(ARMS), help="arms to run, in order (default: all; see --list)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--iterations", type=int, default=ITERATIONS)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="synthetic data folder (generated when missing)")
    p.add_argument("--runs-dir", default=str(REPO / "runs" / "ablation"))
    p.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--list", action="store_true", help="print the arms and their overrides, then exit")
    p.add_argument("--report", action="store_true", help="only re-write the summary from the finished results")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
    if args.list:
        for a, o in ARMS.items():
            print(f"{a:24s} {'constant predictor' if o is None else (' '.join(o) or '(the config as it ships)')}")
        return 0
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:  # pragma: no cover
        pass
    if not args.report:
        for a in args.arms:  # every arm's config must validate before hours of training start
            if ARMS[a] is not None:
                arm_config(args.data, ARMS[a], 0, args.iterations, a)
        ensure_ablation_data(Path(args.data))
        for a in args.arms:
            arm_cost(args, a)
        # seed-major: every arm's seed 0 first, so a stopped job leaves complete comparisons behind
        for s in args.seeds:
            for a in args.arms:
                if ARMS[a] is None and s != args.seeds[0]:
                    continue
                run_arm_seed(args, a, s)
                write_report(args, args.arms, args.seeds, argv)
    print(write_report(args, args.arms, args.seeds, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
