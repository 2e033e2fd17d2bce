"""Where the node's end-to-end time goes beyond the model: conversion, resizing, post-processing, message building,
serialisation, DDS transport and the subscriber's deserialisation, per stage and per output topic.

    python benchmarks/bench_transport.py [--cases 448x576 480x640] [--reps 30] [--frames 30]
                                         [--model shipped|PATH] [--backend auto|torch|onnx] [--device cpu]
                                         [--no-dds] [--node] [--node-frames 30] [--sustained-frames 60]
                                         [--sustained-rate 30] [--stat median|min]
                                         [--out benchmarks/results]

Three parts, each per case (camera image size HxW; outputs at the camera size, as the node's default):

1. **stages** (in this process, median of ``--reps`` calls): what the node does to one frame, step by step, with
   the node's own functions: the executor's deserialisation of the camera's Image, ``image_to_rgb``, the runtime's
   ``prepare`` (resize to the network size), ``run`` (the model) and post-processing (zoom, resize back, to numpy),
   then per output topic: building the message (mask / cast / colour map + ``numpy_to_image``), serialising it
   (what ``publish`` does before handing bytes to DDS), the subscriber's deserialisation and its
   ``image_to_numpy``. Also the costs of the ways to fill ``Image.data`` in rclpy (array.array, bytes,
   memoryview, numpy) - they differ by orders of magnitude.
2. **dds** (two processes, ``--no-dds`` skips): an echo process answers each image with pre-built messages of the
   chosen topics (nothing computed), so the round trip is transport + executors + (de)serialisation only. The
   image-only round trip (answered with the small camera_info) is the input's cost; each topic alone minus that
   is the topic's transport cost; "all main" and "all with colour" are the frames the node really sends.
3. **node** (``--node``): the perception node in its own process (``benchmarks/bench_node.py``'s driver) with the
   chosen model and backend, one frame at a time: image publish -> last main output arrives (p50/p99), the same
   network's ``Runtime.infer`` model-only figure interleaved here, and the sustained rate with
   ``process_every_frame`` (``--sustained-frames`` frames published at ``--sustained-rate`` Hz, every output topic
   subscribed; frames/s = answered / time from the first publish to the last output).

Results: ``benchmarks/results/transport_<device>_<UTC time>.json`` with the machine description and the load
average (``uptime``) before each part; the table is printed. DDS environment as the tests:
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the shared-memory Fast DDS profile of ``config/``.
"""
from __future__ import annotations

import argparse
import array
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
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
RESULTS = REPO / "benchmarks" / "results"
IMAGE_ONLY = "(image only)"


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


STAT = {"fn": np.median}  # --stat: median (default) or min (the intrinsic cost, steadier on a loaded machine)


def median_ms(fn: Callable[[], Any], reps: int) -> float:
    fn()  # warm: first-call allocations, lazy imports
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(STAT["fn"](ts) * 1000.0)


def parse_hw(s: str) -> tuple[int, int]:
    h, w = (int(v) for v in s.lower().split("x"))
    return h, w


