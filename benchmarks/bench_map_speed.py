#!/usr/bin/env python3
"""How fast maps are built, offline (``mtlsi-bag map``) and live (``bag.live_map``), on this CPU (issue 19, item 4).

Target: both run at the perception node's rate (~10-15 frames/s on 2 cores with the shipped model) for 240x320
outputs. Per synthetic sequence (``mtlsi-bag make --sequence``: a room, a camera trajectory, /tf poses, ground-truth
depth + labels standing in for the node's outputs; optionally the shipped model's outputs by ``mtlsi-bag infer``):

    read + decode   the frames as ``mtlsi-bag map`` reads them (``bag.posed.pose_frames``: CDR, image decoding,
                    camera_info, pose lookup), per frame
    integrate       ``SemanticTSDF.integrate`` of those frames in memory, Open3D limited to 1 and to 2 threads
                    (``open3d.utility.set_max_threads``), ``--repeats`` times each
    whole path      frames / (read + decode + integrate) per frame; and ``build_bag_maps`` (the command without its
                    pictures and files) end to end: bag opening, /tf table, frames, extraction
    extract         marching cubes + the vertices' labels at the end (``SemanticTSDF.extract``)
    quality         the map's scores against the scene (accuracy, completeness, F@5cm, semantic accuracy)
    variants        keyframe rule; 480x640 frames integrated in full vs ``max_size`` 240x320 (``--big``)
    live            a ``BagPlayer`` publishes the bag's depth, labels and camera_info over DDS at 1x, 2x and 4x the
                    sequence's rate; a ``LiveMapNode`` (policies latest and all) maps them as they arrive: frames
                    received, integrated, dropped, integrated per second, latency
    node            end to end (first sequence, ``--node-loops`` plays of it at its rate): the perception node (own
                    process, this work tree, config/perception.yaml: shipped model, backend auto, stale frames
                    dropped) gets the bag's images; its outputs are counted by a bare subscriber (the node alone),
                    then mapped by a ``LiveMapNode`` (newest wins) on the same 2 cores: outputs per second with and
                    without the map, integrated per second, drops

    python benchmarks/bench_map_speed.py                          # writes benchmarks/results/map_speed_cpu.json
    python benchmarks/bench_map_speed.py --work /tmp/mapspeed_bags --network --big --before OLD.json

``--work DIR`` keeps the bags (and the network's outputs) to run again on the same frames: the same bags measured
with the code before a change (the script copied into a checkout of it, ``--label before``) and after it give the
before / after figures; ``--before FILE`` puts that run's figures beside this one's. Features the code measured
does not have (live mapping, keyframes, ``max_size``) are left out of its run and said so.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_node import Node  # noqa: E402

from mtlsi_core.checkpoint import packaged_model  # noqa: E402
from mtlsi_core.tools.machine import describe, save_result, summary  # noqa: E402

TARGET_FPS = 15.0  # the node's rate, upper end (10-15 frames/s on 2 cores)
SEQUENCES = [(9101, "handheld"), (9102, "ground")]
KEYFRAME = (0.05, 5.0)  # m, degrees
LIVE_RATES = (1.0, 2.0, 4.0)
CAMERA = "/camera"


def _ms(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs, np.float64) * 1e3
    return {"median": round(float(np.median(a)), 2), "p90": round(float(np.percentile(a, 90)), 2),
            "max": round(float(a.max()), 2)}


def _scores(result: Any, ref: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any] | None:
    from mtlsi_core.mapping.metrics import score_map

    if ref is None:
        return None
    s = score_map(result.vertices, result.triangles, result.labels, ref[0], ref[1], 0.05)
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in s.items()}


def _tsdf_fields() -> set[str]:
    from mtlsi_core.mapping.tsdf import TSDFOptions

    return {f.name for f in dataclasses.fields(TSDFOptions)}


def make_bags(work: Path, seed: int, kind: str, frames: int, rate: float, size: tuple[int, int],
              network: bool) -> dict[str, Any]:
    """The sequence bag (kept in ``work``) and, with ``network``, the shipped model's outputs on it."""
    from mtlsi_core.data.sequence import SequenceSpec
    from mtlsi_ros.bag.make import MakeOptions, make_sequence_bag

    bag = work / f"{kind}_{seed}_{size[0]}x{size[1]}_{frames}.mcap"
    out: dict[str, Any] = {"bag": bag, "network": None, "notes": []}
    if not bag.exists():
        t0 = time.perf_counter()
        make_sequence_bag(bag, SequenceSpec(seed, kind, frames, rate, size), MakeOptions(progress=False))
        out["notes"].append(f"bag made in {time.perf_counter() - t0:.1f} s")
    if network:
        net = work / f"{kind}_{seed}_{size[0]}x{size[1]}_{frames}_net.mcap"
        if not net.exists():
            try:
                from mtlsi_ros.bag.infer import InferOptions, run_infer
                from mtlsi_ros.bag.node_params import load_node_params

                params = load_node_params([REPO / "config" / "perception.yaml"], {}, node_fqn="/perception")
                inf = run_infer(bag, net, params, InferOptions(progress=False, copy_input=False))
                out["notes"].append(f"network outputs: {inf.model}, {inf.processed} frames, {inf.seconds:.1f} s")
            except Exception as e:  # the network part is optional; say why it is missing
                out["notes"].append(f"no network outputs: {type(e).__name__}: {e}")
                return out
        out["network"] = net
    return out


