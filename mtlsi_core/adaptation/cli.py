"""``mtlsi-adapt``: adapt a trained model to real cameras with unlabelled photos, writing a new checkpoint.

    mtlsi-adapt bn --checkpoint synth_transfer_lite0 --photos /data/places_rooms/train --out adapted.pt --modules head
    mtlsi-adapt bn --checkpoint runs/x/best.pt --photos photos/ --out adapted.pt --images 2000 --modules all

``bn`` re-estimates BatchNorm statistics on the photos (AdaBN, ``mtlsi_core.adaptation.batchnorm``): the photos
(``mtlsi_core.data.photos.PhotoFolder``: recursive, .jpg/.jpeg/.png/.webp; ``--images N`` of them, evenly spaced
over the sorted list) are centre-cropped to the network input's aspect ratio, resized to the checkpoint's
data.input_size and normalised with its data.mean / std, then fed in a fixed shuffled order (``--seed``) in batches
of ``--batch-size`` (a last partial batch is left out). ``--checkpoint`` is a file or a packaged model's name.
``--modules``: the backbone's layers (default), the head's (every layer outside the backbone: the AdaBN choice for a
model trained with ``model.backbone.freeze_bn``, such as the shipped one, whose backbone kept ImageNet's statistics)
or all of them.

The output is an ordinary mtlsi checkpoint (model + config + meta, written atomically; the input's training state,
if any, is not carried over): the input's stored config unchanged, its weights with the new statistics, and its meta
with ``adapted_from`` and one more entry in ``adaptation`` (method, photo folder, images, modules, layers, batch
size, momentum, seed, date). Runtimes, ``mtlsi-eval``, ``mtlsi-export`` and ``train.init_from`` read it as any other.

Exit status: 0 done, 2 bad input (checkpoint, photo folder, arguments), 1 anything else.
"""
from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mtlsi_core.adaptation.batchnorm import MODULES, BNReport, reestimate_bn
from mtlsi_core.checkpoint import (CheckpointError, atomic_torch_save, load_checkpoint, make_checkpoint,
                                   resolve_checkpoint)
from mtlsi_core.data import collate, loader_context, worker_init
from mtlsi_core.data.errors import DatasetError
from mtlsi_core.data.photos import PhotoFolder
from mtlsi_core.models import load_model_from_checkpoint

log = logging.getLogger("mtlsi_core.adaptation")

DEFAULT_IMAGES = 1000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtlsi-adapt", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bn = sub.add_parser("bn", help="re-estimate BatchNorm statistics on real photos (AdaBN)",
                        description="Re-estimate a checkpoint's BatchNorm statistics on real photos (AdaBN) and write "
                                    "the result as a new checkpoint.")
    bn.add_argument("--checkpoint", required=True, help="mtlsi checkpoint (.pt) or packaged model name")
    bn.add_argument("--photos", required=True, help="folder of real RGB photos (searched recursively)")
    bn.add_argument("--out", required=True, help="checkpoint to write (.pt; not the input)")
    bn.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                    help=f"photos to use, evenly spaced over the folder's sorted list (default {DEFAULT_IMAGES}; "
                         "0: all)")
    bn.add_argument("--modules", choices=MODULES, default="backbone",
                    help="BatchNorm layers to re-estimate: the backbone's (default), the head's (every one outside "
                         "the backbone: the AdaBN choice for a model trained with model.backbone.freeze_bn) or all")
    bn.add_argument("--batch-size", type=int, default=16)
    bn.add_argument("--momentum", type=float, default=None,
                    help="exponential moving average with this momentum instead of the cumulative average")
    bn.add_argument("--seed", type=int, default=0, help="seed of the photos' order")
    bn.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    bn.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    bn.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    bn.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available")
    return dev


def adapt_bn(checkpoint: str | Path, photos: str | Path, out: str | Path, *, images: int | None = DEFAULT_IMAGES,
             modules: str = "backbone", batch_size: int = 16, momentum: float | None = None, seed: int = 0,
             device: str = "cpu", workers: int = 0, progress: bool = False) -> dict[str, Any]:
    """``mtlsi-adapt bn`` as a function (module docstring); ``images`` None or 0: all photos. Returns the record
    added to the output's ``meta["adaptation"]``."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if images is not None and images < 0:
        raise ValueError(f"images must be >= 0 (0: all), got {images}")
    src = resolve_checkpoint(checkpoint)
    out = Path(out)
    if out.exists() and out.resolve() == src.resolve():
        raise ValueError(f"--out {out} is the input checkpoint: write the adapted model to another file")
    dev = _device(device)
    ckpt = load_checkpoint(src)
    model, cfg = load_model_from_checkpoint(src)
    folder = PhotoFolder.from_config(cfg.data, photos, train=False, max_images=images or None)
    gen = torch.Generator()
    gen.manual_seed(seed)
    loader = DataLoader(folder, batch_size=batch_size, shuffle=True, generator=gen, collate_fn=collate,
                        drop_last=len(folder) >= batch_size, num_workers=workers, worker_init_fn=worker_init,
                        multiprocessing_context=loader_context(workers))
    model = model.to(dev)
    batches = tqdm(loader, desc="AdaBN", unit="batch", disable=not progress, dynamic_ncols=True)
    report: BNReport = reestimate_bn(model, batches, modules=modules, momentum=momentum)  # type: ignore[arg-type]
    record = {"method": "adabn", "photos": str(photos), "images": report.images, "modules": modules,
              "layers": len(report.layers), "batch_size": batch_size, "momentum": report.momentum, "seed": seed,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    meta = dict(ckpt.get("meta") or {})
    meta["adapted_from"] = str(src)
    meta["adaptation"] = [*list(meta.get("adaptation") or []), record]
    if "dtype" in meta:
        meta["dtype"] = "float32"
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(make_checkpoint(state, copy.deepcopy(ckpt["config"]), meta), out)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads is not None:
        if args.threads < 1:
            print(f"mtlsi-adapt: error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if args.workers < 0:
        print(f"mtlsi-adapt: error: --workers must be >= 0, got {args.workers}", file=sys.stderr)
        return 2
    try:
        record = adapt_bn(args.checkpoint, args.photos, args.out, images=args.images, modules=args.modules,
                          batch_size=args.batch_size, momentum=args.momentum, seed=args.seed, device=args.device,
                          workers=args.workers, progress=not args.no_progress)
    except (CheckpointError, DatasetError, ValueError) as e:
        print(f"mtlsi-adapt: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {record['layers']} BatchNorm layers ({record['modules']}) re-estimated on "
          f"{record['images']} photos of {record['photos']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
