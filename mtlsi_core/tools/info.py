"""mtlsi-info: parameters and FLOPs of a configured MTLSI-Net.

    mtlsi-info --config nyud_swin_t [--set model.embed_dim=192 ...] [--input-size 448x576] [--json]

Parameters: backbone, head (everything but the backbone, the paper's count), and the head by paper module.
FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls, attention; 1 multiply-add = 2
FLOPs; element-wise ops are not counted), batch 1 at the config's input size. The model is built on the
``meta`` device where possible, so counting costs no arithmetic.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mtlsi_core.config import Config, ConfigError, load_config

# Head parameters (M, backbone excluded) the paper reports (Table I), by (dataset, backbone).
PAPER_HEAD_PARAMS_M = {("nyud", "hrnet18"): 13.94, ("nyud", "swin_t"): 17.45, ("nyud", "swin_l"): 38.27}
# Whole-model figures the paper reports (Table II, PASCAL-Context, Swin-L): params (M) and FLOPs (G).
PAPER_TOTAL = {("pascal", "swin_l"): {"params_m": 234.0, "gflops": 772.0}}


def count(params) -> int:
    return int(sum(p.numel() for p in params))


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-size must look like 448x576, got {text!r}") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise argparse.ArgumentTypeError(f"--input-size {text}: sides must be positive multiples of 32")
    return h, w


def _build(cfg: Config, device: str) -> torch.nn.Module:
    from mtlsi_core.models import build_model

    with torch.device(device):
        return build_model(cfg).eval()


def measure_flops(model: torch.nn.Module, size: tuple[int, int], device: str) -> dict[str, int]:
    """FLOPs per top-level child module (and 'total') of one batch-1 forward pass."""
    x = torch.zeros(1, 3, *size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    counts = {k: int(sum(v.values())) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    out = {"total": counts.get("Global", 0)}
    for name, child in model.named_children():
        if isinstance(child, (torch.nn.ModuleDict, torch.nn.ModuleList)):  # containers are never called themselves
            out[name] = sum(counts.get(f"{root}.{name}.{sub}", 0) for sub, _ in child.named_children())
        else:
            out[name] = counts.get(f"{root}.{name}", 0)
    return out


def model_info(cfg: Config, input_size: tuple[int, int] | None = None, flops: bool = True) -> dict[str, Any]:
    """Parameter and FLOP figures of the model a config describes (backbone built with random init)."""
    cfg = cfg.model_copy(deep=True)
    cfg.model.backbone.pretrained = False  # counting needs no weights
    size = tuple(input_size or cfg.data.input_size)
    device = "meta"
    try:
        model = _build(cfg, device)
        flop_counts = measure_flops(model, size, device) if flops else {}
    except Exception:  # an op without a meta kernel: count on CPU instead (slower, same numbers)
        device = "cpu"
        model = _build(cfg, device)
        flop_counts = measure_flops(model, size, device) if flops else {}
    parts = {name: count(p for m in mods for p in m.parameters()) for name, mods in model.head_modules().items()}
    backbone_p, head_p = count(model.backbone_parameters()), count(model.head_parameters())
    info: dict[str, Any] = {
        "config": cfg.name, "dataset": cfg.data.dataset, "tasks": list(cfg.data.tasks),
        "backbone": cfg.model.backbone.name, "interaction": cfg.model.interaction,
        "input_size": list(size),
        "params": {"backbone": backbone_p, "head": head_p, "total": backbone_p + head_p, "head_parts": parts},
    }
    if flops:
        head_flops = flop_counts["total"] - flop_counts.get("backbone", 0)
        info["gflops"] = {"total": flop_counts["total"] / 1e9, "backbone": flop_counts.get("backbone", 0) / 1e9,
                          "head": head_flops / 1e9,
                          "head_parts": {k: v / 1e9 for k, v in flop_counts.items() if k not in ("total", "backbone")}}
    key = (cfg.data.dataset, cfg.model.backbone.name)
    if key in PAPER_HEAD_PARAMS_M:
        paper = PAPER_HEAD_PARAMS_M[key]
        info["paper"] = {"head_params_m": paper, "deviation": head_p / 1e6 / paper - 1.0}
    if key in PAPER_TOTAL:
        paper = PAPER_TOTAL[key]
        info["paper"] = {"total_params_m": paper["params_m"],
                         "deviation": (backbone_p + head_p) / 1e6 / paper["params_m"] - 1.0,
                         "total_gflops_as_reported": paper["gflops"]}
    return info


def format_info(info: dict[str, Any]) -> str:
    p = info["params"]
    lines = [
        f"config       {info['config']}  ({info['dataset']}: {', '.join(info['tasks'])})",
        f"backbone     {info['backbone']}   interaction {info['interaction']}   "
        f"input {info['input_size'][0]}x{info['input_size'][1]}",
        f"params       backbone {p['backbone'] / 1e6:8.2f} M   head {p['head'] / 1e6:8.2f} M   "
        f"total {p['total'] / 1e6:8.2f} M",
    ]
    for name, n in p["head_parts"].items():
        lines.append(f"  head.{name:<22s}{n / 1e6:8.3f} M")
    if "gflops" in info:
        g = info["gflops"]
        lines.append(f"GFLOPs       backbone {g['backbone']:8.2f}     head {g['head']:8.2f}     total {g['total']:8.2f}"
                     f"   (GMACs total {g['total'] / 2:.2f})")
        for name, v in g["head_parts"].items():
            lines.append(f"  {name:<27s}{v:8.2f} GFLOPs")
    if "paper" in info:
        pp = info["paper"]
        if "head_params_m" in pp:
            lines.append(f"paper        head {pp['head_params_m']:.2f} M (Table I)   this model {p['head'] / 1e6:.2f} M   "
                         f"deviation {pp['deviation'] * 100:+.1f} %")
        else:
            lines.append(f"paper        total {pp['total_params_m']:.0f} M, "
                         f"{pp['total_gflops_as_reported']:.0f} G FLOPs (Table II)"
                         f"   this model {p['total'] / 1e6:.1f} M   deviation {pp['deviation'] * 100:+.1f} %")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mtlsi-info", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="YAML path or packaged config name")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value (repeatable), e.g. model.embed_dim=192")
    ap.add_argument("--input-size", type=parse_size, default=None, help="HxW instead of data.input_size")
    ap.add_argument("--no-flops", action="store_true", help="parameters only")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"mtlsi-info: {e}", file=sys.stderr)
        return 2
    info = model_info(cfg, args.input_size, flops=not args.no_flops)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