def reference(bag: Path, depth_max: float) -> tuple[np.ndarray, np.ndarray] | None:
    from mtlsi_ros.bag.make import read_scene_file, scene_file

    p = scene_file(bag)
    if not p.is_file():
        return None
    scene = read_scene_file(p)
    keep = np.asarray(scene["min_depth"]) <= depth_max
    return np.asarray(scene["points"])[keep], np.asarray(scene["labels"])[keep]


def read_frames(bag: Path, poses_bag: Path, namespace: str) -> tuple[list[Any], dict[str, Any]]:
    """The posed frames as ``mtlsi-bag map`` reads them, with the time each took to read and decode."""
    from mtlsi_ros.bag.posed import locate, pose_frames
    from mtlsi_ros.bag.storage import BagReader
    from mtlsi_ros.bag.transforms import read_pose_table

    t0 = time.perf_counter()
    with BagReader(bag) as b, BagReader(poses_bag) as pb:
        where = locate(b, pb, namespace, None)
        poses = read_pose_table(pb)
        d, s = where.pred_topics()
        info = where.pred_info()
        t_setup = time.perf_counter() - t0
        frames, times = [], []
        it = iter(pose_frames(b, "pred", d, s, info, poses, "map", None))
        while True:
            t1 = time.perf_counter()
            f = next(it, None)
            if f is None:
                break
            times.append(time.perf_counter() - t1)
            frames.append(f)
    return frames, {"setup_seconds": round(t_setup, 3), "seconds": round(sum(times), 3),
                    "per_frame_ms": _ms(times), "frames_per_second": round(len(times) / sum(times), 1)}


def integrate(frames: list[Any], threads: int, **options: Any) -> tuple[Any, dict[str, Any]]:
    from mtlsi_core.mapping import import_open3d
    from mtlsi_core.mapping.tsdf import SemanticTSDF, TSDFOptions

    import_open3d().utility.set_max_threads(threads)
    t0 = time.perf_counter()
    tsdf = SemanticTSDF(TSDFOptions(**options))
    t_make = time.perf_counter() - t0
    times = []
    for f in frames:
        t1 = time.perf_counter()
        tsdf.integrate(f.depth, f.labels, f.K, f.T)
        times.append(time.perf_counter() - t1)
    t2 = time.perf_counter()
    result = tsdf.extract()
    t_extract = time.perf_counter() - t2
    import_open3d().utility.set_max_threads(0)
    rec = {"threads": threads, "options": options, "frames": len(frames),
           "integrated": getattr(tsdf, "integrated_frames", len(frames) - tsdf.empty_frames),
           "create_seconds": round(t_make, 3), "integrate_seconds": round(sum(times), 3),
           "frames_per_second": round(len(times) / sum(times), 1), "per_frame_ms": _ms(times),
           "extract_seconds": round(t_extract, 3), "vertices": int(len(result.vertices))}
    return result, rec


