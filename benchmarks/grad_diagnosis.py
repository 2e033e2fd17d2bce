#!/usr/bin/env python3
"""Which losses push each preliminary decoder, at initialisation (issue 9's diagnosis).

For every task t, on one training batch of the synthetic set, the gradient on the parameters of t's preliminary
decoder is split into the part that t's own losses put there (final + coarse, weighted as in training) and the
part that the OTHER tasks' final losses put there (through F_t = proj(concat(P_t, coarse_t)) and the shared
interaction). Reported: both norms and their cosine, per task, averaged over ``--batches`` batches and over
``--seeds`` initialisations.

    python benchmarks/grad_diagnosis.py --threads 1                       # the config of benchmarks/ablation.py
    python benchmarks/grad_diagnosis.py --set model.mqlfb.prelim_grad=detach  # the same with the option under test

Writes ``<results-dir>/grad_diagnosis[_<tag>].json`` (atomically) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import ablation  # noqa: E402
from mtlsi_core.checkpoint import atomic_write_bytes  # noqa: E402
from mtlsi_core.tools.machine import describe  # noqa: E402


def flat_grad(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def diagnose(cfg: Any, data_root: str, batches: int, seed: int) -> dict[str, dict[str, float]]:
    from mtlsi_core.data import collate
    from mtlsi_core.training.trainer import Trainer

    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed})})
    tr = Trainer(cfg, output_dir=Path("/tmp") / f"grad_diag_{time.time_ns()}", data_root=data_root,
                 num_workers=0, progress=False)
    model, loss_fn, tasks = tr.model.train(), tr.loss_fn, tr.tasks
    g = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {t: {"own": 0.0, "others": 0.0, "cosine": 0.0} for t in tasks}
    for _ in range(batches):
        idx = torch.randint(len(tr.train_set), (cfg.train.batch_size,), generator=g).tolist()
        batch = collate([tr.train_set[i] for i in idx])
        pred = model(batch["image"])
        _, parts = loss_fn(pred, {t: batch[t] for t in tasks})
        for t in tasks:
            params = [p for p in model.preliminary[t].parameters() if p.requires_grad]
            w = loss_fn.weights[t]
            own = w * parts[t] + (loss_fn.coarse_weight * w * parts[f"{t}_coarse"] if f"{t}_coarse" in parts else 0.0)
            others = sum(loss_fn.weights[u] * parts[u] for u in tasks if u != t)
            go, gx = flat_grad(own, params), flat_grad(others, params)
            out[t]["own"] += float(go.norm()) / batches
            out[t]["others"] += float(gx.norm()) / batches
            cos = float(torch.nn.functional.cosine_similarity(go, gx, dim=0)) if gx.norm() > 0 else 0.0
            out[t]["cosine"] += cos / batches
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override on top of the ablation's base settings")
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the result file")
    p.add_argument("--data", default=str(ablation.DEFAULT_DATA))
    p.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ablation.ensure_ablation_data(Path(args.data))
    cfg = ablation.arm_config(args.data, list(args.overrides), seed=0)
    per_seed = {s: diagnose(cfg, args.data, args.batches, s) for s in args.seeds}
    tasks = list(cfg.data.tasks)
    mean = {t: {k: sum(per_seed[s][t][k] for s in args.seeds) / len(args.seeds) for k in ("own", "others", "cosine")}
            for t in tasks}
    print(f"{'task':8s} {'|g own|':>9s} {'|g others|':>11s} {'cosine':>7s}   (preliminary decoder, at init, "
          f"mean of {len(args.seeds)} seeds x {args.batches} batches)")
    for t in tasks:
        print(f"{t:8s} {mean[t]['own']:9.3f} {mean[t]['others']:11.3f} {mean[t]['cosine']:7.3f}")
    doc = {"overrides": args.overrides, "seeds": args.seeds, "batches": args.batches, "mean": mean,
           "per_seed": {str(s): v for s, v in per_seed.items()}, "config": cfg.to_dict(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": describe("cpu")}
    name = "grad_diagnosis" + (f"_{args.tag}" if args.tag else "") + ".json"
    atomic_write_bytes(Path(args.results_dir) / name, json.dumps(doc, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
