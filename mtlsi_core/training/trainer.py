"""Iteration-based multi-task trainer (the paper's recipe, Sec. III-A), usable from Python and ``mtlsi-train``.

One ``Trainer`` runs one process's share of a run: single process on CPU / one GPU, or one rank of a
``torchrun`` DistributedDataParallel job (rank 0 alone writes logs and checkpoints).

Files in the output folder:
  ``config.yaml``  the resolved configuration
  ``last.pt``      full training state every ``train.checkpoint_every`` iterations and at the end of the run
  ``best.pt``      model + metrics of the best evaluation so far (not resumable; see ``best_rule``)
  ``tb/``          TensorBoard scalars: losses, learning rate, timing, evaluation metrics
  ``replicas.json`` (DDP only) a hash of every rank's final parameters; they must be identical

Resuming (``resume="auto"`` or a path) restores model, optimizer, scheduler, grad scaler, iteration, the
global RNG states of every rank and the sampler position, so the continued run is the uninterrupted run
(bit-exact on CPU with ``num_workers=0``; with worker processes the augmentation RNG of the workers is
re-seeded at the resume point, the sample order stays exact).

Fine-tuning: ``train.init_from`` (a checkpoint file or packaged model name) gives a fresh run that model's weights
before the first step (weights and BatchNorm statistics only; optimizer, schedule and iteration start fresh); a
resumed run ignores it.

Best rule: an evaluation replaces the best one when the multi-task gain (Delta_m) of its headline metrics
relative to the best ones is positive (mean over tasks of the signed relative change, sign from
``TaskSpec.higher_is_better``; see :mod:`mtlsi_core.training.scoring`).
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mtlsi_core.adaptation.mean_teacher import MeanTeacher, split_outputs
from mtlsi_core.checkpoint import (CheckpointError, atomic_torch_save, atomic_write_bytes, load_checkpoint,
                                   make_checkpoint, resolve_checkpoint)
from mtlsi_core.config import Config, config_from_dict
from mtlsi_core.data import collate, loader_context, worker_init
from mtlsi_core.models import strip_wrappers
from mtlsi_core.tasks import get_task
from mtlsi_core.training import scoring
from mtlsi_core.training.distributed import DistInfo, all_gather_objects, barrier
from mtlsi_core.training.evaluation import EvalOutput, evaluate_model
from mtlsi_core.training.optim import build_optimizer, build_scheduler, count_parameters
from mtlsi_core.training.rng import rng_state, seed_everything, set_rng_state
from mtlsi_core.training.sampling import ResumableInfiniteSampler

log = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"


def check_canonical_focal(cfg: Config, root: Path, tolerance: float = 0.01) -> None:
    """A dataset folder that states its camera (``camera.json``, written by mtlsi-synth) must agree with the
    config's ``data.canonical_focal``: the runtimes turn depth into metres with it, so a mismatch would scale every
    depth the deployed model reports by the ratio of the two."""
    path = root / "camera.json"
    if cfg.data.canonical_focal is None or not path.is_file():
        return
    try:
        fx = float(json.loads(path.read_text())["K"][0][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise TrainingError(f"{path}: cannot read the focal length K[0][0]: {e}") from None
    if abs(fx / cfg.data.canonical_focal - 1.0) > tolerance:
        raise TrainingError(
            f"{path} gives focal length {fx:.2f} px but the config's data.canonical_focal is "
            f"{cfg.data.canonical_focal:.2f}: set data.canonical_focal={fx:.4f} (frames of another size need their own "
            f"value) or use data of the size the config was written for")


class TrainingError(RuntimeError):
    """Training cannot start or continue; the message says why (and names the file where one is involved)."""


@dataclass
class TrainResult:
    output_dir: Path
    iteration: int  # iterations completed (of cfg.train.iterations)
    start_iteration: int  # where this run started (> 0 when resumed)
    resumed_from: Path | None
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best: dict[str, Any] | None  # {"iteration", "headline": {task: value}}
    last_eval: dict[str, Any] | None  # metrics of the last evaluation of this run
    loss_history: list[tuple[int, float]] = field(default_factory=list)  # (iteration, mean total loss of the window)
    seconds_per_iteration: float = float("nan")  # this run's training steps (no evaluation / checkpoint time)
    timing: dict[str, float] = field(default_factory=dict)  # {"seconds", "iterations"} summed over all resumes
    eval_history: list[dict[str, Any]] = field(default_factory=list)


def resolve_output_dir(cfg: Config, output: str | Path | None) -> Path:
    if output is not None:
        return Path(output)
    if cfg.train.output_dir:
        return Path(cfg.train.output_dir)
    return Path("runs") / cfg.name


def params_hash(model: nn.Module) -> str:
    """SHA-256 over every parameter's name, dtype, shape and bytes (replica comparison under DDP)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        t = p.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _float_outputs(out: dict[str, Any]) -> dict[str, Any]:
    return {k: ({t: v.float() for t, v in d.items()} if isinstance(d, dict) else d) for k, d in out.items()}