def whole_command(bag: Path, poses_bag: Path, namespace: str) -> dict[str, Any]:
    """``build_bag_maps`` end to end (what ``mtlsi-bag map`` does before scoring and writing files)."""
    from mtlsi_ros.bag.map import MapOptions, build_bag_maps

    t0 = time.perf_counter()
    maps = build_bag_maps(bag, poses_bag=poses_bag, options=MapOptions(namespace=namespace, gt_map=False))
    seconds = time.perf_counter() - t0
    entry = maps["network"]
    rec = {"seconds": round(seconds, 3), "frames": entry[0].frames,
           "frames_per_second": round(entry[0].frames / seconds, 1)}
    if len(entry) > 3:
        rec["timing"] = entry[3]
    return rec


def live_runs(bag: Path, poses_bag: Path, namespace: str, info_topic: str, frames: int, rate_hz: float,
              ref: Any, domain: int) -> list[dict[str, Any]]:
    """The bag's depth, labels and camera_info played over DDS at each of LIVE_RATES, mapped by a LiveMapNode."""
    import rclpy
    from rclpy.context import Context

    from mtlsi_ros.bag.live import BagPlayer
    from mtlsi_ros.bag.live_map import LiveMapNode
    from mtlsi_ros.bag.storage import BagReader
    from mtlsi_ros.bag.transforms import read_pose_table

    with BagReader(poses_bag) as pb:
        poses = read_pose_table(pb)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost_shm.xml"))
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    runs = []
    try:
        for policy in ("latest", "all"):
            for mult in LIVE_RATES:
                mapper = LiveMapNode(namespace, context=ctx, poses=poses, info_topic=info_topic, policy=policy)
                try:
                    with BagPlayer(bag, context=ctx, rate=mult,
                                   topics=[f"{namespace}/depth", f"{namespace}/segmentation", info_topic]) as player:
                        player.wait_for_subscribers(timeout=60)
                        time.sleep(0.5)
                        played = player.play()
                    deadline = time.monotonic() + 60
                    while mapper.mapper.queue.put_count < frames and time.monotonic() < deadline:
                        time.sleep(0.02)  # the last messages in flight
                    mapper.mapper.wait_idle(60)
                    st = mapper.stats()
                    result = mapper.extract() if st["integrated"] else None
                finally:
                    mapper.close()
                rec = {"policy": policy, "rate_multiplier": mult, "input_hz": round(rate_hz * mult, 1),
                       "play_seconds": played["seconds"], **{k: st[k] for k in (
                           "received", "integrated", "dropped", "skipped", "empty", "unposed", "failed", "unpaired",
                           "queue_high_water", "integrated_per_second", "latency_s", "prepare_seconds",
                           "integrate_seconds", "errors")}}
                rec["scores"] = _scores(result, ref) if result is not None else None
                runs.append(rec)
                print(f"  live {policy:6s} at {rec['input_hz']:5.1f} Hz: {st['received']} received, "
                      f"{st['integrated']} integrated, {st['dropped']} dropped, {st['integrated_per_second']} "
                      f"integrated/s, latency median {st['latency_s']['median'] if st['latency_s'] else None} s",
                      flush=True)
    finally:
        rclpy.try_shutdown(context=ctx)
    return runs


