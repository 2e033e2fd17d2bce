"""``mtlsi-bag make``: a bag from a dataset split or an image folder.

Per frame i, all stamped ``start + i / rate`` (header stamp = bag log time), in this order:

    <camera>/camera_info              sensor_msgs/CameraInfo (when the intrinsics are known)
    <camera>/image                    sensor_msgs/Image rgb8, or with ``compressed``
    <camera>/image/compressed         sensor_msgs/CompressedImage (jpeg or png), as image_transport names it
    <camera>/gt/<task topic>          ground truth (``mtlsi_ros.bag.groundtruth``: encodings and invalid values)

A directory bag records in its ``custom_data``: ``mtlsi.source``, ``mtlsi.dataset``, ``mtlsi.split`` and
``mtlsi.frames`` (JSON ``[[stamp_ns, sample id], ...]``), which ``mtlsi-bag eval --dataset-root`` uses to pair
frames with samples.

Sequences (``make_sequence_bag``, ``mtlsi-bag make --sequence SEED [--kind handheld|ground] [--profile nyud|basic]``):
the frames of one camera trajectory through one synthetic room (``mtlsi_core.data.sequence``), each preceded by its
pose on ``/tf`` (tf2_msgs/msg/TFMessage, at the frame's stamp; ``bag.transforms``):

    handheld   ``map`` -> the header's frame_id (the optical frame): T_map_cam
    ground     ``map`` -> ``base_link`` (the robot's base on the floor, z = 0): T_map_base, and once, before the
               first frame, on ``/tf_static`` (latched) ``base_link`` -> the optical frame: the camera's fixed mount
               T_base_cam, so that T_map_cam = T_map_base @ T_base_cam is found along the frame tree as tf2 does

The mount is also in a directory bag's ``custom_data`` (``mtlsi.mount``: JSON height_m, pitch_deg, roll_deg,
forward_m, in ``mtlsi_core.anchoring.CameraMount``'s signs: pitch > 0 looks down, roll > 0 lowers the image's right
side; see ``sequence.Mount``) and in the scene file. The ground-truth surface the sequence observes
(``reference_cloud``: points, labels, the nearest depth each was seen at) and the sequence's spec (profile, kind, room
type, the mount), intrinsics, poses (T_map_cam; ``base_poses`` T_map_base for ground) and stamps go beside the bag,
``<bag name without .mcap/.db3>.scene.npz`` (``scene_file``), written atomically after the bag; ``mtlsi-bag map``
scores maps against it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from tqdm import tqdm

from mtlsi_ros.bag.defaults import COMPRESSED_FORMATS, DEFAULT_CAMERA, DEFAULT_FRAME_ID, DEFAULT_START_S
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.groundtruth import encode_gt, gt_topic
from mtlsi_ros.bag.msgtypes import TF
from mtlsi_ros.bag.sources import Calibration, Source, SourceFrame
from mtlsi_ros.bag.storage import BagWriter
from mtlsi_ros.bag.transforms import DEFAULT_MAP_FRAME, TF_STATIC_TOPIC, TF_TOPIC, tf_message_cdr
from mtlsi_ros.conversions import numpy_to_image, rgb_to_compressed

DEFAULT_BASE_FRAME = "base_link"


@dataclass(frozen=True)
class MakeOptions:
    camera: str = DEFAULT_CAMERA  # topic namespace of the camera
    rate: float = 10.0  # frames per second of the stamps
    start_s: float = DEFAULT_START_S  # stamp of the first frame, seconds
    frame_id: str = DEFAULT_FRAME_ID
    compressed: str | None = None  # None: raw rgb8; "jpeg" / "png": CompressedImage
    jpeg_quality: int = 95
    storage: str | None = None
    overwrite: bool = False
    progress: bool = True
    map_frame: str = DEFAULT_MAP_FRAME  # parent frame of the poses on /tf (sequences)
    base_frame: str = DEFAULT_BASE_FRAME  # ground-robot sequences: the base's frame (/tf child, /tf_static parent)


def camera_topics(camera: str, compressed: bool) -> tuple[str, str]:
    """(image topic, camera_info topic) of a camera namespace."""
    base = "/" + camera.strip("/") if camera.strip("/") else ""
    return f"{base}/image" + ("/compressed" if compressed else ""), f"{base}/camera_info"


def stamp_ns(start_s: float, rate: float, index: int) -> int:
    return int(round(start_s * 1e9)) + int(round(index * 1e9 / rate))


def _header(ns: int, frame_id: str) -> Header:
    return Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=frame_id)


def make_bag(out: str | os.PathLike, source: Source, options: MakeOptions = MakeOptions(),
             poses: Sequence[np.ndarray] | None = None, *, pose_frame: str | None = None,
             static: Sequence[tuple[str, str, np.ndarray]] = ()) -> dict[str, Any]:
    """Write ``source``'s frames to the bag ``out``; returns a summary (topics and counts, seconds). ``poses``: one
    4x4 per frame, written on /tf before the frame's messages: ``map_frame`` -> ``pose_frame`` (default the frames'
    frame_id: T_map_cam). ``static``: (parent, child, T_parent_child) transforms written once on /tf_static at the
    first frame's stamp, before it (a robot's fixed mount)."""
    o = options
    if not (o.rate > 0):
        raise BagError(f"--rate must be > 0 frames per second, got {o.rate}")
    if o.compressed is not None and o.compressed not in COMPRESSED_FORMATS:
        raise BagError(f"compressed format must be one of {', '.join(COMPRESSED_FORMATS)}, got {o.compressed!r}")
    if source.count < 1:
        raise BagError("no frames to write")
    image_topic, info_topic = camera_topics(o.camera, o.compressed is not None)
    custom = {f"mtlsi.{k}": v for k, v in source.info.items()}
    t0 = time.perf_counter()
    frames: list[list[Any]] = []
    with BagWriter(out, storage=o.storage, overwrite=o.overwrite, custom_data=custom) as bag:
        bar = tqdm(source.frames, total=source.count, desc="make", unit="frame", disable=not o.progress,
                   leave=False, dynamic_ncols=True)
        for i, frame in enumerate(bar):
            ns = stamp_ns(o.start_s, o.rate, i)
            header = _header(ns, o.frame_id)
            if i == 0:
                for parent, child, T in static:
                    bag.write(TF_STATIC_TOPIC, TF, ns, tf_message_cdr(ns, parent, child, T))
            if poses is not None:
                bag.write(TF_TOPIC, TF, ns, tf_message_cdr(ns, o.map_frame, pose_frame or o.frame_id, poses[i]))
            if frame.calibration is not None:
                bag.write_msg(info_topic, frame.calibration.to_msg(header), ns)
            if o.compressed is not None:
                msg = rgb_to_compressed(frame.rgb, header, o.compressed, o.jpeg_quality)
            else:
                msg = numpy_to_image(frame.rgb, "rgb8", header)
            bag.write_msg(image_topic, msg, ns)
            for task in source.tasks:
                bag.write_msg(gt_topic(o.camera, task), encode_gt(task, source.dataset, frame.gt[task], header), ns)
            frames.append([ns, frame.name])
        bag.set_custom_data("mtlsi.frames", json.dumps(frames))  # written with the metadata at close
        counts = dict(bag.counts)
    return {"out": str(Path(out)), "frames": len(frames), "topics": counts, "image_topic": image_topic,
            "camera_info_topic": info_topic, "tasks": list(source.tasks), "dataset": source.dataset,
            "seconds": round(time.perf_counter() - t0, 3)}


def scene_file(bag: str | os.PathLike) -> Path:
    """The ground-truth scene file beside a sequence bag: ``seq.mcap`` / ``seq.db3`` / ``seq/`` -> ``seq.scene.npz``."""
    p = Path(bag)
    name = p.name[: -len(p.suffix)] if p.suffix.lower() in (".mcap", ".db3") else p.name.rstrip("/")
    return p.parent / f"{name}.scene.npz"


def sequence_source(seq: Any) -> Source:
    """The frames of a ``CameraSequence`` with all four ground-truth tasks (dataset "synth")."""
    h, w = seq.spec.size
    calib = Calibration(w, h, tuple(float(v) for v in seq.K.reshape(-1)))

    def frames() -> Iterator[SourceFrame]:
        for i in range(len(seq)):
            f = seq.render(i)
            yield SourceFrame(f"{i:06d}", f.image, calib,
                              {"semseg": f.semseg, "depth": f.depth, "normals": f.normals, "edge": f.edge})

    sp = seq.spec
    info = {"source": f"mtlsi_core.data.sequence seed {sp.seed} ({sp.profile} {seq.room_type}, {sp.kind})",
            "dataset": "synth", "split": "sequence", "intrinsics": "Kinect-like (mtlsi-synth)"}
    if seq.mount is not None:
        info["mount"] = json.dumps(seq.mount.as_dict())
    return Source(frames(), len(seq), ("semseg", "depth", "normals", "edge"), "synth", info)


def make_sequence_bag(out: str | os.PathLike, spec: Any, options: MakeOptions = MakeOptions()) -> dict[str, Any]:
    """A sequence bag (module docstring) and its scene file; returns make_bag's summary plus ``scene_file``,
    ``profile``, ``room_type`` and ``mount`` (None for handheld)."""
    from mtlsi_core.checkpoint import atomic_write
    from mtlsi_core.data.sequence import make_sequence, reference_cloud

    from dataclasses import replace

    options = replace(options, rate=float(spec.rate))  # stamps follow the trajectory's frame rate
    try:
        seq = make_sequence(spec)
    except (ValueError, RuntimeError) as e:
        raise BagError(f"sequence: {e}") from None
    scene_path = scene_file(out)
    if scene_path.exists() and not options.overwrite:
        raise BagError(f"{scene_path} exists already; choose another output or allow overwriting (--force)")
    mount = seq.mount
    if mount is not None and options.base_frame.strip("/") in ("", options.frame_id.strip("/"),
                                                               options.map_frame.strip("/")):
        raise BagError(f"base frame {options.base_frame!r} must be named and differ from the camera frame "
                       f"{options.frame_id!r} and the map frame {options.map_frame!r}")
    ref = reference_cloud(seq)
    if mount is None:  # handheld: map -> camera
        summary = make_bag(out, sequence_source(seq), options, poses=list(seq.poses))
    else:  # ground robot: map -> base_link on /tf, base_link -> camera (the mount) on /tf_static
        summary = make_bag(out, sequence_source(seq), options, poses=list(seq.base_poses),
                           pose_frame=options.base_frame,
                           static=[(options.base_frame, options.frame_id, mount.T_base_cam())])
    stamps = np.array([stamp_ns(options.start_s, options.rate, i) for i in range(len(seq))], np.int64)
    meta = {"seed": seq.spec.seed, "kind": seq.spec.kind, "profile": seq.spec.profile, "room_type": seq.room_type,
            "frames": seq.spec.frames, "rate": seq.spec.rate, "size": list(seq.spec.size),
            "map_frame": options.map_frame, "frame_id": options.frame_id, "room": [float(v) for v in seq.scene.room],
            "mount": None if mount is None else mount.as_dict(),
            "base_frame": None if mount is None else options.base_frame}
    arrays = {"points": ref["points"], "labels": ref["labels"], "min_depth": ref["min_depth"], "K": seq.K,
              "poses": seq.poses, "stamps_ns": stamps, "spec": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    if seq.base_poses is not None:
        arrays["base_poses"] = seq.base_poses
    try:
        atomic_write(scene_path, lambda f: np.savez_compressed(f, **arrays))
    except BaseException:  # no bag without its scene file
        done = Path(summary["out"])
        if done.is_dir():
            shutil.rmtree(done, ignore_errors=True)
        else:
            done.unlink(missing_ok=True)
        raise
    summary.update(scene_file=str(scene_path), profile=seq.spec.profile, room_type=seq.room_type, mount=meta["mount"])
    return summary


def read_scene_file(path: str | os.PathLike) -> dict[str, Any]:
    """The arrays of a scene file and its spec (dict); BagError naming the file when it cannot be read."""
    p = Path(path)
    try:
        with np.load(p) as z:
            doc = {k: z[k] for k in z.files}
        doc["spec"] = json.loads(bytes(doc["spec"]).decode())
    except (OSError, ValueError, KeyError) as e:
        raise BagError(f"scene file {p}: cannot read it ({' '.join(str(e).split())})") from None
    for key in ("points", "labels", "min_depth"):
        if key not in doc:
            raise BagError(f"scene file {p}: no {key!r} array")
    return doc


__all__ = ["COMPRESSED_FORMATS", "DEFAULT_BASE_FRAME", "DEFAULT_CAMERA", "DEFAULT_FRAME_ID", "DEFAULT_START_S",
           "MakeOptions",
           "camera_topics", "make_bag", "make_sequence_bag", "read_scene_file", "scene_file", "sequence_source",
           "stamp_ns"]
