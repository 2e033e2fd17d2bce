"""``mtlsi-train``: train a configuration (single process, or DDP under ``torchrun``).

Examples::

    mtlsi-train --config nyud_swin_t --data /data/NYUD_MT
    mtlsi-train --config synth_edge_lite0 --data /tmp/synth --set train.iterations=2000 --device cpu
    mtlsi-train --config nyud_swin_t --data /data/NYUD_MT --output runs/swin_t --resume auto
    torchrun --nproc_per_node 4 -m mtlsi_core.training.train --config nyud_swin_t --data /data/NYUD_MT

Exit status: 0 done, 2 bad input (config, data folder, checkpoint), 1 anything else.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from mtlsi_core.checkpoint import CheckpointError, load_checkpoint
from mtlsi_core.config import Config, ConfigError, apply_overrides, config_from_dict, load_config
from mtlsi_core.data.errors import DatasetError

log = logging.getLogger("mtlsi_core.training")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtlsi-train",
                                description="Train a configuration (single process, or DDP under torchrun).",
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML path or packaged config name (default with --resume PATH: the "
                                    "checkpoint's own config)")
    p.add_argument("--data", help="dataset folder (overrides data.root)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set train.iterations=100 (repeatable; value parsed as YAML)")
    p.add_argument("--output", help="run folder (default: train.output_dir, else runs/<config name>)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="PATH|auto",
                   help="continue a run: 'auto' (default when the flag has no value) = <output>/last.pt if it "
                        "exists, else start fresh; or a checkpoint path")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--workers", type=int, help="data loader worker processes (default data.num_workers)")
    p.add_argument("--max-iterations", type=int,
                   help="stop after this many iterations in total (the LR schedule still spans train.iterations)")
    p.add_argument("--eval-max-frames", type=int, help="evaluate on the first N val frames only")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (slower on GPU)")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    return p


def resolve_config(args: argparse.Namespace) -> Config:
    if args.config:
        return load_config(args.config, args.overrides)
    if args.resume and args.resume != "auto":
        ckpt = load_checkpoint(args.resume)
        raw = apply_overrides(ckpt["config"], args.overrides, origin=str(args.resume))
        return config_from_dict(raw, source=f"{args.resume} (stored config)")
    raise ConfigError("--config is required (it may be left out only with --resume PATH)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mtlsi_core.training.distributed import DeviceError, env_dist_info, init_distributed, \
        resolve_train_device, shutdown_distributed
    from mtlsi_core.training.trainer import Trainer, TrainingError

    try:
        env = env_dist_info()
    except ValueError as e:
        print(f"mtlsi-train: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if env.is_main else logging.WARNING,
                        format=("[rank %d] " % env.rank if env.enabled else "") + "%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    for name in ("--workers", "--max-iterations", "--eval-max-frames"):
        val = getattr(args, name[2:].replace("-", "_"))
        if val is not None and val < (0 if name == "--workers" else 1):
            print(f"mtlsi-train: error: {name} must be {'>= 0' if name == '--workers' else '>= 1'}, got {val}",
                  file=sys.stderr)
            return 2
    try:
        cfg = resolve_config(args)
        if args.data is not None and not Path(args.data).is_dir():
            raise TrainingError(f"--data {args.data}: folder not found")
        device = resolve_train_device(args.device, env)
        info = init_distributed(device)
        try:
            trainer = Trainer(cfg, output_dir=args.output, data_root=args.data, device=device, dist_info=info,
                              num_workers=args.workers, resume=args.resume, max_iterations=args.max_iterations,
                              progress=not args.no_progress, deterministic=args.deterministic,
                              eval_max_frames=args.eval_max_frames)
            result = trainer.train()
        finally:
            shutdown_distributed()
    except (ConfigError, CheckpointError, DatasetError, DeviceError, TrainingError, FileNotFoundError,
            NotADirectoryError) as e:
        print(f"mtlsi-train: error: {e}", file=sys.stderr)
        return 2
    if env.is_main:
        best = result.best
        log.info("done: iteration %d of %d; last checkpoint %s; best %s", result.iteration, cfg.train.iterations,
                 result.last_checkpoint, f"{result.best_checkpoint} (iteration {best['iteration']})" if best else "-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