def node_runs(bag: Path, loops: int, work: Path, domain: int) -> dict[str, Any]:
    """The bag's images to the perception node, its outputs counted (node alone) and then mapped live."""
    import threading

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from mtlsi_ros.bag.live import BagPlayer
    from mtlsi_ros.bag.live_map import LiveMapNode
    from mtlsi_ros.bag.storage import BagReader
    from mtlsi_ros.bag.transforms import read_pose_table

    with BagReader(bag) as b:
        poses = read_pose_table(b)
    folder = Path(tempfile.mkdtemp(prefix="node_", dir=work))
    node = Node(packaged_model(), "cpu", domain, folder, namespace=CAMERA)
    ctx = Context()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost_shm.xml"))
    rclpy.init(context=ctx, domain_id=domain)
    out: dict[str, Any] = {"loops": loops, "runs": []}
    try:
        t0 = time.monotonic()
        node.wait_active()
        out["node_start_seconds"] = round(time.monotonic() - t0, 1)

        def play() -> dict[str, Any]:
            with BagPlayer(bag, context=ctx, rate=1.0, topics=[f"{CAMERA}/image", f"{CAMERA}/camera_info"]) as p:
                p.wait_for_subscribers(timeout=60)
                time.sleep(1.0)
                t = time.monotonic()
                for _ in range(loops):
                    p.play()
                return {"images": p.published[f"{CAMERA}/image"], "seconds": round(time.monotonic() - t, 2)}

        def alone() -> dict[str, Any]:
            """A bare subscriber counts the node's depth outputs."""
            stamps: list[float] = []
            sub = rclpy.create_node(f"bench_map_speed_count_{len(out['runs'])}", context=ctx)
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
            sub.create_subscription(Image, f"{CAMERA}/depth", lambda d: stamps.append(time.monotonic()), qos,
                                    raw=True)
            ex = SingleThreadedExecutor(context=ctx)
            ex.add_node(sub)
            done = threading.Event()

            def spin_until_done() -> None:
                while not done.is_set():
                    ex.spin_once(timeout_sec=0.05)

            spin = threading.Thread(target=spin_until_done, daemon=True)
            spin.start()
            try:
                played = play()
                time.sleep(2.0)
            finally:
                done.set()
                spin.join(5)
                ex.shutdown()
                sub.destroy_node()
            span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
            return {"what": "node alone", **played, "outputs": len(stamps),
                    "outputs_per_second": round((len(stamps) - 1) / span, 2) if span > 0 else None}

        def mapped(policy: str, capacity: int | None) -> dict[str, Any]:
            with LiveMapNode(CAMERA, context=ctx, poses=poses, policy=policy, capacity=capacity) as mapper:
                played = play()
                time.sleep(2.0)
                mapper.mapper.wait_idle(30)
                st = mapper.stats()
            return {"what": f"node + live map ({policy}, capacity {st['capacity']})", **played,
                    "outputs": st["messages"]["depth"],
                    **{k: st[k] for k in ("received", "integrated", "dropped", "unposed", "failed", "unpaired",
                                          "queue_high_water", "integrated_per_second", "latency_s",
                                          "integrate_seconds", "prepare_seconds", "errors")}}

        for run in (alone, lambda: mapped("latest", 1), lambda: mapped("latest", 3), lambda: mapped("all", None),
                    alone):
            r = run()
            out["runs"].append(r)
            extra = (f", {r['integrated']} integrated, {r['dropped']} dropped, {r['integrated_per_second']} "
                     f"integrated/s, latency median {r['latency_s']['median'] if r['latency_s'] else None} s"
                     if "integrated" in r else f", {r['outputs_per_second']} outputs/s")
            print(f"  {r['what']}: {r['images']} images in {r['seconds']} s, {r['outputs']} outputs{extra}",
                  flush=True)
    finally:
        rclpy.try_shutdown(context=ctx)
        node.stop()
        out["node_log_tail"] = node.log_path.read_text(errors="replace")[-1500:]
    return out