def camera_image(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, hw[0] // 8), max(1, hw[1] // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def intrinsics(hw: tuple[int, int]) -> np.ndarray:
    f = 0.8 * hw[1]
    return np.array([[f, 0, (hw[1] - 1) / 2], [0, f, (hw[0] - 1) / 2], [0, 0, 1]])


def model_path(arg: str) -> str:
    if arg == "shipped":
        from mtlsi_core.checkpoint import packaged_model

        return str(packaged_model())
    return arg


# ------------------------------------------------------------------------------------------------ 1. stages

def data_assignment(nbytes: int, reps: int) -> dict[str, float]:
    """ms to put ``nbytes`` of a numpy array into ``Image.data`` each way (the setter copies into array('B'))."""
    from sensor_msgs.msg import Image

    a = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    msg = Image()
    checked = Image(check_fields=True)

    def via_array() -> None:  # one copy into an array('B'), a second one in the setter
        out = array.array("B")
        out.frombytes(memoryview(a).cast("B"))
        msg.data = out

    def via_array_checked() -> None:  # one copy: with check_fields the setter keeps an array('B') as it is
        out = array.array("B")
        out.frombytes(memoryview(a).cast("B"))
        checked.data = out

    def via_bytes() -> None:
        msg.data = a.tobytes()

    def via_memoryview() -> None:  # the setter iterates element by element
        msg.data = memoryview(a).cast("B")

    def via_numpy() -> None:  # ditto (array('B', ndarray) iterates)
        msg.data = a

    res = {"array.array frombytes + setter (2 copies)": median_ms(via_array, reps),
           "array.array frombytes + check_fields setter (1 copy)": median_ms(via_array_checked, reps),
           "bytes (tobytes + setter, 2 copies)": median_ms(via_bytes, reps)}
    slow_reps = max(1, min(3, reps))
    res["memoryview (setter iterates)"] = median_ms(via_memoryview, slow_reps)
    res["numpy array (setter iterates)"] = median_ms(via_numpy, slow_reps)
    return res


def stages(hw: tuple[int, int], runtime: Any, reps: int) -> dict:
    """Per-stage ms (median) of one frame through the node's code path, in this process."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from mtlsi_core.outputs import cast_for_encoding, mask_outside_range
    from mtlsi_core.runtime.processing import apply_zoom, finalize_outputs
    from mtlsi_ros.conversions import ENCODINGS, image_to_numpy, image_to_rgb, make_camera_info, numpy_to_image
    from mtlsi_ros.params import validate
    from mtlsi_ros.publishing import (CAMERA_INFO_TOPIC, build_messages, build_plans, focal_length_px,
                                      output_size_arg)

    params = validate({})
    plans = build_plans(runtime.tasks, runtime.channels, params)
    rgb = camera_image(hw)
    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec = 1
    info = make_camera_info(intrinsics(hw).reshape(-1), hw, header)
    out: dict[str, Any] = {"load_average": load(), "stat": "min" if STAT["fn"] is np.min else "median",
                           "input": {}, "runtime": {}, "topics": {}}

    # input: the executor deserialises the camera's message, the callback converts it
    for enc, arr in (("rgb8", rgb), ("bgr8", np.ascontiguousarray(rgb[..., ::-1]))):
        msg = numpy_to_image(arr, enc, header)
        raw = serialize_message(msg)
        out["input"][f"deserialize {enc} ({len(raw) / 2**20:.2f} MiB)"] = median_ms(
            lambda raw=raw: deserialize_message(raw, Image), reps)
        out["input"][f"image_to_rgb {enc}"] = median_ms(lambda msg=msg: image_to_rgb(msg, 0), reps)

    # runtime: prepare (resize to the network size) / run (model only) / post (zoom, resize back, numpy)
    focal = [focal_length_px(info, hw[1])]
    size = output_size_arg(params, hw)
    from mtlsi_core.runtime.base import resolve_output_size

    sizes = [resolve_output_size(size, hw, runtime.input_size)]
    batch = runtime.prepare([rgb])
    preds = runtime.run(batch)

    def post() -> list:
        zooms = runtime.zoom_factors([rgb], focal)
        p = apply_zoom(preds, zooms) if zooms is not None else preds
        return finalize_outputs(p, runtime.tasks, sizes, runtime.label_dtypes)

    rt_reps = max(3, reps // 3)
    out["runtime"]["prepare (to network size)"] = median_ms(lambda: runtime.prepare([rgb]), reps)
    out["runtime"]["run (model only)"] = median_ms(lambda: runtime.run(batch), rt_reps)
    out["runtime"]["post (zoom, resize to camera size, numpy)"] = median_ms(post, reps)
    out["runtime"]["infer (all three)"] = median_ms(
        lambda: runtime.infer([rgb], output_size=size, focal_lengths=focal), rt_reps)
    outputs = post()[0]

    # per topic: build (what build_messages does for it), serialise, deserialise, image_to_numpy
    for plan in plans:
        values = outputs[plan.task]
        for topic, color in ((plan.topic, False), (plan.color_topic, True)):
            if topic is None:
                continue
            # build_messages on a fresh copy each call: depth masking writes into the runtime's array
            build_ms = median_ms(lambda topic=topic, plan=plan: build_messages(
                [plan], header, {plan.task: outputs[plan.task].copy()}, rgb, None, wanted={topic}), reps)
            copy_ms = median_ms(lambda v=values: v.copy(), reps)
            msg = build_messages([plan], header, {plan.task: values.copy()}, rgb, None, wanted={topic})[0][1]
            raw = serialize_message(msg)
            row = {"encoding": msg.encoding, "mib": len(raw) / 2**20,
                   "build_ms": max(0.0, build_ms - copy_ms),
                   "serialize_ms": median_ms(lambda msg=msg: serialize_message(msg), reps),
                   "deserialize_ms": median_ms(lambda raw=raw: deserialize_message(raw, Image), reps)}
            got = deserialize_message(raw, Image)
            row["to_numpy_ms"] = median_ms(lambda got=got: image_to_numpy(got), reps)
            if not color:  # the parts of build: the numeric cast / mask, and numpy_to_image itself
                v = values.copy()
                if plan.valid_range is not None:
                    row["mask_ms"] = median_ms(lambda v=v, r=plan.valid_range: mask_outside_range(v, *r, out=v), reps)
                dtype = ENCODINGS[plan.encoding].dtype
                row["cast_ms"] = median_ms(lambda v=v, d=dtype: cast_for_encoding(v, d), reps)
                cast = cast_for_encoding(v, dtype)
                row["numpy_to_image_ms"] = median_ms(
                    lambda c=cast, e=plan.encoding: numpy_to_image(c, e, header), reps)
            out["topics"][topic] = row
    msg = build_messages(plans[:1], header, outputs, rgb, info, wanted={CAMERA_INFO_TOPIC})[0][1]
    raw = serialize_message(msg)
    out["topics"][CAMERA_INFO_TOPIC] = {
        "encoding": "-", "mib": len(raw) / 2**20,
        "build_ms": median_ms(lambda: build_messages(plans[:1], header, outputs, rgb, info,
                                                     wanted={CAMERA_INFO_TOPIC}), reps),
        "serialize_ms": median_ms(lambda: serialize_message(msg), reps),
        "deserialize_ms": median_ms(lambda: deserialize_message(raw, CameraInfo), reps), "to_numpy_ms": 0.0}
    out["data_assignment_ms"] = data_assignment(hw[0] * hw[1] * 12, reps)  # a 32FC3 image's bytes
    return out


# ------------------------------------------------------------------------------------------------ 2. dds

def echo_main(hw: tuple[int, int], model: str, backend: str, device: str) -> int:
    """The echo process: answers each image on /echo/image with pre-built output messages of the topics named in
    its header's frame_id (comma-separated), carrying the image's header. Output QoS as the node's."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from mtlsi_core.runtime import create_runtime
    from mtlsi_ros import qos
    from mtlsi_ros.params import validate
    from mtlsi_ros.publishing import CAMERA_INFO_TOPIC, build_messages, build_plans
    from mtlsi_ros.conversions import make_camera_info

    rt = create_runtime(backend, model, device=device, precision="fp32")
    rgb = camera_image(hw)
    outputs = rt.infer([rgb], output_size="input")[0]
    params = validate({})
    plans = build_plans(rt.tasks, rt.channels, params)
    header = Header(frame_id="camera_optical_frame")
    info = make_camera_info(intrinsics(hw).reshape(-1), hw, header)
    msgs = dict(build_messages(plans, header, outputs, rgb, info))
    rt.close()
    rclpy.init()
    node = Node("transport_echo", namespace="/echo")
    out_qos = qos.output_qos("reliable", 1)
    pubs = {t: node.create_publisher(CameraInfo if t == CAMERA_INFO_TOPIC else Image, t, out_qos) for t in msgs}

    def on_image(m: Image) -> None:
        for t in m.header.frame_id.split(","):
            msg = msgs[t]
            msg.header = m.header
            pubs[t].publish(msg)

    node.create_subscription(Image, "image", on_image, qos.input_qos("reliable", 10, keep_all=False))
    print("echo ready", flush=True)
    ex = MultiThreadedExecutor(num_threads=4)
    ex.add_node(node)
    try:
        ex.spin()
    except (KeyboardInterrupt, Exception):
        pass
    rclpy.try_shutdown()
    return 0


def dds(hw: tuple[int, int], args: argparse.Namespace, topics_all: list[str], main_topics: list[str],
        folder: Path) -> dict:
    import bench_node
    import rclpy
    from rclpy.context import Context

    from mtlsi_ros.client import PerceptionClient, stamp_to_ns
    from mtlsi_ros.publishing import CAMERA_INFO_TOPIC

    domain = 101 + (os.getpid() * 7 + zlib.crc32(f"{hw}".encode())) % 100
    log_path = folder / f"echo_{hw[0]}x{hw[1]}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--role", "echo",
                                 "--cases", f"{hw[0]}x{hw[1]}", "--model", args.model, "--backend", args.backend,
                                 "--device", args.device], stdout=log, stderr=subprocess.STDOUT,
                                env=bench_node.ros_env(domain), cwd=str(REPO), start_new_session=True)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    res: dict[str, Any] = {"load_average": load(), "round_trip": {}}
    try:
        deadline = time.monotonic() + 300
        while "echo ready" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"echo process did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        rgb, k = camera_image(hw, 1), intrinsics(hw)
        with PerceptionClient("/echo", context=ctx, topics=topics_all) as client:
            client.wait_for_node(60)
            experiments = ([(IMAGE_ONLY, [CAMERA_INFO_TOPIC])]
                           + [(t, [t]) for t in topics_all if t != CAMERA_INFO_TOPIC]
                           + [("all main", main_topics), ("all with colour", topics_all)])
            for name, topics in experiments:
                times = []
                for i in range(args.frames + 3):
                    h = client.publish(rgb, frame_id=",".join(topics))
                    outs = client.wait_for(h, topics=topics, timeout=30)
                    if i >= 3:
                        times.append(max(r.t for r in outs.values()) - client.published[("", stamp_to_ns(h.stamp))])
                a = np.asarray(times) * 1000.0
                res["round_trip"][name] = {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                                           "n": int(a.size)}
                client.clear()
        base = res["round_trip"][IMAGE_ONLY]["p50_ms"]
        res["image_in_ms"] = base
        res["per_topic_extra_p50_ms"] = {n: r["p50_ms"] - base for n, r in res["round_trip"].items() if n != IMAGE_ONLY}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)
        rclpy.try_shutdown(context=ctx)
    return res