class Trainer:
    """Train ``cfg``'s model on its dataset. Build, then call :meth:`train`.

    ``model``, ``train_set``, ``val_set`` and ``loss_fn`` default to the package's builders
    (``mtlsi_core.models.build_model``, ``mtlsi_core.data.build_dataset``, ``mtlsi_core.losses.MultiTaskLoss``).
    ``max_iterations`` stops this run early (the LR schedule still spans ``cfg.train.iterations``).
    """

    def __init__(self, cfg: Config, *, output_dir: str | Path | None = None, data_root: str | Path | None = None,
                 device: torch.device | str = "cpu", dist_info: DistInfo | None = None,
                 num_workers: int | None = None, resume: str | Path | None = None,
                 max_iterations: int | None = None, progress: bool = True, deterministic: bool = False,
                 eval_max_frames: int | None = None, model: nn.Module | None = None,
                 train_set: Dataset | None = None, val_set: Dataset | None = None,
                 loss_fn: Callable[..., Any] | None = None):
        self.cfg = cfg
        self.tc = cfg.train
        self.tasks = list(cfg.data.tasks)
        self.device = torch.device(device)
        self.info = dist_info or DistInfo()
        self.output_dir = resolve_output_dir(cfg, output_dir)
        self.data_root = data_root if data_root is not None else cfg.data.root
        self.num_workers = cfg.data.num_workers if num_workers is None else num_workers
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        self.stop_iteration = min(self.tc.iterations, max_iterations or self.tc.iterations)
        self.progress = progress
        self.eval_max_frames = eval_max_frames
        self.amp = bool(self.tc.amp and self.device.type == "cuda")

        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        ckpt_path = self._resume_path(resume)  # fail early on a bad --resume / an occupied output folder

        # Same initial weights on every rank (DDP also broadcasts rank 0's), then per-rank streams.
        seed_everything(self.tc.seed)
        self.model = (model if model is not None else self._build_model()).to(self.device)
        self.initialised_from: Path | None = None  # train.init_from's checkpoint, when its weights were loaded
        if self.tc.init_from and ckpt_path is None:
            self.initialised_from = self._init_weights(self.tc.init_from)
        elif self.tc.init_from:
            log.info("resuming from %s: train.init_from (%s) is not used", ckpt_path, self.tc.init_from)
        seed_everything(self.tc.seed + self.info.rank)

        self.train_set = train_set if train_set is not None else self._build_dataset(cfg.data.train_split, True)
        self.val_set = val_set if val_set is not None else self._build_dataset(cfg.data.val_split, False)
        self.loss_fn = loss_fn if loss_fn is not None else self._build_loss()
        # train.self_training: the EMA teacher of the student, labelling real photos (its own copy of the weights
        # as they are now: init_from's, or the resumed run's once _load_training_state has run)
        self.mean_teacher = MeanTeacher(cfg, self.model, self.device) if self.tc.self_training.weight > 0 else None

        self.optimizer = build_optimizer(self.model, self.tc)
        self.scheduler = build_scheduler(self.optimizer, self.tc)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.iteration = 0
        self.best: dict[str, Any] | None = None
        self.resumed_from: Path | None = None
        # wall time of the training steps (data + step, first step of each run excluded), over all resumes
        self.timing: dict[str, float] = {"seconds": 0.0, "iterations": 0}

        if self.info.is_main:
            self._clean_stale_temp_files()
        if ckpt_path is not None:
            self._load_training_state(ckpt_path)

        self.ddp_model: nn.Module = self.model
        if self.info.enabled:
            # Without deep supervision the preliminary decoders' outputs are not in the loss: their weights get
            # no gradient, which DDP must be told about.
            self.ddp_model = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                 broadcast_buffers=True, find_unused_parameters=not self.tc.deep_supervision)

    # ---------------------------------------------------------------------------------------------
    # Building blocks
    # ---------------------------------------------------------------------------------------------

    def _build_model(self) -> nn.Module:
        from mtlsi_core.models import build_model

        return build_model(self.cfg)

    def _build_dataset(self, split: str, train: bool) -> Dataset:
        from mtlsi_core.data import build_dataset

        if self.data_root is None:
            raise TrainingError(f"config {self.cfg.name!r}: no dataset folder; give --data DIR or set data.root")
        root = Path(self.data_root)
        if not root.is_dir():
            raise TrainingError(f"dataset folder not found: {root} (from --data or data.root)")
        check_canonical_focal(self.cfg, root)
        return build_dataset(self.cfg, split, root=str(root), train=train)

    def _build_loss(self) -> Callable[..., Any]:
        from mtlsi_core.losses import MultiTaskLoss

        weights = {t: float(self.tc.loss_weights.get(t, get_task(t).weight)) for t in self.tasks}
        return MultiTaskLoss(self.tasks, weights=weights, deep_supervision=self.tc.deep_supervision,
                             coarse_weight=self.tc.coarse_loss_weight)

    def _loader(self, start_position: int) -> DataLoader:
        sampler = ResumableInfiniteSampler(self.train_set, seed=self.tc.seed, rank=self.info.rank,
                                           world_size=self.info.world_size, start=start_position)
        gen = torch.Generator()  # worker seeds come from here, not from the global RNG the checkpoint restores
        gen.manual_seed(self.tc.seed * 1_000_003 + self.info.rank * 7919 + start_position)
        return DataLoader(self.train_set, batch_size=self.tc.batch_size, sampler=sampler, drop_last=False,
                          num_workers=self.num_workers, collate_fn=collate, worker_init_fn=worker_init, generator=gen,
                          multiprocessing_context=loader_context(self.num_workers),
                          pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0,
                          prefetch_factor=4 if self.num_workers > 0 else None)

    # ---------------------------------------------------------------------------------------------
    # Checkpoints
    # ---------------------------------------------------------------------------------------------

    def _resume_path(self, resume: str | Path | None) -> Path | None:
        last = self.output_dir / LAST
        if resume is None:
            if last.exists():
                raise TrainingError(f"{last} exists from an earlier run: continue it with --resume auto, "
                                    "or choose another --output")
            return None
        if str(resume) == "auto":
            if last.exists():
                return last
            log.info("--resume auto: no %s yet, starting from scratch", last)
            return None
        path = Path(resume)
        if not path.is_file():
            raise CheckpointError(f"--resume: checkpoint file not found: {path}")
        return path

    def _clean_stale_temp_files(self) -> None:
        """Remove half-written checkpoint temp files left by a killed run (never read, never needed)."""
        for pat in (f".{LAST}.*.tmp", f".{BEST}.*.tmp"):
            for p in glob.glob(str(self.output_dir / pat)):
                try:
                    os.unlink(p)
                    log.info("removed stale temporary file %s", p)
                except OSError:
                    pass

    def _init_weights(self, spec: str) -> Path:
        """``train.init_from``: load the model weights (and BatchNorm statistics) of a checkpoint file or packaged
        model; nothing else of it. Raises CheckpointError naming the file when they do not fit this model."""
        path = resolve_checkpoint(spec)
        state = strip_wrappers(dict(load_checkpoint(path, map_location="cpu")["model"]))  # as the runtimes load it
        own = self.model.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or shapes:
            def some(items: list[str]) -> str:
                return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")

            problems = [f"{len(missing)} missing ({some(missing)})" if missing else "",
                        f"{len(unexpected)} unexpected ({some(unexpected)})" if unexpected else "",
                        f"{len(shapes)} of another shape (checkpoint vs model: {some(shapes)})" if shapes else ""]
            raise CheckpointError(f"train.init_from: the weights of {path} do not fit the model of config "
                                  f"{self.cfg.name!r}: " + "; ".join(p for p in problems if p))
        # an fp16 export is cast to the model's dtypes
        self.model.load_state_dict({k: v.to(dtype=own[k].dtype) for k, v in state.items()}, strict=True)
        if self.info.is_main:
            log.info("initialised the model's weights from %s (weights only: optimizer and schedule start fresh)",
                     path)
        return path

    def _load_training_state(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location="cpu")
        missing = [k for k in ("optimizer", "scheduler", "iteration", "rng") if k not in ckpt]
        if missing:
            raise CheckpointError(f"{path} is not a resumable training checkpoint (lacks {', '.join(missing)}; "
                                  f"best.pt and exported weights hold the model only): resume from {LAST}")
        mine = self.cfg.to_dict()
        try:  # the stored config as this version reads it: fields added since then take their defaults
            theirs = config_from_dict(ckpt["config"], source=f"{path} (stored config)").to_dict()
        except Exception as e:  # noqa: BLE001 - any validation error becomes one message naming the file
            raise CheckpointError(f"{path}: its stored config is not valid for this version: {e}") from e
        for section in ("model", "data.tasks", "data.dataset", "data.input_size"):
            a, b = mine, theirs
            for part in section.split("."):
                a, b = a.get(part), (b or {}).get(part)
            if a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)):
                raise CheckpointError(f"{path}: its config differs in {section} ({b!r}) from this run's ({a!r}); "
                                      "resume with the same model and tasks")
        changed = sorted(k for k in set(mine.get("train", {})) | set((theirs or {}).get("train", {}))
                         if mine.get("train", {}).get(k) != (theirs or {}).get("train", {}).get(k))
        if changed:
            log.warning("%s: resuming with changed train settings %s (the stored run had %s)", path,
                        {k: mine["train"].get(k) for k in changed}, {k: theirs["train"].get(k) for k in changed})
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{path}: model weights do not fit this model: {e}") from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.iteration = int(ckpt["iteration"])
        if self.mean_teacher is not None:
            if "mean_teacher" not in ckpt:
                raise CheckpointError(f"{path} holds no mean teacher (written without train.self_training): resume "
                                      "with the settings it was written with")
            self.mean_teacher.load_state_dict(ckpt["mean_teacher"])
        self.best = ckpt.get("best")
        self.timing = dict(ckpt.get("timing") or self.timing)
        samp = ckpt.get("sampler", {})
        if samp.get("world_size") != self.info.world_size or samp.get("batch_size") != self.tc.batch_size:
            log.warning("%s was written with world size %s and batch %s, this run has %s and %s: the sample "
                        "order after resuming differs from the uninterrupted run", path, samp.get("world_size"),
                        samp.get("batch_size"), self.info.world_size, self.tc.batch_size)
        rngs = ckpt["rng"]
        if isinstance(rngs, list) and len(rngs) == self.info.world_size:
            set_rng_state(rngs[self.info.rank])
        else:
            log.warning("%s holds RNG states of %s ranks; re-seeding this run's %s ranks", path,
                        len(rngs) if isinstance(rngs, list) else "?", self.info.world_size)
            seed_everything(self.tc.seed + self.info.rank + 7 * self.iteration)
        self.resumed_from = path
        if self.iteration >= self.tc.iterations:
            log.warning("%s is at iteration %d, the configured total is %d: nothing left to train",
                        path, self.iteration, self.tc.iterations)

    def _meta(self, kind: str, metrics: dict[str, Any] | None) -> dict[str, Any]:
        return {"kind": kind, "iteration": self.iteration, "name": self.cfg.name, "metrics": metrics,
                "world_size": self.info.world_size, "torch": torch.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def _save_last(self, metrics: dict[str, Any] | None) -> Path | None:
        rngs = all_gather_objects(rng_state(), self.info)  # every rank takes part
        if not self.info.is_main:
            return None
        path = self.output_dir / LAST
        ckpt = make_checkpoint(
            self.model.state_dict(), self.cfg.to_dict(), self._meta("last", metrics),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(), iteration=self.iteration, rng=rngs, best=self.best, timing=self.timing,
            **({"mean_teacher": self.mean_teacher.state_dict()} if self.mean_teacher is not None else {}),
            sampler={"position": self.iteration * self.tc.batch_size, "batch_size": self.tc.batch_size,
                     "world_size": self.info.world_size, "seed": self.tc.seed},
        )
        atomic_torch_save(ckpt, path)
        return path

    def _save_best(self, metrics: dict[str, Any]) -> Path:
        path = self.output_dir / BEST
        atomic_torch_save(make_checkpoint(self.model.state_dict(), self.cfg.to_dict(), self._meta("best", metrics),
                                          best=self.best), path)
        return path

    # ---------------------------------------------------------------------------------------------
    # Evaluation
    # ---------------------------------------------------------------------------------------------

    def _sync_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank.

        DDP broadcasts them at the start of each forward, after which each rank updates its own copy; without
        this, the ranks' evaluation shards would use different statistics than the checkpoint rank 0 writes.
        """
        if self.info.enabled:
            for b in self.model.buffers():
                torch.distributed.broadcast(b, src=0)

    def evaluate(self) -> EvalOutput:
        self._sync_buffers()
        return evaluate_model(self.model, self.val_set, self.tasks, self.device, batch_size=self.tc.batch_size,
                              num_workers=min(self.num_workers, 2), amp=self.amp, dist_info=self.info,
                              max_frames=self.eval_max_frames, progress=self.progress)

    def _after_eval(self, out: EvalOutput, writer: Any, say: Callable[[str], None]) -> dict[str, Any] | None:
        """Log the evaluation, update ``best`` and write best.pt (rank 0). Returns the headline metrics."""
        if not self.info.is_main:
            return None
        headline = scoring.headline_metrics(out.metrics, self.tasks)
        dm = 0.0 if self.best is None else scoring.gain(headline, self.best["headline"])
        improved = self.best is None or dm > 0
        for key, val in scoring.flat_metrics(out.metrics).items():
            writer and writer.add_scalar(f"eval/{key}", val, self.iteration)
        writer and writer.add_scalar("eval/gain_vs_best_pct", 100.0 * dm, self.iteration)
        say(f"eval @ {self.iteration}: {scoring.describe(headline)}  ({out.num_frames} frames, {out.seconds:.1f} s)"
            + ("  * new best" if improved else f"  (gain vs best {100 * dm:+.2f}%)"))
        if improved:
            self.best = {"iteration": self.iteration, "headline": headline}
            self._save_best(out.metrics)
        return headline

    # ---------------------------------------------------------------------------------------------
    # The loop
    # ---------------------------------------------------------------------------------------------

    def _step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = batch["image"].to(self.device, non_blocking=True)
        targets = {t: batch[t].to(self.device, non_blocking=True) for t in self.tasks}
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()
        mt = self.mean_teacher
        photos, pseudo = mt.photo_batch() if mt is not None else (None, None)
        with autocast:
            out = self.ddp_model(x if photos is None else torch.cat([x, photos]))
        out = _float_outputs(out)
        if photos is not None:
            out, photo_out = split_outputs(out, x.shape[0])
        total, parts = self.loss_fn(out, targets)
        if photos is not None:
            unlabelled, photo_parts = mt.loss(photo_out, pseudo)
            total = total + mt.weight(self.iteration) * unlabelled
            parts.update({f"photos_{k}": v for k, v in photo_parts.items() if not k.endswith("_coarse")})
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.tc.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if mt is not None:
            mt.update(self.model)
        return total.detach(), {k: v.detach() for k, v in parts.items()}

    def _reduce_window(self, sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
        keys = sorted(sums)
        vec = torch.stack([sums[k].float() for k in keys]) / max(count, 1)
        if self.info.enabled:
            torch.distributed.all_reduce(vec)
            vec /= self.info.world_size
        return dict(zip(keys, vec.cpu().tolist()))

    def _log_window(self, window: dict[str, torch.Tensor], count: int, its: float, data_fraction: float,
                    writer: Any, bar: Any) -> float:
        """Mean losses of the window (over ranks) to TensorBoard, the progress bar or the log; returns the total."""
        vals = self._reduce_window(window, count)
        if not all(math.isfinite(v) for v in vals.values()):
            raise TrainingError(f"non-finite loss at iteration {self.iteration}: {vals} "
                                "(lower train.lr, set train.grad_clip, or disable train.amp)")
        lr = self.optimizer.param_groups[0]["lr"]  # the head's (the only one without train.backbone_lr_mult)
        lr_bb = next((g["lr"] for g in self.optimizer.param_groups if str(g.get("name", "")).startswith("backbone")),
                     None)
        if writer:
            for k, v in vals.items():
                writer.add_scalar(f"loss/{k}", v, self.iteration)
            writer.add_scalar("lr", lr, self.iteration)
            if lr_bb is not None:
                writer.add_scalar("lr_backbone", lr_bb, self.iteration)
            writer.add_scalar("time/iterations_per_s", its, self.iteration)
            writer.add_scalar("time/data_fraction", data_fraction, self.iteration)
        short = {"loss": f"{vals['total']:.3f}", **{k: f"{v:.3f}" for k, v in vals.items() if k in self.tasks},
                 "lr": f"{lr:.2e}", **({"lr_backbone": f"{lr_bb:.2e}"} if lr_bb is not None else {})}
        bar.set_postfix(short, refresh=False)
        if self.info.is_main and not self.progress:
            log.info("it %d/%d  %s  %.2f it/s", self.iteration, self.stop_iteration,
                     "  ".join(f"{k} {v}" for k, v in short.items()), its)
        return vals["total"]

    def _open_writer(self) -> Any:
        if not self.info.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        purge = self.iteration + 1 if self.resumed_from is not None else None
        return SummaryWriter(log_dir=str(self.output_dir / "tb"), purge_step=purge)

    def train(self) -> TrainResult:
        tc = self.tc
        start = self.iteration
        if self.info.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.output_dir / "config.yaml",
                               yaml.safe_dump(self.cfg.to_dict(), sort_keys=False).encode())
        barrier(self.info)
        writer = self._open_writer()
        result = TrainResult(self.output_dir, start, start, self.resumed_from, None, None, self.best, None)
        if self.info.is_main:
            n_all = count_parameters(self.model.parameters())
            msg = (f"{self.cfg.name}: {n_all / 1e6:.2f} M parameters, {len(self.train_set)} train / "
                   f"{len(self.val_set)} val frames, batch {tc.batch_size} x {self.info.world_size} process(es), "
                   f"device {self.device}, amp {self.amp}, "
                   f"iterations {start} -> {self.stop_iteration} of {tc.iterations}")
            if self.resumed_from is not None:
                msg += f" (resumed from {self.resumed_from} at iteration {start})"
            log.info(msg)
        if start >= self.stop_iteration:
            if writer:
                writer.close()
            result.last_checkpoint = self.output_dir / LAST if (self.output_dir / LAST).exists() else None
            result.best_checkpoint = self.output_dir / BEST if (self.output_dir / BEST).exists() else None
            result.timing = dict(self.timing)
            return result

        bar = tqdm(total=self.stop_iteration, initial=start, desc=self.cfg.name, unit="it", dynamic_ncols=True,
                   disable=not (self.progress and self.info.is_main), smoothing=0.1)
        say: Callable[[str], None] = bar.write if (self.progress and self.info.is_main) else log.info
        loader = self._loader(start * tc.batch_size)
        batches: Iterator[dict[str, Any]] = iter(loader)
        self.model.train()
        window: dict[str, torch.Tensor] = {}
        window_n = 0
        step_time = data_time = 0.0
        timed_steps = 0
        t_window = time.perf_counter()
        last_metrics: dict[str, Any] | None = None
        try:
            while self.iteration < self.stop_iteration:
                t0 = time.perf_counter()
                batch = next(batches)
                t1 = time.perf_counter()
                total, parts = self._step(batch)
                self.iteration += 1
                window["total"] = window.get("total", 0.0) + total
                for k, v in parts.items():
                    window[k] = window.get(k, 0.0) + v
                window_n += 1
                bar.update(1)
                done = self.iteration >= self.stop_iteration

                if self.iteration % tc.log_every == 0 or done:
                    its = window_n / max(time.perf_counter() - t_window, 1e-9)
                    data_fraction = data_time / max(step_time + data_time, 1e-9)
                    total_loss = self._log_window(window, window_n, its, data_fraction, writer, bar)
                    result.loss_history.append((self.iteration, total_loss))
                    window, window_n, t_window = {}, 0, time.perf_counter()

                t2 = time.perf_counter()
                if self.iteration > start + 1:  # the first step pays for warm-up / allocation
                    step_time += t2 - t1
                    data_time += t1 - t0
                    timed_steps += 1
                    self.timing["seconds"] += t2 - t0
                    self.timing["iterations"] += 1

                if self.iteration % tc.eval_every == 0 or done:
                    out = self.evaluate()
                    last_metrics = out.metrics if self.info.is_main else None
                    headline = self._after_eval(out, writer, say)
                    if self.info.is_main:
                        result.eval_history.append({"iteration": self.iteration, "headline": headline})
                    t_window = time.perf_counter()
                if self.iteration % tc.checkpoint_every == 0 or done:
                    result.last_checkpoint = self._save_last(last_metrics)
                    t_window = time.perf_counter()
        finally:
            bar.close()
            if writer:
                writer.flush()
                writer.close()

        if self.info.enabled:
            hashes = all_gather_objects(params_hash(self.model), self.info)
            if self.info.is_main:
                same = len(set(hashes)) == 1
                atomic_write_bytes(self.output_dir / "replicas.json",
                                   json.dumps({"iteration": self.iteration, "rank_param_sha256": hashes,
                                               "identical": same}, indent=2).encode())
                if not same:
                    log.error("DDP replicas diverged: parameter hashes differ across ranks %s", hashes)
        result.iteration = self.iteration
        result.best = self.best
        result.last_eval = last_metrics
        result.best_checkpoint = self.output_dir / BEST if (self.output_dir / BEST).exists() else None
        result.seconds_per_iteration = (step_time + data_time) / timed_steps if timed_steps else float("nan")
        result.timing = dict(self.timing)
        return result