def run_source(name: str, bag: Path, poses_bag: Path, namespace: str, ref: Any, a: argparse.Namespace,
               fields: set[str]) -> dict[str, Any]:
    frames, read = read_frames(bag, poses_bag, namespace)
    rec: dict[str, Any] = {"namespace": namespace, "frames": len(frames),
                           "size": list(frames[0].depth.shape[:2]) if frames else None, "read_decode": read,
                           "integrate": [], "variants": []}
    result = None
    for threads in a.threads:
        for _ in range(a.repeats):
            res, r = integrate(frames, threads)
            result = result or res
            rec["integrate"].append(r)
    best = {t: max(r["frames_per_second"] for r in rec["integrate"] if r["threads"] == t) for t in a.threads}
    med = {t: float(np.median([r["frames_per_second"] for r in rec["integrate"] if r["threads"] == t]))
           for t in a.threads}
    t_int = float(np.median([r["integrate_seconds"] for r in rec["integrate"] if r["threads"] == max(a.threads)]))
    rec["summary"] = {
        "integrate_fps_median": med, "integrate_fps_best": best,
        "whole_path_fps": round(len(frames) / (read["seconds"] + t_int), 1),
        "extract_seconds_median": float(np.median([r["extract_seconds"] for r in rec["integrate"]]))}
    rec["scores"] = _scores(result, ref)
    rec["command"] = whole_command(bag, poses_bag, namespace)
    if "keyframe_translation" in fields:
        res, r = integrate(frames, max(a.threads), keyframe_translation=KEYFRAME[0], keyframe_rotation_deg=KEYFRAME[1])
        rec["variants"].append({"name": f"keyframe {KEYFRAME[0]} m / {KEYFRAME[1]} deg", **r,
                                "scores": _scores(res, ref)})
    s = rec["summary"]
    print(f"  {name:8s} read+decode {read['frames_per_second']:.1f} frames/s, integrate "
          + ", ".join(f"{t} thread(s) {med[t]:.1f}" for t in a.threads)
          + f" frames/s (median), whole path {s['whole_path_fps']:.1f} frames/s, command "
          f"{rec['command']['frames_per_second']:.1f} frames/s, extract {s['extract_seconds_median']:.2f} s",
          flush=True)
    if rec["scores"]:
        sc = rec["scores"]
        print(f"  {name:8s} accuracy {sc['accuracy_m']:.4f} m, completeness {sc['completeness_m']:.4f} m, F@5cm "
              f"{sc['fscore'] * 100:.2f} %, semantic accuracy {sc['semantic_accuracy'] * 100:.2f} %", flush=True)
    for v in rec["variants"]:
        print(f"  {name:8s} {v['name']}: {v['frames_per_second']:.1f} frames/s, {v['integrated']}/{v['frames']} "
              f"integrated, F@5cm {v['scores']['fscore'] * 100:.2f} %" if v["scores"] else "", flush=True)
    return rec


