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


def export_release(src: str | Path, dst: str | Path, *, max_mb: float, val_set: Any, reproduce: str,
                   facts: dict[str, Any], about: str, device: str = "cpu") -> dict[str, Any]:
    """Ship checkpoint ``src`` as ``dst``: fp32, or fp16 when fp32 is over ``max_mb`` MiB (an error if both are);
    the written file is scored on ``val_set`` (fp16 weights are cast back on load: it must still score like the
    run); ``dst``.json holds ``facts``, the reproduce command, size and those figures, ``dst``.md the same for
    people (``about``: what trained it). Every file is written atomically. Returns the sidecar."""
    import json

    from mtlsi_core.checkpoint import atomic_write_bytes
    from mtlsi_core.models import load_model_from_checkpoint
    from mtlsi_core.training import scoring
    from mtlsi_core.training.evaluation import evaluate_model

    dst = Path(dst)
    meta = export_weights(src, dst, fp16=False, extra_meta={"reproduce": reproduce})
    if meta["size_bytes"] > max_mb * 2**20:
        meta = export_weights(src, dst, fp16=True, extra_meta={"reproduce": reproduce})
    if meta["size_bytes"] > max_mb * 2**20:
        raise SystemExit(f"exported weights {dst} are {meta['size_bytes'] / 2**20:.1f} MiB even in fp16 "
                         f"(limit {max_mb} MiB)")
    model, cfg = load_model_from_checkpoint(dst)
    check = evaluate_model(model, val_set, cfg.tasks, device, batch_size=8)
    side = {"weights": dst.name, "dtype": meta["dtype"], "size_mib": round(meta["size_bytes"] / 2**20, 2),
            "reproduce": reproduce, **facts, "headline_val": scoring.headline_metrics(check.metrics, cfg.tasks)}
    atomic_write_bytes(dst.with_suffix(".json"), json.dumps(side, indent=2, default=str).encode())
    md = (f"# {dst.name}\n\nMTLSI-Net ({cfg.model.backbone.name}, interaction {cfg.model.interaction}) {about}.\n\n"
          f"Reproduce:\n\n    {reproduce}\n\nStored as {meta['dtype']} ({side['size_mib']} MiB).\n\n"
          "Val headline metrics of this file: "
          + ", ".join(f"{t} {v:.4g}" for t, v in side["headline_val"].items()) + "\n")
    atomic_write_bytes(dst.with_suffix(".md"), md.encode())
    return side


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