# ------------------------------------------------------------------------------------------------ 3. node

def node_part(hw: tuple[int, int], args: argparse.Namespace, folder: Path, main_topics: list[str],
              all_topics: list[str]) -> dict:
    """The node with the chosen model/backend, one frame at a time and sustained (process_every_frame)."""
    import rclpy
    import yaml
    from rclpy.context import Context

    import bench_node
    from mtlsi_ros.client import PerceptionClient
    from mtlsi_core.runtime import create_runtime

    model = model_path(args.model)
    res: dict[str, Any] = {"load_average": load(), "backend": args.backend, "model": model}
    domain = 201 + (os.getpid() * 7 + zlib.crc32(f"node{hw}".encode())) % 30
    for mode in ("latency", "sustained"):
        params = folder / f"params_{mode}_{hw[0]}x{hw[1]}.yaml"
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
            "model_path": model, "device": args.device, "backend": args.backend, "precision": "fp32",
            "batch_window_ms": 0.0, "process_every_frame": mode == "sustained"}}}))
        node = _start_node(params, domain, folder, mode)
        ctx = Context()
        rclpy.init(context=ctx, domain_id=domain)
        try:
            node.wait_active()
            if mode == "latency":
                runtime = create_runtime(args.backend, model, device=args.device, precision="fp32")
                try:
                    for name, topics in (("latency", main_topics), ("latency_with_colour", all_topics)):
                        with PerceptionClient("/bench", context=ctx, topics=topics) as client:
                            client.wait_for_node(60)
                            prime(client, hw, topics, timeout=120.0)
                            e2e, model_only = bench_node.interleaved_latency(client, runtime, hw, args.node_frames,
                                                                             topics)
                            diag = client.wait_diagnostics(lambda v: int(v["frames_out"]) > 0)
                        res[name] = {
                            "topics": topics, "node_backend": diag.get("backend"),
                            "node_backend_reason": diag.get("backend.reason"),
                            "end_to_end": e2e, "model_only": model_only,
                            "overhead_end_to_end_p50_ms": e2e["p50_ms"] - model_only["p50_ms"],
                            "overhead_end_to_end_paired_p50_ms": e2e["paired_overhead_p50_ms"],
                            # the node's diagnostics cover every frame since activation (both passes)
                            "node_internal_p50_ms": float(diag["latency_p50_ms"]),
                            "node_inference_p50_ms": float(diag["inference_p50_ms"]),
                            "node_publish_p50_ms": float(diag["publish_p50_ms"]),
                            "overhead_inside_node_p50_ms": float(diag["node_overhead_p50_ms"]),
                            "load_average_after": load()}
                finally:
                    runtime.close()
            else:
                # the writer keeps every frame (reliable, history >= frames): none is lost while the node's full
                # queue pushes back
                with PerceptionClient("/bench", context=ctx, topics=all_topics,
                                      input_depth=args.sustained_frames + 10) as client:
                    client.wait_for_node(60)
                    prime(client, hw, all_topics, timeout=120.0)
                    res["sustained"] = sustained(client, hw, args.sustained_frames, args.sustained_rate, all_topics)
                    res["sustained"]["topics"] = all_topics
                    res["sustained"]["load_average_after"] = load()
        finally:
            node.stop()
            rclpy.try_shutdown(context=ctx)
    return res


