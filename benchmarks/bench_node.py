"""Perception node latency vs model-only latency, and the node's memory over a run at a fixed frame rate.

    python benchmarks/bench_node.py [--cases 448x576 224x288] [--frames 40] [--device cpu|cuda]
                                    [--backend auto|torch|onnx] [--duration 60] [--rate 15] [--color]
                                    [--out benchmarks/results]

For each case (image size = network size of ``nyud_edge_lite0`` at that size, random weights, fp32):

* node: the perception node in its own process (``python -m mtlsi_ros.perception_node`` from this work tree)
  over real DDS on this machine; one frame at a time, latency = publish of the image -> arrival of the last of
  its outputs (segmentation, depth, normals, boundary, output/camera_info; ``--color`` adds the colour images);
  the node's own figures from /diagnostics (callback -> last publish, and inference) are recorded too;
* model only: ``create_runtime(backend, ...).infer([image], output_size="input")`` in this process (the node's
  backend, ``--backend``, default ``auto`` as the node's), one call after each node frame (interleaved, so that
  both see the same load on a shared machine).

Overhead = node p50 - model-only p50 (end to end, DDS transport and the client's deserialisation included)
and node-internal p50 - inference p50 (what the node adds inside its process).

Then the first case runs at ``--rate`` Hz for ``--duration`` s (600 for the 10-minute check) while the node's RSS
is sampled every second; frames the node cannot keep up with are dropped as stale, as in production.
"Flat" = median and maximum RSS of the last 20 % of the run within 5 % of those of the first 20 % after the
warm-up (the first 10 % of the run, >= 5 s); single samples swing by one frame's buffers.

Results: ``benchmarks/results/node_<device>_<date>.json`` with the machine description.
DDS: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the shared-memory Fast DDS profile of config/ (as the tests).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from mtlsi_core.tools.machine import describe

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONFIG = "nyud_edge_lite0"
MAIN_TOPICS = ["segmentation", "depth", "normals", "boundary", "output/camera_info"]
COLOR_TOPICS = ["segmentation/color", "depth/color", "normals/color"]


def stats_ms(values_s: list[float]) -> dict:
    a = np.asarray(values_s, dtype=np.float64) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()), "n": int(a.size)}


def make_checkpoint(hw: tuple[int, int], folder: Path) -> Path:
    import torch

    from mtlsi_core.checkpoint import atomic_torch_save, make_checkpoint as mk
    from mtlsi_core.config import load_config
    from mtlsi_core.models import build_model

    torch.manual_seed(0)
    cfg = load_config(CONFIG, [f"data.input_size=[{hw[0]},{hw[1]}]", "model.backbone.pretrained=false"])
    path = folder / f"{CONFIG}_{hw[0]}x{hw[1]}.pt"
    atomic_torch_save(mk(build_model(cfg).state_dict(), cfg.to_dict(), meta={"note": "random weights (benchmark)"}),
                      path)
    return path


def image(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (hw[0] // 8, hw[1] // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def intrinsics(hw: tuple[int, int]) -> np.ndarray:
    f = 0.8 * hw[1]
    return np.array([[f, 0, (hw[1] - 1) / 2], [0, f, (hw[0] - 1) / 2], [0, 0, 1]])




def ros_env(domain: int) -> dict:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost_shm.xml"))
    return env


class Node:
    """The perception node of this work tree in its own process, on ``ckpt`` (also bench_map_speed.py's)."""

    def __init__(self, ckpt: Path, device: str, domain: int, folder: Path, backend: str = "auto",
                 namespace: str = "/bench"):
        import yaml

        params = folder / f"params_{ckpt.stem}.yaml"
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
            "model_path": str(ckpt), "device": device, "backend": backend, "precision": "fp32",
            "batch_window_ms": 0.0}}}))
        self.log_path = folder / f"node_{ckpt.stem}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mtlsi_ros.perception_node", "--ros-args", "--params-file",
             str(REPO / "config" / "perception.yaml"), "--params-file", str(params), "-r", f"__ns:={namespace}"],
            stdout=self._log, stderr=subprocess.STDOUT, env=ros_env(domain), cwd=str(REPO), start_new_session=True)

    def wait_active(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while "active: subscribed" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        self._log.close()


def interleaved_latency(client, runtime, hw: tuple[int, int], frames: int, topics: list[str]) -> tuple[dict, dict]:
    """Alternate one frame through the node and one ``runtime.infer`` here, so both see the same machine load
    (the node is idle while this process infers and the other way round). Returns (node e2e, model only)."""
    from mtlsi_ros.client import stamp_to_ns

    from concurrent.futures import ThreadPoolExecutor

    def timed_infer() -> float:
        t0 = time.perf_counter()
        runtime.infer([img], output_size="input")
        return time.perf_counter() - t0

    img, k = image(hw, 1), intrinsics(hw)
    node_s, model_s = [], []
    # The node infers in a worker thread; so does this (measured: on a loaded 2-core CPU, torch inference in a
    # process's main thread ran 3-5x slower than in a worker thread of the same process).
    with ThreadPoolExecutor(max_workers=1) as worker:
        for i in range(frames + 5):
            h = client.publish(img, k=k)
            try:
                outs = client.wait_for(h, topics=topics, timeout=120 if i >= 5 else 30)
            except TimeoutError:
                if i >= 5:
                    raise
                continue  # a warm-up frame lost while discovery was one-sided (best-effort input)
            t_pub = client.published[("", stamp_to_ns(h.stamp))]
            dt_model = worker.submit(timed_infer).result()
            if i >= 5:  # warm-up frames
                node_s.append(max(r.t for r in outs.values()) - t_pub)
                model_s.append(dt_model)
    e2e, model = stats_ms(node_s), stats_ms(model_s)
    # each node frame minus the model-only call right after it: on a shared machine the median of these paired
    # differences is steadier than the difference of the two medians
    e2e["paired_overhead_p50_ms"] = float(np.median(np.subtract(node_s, model_s)) * 1000.0)
    return e2e, model


def rss_run(client, node: Node, hw: tuple[int, int], rate: float, duration: float, topics: list[str]) -> dict:
    img, k = image(hw, 2), intrinsics(hw)
    samples, t0 = [], time.monotonic()
    next_frame, next_sample, sent = t0, t0, 0
    while (now := time.monotonic()) - t0 < duration:
        if now >= next_frame:
            client.publish(img, k=k)
            sent += 1
            next_frame += 1.0 / rate
        if now >= next_sample:
            samples.append((now - t0, node.rss_mb()))
            next_sample += 1.0
            client.clear()  # keep the client's memory flat too
        time.sleep(max(0.0, min(next_frame, next_sample) - time.monotonic()))
    diag = client.wait_diagnostics(lambda v: True)
    # RSS swings by the size of one frame's buffers from sample to sample, so compare windows, not two samples:
    # the first 20 % after the warm-up against the last 20 %, by median and by maximum.
    warm = max(5.0, 0.1 * duration)
    steady = [r for t, r in samples if t >= warm] or [r for _, r in samples]
    n = max(1, len(steady) // 5)
    first, last = steady[:n], steady[-n:]
    med0, med1 = float(np.median(first)), float(np.median(last))
    max0, max1 = max(first), max(last)
    return {"rate_hz": rate, "duration_s": duration, "frames_sent": sent, "frames_answered": int(diag["frames_out"]),
            "dropped_stale": int(diag["dropped.stale"]), "warmup_s": warm,
            "rss_first_window_median_mb": med0, "rss_last_window_median_mb": med1,
            "rss_first_window_max_mb": max0, "rss_last_window_max_mb": max1,
            "rss_growth_median_pct": 100.0 * (med1 - med0) / med0, "rss_growth_max_pct": 100.0 * (max1 - max0) / max0,
            "flat_within_5pct": abs(med1 - med0) <= 0.05 * med0 and abs(max1 - max0) <= 0.05 * max0,
            "samples": samples}


def run_case(hw: tuple[int, int], args: argparse.Namespace, folder: Path, rss: bool) -> dict:
    import rclpy
    from rclpy.context import Context

    from mtlsi_ros.client import LifecycleClient, PerceptionClient

    from mtlsi_core.runtime import create_runtime

    ckpt = make_checkpoint(hw, folder)
    result = {"case": f"{hw[0]}x{hw[1]}", "config": CONFIG, "image_hw": list(hw), "network_hw": list(hw)}
    runtime = create_runtime(args.backend, str(ckpt), device=args.device, precision="fp32")
    result["backend"] = {"requested": args.backend, "model_only": runtime.info.backend}
    domain = 1 + (os.getpid() * 7 + zlib.crc32(result["case"].encode())) % 100
    node = Node(ckpt, args.device, domain, folder, args.backend)
    ctx = Context()
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost_shm.xml"))
    rclpy.init(context=ctx, domain_id=domain)
    try:
        node.wait_active()
        passes = [("main", MAIN_TOPICS)] + ([("with_color", MAIN_TOPICS + COLOR_TOPICS)] if args.color else [])
        for j, (name, topics) in enumerate(passes):
            with PerceptionClient("/bench", context=ctx, topics=topics) as client:
                if j:  # reconfigure: fresh statistics for this pass
                    lc = LifecycleClient(client.node, "/bench/perception")
                    for t in ("deactivate", "cleanup", "configure", "activate"):
                        if not lc.change_state(t):
                            raise RuntimeError(f"lifecycle transition {t} failed")
                client.wait_for_node(60)
                e2e, model = interleaved_latency(client, runtime, hw, args.frames, topics)
                diag = client.wait_diagnostics(lambda v: int(v["frames_out"]) > 0)
            inside = float(diag["node_overhead_p50_ms"])  # per frame: callback -> last publish, less inference
            result[f"node_{name}"] = {
                "model_only": model,
                "end_to_end": e2e,
                "node_backend": diag.get("backend"),
                "node_internal_p50_ms": float(diag["latency_p50_ms"]),
                "node_internal_p99_ms": float(diag["latency_p99_ms"]),
                "node_inference_p50_ms": float(diag["inference_p50_ms"]),
                "node_publish_p50_ms": float(diag["publish_p50_ms"]),
                "overhead_end_to_end_vs_node_inference_p50_ms": e2e["p50_ms"] - float(diag["inference_p50_ms"]),
                "overhead_end_to_end_p50_ms": e2e["p50_ms"] - model["p50_ms"],
                "overhead_end_to_end_paired_p50_ms": e2e["paired_overhead_p50_ms"],
                "overhead_inside_node_p50_ms": inside,
                "topics": topics,
            }
            print(f"[{result['case']}] ({name}) model only p50 {model['p50_ms']:.1f} p99 {model['p99_ms']:.1f} ms; "
                  f"node e2e p50 {e2e['p50_ms']:.1f} p99 {e2e['p99_ms']:.1f} ms; "
                  f"node inference p50 {float(diag['inference_p50_ms']):.1f} ms; overhead: e2e - model only "
                  f"{result[f'node_{name}']['overhead_end_to_end_p50_ms']:.1f} ms (paired "
                  f"{e2e['paired_overhead_p50_ms']:.1f} ms), e2e - node inference "
                  f"{result[f'node_{name}']['overhead_end_to_end_vs_node_inference_p50_ms']:.1f} ms, inside node "
                  f"{inside:.1f} ms (publishing {float(diag['publish_p50_ms']):.1f} ms)", flush=True)
        if rss:
            with PerceptionClient("/bench", context=ctx, topics=MAIN_TOPICS) as client:
                client.wait_for_node(60)
                r = rss_run(client, node, hw, args.rate, args.duration, MAIN_TOPICS)
            result["rss"] = r
            print(f"[{result['case']}] RSS over {args.duration:.0f} s at {args.rate} Hz (first vs last 20 % after "
                  f"warm-up): median {r['rss_first_window_median_mb']:.0f} -> {r['rss_last_window_median_mb']:.0f} MB "
                  f"({r['rss_growth_median_pct']:+.1f} %), max {r['rss_first_window_max_mb']:.0f} -> "
                  f"{r['rss_last_window_max_mb']:.0f} MB ({r['rss_growth_max_pct']:+.1f} %), flat: "
                  f"{r['flat_within_5pct']}; answered {r['frames_answered']} of {r['frames_sent']}", flush=True)
    finally:
        node.stop()
        runtime.close()
        rclpy.try_shutdown(context=ctx)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["448x576", "224x288"], help="HxW image = network sizes")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="auto", help="the node's and the model-only runtime's (default: auto)")
    ap.add_argument("--duration", type=float, default=60.0, help="RSS run length, s (600 for the 10-minute check)")
    ap.add_argument("--rate", type=float, default=15.0)
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--color", action="store_true", help="also measure with the colour topics subscribed")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = Path(tempfile.mkdtemp(prefix="mtlsi_bench_node_"))
    cases = [tuple(int(v) for v in c.lower().split("x")) for c in args.cases]
    results = [run_case(hw, args, folder, rss=(i == 0 and not args.no_rss)) for i, hw in enumerate(cases)]
    out = {"benchmark": "bench_node", "machine": describe(
               args.device, rmw=os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
               fastdds_profile=os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE",
                                              str(REPO / "config" / "fastdds_localhost_shm.xml"))),
           "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "results": results,
           "target": "node overhead < 5 ms per frame at 448x576 on CPU; RSS flat within 5 % at 15 Hz over 10 min"}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"node_{args.device}_{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path} (node logs in {folder})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
