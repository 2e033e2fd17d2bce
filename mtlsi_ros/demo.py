"""The demo (`make demo`): a synthetic camera feeds the real perception node over DDS; outputs go to a contact sheet.

1. starts the installed ``perception_node`` as its own process (lifecycle autostart, ``process_every_frame``),
2. renders synthetic indoor frames (``mtlsi_core.data.synth``, ``--profile``) and publishes them with camera_info on
   ``/demo/image`` and ``/demo/camera_info`` at a fixed rate,
3. collects every output topic, checks that each output's header equals its input's (stamp and frame_id),
4. scores the outputs against the synthetic ground truth (so a reader can tell learned outputs from noise), and
5. writes ``<out>/contact_sheet.png`` (input | segmentation | depth | normals | boundaries), ``<out>/summary.txt`` and
   ``<out>/summary.json``,
6. streams a short camera trajectory through one room (``--map-frames``; a ground robot's camera on its fixed mount
   in a room of ``--profile``, or ``--map-trajectory handheld``; rendered in a worker process during the steps
   above) and fuses the node's depth and segmentation into a semantic 3D map (``mtlsi_ros.demo_map``):
   ``<out>/map.png`` beside the contact sheet, scores in the summary,
7. with ``--real-data`` (a ``nyud_real_samples`` folder, where present), sends real NYUDv2 camera frames through the
   node and scores its answers against their ground truth (``mtlsi_ros.demo_real``): ``<out>/real_frames.png``.

Exit status 0 only when every frame was answered on every topic with the input's header.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mtlsi_core.checkpoint import atomic_write_bytes
from mtlsi_core.data.synth import PROFILES
from mtlsi_core.viz import colorize_depth, colorize_probability, contact_sheet
from mtlsi_ros.publishing import CAMERA_INFO_TOPIC

NAMESPACE = "/demo"
FRAME_ID = "demo_camera_optical_frame"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 480x640, got {text!r}") from None
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small (at least 32x32)")
    return h, w


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mtlsi_demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    p.add_argument("--frames", type=int, default=12, help="frames to stream (default: %(default)s)")
    p.add_argument("--rate", type=float, default=4.0, help="camera rate in Hz (default: %(default)s)")
    p.add_argument("--size", type=_parse_size, default=(480, 640), help="camera resolution HxW (default: 480x640)")
    p.add_argument("--seed", type=int, default=2026, help="seed of the synthetic scenes (default: %(default)s)")
    p.add_argument("--profile", default="nyud", choices=PROFILES,
                   help="generator profile of the single frames and of the map's room (default: %(default)s, the "
                        "rooms the shipped model was trained on; basic: the original generator, the rooms of "
                        "synth_edge_lite0)")
    p.add_argument("--model", default="", help="model file (default: the packaged demo checkpoint)")
    p.add_argument("--backend", default="auto", help="runtime backend: auto, torch, onnx, tensorrt (default: %(default)s, "
                   "the node's: TensorRT, else torch on CUDA, else ONNX Runtime on the CPU)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the node's, cuda where present)")
    p.add_argument("--precision", default=None, choices=("fp32", "fp16", "bf16", "int8"),
                   help="default: the node's (fp16 on a GPU; the CPU runs fp32)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the node to come up")
    p.add_argument("--map-frames", type=int, default=24,
                   help="frames of the camera trajectory mapped after the frames above (0: no map; default 24)")
    p.add_argument("--map-trajectory", default="ground", choices=("ground", "handheld"),
                   help="carrier of the mapped camera: a ground robot (camera on a fixed mount, 0.3-0.6 m high) or "
                        "a handheld camera (default: %(default)s)")
    p.add_argument("--real-data", default=os.environ.get("MTLSI_REAL_FRAMES", ""),
                   help="a nyud_real_samples folder: its real NYUDv2 frames also go through the node and are scored "
                        "(default $MTLSI_REAL_FRAMES; `make demo` passes ../shared/data/nyud_real_samples where present)")
    a = p.parse_args(argv)
    if a.map_frames < 0 or a.map_frames == 1:
        p.error("--map-frames must be 0 (no map) or at least 2")
    if a.frames < 1:
        p.error("--frames must be at least 1")
    if a.rate <= 0:
        p.error("--rate must be positive")
    return a


def _node_command() -> list[str]:
    """The installed node executable beside this script (colcon layout), else the module."""
    here = Path(sys.argv[0]).resolve().parent
    exe = here / "perception_node"
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "mtlsi_ros.perception_node"]


def _write_params(path: Path, args: argparse.Namespace) -> None:
    import yaml

    params = {
        "autostart": True,
        "model_path": args.model,
        "backend": args.backend,
        "process_every_frame": True,  # the demo wants an answer for every frame it sends
    }
    if args.device:
        params["device"] = args.device
    if args.precision:
        params["precision"] = args.precision
    elif args.device == "cpu":
        params["precision"] = "fp32"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _configure_failure(log_path: Path) -> str | None:
    """The node's 'configure failed: ...' line, if its log has one (it stays up, unconfigured, after it)."""
    try:
        for line in log_path.read_text(errors="replace").splitlines():
            if "configure failed" in line:
                return line.split("]: ", 1)[-1]
    except OSError:
        pass
    return None


