"""``mtlsi-bag make``: a bag from a dataset split or an image folder.

Per frame i, all stamped ``start + i / rate`` (header stamp = bag log time), in this order:

    <camera>/camera_info              sensor_msgs/CameraInfo (when the intrinsics are known)
    <camera>/image                    sensor_msgs/Image rgb8, or with ``compressed``
    <camera>/image/compressed         sensor_msgs/CompressedImage (jpeg or png), as image_transport names it
    <camera>/gt/<task topic>          ground truth (``mtlsi_ros.bag.groundtruth``: encodings and invalid values)

A directory bag records in its ``custom_data``: ``mtlsi.source``, ``mtlsi.dataset``, ``mtlsi.split`` and
``mtlsi.frames`` (JSON ``[[stamp_ns, sample id], ...]``), which ``mtlsi-bag eval --dataset-root`` uses to pair
frames with samples.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from tqdm import tqdm

from mtlsi_ros.bag.defaults import COMPRESSED_FORMATS, DEFAULT_CAMERA, DEFAULT_FRAME_ID, DEFAULT_START_S
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.groundtruth import encode_gt, gt_topic
from mtlsi_ros.bag.sources import Source
from mtlsi_ros.bag.storage import BagWriter
from mtlsi_ros.conversions import numpy_to_image, rgb_to_compressed



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


def camera_topics(camera: str, compressed: bool) -> tuple[str, str]:
    """(image topic, camera_info topic) of a camera namespace."""
    base = "/" + camera.strip("/") if camera.strip("/") else ""
    return f"{base}/image" + ("/compressed" if compressed else ""), f"{base}/camera_info"


def stamp_ns(start_s: float, rate: float, index: int) -> int:
    return int(round(start_s * 1e9)) + int(round(index * 1e9 / rate))


def _header(ns: int, frame_id: str) -> Header:
    return Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=frame_id)


def make_bag(out: str | os.PathLike, source: Source, options: MakeOptions = MakeOptions()) -> dict[str, Any]:
    """Write ``source``'s frames to the bag ``out``; returns a summary (topics and counts, seconds)."""
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


__all__ = ["COMPRESSED_FORMATS", "DEFAULT_CAMERA", "DEFAULT_FRAME_ID", "DEFAULT_START_S", "MakeOptions",
           "camera_topics", "make_bag", "stamp_ns"]