def prime(client: Any, hw: tuple[int, int], topics: list[str], tries: int = 10, timeout: float = 30.0) -> None:
    """Publish frames until the node answers one: the node's input is best-effort, and a frame sent while discovery
    is still one-sided (our writer matched its reader, not yet the other way round) is lost for good."""
    rgb, k = camera_image(hw, 4), intrinsics(hw)
    for _ in range(tries):
        h = client.publish(rgb, k=k)
        try:
            client.wait_for(h, topics=topics, timeout=timeout / tries)
            client.clear()
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"the node answered none of {tries} frames within {timeout} s")


def _start_node(params: Path, domain: int, folder: Path, tag: str) -> Any:
    import bench_node

    node = object.__new__(bench_node.Node)
    node.log_path = folder / f"node_{tag}_{params.stem}.log"
    node._log = open(node.log_path, "wb")
    node.proc = subprocess.Popen(
        [sys.executable, "-m", "mtlsi_ros.perception_node", "--ros-args", "--params-file",
         str(REPO / "config" / "perception.yaml"), "--params-file", str(params), "-r", "__ns:=/bench"],
        stdout=node._log, stderr=subprocess.STDOUT, env=bench_node.ros_env(domain), cwd=str(REPO),
        start_new_session=True)
    return node


def sustained(client: Any, hw: tuple[int, int], frames: int, rate: float, topics: list[str]) -> dict:
    """``frames`` images published at ``rate`` Hz (reliable; the node's queue pushes back when full); frames/s from
    the first publish to the last frame's last output, and each frame's latency."""
    from mtlsi_ros.client import stamp_to_ns

    rgb, k = camera_image(hw, 3), intrinsics(hw)
    headers = []
    t0 = time.monotonic()
    for i in range(frames):
        headers.append(client.publish(rgb, k=k))
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    lat, last = [], t0
    for h in headers:
        outs = client.wait_for(h, topics=topics, timeout=120)
        t = max(r.t for r in outs.values())
        lat.append(t - client.published[("", stamp_to_ns(h.stamp))])
        last = max(last, t)
    a = np.asarray(lat) * 1000.0
    return {"frames": frames, "publish_rate_hz": rate, "answered": len(lat), "seconds": last - t0,
            "frames_per_s": len(lat) / (last - t0),
            "latency_p50_ms": float(np.percentile(a, 50)), "latency_p99_ms": float(np.percentile(a, 99))}


