"""Strip a training checkpoint to deployable weights (model + config + meta), optionally in fp16.

    python -m mtlsi_core.training.export_weights runs/x/last.pt mtlsi_core/weights/synth_edge_lite0.pt --fp16

The result is an ordinary mtlsi checkpoint (``mtlsi_core.checkpoint``), readable by
``load_model_from_checkpoint`` / ``TorchRuntime.from_checkpoint``; fp16 tensors are cast back to the
model's dtype when loaded. The backbone's ``pretrained`` setting is cleared in the stored config (the
weights are in the file). Written atomically.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any, Sequence

from mtlsi_core.checkpoint import CheckpointError, atomic_torch_save, load_checkpoint, make_checkpoint


def export_weights(src: str | Path, dst: str | Path, *, fp16: bool = False,
                   extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``dst`` from checkpoint ``src``; returns the new file's meta (with its size in bytes)."""
    ckpt = load_checkpoint(src)
    state = {}
    for k, v in ckpt["model"].items():
        t = v.detach().cpu()
        state[k] = t.half() if fp16 and t.is_floating_point() else t.clone()
    config = copy.deepcopy(ckpt["config"])
    backbone = config.get("model", {}).get("backbone", {})
    if isinstance(backbone, dict) and "pretrained" in backbone:
        backbone["pretrained"] = False
    meta = dict(ckpt.get("meta") or {})
    meta.update({"exported_from": str(src), "dtype": "float16" if fp16 else "float32"})
    meta.update(extra_meta or {})
    atomic_torch_save(make_checkpoint(state, config, meta), dst)
    meta["size_bytes"] = Path(dst).stat().st_size
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtlsi_core.training.export_weights",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="training checkpoint (last.pt / best.pt)")
    p.add_argument("output", help="weights file to write")
    p.add_argument("--fp16", action="store_true", help="store floating-point tensors in half precision")
    args = p.parse_args(argv)
    try:
        meta = export_weights(args.checkpoint, args.output, fp16=args.fp16)
    except CheckpointError as e:
        print(f"export_weights: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({meta['size_bytes'] / 2**20:.1f} MiB, {meta['dtype']}, "
          f"iteration {meta.get('iteration')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