def _runtime_line(log_path: Path) -> str:
    """What the node's runtime is and why (its 'backend ...: runs ...' log line), or ''."""
    try:
        for line in log_path.read_text(errors="replace").splitlines():
            if ": runs " in line and "backend " in line:
                return line.split(": runs ", 1)[1].strip()
    except OSError:
        pass
    return ""


def _warm_up(client, frame, proc: subprocess.Popen, log_path: Path, tries: int = 20) -> None:
    """Send a frame until one comes back on every topic (camera_info included): DDS discovery is complete on both
    sides, and the model has run once. Warm-up frames are not part of the results."""
    for _ in range(tries):
        if proc.poll() is not None:
            raise RuntimeError(f"the node exited with status {proc.returncode}; see {log_path}")
        header = client.publish(frame.image, frame_id=FRAME_ID, k=frame.K)
        try:
            client.wait_for(header, timeout=10.0)
            client.clear()
            return
        except TimeoutError:
            continue
    raise RuntimeError(f"no complete answer to {tries} warm-up frames; see {log_path}")


def _score(frames, answers) -> dict[str, dict[str, float]]:
    """Metrics of the node's outputs against the synthetic ground truth, next to trivial predictors."""
    from mtlsi_core.metrics import MultiTaskEvaluator

    tasks = ["semseg", "depth", "normals", "edge"]
    ours, const = MultiTaskEvaluator(tasks, "nyud"), MultiTaskEvaluator(tasks, "nyud")
    labelled = np.concatenate([f.semseg[f.semseg != 255] for f in frames])
    majority = int(np.bincount(labelled).argmax()) if labelled.size else 0
    mean_depth = float(np.mean([f.depth[f.depth > 0].mean() for f in frames]))
    for f, out in zip(frames, answers):
        gt = {"semseg": f.semseg, "depth": f.depth, "normals": f.normals, "edge": f.edge}
        pred = {"semseg": out["semseg"], "depth": np.nan_to_num(out["depth"], nan=0.0),
                "normals": out["normals"], "edge": out["edge"]}
        ours.update(pred, gt)
        h, w = f.semseg.shape
        const.update({"semseg": np.full((h, w), majority, np.int64), "depth": np.full((h, w), mean_depth, np.float32),
                      "normals": np.broadcast_to(np.float32([0, 0, -1]), (h, w, 3)).copy(),
                      "edge": np.zeros((h, w), np.float32)}, gt)
    r_ours, r_const = ours.compute(), const.compute()
    return {t: {"network": r_ours[t]["headline"], "trivial": r_const[t]["headline"],
                "metric": r_ours[t].get("headline_name", "")} for t in tasks}