# ------------------------------------------------------------------------------------------------ report

def print_case(case: str, r: dict) -> None:
    st = r.get("stages")
    if st:
        print(f"\n== {case}: stages in one process ({st.get('stat', 'median')} ms; load {st['load_average'][0]})")
        for part in ("input", "runtime"):
            for name, v in st[part].items():
                print(f"  {part:8s} {name:52s} {v:8.2f}")
        print(f"  {'topic':22s} {'enc':6s} {'MiB':>5s} {'build':>7s} {'serial.':>7s} {'deser.':>7s} {'to_np':>7s}")
        for t, row in st["topics"].items():
            print(f"  {t:22s} {row['encoding']:6s} {row['mib']:5.2f} {row['build_ms']:7.2f} {row['serialize_ms']:7.2f} "
                  f"{row['deserialize_ms']:7.2f} {row['to_numpy_ms']:7.2f}")
        print("  Image.data from a numpy array of a 32FC3 image, each way (ms):")
        for name, v in st["data_assignment_ms"].items():
            print(f"    {name:56s} {v:9.2f}")
    d = r.get("dds")
    if d:
        print(f"\n== {case}: DDS round trip through an echo process (p50 / p99 ms; load {d['load_average'][0]})")
        for name, v in d["round_trip"].items():
            extra = d["per_topic_extra_p50_ms"].get(name)
            print(f"  {name:22s} {v['p50_ms']:7.2f} / {v['p99_ms']:7.2f}" +
                  ("" if extra is None else f"   (+{extra:.2f} over the image alone)"))
    if "dds_error" in r:
        print(f"\n== {case}: DDS part failed: {r['dds_error']}")
    n = r.get("node")
    if n:
        print(f"\n== {case}: node ({n['backend']}, {Path(n['model']).name}; load {n['load_average'][0]})")
        for name, what in (("latency", "main outputs"), ("latency_with_colour", "outputs incl. colour")):
            lat = n.get(name)
            if lat:
                print(f"  image in -> last of the {what}: p50 {lat['end_to_end']['p50_ms']:.1f}, p99 "
                      f"{lat['end_to_end']['p99_ms']:.1f} ms; model only (infer) p50 "
                      f"{lat['model_only']['p50_ms']:.1f} ms; overhead e2e - model "
                      f"{lat['overhead_end_to_end_p50_ms']:.1f}"
                      f" ms (paired {lat['overhead_end_to_end_paired_p50_ms']:.1f}); inside node "
                      f"{lat['overhead_inside_node_p50_ms']:.1f} ms (publish {lat['node_publish_p50_ms']:.1f})")
        s = n.get("sustained")
        if s:
            print(f"  sustained (process_every_frame): {s['frames_per_s']:.1f} frames/s, {s['answered']}/{s['frames']} "
                  f"answered, latency p50 {s['latency_p50_ms']:.1f} ms")
    if "node_error" in r:
        print(f"\n== {case}: node part failed: {r['node_error']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["448x576", "480x640"], help="camera image sizes HxW")
    ap.add_argument("--reps", type=int, default=30, help="calls per in-process stage (median)")
    ap.add_argument("--frames", type=int, default=30, help="frames per DDS experiment")
    ap.add_argument("--model", default="shipped", help="'shipped' (the packaged model) or a model file")
    ap.add_argument("--backend", default="auto",
                    help="the node's and the in-process runtime's (default: auto, as the node's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-dds", action="store_true", help="skip the two-process DDS part")
    ap.add_argument("--node", action="store_true", help="also run the node itself (latency and sustained rate)")
    ap.add_argument("--node-frames", type=int, default=30)
    ap.add_argument("--sustained-frames", type=int, default=60)
    ap.add_argument("--sustained-rate", type=float, default=30.0, help="publish rate of the sustained run, Hz")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="statistic of the in-process stage timings (min: steadier on a loaded machine)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--role", default="main", choices=["main", "echo"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost_shm.xml"))
    cases = [parse_hw(c) for c in args.cases]
    STAT["fn"] = np.min if args.stat == "min" else np.median
    if args.role == "echo":
        return echo_main(cases[0], model_path(args.model), args.backend, args.device)

    from mtlsi_core.runtime import create_runtime
    from mtlsi_core.tools.machine import describe
    from mtlsi_ros.client import default_topics

    model = model_path(args.model)
    folder = Path(tempfile.mkdtemp(prefix="mtlsi_bench_transport_"))
    runtime = create_runtime(args.backend, model, device=args.device, precision="fp32")
    topics_all = default_topics(runtime.dataset)
    main_topics = default_topics(runtime.dataset, color=False)
    results: dict[str, dict] = {}
    try:
        for hw in cases:
            case = f"{hw[0]}x{hw[1]}"
            r: dict[str, Any] = {"image_hw": list(hw), "network_hw": list(runtime.input_size)}
            r["stages"] = stages(hw, runtime, args.reps)
            if not args.no_dds:
                try:
                    r["dds"] = dds(hw, args, topics_all, main_topics, folder)
                except Exception as e:  # noqa: BLE001 - recorded; the other parts go on
                    r["dds_error"] = f"{type(e).__name__}: {e}"
            if args.node:
                try:
                    r["node"] = node_part(hw, args, folder, main_topics, topics_all)
                except Exception as e:  # noqa: BLE001
                    r["node_error"] = f"{type(e).__name__}: {e}"
            results[case] = r
            print_case(case, r)
    finally:
        runtime.close()
    out = {"benchmark": "bench_transport",
           "machine": describe(args.device, rmw=os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
                               fastdds_profile=os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")),
           "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "model": model, "backend": args.backend,
           "results": results, "load_average_at_end": load(),
           "targets": {"node overhead beyond model-only at 448x576 (end to end)": "<= 15 ms",
                       "shipped model, 480x640, image in -> last output p50": "<= 50 ms",
                       "sustained with process_every_frame at 480x640": ">= 20 frames/s"}}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"transport_{args.device}_{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d_%H%M')}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)
    print(f"\nwrote {path} (process logs in {folder})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
