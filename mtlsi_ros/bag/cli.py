"""``mtlsi-bag``: rosbag2 tools of the perception node (sqlite3 and mcap, via the ``rosbags`` library).

    mtlsi-bag make   --out BAG (--dataset-root DIR [--split val] | --images DIR [--camera-info YAML]) [--rate 10]
    mtlsi-bag make   --out BAG --sequence SEED [--kind handheld|ground] [--profile nyud|basic] [--frames 30]
    mtlsi-bag infer  --in BAG --out BAG [--model PATH] [--backend auto|torch|onnx|tensorrt] [--params FILE ...]
    mtlsi-bag eval   --bag BAG [--gt-bag BAG | --dataset-root DIR --split S] [--json OUT]
    mtlsi-bag play   --bag BAG [--rate 1.0] [--clock] [--wait-for TOPIC ...]
    mtlsi-bag record --out BAG --topics TOPIC ... [--stamp receive|header] [--duration S]
    mtlsi-bag map    --bag BAG --out DIR [--poses BAG] [--scene NPZ] [--voxel-size 0.04] [--depth-max 6]

Output bags: a name ending in .mcap or .db3 is a single file of that storage, any other name a rosbag2 directory
(``--storage mcap|sqlite3``, default mcap); they appear only once complete. make / infer / eval need no DDS.

Exit status: 0 done, 2 bad input (a one-line error naming the file, topic or message), 130 interrupted, 1 other.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from typing import Any, Callable, Sequence

import yaml

from mtlsi_ros.bag.defaults import (BACKENDS_HELP, COMPRESSED_FORMATS, DEFAULT_CAMERA, DEFAULT_FRAME_ID,
                                   DEFAULT_START_S)
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.storage import STORAGES

PROG = "mtlsi-bag"


# ---------------------------------------------------------------------------------------------- parser


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", choices=STORAGES, help="storage of a directory bag (default mcap); a .mcap / .db3 "
                                                       "output name picks the storage itself")
    p.add_argument("--force", action="store_true", help="replace an existing output bag (once the new one is done)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].replace("``", ""),
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mk = sub.add_parser("make", help="a bag from a dataset split or an image folder")
    src = mk.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset-root", metavar="DIR", help="NYUD-MT layout folder (NYUD-MT, mtlsi-synth sets)")
    src.add_argument("--images", metavar="DIR", help="a folder of .png / .jpg images (no ground truth)")
    src.add_argument("--sequence", type=int, metavar="SEED", help="a synthetic camera trajectory through one room: "
                     "/tf poses, images, camera_info, ground truth, and <out>.scene.npz beside the bag")
    mk.add_argument("--kind", "--trajectory", dest="trajectory", default="handheld", choices=("handheld", "ground"),
                    help="--sequence: carrier of the camera (handheld 1.2-1.7 m, /tf map -> camera; ground: a robot, "
                         "camera 0.3-0.6 m high on a fixed mount, /tf map -> base_link + /tf_static base_link -> "
                         "camera)")
    mk.add_argument("--profile", default="nyud", choices=("nyud", "basic"),
                    help="--sequence: rooms and rendering of mtlsi-synth's profile (nyud: the rooms the shipped model "
                         "was trained on, ~1 s a frame at 240x320; basic: the original generator's)")
    mk.add_argument("--frames", type=int, default=30, help="--sequence: number of frames (30)")
    mk.add_argument("--size", default="240x320", help="--sequence: HxW of the frames (240x320)")
    mk.add_argument("--split", default="val", help="dataset split (gt_sets/<split>.txt), default val")
    mk.add_argument("--dataset", help="registry dataset of the folder (default: synth with camera.json, else nyud)")
    mk.add_argument("--tasks", help="comma-separated ground-truth tasks (default: every annotated task)")
    mk.add_argument("--no-gt", action="store_true", help="write no ground-truth topics")
    mk.add_argument("--camera-info", metavar="YAML", help="--images: ROS calibration YAML or camera.json")
    mk.add_argument("--out", required=True, help="output bag")
    mk.add_argument("--camera", default=DEFAULT_CAMERA, help=f"camera namespace of the topics ({DEFAULT_CAMERA})")
    mk.add_argument("--rate", type=float, default=10.0, help="frames per second of the stamps (10)")
    mk.add_argument("--start-time", type=float, default=DEFAULT_START_S,
                    help=f"stamp of the first frame, seconds since the epoch ({DEFAULT_START_S:.0f})")
    mk.add_argument("--frame-id", default=DEFAULT_FRAME_ID, help=f"header frame_id ({DEFAULT_FRAME_ID})")
    mk.add_argument("--compressed", nargs="?", const="jpeg", choices=COMPRESSED_FORMATS,
                    help="write sensor_msgs/CompressedImage on <camera>/image/compressed (jpeg, or png: lossless)")
    mk.add_argument("--jpeg-quality", type=int, default=95)
    mk.add_argument("--max-frames", type=int, help="the first N frames only")
    _add_output(mk)

    inf = sub.add_parser("infer", help="run the network on every frame of a bag (the node's offline twin)")
    inf.add_argument("--in", dest="inp", required=True, metavar="BAG", help="input bag")
    inf.add_argument("--out", required=True, metavar="BAG", help="output bag")
    inf.add_argument("--params", action="append", default=[], metavar="YAML",
                     help="node params file (repeatable, later wins), e.g. config/perception.yaml; "
                          "default: the node's defaults")
    inf.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                     help="node parameter override (YAML value; repeatable)")
    inf.add_argument("--node-name", default="/perception", help="fully qualified node name params files are "
                                                                "matched against (/perception)")
    inf.add_argument("--model", help="model file (default: params model_path, else the packaged checkpoint)")
    inf.add_argument("--backend", help=f"runtime backend: {BACKENDS_HELP} (overrides the params)")
    inf.add_argument("--device", help="cpu, cuda, cuda:N (overrides the params)")
    inf.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"),
                     help="overrides the params (int8: ONNX Runtime on the CPU)")
    inf.add_argument("--image-topic", help="input image topic (default: the bag's only .../image or "
                                           ".../image/compressed)")
    inf.add_argument("--camera-info-topic", help="default: <camera namespace>/camera_info")
    inf.add_argument("--namespace", help="namespace of the outputs (default: the image topic's camera namespace)")
    inf.add_argument("--batch", type=int, default=1, help="frames per network call (1: identical to the node)")
    inf.add_argument("--no-copy-input", action="store_true", help="do not copy the input topics to the output")
    _add_output(inf)

    ev = sub.add_parser("eval", help="metrics of a bag's output topics (the table and JSON of mtlsi-eval)")
    ev.add_argument("--bag", required=True, help="bag with the node's output topics")
    gt = ev.add_mutually_exclusive_group()
    gt.add_argument("--gt-bag", help="ground-truth bag (<camera>/gt/... topics); default: --bag itself")
    gt.add_argument("--dataset-root", metavar="DIR", help="ground truth from a dataset folder (NYUD-MT layout)")
    ev.add_argument("--split", default="val", help="with --dataset-root (val)")
    ev.add_argument("--dataset", help="registry dataset of the metrics (default: recorded by make, else nyud)")
    ev.add_argument("--namespace", help="namespace of the output topics (default: found from the topics)")
    ev.add_argument("--gt-namespace", help="namespace of the ground-truth topics (default: <namespace>/gt)")
    ev.add_argument("--tasks", help="comma-separated tasks (default: all with predictions and ground truth)")
    ev.add_argument("--max-frames", type=int, help="the first N frames only")
    ev.add_argument("--name", help="Method column of the table (default: the bag's name)")
    ev.add_argument("--json", help="results file (written atomically)")

    pl = sub.add_parser("play", help="publish a bag's messages on their topics")
    pl.add_argument("--bag", required=True)
    pl.add_argument("--rate", type=float, default=1.0, help="speed factor (1.0 = as recorded)")
    pl.add_argument("--clock", action="store_true", help="publish /clock (rosgraph_msgs/Clock) with the bag time")
    pl.add_argument("--clock-hz", type=float, default=20.0, help="/clock messages per second between messages")
    pl.add_argument("--topics", nargs="+", help="play these topics only")
    pl.add_argument("--queue", type=int, default=100, help="publisher history depth (reliable)")
    pl.add_argument("--wait-for", nargs="+", default=[], metavar="TOPIC",
                    help="wait until these played topics have a subscriber before starting")
    pl.add_argument("--wait-timeout", type=float, default=60.0)

    mp = sub.add_parser("map", help="semantic 3D map (Open3D TSDF) of a bag's depth and segmentation, scored")
    mp.add_argument("--bag", required=True, help="bag with the node's outputs (mtlsi-bag infer or a recording)")
    mp.add_argument("--out", required=True, metavar="DIR", help="output folder (meshes, labelled points, pictures, "
                                                               "map.json; appears once complete)")
    mp.add_argument("--poses", metavar="BAG", help="bag with the /tf (and /tf_static) poses (default: --bag)")
    mp.add_argument("--scene", metavar="NPZ", help="ground-truth scene file (default: <poses bag>.scene.npz, as "
                                                   "make --sequence writes it; none: maps unscored)")
    mp.add_argument("--namespace", help="namespace of the output topics (default: found from the topics)")
    mp.add_argument("--gt-namespace", help="namespace of the ground-truth topics (default: <namespace>/gt)")
    mp.add_argument("--map-frame", default="map", help="fixed frame of the map: camera poses are looked up from it along "
                                                     "the /tf and /tf_static chains (map)")
    mp.add_argument("--voxel-size", type=float, default=0.04, help="TSDF voxel (m, 0.04)")
    mp.add_argument("--depth-max", type=float, default=6.0, help="depth integrated up to (m, 6)")
    mp.add_argument("--no-gt-map", action="store_true", help="do not build the ground-truth upper-bound map")
    mp.add_argument("--max-frames", type=int, help="the first N frames only")
    mp.add_argument("--force", action="store_true", help="replace an existing output folder")

    rc = sub.add_parser("record", help="record topics to a bag")
    rc.add_argument("--out", required=True)
    rc.add_argument("--topics", nargs="+", required=True, help="absolute topic names")
    rc.add_argument("--stamp", choices=("receive", "header"), default="receive",
                    help="log time of a message: its receive time or its header stamp")
    rc.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    rc.add_argument("--count", type=int, help="stop once every topic has this many messages")
    _add_output(rc)
    return ap


# ---------------------------------------------------------------------------------------------- commands


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _cmd_make(a: argparse.Namespace) -> int:
    from mtlsi_ros.bag.make import MakeOptions, make_bag
    from mtlsi_ros.bag.sources import dataset_source, folder_source

    if a.max_frames is not None and a.max_frames < 1:
        raise BagError(f"--max-frames must be >= 1, got {a.max_frames}")
    if a.sequence is not None:
        return _make_sequence(a)
    if a.images is not None:
        if a.dataset or a.tasks:
            raise BagError("--dataset / --tasks apply to --dataset-root, not to --images")
        source = folder_source(a.images, a.camera_info, a.max_frames)
    else:
        if a.camera_info:
            raise BagError("--camera-info applies to --images; a dataset folder has its own intrinsics")
        tasks = [] if a.no_gt else _csv(a.tasks)
        source = dataset_source(a.dataset_root, a.split, a.dataset, tasks, a.max_frames)
    opts = MakeOptions(camera=a.camera, rate=a.rate, start_s=a.start_time, frame_id=a.frame_id,
                       compressed=a.compressed, jpeg_quality=a.jpeg_quality, storage=a.storage, overwrite=a.force,
                       progress=sys.stderr.isatty())
    s = make_bag(a.out, source, opts)
    print(f"wrote {s['frames']} frames to {s['out']} in {s['seconds']:.1f} s: "
          + ", ".join(f"{t} ({n})" for t, n in s["topics"].items()))
    return 0


def _make_sequence(a: argparse.Namespace) -> int:
    from mtlsi_core.data.sequence import SequenceSpec
    from mtlsi_ros.bag.make import MakeOptions, make_sequence_bag

    if a.dataset or a.tasks or a.camera_info or a.compressed or a.no_gt:
        raise BagError("--dataset / --tasks / --camera-info / --compressed / --no-gt do not apply to --sequence")
    try:
        h, w = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        raise BagError(f"--size must be HxW (e.g. 240x320), got {a.size!r}") from None
    try:
        spec = SequenceSpec(a.sequence, a.trajectory, a.frames, a.rate, (h, w), a.profile).check()
    except ValueError as e:
        raise BagError(f"--sequence: {e}") from None
    opts = MakeOptions(camera=a.camera, rate=a.rate, start_s=a.start_time, frame_id=a.frame_id, storage=a.storage,
                       overwrite=a.force, progress=sys.stderr.isatty())
    s = make_sequence_bag(a.out, spec, opts)
    m = s["mount"]
    mount = "" if m is None else (f", camera mount {m['height_m']:.3f} m high, pitch {m['pitch_deg']:+.2f} deg (down), "
                                  f"roll {m['roll_deg']:+.2f} deg, {m['forward_m']:.3f} m ahead of base_link")
    print(f"wrote {s['frames']} frames of a {spec.kind} trajectory (seed {spec.seed}, {spec.profile} "
          f"{s['room_type']}{mount}) to {s['out']} in {s['seconds']:.1f} s, scene file {s['scene_file']}: "
          + ", ".join(f"{t} ({n})" for t, n in s["topics"].items()))
    return 0


def _cmd_map(a: argparse.Namespace) -> int:
    from mtlsi_ros.bag.map import MapOptions, format_map_summary, run_map

    opts = MapOptions(namespace=a.namespace, gt_namespace=a.gt_namespace, map_frame=a.map_frame,
                      voxel_size=a.voxel_size, depth_max=a.depth_max, gt_map=not a.no_gt_map,
                      max_frames=a.max_frames, overwrite=a.force)
    doc = run_map(a.bag, a.out, poses_bag=a.poses, scene=a.scene, options=opts)
    print(format_map_summary(doc))
    print(f"map of {a.bag} written to {doc['out']} in {doc['seconds']:.1f} s")
    return 0


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BagError(f"--set {item!r}: expected NAME=VALUE")
        try:
            out[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[name.strip()] = value
    return out


def _cmd_infer(a: argparse.Namespace) -> int:
    from mtlsi_ros.bag.infer import InferOptions, run_infer
    from mtlsi_ros.bag.node_params import load_node_params

    overrides = _parse_overrides(a.overrides)
    for key, val in (("backend", a.backend), ("device", a.device), ("precision", a.precision)):
        if val is not None:
            overrides[key] = val
    params = load_node_params(a.params, overrides, node_fqn=a.node_name)
    opts = InferOptions(image_topic=a.image_topic, camera_info_topic=a.camera_info_topic, namespace=a.namespace,
                        model_path=a.model, batch=a.batch, copy_input=not a.no_copy_input, storage=a.storage,
                        overwrite=a.force, progress=sys.stderr.isatty())
    s = run_infer(a.inp, a.out, params, opts)
    for note in s.notes:
        print(f"note: {note}", file=sys.stderr)
    dropped = f", dropped {sum(s.dropped.values())} ({s.dropped})" if s.dropped else ""
    print(f"{s.processed}/{s.frames} frames of {s.image_topic} through {s.model} in {s.seconds:.1f} s "
          f"(network {s.infer_seconds:.1f} s){dropped}; outputs under {s.namespace} written to {a.out}: "
          + ", ".join(f"{t} ({n})" for t, n in s.topics.items()))
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    from mtlsi_ros.bag.evaluate import EvalOptions, run_bag_eval

    opts = EvalOptions(namespace=a.namespace, gt_namespace=a.gt_namespace, dataset=a.dataset, tasks=_csv(a.tasks),
                       max_frames=a.max_frames, name=a.name, progress=sys.stderr.isatty())
    doc = run_bag_eval(a.bag, gt_bag=a.gt_bag, dataset_root=a.dataset_root, split=a.split, options=opts,
                       json_out=a.json)
    print(doc["table"])
    un = doc["unmatched"]
    extra = (f"; unpaired: {un['predictions']} prediction / {un['ground_truth']} ground-truth frame(s)"
             if un["predictions"] or un["ground_truth"] else "")
    print(f"{doc['num_frames']} frames of {doc['bag']} against {doc['ground_truth']} in {doc['seconds']:.1f} s"
          f"{extra}" + (f"; results written to {a.json}" if a.json else ""))
    return 0


def _ros_session(argv: Sequence[str]) -> Any:
    """rclpy initialised with the ROS arguments of ``argv`` (after --ros-args); returns the context."""
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    ctx = Context()
    # our own signal handling: Ctrl-C ends a recording cleanly (the bag is finished), or a playback
    rclpy.init(args=[PROG, *argv], context=ctx, signal_handler_options=SignalHandlerOptions.NO)
    return ctx


def _cmd_play(a: argparse.Namespace, ros_argv: Sequence[str]) -> int:
    import rclpy

    from mtlsi_ros.bag.live import BagPlayer

    ctx = _ros_session(ros_argv)
    try:
        with BagPlayer(a.bag, context=ctx, rate=a.rate, clock=a.clock, clock_hz=a.clock_hz, topics=a.topics,
                       queue=a.queue) as player:
            if a.wait_for:
                try:
                    player.wait_for_subscribers(a.wait_for, a.wait_timeout)
                except TimeoutError as e:
                    raise BagError(str(e)) from None
            s = player.play()
            time.sleep(0.5)  # let reliable writers hand over the last messages before the node goes away
        print(f"played {sum(s['published'].values())} messages of {a.bag} in {s['seconds']:.1f} s")
    finally:
        rclpy.try_shutdown(context=ctx)
    return 0


def _cmd_record(a: argparse.Namespace, ros_argv: Sequence[str]) -> int:
    import rclpy

    from mtlsi_ros.bag.live import BagRecorder

    if a.count is not None and a.count < 1:
        raise BagError(f"--count must be >= 1, got {a.count}")
    ctx = _ros_session(ros_argv)
    rec = BagRecorder(a.out, a.topics, context=ctx, stamp=a.stamp, storage=a.storage, overwrite=a.force)
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        t0 = time.monotonic()
        print(f"recording {', '.join(a.topics)} to {a.out} (Ctrl-C stops)", file=sys.stderr)
        while not stop["flag"]:
            if a.duration is not None and time.monotonic() - t0 >= a.duration:
                break
            if a.count is not None and all(rec.counts[t] >= a.count for t in rec.topics):
                break
            time.sleep(0.05)
        path = rec.close()
    except BaseException:
        rec.abort()
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        rclpy.try_shutdown(context=ctx)
    for err in rec.errors:
        print(f"warning: {err}", file=sys.stderr)
    print(f"recorded {json.dumps(rec.counts)} to {path}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"make": _cmd_make, "infer": _cmd_infer,
                                                            "eval": _cmd_eval, "map": _cmd_map}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_argv: list[str] = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_argv = argv[:i], argv[i:]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{PROG} {args.command}: %(message)s")
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        if args.command == "play":
            return _cmd_play(args, ros_argv)
        return _cmd_record(args, ros_argv)
    except BagError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted" + (" (no output bag was completed)" if args.command in
                                                         ("make", "infer") else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