def big_variant(work: Path, seed: int, kind: str, a: argparse.Namespace, fields: set[str]) -> dict[str, Any]:
    """480x640 frames: integrated in full and with max_size 240x320."""
    made = make_bags(work, seed, kind, a.frames, a.rate, (480, 640), network=False)
    ref = reference(made["bag"], 6.0)
    frames, read = read_frames(made["bag"], made["bag"], f"{CAMERA}/gt")
    out: dict[str, Any] = {"seed": seed, "kind": kind, "size": [480, 640], "read_decode": read, "runs": []}
    variants = [("full 480x640", {})]
    if "max_size" in fields:
        variants.append(("max_size 240x320", {"max_size": (240, 320)}))
    for name, opts in variants:
        res, r = integrate(frames, max(a.threads), **opts)
        r["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()}
        out["runs"].append({"name": name, **r, "scores": _scores(res, ref)})
        sc = out["runs"][-1]["scores"]
        print(f"  480x640 {name}: {r['frames_per_second']:.1f} frames/s, extract {r['extract_seconds']:.2f} s, F@5cm "
              f"{sc['fscore'] * 100:.2f} %, semantic accuracy {sc['semantic_accuracy'] * 100:.2f} %", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rate", type=float, default=15.0)
    ap.add_argument("--size", default="240x320")
    ap.add_argument("--threads", default="1,2", help="Open3D thread counts to measure integration with")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--network", action="store_true", help="also map the shipped model's outputs (mtlsi-bag infer)")
    ap.add_argument("--big", action="store_true", help="also 480x640 frames, full and max_size 240x320")
    ap.add_argument("--no-live", action="store_true")
    ap.add_argument("--no-node", action="store_true", help="leave out the end-to-end run with the perception node")
    ap.add_argument("--node-loops", type=int, default=3)
    ap.add_argument("--work", default=None, help="keep the bags here (reused when present)")
    ap.add_argument("--label", default="after")
    ap.add_argument("--before", default=None, help="a run of this script on the code before (put beside)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "map_speed_cpu.json"))
    a = ap.parse_args(argv)
    a.threads = [int(t) for t in a.threads.split(",")]
    size = tuple(int(v) for v in a.size.split("x"))
    info = describe("cpu")
    print(summary(info), flush=True)
    fields = _tsdf_fields()
    try:
        import mtlsi_ros.bag.live_map  # noqa: F401
        live_ok = not a.no_live
    except ImportError:
        live_ok = False
    doc: dict[str, Any] = {"label": a.label, "machine": info, "target_frames_per_second": TARGET_FPS,
                           "settings": {"frames": a.frames, "rate_hz": a.rate, "size": list(size),
                                        "threads": a.threads, "repeats": a.repeats, "keyframe": list(KEYFRAME),
                                        "live_rates": list(LIVE_RATES)},
                           "code": {"tsdf_options": sorted(fields), "live_map": live_ok}, "sequences": []}
    t0 = time.perf_counter()
    tmp = None
    if a.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_map_speed_")
        work = Path(tmp.name)
    else:
        work = Path(a.work)
        work.mkdir(parents=True, exist_ok=True)
    try:
        for k, (seed, kind) in enumerate(SEQUENCES):
            print(f"{seed} {kind}", flush=True)
            made = make_bags(work, seed, kind, a.frames, a.rate, size, a.network)
            ref = reference(made["bag"], 6.0)
            rec: dict[str, Any] = {"seed": seed, "kind": kind, "notes": made["notes"], "sources": {}}
            rec["sources"]["ground_truth"] = run_source("gt", made["bag"], made["bag"], f"{CAMERA}/gt", ref, a, fields)
            if made["network"] is not None:
                rec["sources"]["network"] = run_source("network", made["network"], made["bag"], CAMERA, ref, a,
                                                       fields)
            if live_ok:
                rec["live"] = live_runs(made["bag"], made["bag"], f"{CAMERA}/gt", f"{CAMERA}/camera_info", a.frames,
                                        a.rate, ref, domain=60 + (os.getpid() + k) % 40)
            doc["sequences"].append(rec)
        if live_ok and not a.no_node:
            print("perception node + live map", flush=True)
            bag = make_bags(work, *SEQUENCES[0], a.frames, a.rate, size, False)["bag"]
            try:
                doc["node"] = node_runs(bag, a.node_loops, work, domain=20 + os.getpid() % 40)
            except Exception as e:  # the node of a work tree under change may not start; say so
                doc["node"] = {"error": f"{type(e).__name__}: {e}"}
                print(f"  node run failed: {doc['node']['error']}", flush=True)
        if a.big:
            print("480x640", flush=True)
            doc["big"] = big_variant(work, *SEQUENCES[0], a, fields)
    finally:
        if tmp is not None:
            tmp.cleanup()
    gt = [r["sources"]["ground_truth"]["summary"] for r in doc["sequences"]]
    top = max(a.threads)
    doc["summary"] = {
        "integrate_fps_median": {str(t): [g["integrate_fps_median"][t] for g in gt] for t in a.threads},
        "whole_path_fps": [g["whole_path_fps"] for g in gt],
        "command_fps": [r["sources"]["ground_truth"]["command"]["frames_per_second"] for r in doc["sequences"]],
        "extract_seconds": [g["extract_seconds_median"] for g in gt],
        "live_all_1x_integrated_per_second": [next((x["integrated_per_second"] for x in r.get("live", [])
                                                     if x["policy"] == "all" and x["rate_multiplier"] == 1.0), None)
                                              for r in doc["sequences"]]}
    doc["summary"]["target_met"] = bool(min(doc["summary"]["whole_path_fps"]) >= TARGET_FPS
                                        and min(doc["summary"]["integrate_fps_median"][str(top)]) >= TARGET_FPS)
    if a.before:
        doc["before"] = json.loads(Path(a.before).read_text())
    doc["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    save_result(a.out, doc, indent=2)
    s = doc["summary"]
    print(f"integration {s['integrate_fps_median']} frames/s, whole path {s['whole_path_fps']} frames/s, command "
          f"{s['command_fps']} frames/s vs the node's rate {TARGET_FPS}: {'met' if s['target_met'] else 'MISSED'}; "
          f"written {a.out} ({doc['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