def _map_args(args: argparse.Namespace) -> dict:
    """prepare_sequence's / run_sequence_map's arguments of the demo's map step."""
    size = min(args.size, (240, 320), key=lambda hw: hw[0] * hw[1])  # the map's frames: 240x320 at most
    return dict(seed=args.seed, frames=args.map_frames, rate=10.0, size=size, kind=args.map_trajectory,
                profile=args.profile)


def run(args: argparse.Namespace) -> int:
    """The demo (module docstring); the map's frames render in a worker process while the steps before the map
    run."""
    if args.map_frames <= 0:
        return _run(args, None)
    from mtlsi_ros.demo_map import SequenceJob

    job = SequenceJob(**_map_args(args))
    try:
        return _run(args, job)
    finally:
        job.close()  # done, or the demo failed before its map: no need to wait for the worker


def _run(args: argparse.Namespace, map_job) -> int:
    import rclpy

    from mtlsi_core.data.synth import render_scene
    from mtlsi_ros.client import PerceptionClient, stamp_to_ns
    from mtlsi_ros.conversions import image_to_numpy

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[demo] rendering {args.frames} synthetic frames ({args.profile} rooms) at {args.size[0]}x{args.size[1]}",
          flush=True)
    frames = [render_scene(args.seed + i, size=args.size, profile=args.profile) for i in range(args.frames)]

    tmp = Path(tempfile.mkdtemp(prefix="mtlsi_demo_"))
    params = tmp / "params.yaml"
    _write_params(params, args)
    log_path = out / "node.log"
    cmd = _node_command() + ["--ros-args", "--params-file", str(params), "-r", f"__ns:={NAMESPACE}"]
    print(f"[demo] starting the node: {' '.join(cmd)}", flush=True)
    log_file = open(log_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0", RCUTILS_COLORIZED_OUTPUT="0")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    context = rclpy.Context()
    rclpy.init(context=context)
    client = None
    try:
        client = PerceptionClient(namespace=NAMESPACE, context=context, node_name="mtlsi_demo_camera")
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited with status {proc.returncode}; see {log_path}")
            failed = _configure_failure(log_path)
            if failed:
                raise RuntimeError(f"the node could not start: {failed} (log: {log_path})")
            try:
                client.wait_for_node(timeout=2.0, camera_info=True)
                break
            except TimeoutError:
                if time.monotonic() - t0 > args.timeout:
                    raise RuntimeError(f"the node did not come up within {args.timeout} s; see {log_path}") from None
        _warm_up(client, frames[0], proc, log_path)
        print(f"[demo] node up after {time.monotonic() - t0:.1f} s; streaming at {args.rate:g} Hz", flush=True)

        headers, answers, latencies, header_errors = [], [], [], []
        period = 1.0 / args.rate
        next_t = time.monotonic()
        for i, f in enumerate(frames):
            time.sleep(max(0.0, next_t - time.monotonic()))
            next_t += period
            headers.append(client.publish(f.image, frame_id=FRAME_ID, k=f.K))
        for h in headers:
            got = client.wait_for(h, timeout=60.0)
            ns = stamp_to_ns(h.stamp)
            for topic, rec in got.items():
                if stamp_to_ns(rec.msg.header.stamp) != ns or rec.msg.header.frame_id != h.frame_id:
                    header_errors.append(f"{topic} @ {ns}")
            latencies.append(max(r.t for r in got.values()) - client.published[("", ns)])
            answers.append({topic: rec.msg for topic, rec in got.items()})

        decoded = [{
            "semseg": image_to_numpy(a["segmentation"]).astype(np.int64),
            "semseg_color": image_to_numpy(a["segmentation/color"]),
            "depth": image_to_numpy(a["depth"]),
            "normals": image_to_numpy(a["normals"]),
            "normals_color": image_to_numpy(a["normals/color"]),
            "edge": image_to_numpy(a["boundary"]).astype(np.float32) / (255.0 if a["boundary"].encoding == "mono8" else 1.0),
        } for a in answers]
        scores = _score(frames, decoded)

        rows = [[f.image, d["semseg_color"], colorize_depth(d["depth"]), d["normals_color"], colorize_probability(d["edge"])]
                for f, d in list(zip(frames, decoded))[:4]]
        sheet = contact_sheet(rows, titles=["input", "segmentation", "depth", "normals", "boundaries"])
        import cv2

        ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("could not encode the contact sheet")
        atomic_write_bytes(out / "contact_sheet.png", png.tobytes())

        mapping = None
        if args.map_frames > 0:  # a camera trajectory through one room, the node's answers fused into a 3D map
            from mtlsi_ros.demo_map import run_sequence_map, summary_lines

            print(f"[demo] mapping a {args.map_frames}-frame {args.map_trajectory} camera trajectory "
                  f"({args.profile} room)", flush=True)
            t_wait = time.monotonic()
            prepared = map_job.result()  # rendered in the worker meanwhile: usually ready by now
            waited = round(time.monotonic() - t_wait, 1)
            mapping = run_sequence_map(client, out, FRAME_ID, prepared=prepared, **_map_args(args))
            mapping["waited_for_frames_seconds"] = waited

        real, real_note = None, "real frames: not asked (--real-data)"
        if args.real_data:  # real camera images through the same node, scored against their ground truth
            from mtlsi_core.data.nyud_samples import has_frames

            if has_frames(args.real_data):
                from mtlsi_ros.demo_real import run_real_frames

                print(f"[demo] streaming the real NYUDv2 frames of {args.real_data}", flush=True)
                real = run_real_frames(client, out, FRAME_ID, Path(args.real_data))
            else:
                real_note = f"real frames: none at {args.real_data} (multitask/ or rgb_seg40/): skipped"

        lat = np.array(latencies) * 1000.0
        info = answers[0][CAMERA_INFO_TOPIC]
        summary = {
            "frames_in": len(frames),
            "frames_out": len(answers),
            "topics": sorted(answers[0]),
            "header_mismatches": header_errors,
            "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                           "max": float(lat.max())},
            "camera_info_out": {"size": [int(info.height), int(info.width)], "k": [float(v) for v in info.k]},
            "scores_vs_synthetic_ground_truth": scores,
            "model": args.model or "packaged demo checkpoint",
            "backend": args.backend,
            "runtime": _runtime_line(log_path),
            "camera": {"size": list(args.size), "rate_hz": args.rate, "seed": args.seed,
                       "profile": args.profile},
            "map": mapping,
            "real_frames": real,
        }
        lines = [
            "mtlsi_ros demo: synthetic camera -> perception node (own process, DDS) -> outputs",
            f"frames in / out: {summary['frames_in']} / {summary['frames_out']} on {len(summary['topics'])} topics each",
            f"headers equal to the input's: {'yes' if not header_errors else 'NO: ' + ', '.join(header_errors)}",
            f"runtime (backend {args.backend}): {summary['runtime'] or 'see ' + str(log_path)}",
            f"latency image in -> last output (ms): p50 {summary['latency_ms']['p50']:.1f}, "
            f"p99 {summary['latency_ms']['p99']:.1f}, max {summary['latency_ms']['max']:.1f}",
            "scores against the synthetic ground truth (network vs trivial predictor: majority class, mean depth,",
            "  one constant normal, no boundaries):",
        ] + [f"  {t:8s} {s['metric']:>10s}: network {s['network']:8.3f} | trivial {s['trivial']:8.3f}"
             for t, s in scores.items()] + [f"contact sheet: {out / 'contact_sheet.png'}"] + \
            (summary_lines(mapping) if mapping is not None else [])
        if real is not None:
            from mtlsi_ros.demo_real import summary_lines as real_lines

            lines += real_lines(real)
        else:
            lines.append(real_note)
        text = "\n".join(lines) + "\n"
        atomic_write_bytes(out / "summary.txt", text.encode())
        atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
        print(text, end="", flush=True)
        return 0 if not header_errors and len(answers) == len(frames) else 1
    finally:
        if client is not None:
            client.close()
        rclpy.shutdown(context=context)
        _stop(proc)
        log_file.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        code = run(args)
    except (RuntimeError, TimeoutError, FileNotFoundError) as e:
        print(f"[demo] FAILED: {e}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
