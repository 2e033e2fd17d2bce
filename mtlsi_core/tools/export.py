"""mtlsi-export: a checkpoint to ONNX (for ONNX Runtime) or to a TensorRT engine.

    mtlsi-export --checkpoint runs/nyud_swin_t/best.pt --format onnx [--config nyud_swin_t] [--output m.onnx]
    mtlsi-export --checkpoint best.pt --format engine --precision fp16 [--max-batch 4] [--force-rebuild]
    mtlsi-export --checkpoint best.pt --format onnx --precision int8 [--calib-frames 24] [--quant-format qdq]
                 [--int8-scheme auto|u8s8|u8s8_reduced|u8u8]

The ONNX has a static input size (the config's ``data.input_size``; change it with
``--set data.input_size=[480,640]``), a dynamic batch (``--static-batch N`` fixes it), uint8 NHWC input
``images`` and one named output per task; its metadata carries the config, so runtimes need no checkpoint.
Without ``--no-verify`` it is checked against PyTorch with ONNX Runtime (tolerances printed).
``--format onnx --precision int8`` also writes ``<output stem>.int8.onnx``: static INT8 quantisation calibrated on
synthetic frames (``mtlsi_core.runtime.quantize``), run by the ``onnx`` backend as it is; its scheme is the one exact
on this CPU (``--int8-scheme auto``): for another machine, name that machine's (``u8u8`` runs exactly on every x86
CPU, ``u8s8`` only with VNNI or on ARM).
``--format engine`` writes the ONNX and then builds ``<onnx stem>.<precision>.<H>x<W>.trt<version>.engine``
beside it (reused while its key is unchanged).

Exit status: 0 done, 1 export or verification failed, 2 bad arguments / config / checkpoint,
3 TensorRT not available (the ONNX is still written).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mtlsi_core.runtime.export import DEFAULT_OPSET, EXPORTERS, MIN_OPSET
from mtlsi_core.runtime.quantize import INT8_SCHEMES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtlsi-export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--checkpoint", "-k", help="mtlsi checkpoint (.pt) with the weights")
    p.add_argument("--config", "-c", help="config name or YAML; must describe the checkpoint's network "
                                          "(only data.input_size may differ). Default: the checkpoint's stored config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. data.input_size=[480,640] (repeatable)")
    p.add_argument("--format", "-f", choices=("onnx", "engine"), default="onnx")
    p.add_argument("--output", "-o", help="ONNX path (default: the checkpoint's path with .onnx)")
    p.add_argument("--exporter", choices=EXPORTERS, default="auto",
                   help="auto: dynamo, falling back to the TorchScript exporter")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    p.add_argument("--static-batch", type=int, default=None, help="fix the batch size (default: dynamic)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument("--random-init", action="store_true",
                   help="export a randomly initialised network of --config (no checkpoint; for speed tests)")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("engine (TensorRT)")
    g.add_argument("--precision", choices=("fp16", "bf16", "fp32", "int8"), default=None,
                   help="engine: fp16 (default), bf16, fp32; onnx: int8 adds the INT8 quantisation")
    g.add_argument("--max-batch", type=int, default=4)
    g.add_argument("--opt-batch", type=int, default=1)
    g.add_argument("--workspace-gib", type=float, default=4.0)
    g.add_argument("--force-rebuild", action="store_true", help="rebuild the engine even if the cached one fits")
    q = p.add_argument_group("INT8 (--format onnx --precision int8)")
    q.add_argument("--calib-frames", type=int, default=24, help="synthetic calibration frames")
    q.add_argument("--calib-seed", type=int, default=None, help="seed of the calibration scenes")
    q.add_argument("--quant-format", choices=("qdq", "qoperator"), default="qdq")
    q.add_argument("--int8-scheme", choices=("auto", *INT8_SCHEMES), default="auto",
                   help="weights: auto (exact on this CPU), u8s8 (int8: VNNI or ARM only), u8u8 (uint8: any x86), "
                        "u8s8_reduced (7-bit int8: any x86, less accurate)")
    p.add_argument("--quiet", "-q", action="store_true")
    return p


def _print_report(result) -> None:
    print(f"wrote {result.path}  ({result.exporter} exporter, opset {result.opset}, "
          f"{'dynamic' if result.dynamic_batch else 'static'} batch, {result.seconds:.1f} s)")
    for note in result.notes:
        print(f"  note: {note}")
    if result.verification:
        print("  ONNX Runtime vs PyTorch (fp32, random images):")
        for task, r in result.verification.items():
            value = f"{r['value']:.3g}" if isinstance(r["value"], float) else r["value"]
            print(f"    {task:12s} {r['metric']:36s} {value:>10s}  limit {r['limit']}  {'ok' if r['ok'] else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from mtlsi_core.checkpoint import CheckpointError
    from mtlsi_core.config import ConfigError, load_config
    from mtlsi_core.runtime.base import ModelFileError
    from mtlsi_core.runtime.export import ExportError, export_onnx, load_for_export, random_model

    try:
        if args.random_init:
            if not args.config or args.checkpoint:
                raise ValueError("--random-init needs --config and no --checkpoint")
            if not args.output:
                raise ValueError("--random-init needs --output")
            model, cfg = random_model(load_config(args.config, args.overrides), seed=args.seed)
            source = {"random_init": args.seed}
        else:
            if not args.checkpoint:
                raise ValueError("--checkpoint is required (or --random-init with --config)")
            model, cfg, source = load_for_export(args.checkpoint, args.config, args.overrides)
        output = Path(args.output) if args.output else Path(args.checkpoint).with_suffix(".onnx")
        if output.suffix != ".onnx":
            raise ValueError(f"--output {output} must end in .onnx (the engine is written beside it)")
    except (ValueError, ConfigError, CheckpointError, ExportError) as e:
        print(f"mtlsi-export: error: {e}", file=sys.stderr)
        return 2

    try:
        result = export_onnx(model, cfg, output, exporter=args.exporter, opset=args.opset,
                             static_batch=args.static_batch, source=source, verify=not args.no_verify, seed=args.seed)
    except (ExportError, ValueError) as e:
        print(f"mtlsi-export: error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        _print_report(result)
    if args.format == "onnx":
        if args.precision not in (None, "fp32", "int8"):
            print(f"mtlsi-export: error: --precision {args.precision} applies to --format engine; the ONNX is fp32 "
                  "(or int8)", file=sys.stderr)
            return 2
        if args.precision == "int8":
            from dataclasses import replace as _replace

            from mtlsi_core.runtime.quantize import CalibrationSpec, quantize_onnx

            try:
                spec = CalibrationSpec(frames=args.calib_frames, quant_format=args.quant_format,
                                       scheme=args.int8_scheme).resolved()
                if args.calib_seed is not None:
                    spec = _replace(spec, seed=args.calib_seed)
                q = quantize_onnx(output, output.with_name(f"{output.stem}.int8.onnx"), spec)
            except (ValueError, RuntimeError, ModelFileError) as e:
                print(f"mtlsi-export: INT8 quantisation failed: {e}", file=sys.stderr)
                return 1
            print(f"wrote {q}  (INT8 {spec.quant_format}, {spec.scheme}, calibrated on {spec.frames} synthetic "
                  "frames)")
        return 0
    if args.precision == "int8":
        print("mtlsi-export: error: --precision int8 applies to --format onnx (TensorRT runs fp16, bf16 or fp32)",
              file=sys.stderr)
        return 2

    from mtlsi_core.runtime.tensorrt_runtime import (BuildSpec, EngineCache, TensorRTUnavailable, build_engine,
                                                     import_tensorrt)

    try:
        trt = import_tensorrt()
        spec = BuildSpec(args.precision or "fp16", tuple(cfg.data.input_size), 1, args.opt_batch, args.max_batch,
                         args.workspace_gib)
        engine = EngineCache(output, spec, str(trt.__version__), build_engine).get(force_rebuild=args.force_rebuild)
    except TensorRTUnavailable as e:
        print(f"mtlsi-export: {e}\nThe ONNX file {output} was written; build the engine where TensorRT is installed "
              f"(mtlsi-export ... --format engine, or create_runtime('tensorrt', '{output}')).", file=sys.stderr)
        return 3
    except (ModelFileError, ValueError, RuntimeError) as e:
        print(f"mtlsi-export: engine build failed: {e}", file=sys.stderr)
        return 1
    print(f"engine {engine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
