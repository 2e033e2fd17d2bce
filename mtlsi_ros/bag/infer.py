"""``mtlsi-bag infer``: bag in, bag out, every frame through the network: the offline twin of the perception node.

For the same bag and node parameters the output messages are the node's, byte for byte: the same conversions
(``mtlsi_ros.conversions.image_to_rgb`` / ``compressed_to_rgb`` with ``max_input_pixels``), the same runtime
arguments (``publishing.output_size_arg``, ``publishing.focal_length_px`` from the paired camera_info), the same
message builder (``publishing.build_messages``) and serialiser (rclpy). Outputs carry the input image's header and
are written at the input image's log time under ``<namespace>/<relative topic>`` (``segmentation``,
``segmentation/color``, ``depth``, ... ``output/camera_info``); the input topics are copied through unless
``copy_input`` is off.

camera_info pairing, as the node: the camera_info with the image's stamp, else the newest one logged before the
image, else none (no focal-length correction, no ``output/camera_info``). Frames the node would drop (bad
encoding, size, too many pixels, undecodable) are skipped and counted by the node's drop reasons.

Floor anchoring (``floor_anchoring`` and the mount parameters), as the node: one ``FloorAnchor`` for the bag's camera,
updated frame by frame in log order with the paired camera_info, scales each frame's depth before its messages are
built; the summary's notes give the final scale and how many frames ended in each anchor status.

``batch`` > 1 runs several frames per network call: faster, but batched float kernels may differ from the node's
one-frame batches in the last bits; keep 1 (the default) for outputs identical to the node's.
"""
from __future__ import annotations

import bisect
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.msgtypes import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE_TYPES
from mtlsi_ros.bag.storage import BagReader, BagWriter, RawMessage
from mtlsi_ros.conversions import InputError, compressed_to_rgb, image_to_rgb
from mtlsi_ros.floor_anchoring import anchor_frame, camera_anchors
from mtlsi_ros.params import NodeParams
from mtlsi_ros.publishing import (build_messages, build_plans, focal_length_px, load_palette, output_size_arg,
                                  output_topics)
from mtlsi_ros.runtime_setup import load_runtime as node_runtime
from mtlsi_ros.runtime_setup import model_file

log = logging.getLogger("mtlsi_ros.bag")


@dataclass(frozen=True)
class InferOptions:
    image_topic: str | None = None  # None: the bag's only <ns>/image or <ns>/image/compressed topic
    camera_info_topic: str | None = None  # None: <camera namespace>/camera_info
    namespace: str | None = None  # of the outputs; None: the image topic's camera namespace (as a node there)
    model_path: str | None = None  # None: params.model_path, else the node's packaged default
    batch: int = 1
    copy_input: bool = True
    storage: str | None = None
    overwrite: bool = False
    progress: bool = True


@dataclass
class _Frame:
    raw: RawMessage
    header: Any
    rgb: np.ndarray
    info: Any


@dataclass
class InferSummary:
    frames: int = 0  # image messages read
    processed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # node drop reason -> count
    topics: dict[str, int] = field(default_factory=dict)  # output topic -> messages
    seconds: float = 0.0
    infer_seconds: float = 0.0
    model: str = ""
    image_topic: str = ""
    namespace: str = ""
    notes: list[str] = field(default_factory=list)
    anchor_statuses: dict[str, int] = field(default_factory=dict)  # floor anchoring: frames per anchor status
    anchor_scale: float | None = None  # floor anchoring: the scale after the last frame


def camera_namespace(image_topic: str) -> str:
    """``/cam/image`` or ``/cam/image/compressed`` -> ``/cam``."""
    t = image_topic.rstrip("/")
    for suffix in ("/image/compressed", "/image"):
        if t.endswith(suffix):
            return t[: -len(suffix)]
    return t.rsplit("/", 1)[0]


def find_image_topic(bag: BagReader) -> str:
    """The bag's camera image topic: the only topic named ``.../image`` or ``.../image/compressed`` (any type)."""
    cands = sorted(t for t in bag.topics() if t.endswith("/image") or t.endswith("/image/compressed"))
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise BagError(f"{bag.path}: no image topic (a topic named .../image or .../image/compressed); "
                       f"{bag.describe_topics()}; name one with --image-topic")
    raise BagError(f"{bag.path}: several image topics ({', '.join(cands)}); choose one with --image-topic")


def _ns_join(namespace: str, topic: str) -> str:
    ns = namespace.strip("/")
    return f"/{ns}/{topic}" if ns else f"/{topic}"


class CameraInfoIndex:
    """The camera_info messages of a bag, looked up as the node pairs them (module docstring)."""

    def __init__(self, items: list[tuple[int, Any]]):
        items = sorted(items, key=lambda x: x[0])
        self._times = [t for t, _ in items]
        self._msgs = [m for _, m in items]
        self._by_stamp = {(int(m.header.stamp.sec), int(m.header.stamp.nanosec)): m for m in self._msgs}

    def __len__(self) -> int:
        return len(self._msgs)

    def lookup(self, header: Any, log_time: int) -> Any:
        key = (int(header.stamp.sec), int(header.stamp.nanosec))
        if key in self._by_stamp:
            return self._by_stamp[key]
        i = bisect.bisect_right(self._times, log_time)
        return self._msgs[i - 1] if i > 0 else None


def load_runtime(params: NodeParams, model_path: str | None) -> tuple[Any, Path]:
    """The runtime the node would build from ``params`` (``model_path`` overrides ``params.model_path``)."""
    path = model_file(params, model_path)
    try:
        return node_runtime(params, path, default_hint="give --model"), path
    except (OSError, RuntimeError) as e:
        raise BagError(str(e)) from None


def _decode(bag: BagReader, raw: RawMessage, params: NodeParams) -> tuple[Any, np.ndarray]:
    msg = bag.deserialize(raw)
    if raw.msgtype == COMPRESSED_IMAGE:
        return msg, compressed_to_rgb(msg, params.max_input_pixels)
    return msg, image_to_rgb(msg, params.max_input_pixels)


def run_infer(in_bag: str | os.PathLike, out_bag: str | os.PathLike, params: NodeParams,
              options: InferOptions = InferOptions(), runtime: Any = None) -> InferSummary:
    """Run the node's processing over every frame of ``in_bag`` and write ``out_bag`` (see the module docstring).
    ``runtime``: an already built runtime (else one is loaded from the parameters)."""
    o = options
    if o.batch < 1:
        raise BagError(f"--batch must be >= 1, got {o.batch}")
    if Path(in_bag).resolve() == Path(out_bag).resolve():
        raise BagError(f"{out_bag}: the output bag must differ from the input bag")
    summary = InferSummary()
    t_start = time.perf_counter()
    with BagReader(in_bag) as bag:
        image_topic = o.image_topic or find_image_topic(bag)
        bag.require_topic(image_topic, IMAGE_TYPES, what="image")
        camera_ns = camera_namespace(image_topic)
        info_topic = o.camera_info_topic or _ns_join(camera_ns, "camera_info")
        namespace = o.namespace if o.namespace is not None else camera_ns
        summary.image_topic, summary.namespace = image_topic, namespace or "/"
        infos = CameraInfoIndex([])
        if params.use_camera_info:
            if info_topic in bag.topics():
                bag.require_topic(info_topic, (CAMERA_INFO,), what="camera_info")
                infos = CameraInfoIndex([(r.log_time, bag.deserialize(r)) for r in bag.messages([info_topic])])
            else:
                summary.notes.append(f"no camera_info topic {info_topic} in {bag.path}: no focal-length correction "
                                     f"of depth and no output/camera_info (as the node without camera_info)")
        elif o.camera_info_topic:
            summary.notes.append("use_camera_info is false: --camera-info-topic ignored (as the node)")

        owned = runtime is None
        if owned:
            runtime, path = load_runtime(params, o.model_path)
            summary.model = str(path)
            summary.notes.extend(runtime.info.notes)
            if getattr(runtime, "selection", None) is not None and params.backend == "auto":
                summary.notes.append(f"backend auto: runs {runtime.selection.describe()}")
        try:
            _run(bag, out_bag, params, o, runtime, summary, image_topic, namespace, infos)
        finally:
            if owned:
                runtime.close()
    summary.seconds = time.perf_counter() - t_start
    return summary


def _run(bag: BagReader, out_bag: str | os.PathLike, params: NodeParams, o: InferOptions, rt: Any,
         summary: InferSummary, image_topic: str, namespace: str, infos: CameraInfoIndex) -> None:
    """The frame loop of ``run_infer``: copy inputs, decode and batch frames, run, build and write messages."""
    if params.warmup:
        rt.warmup()
    try:
        palette = load_palette(params.palette_file) if params.palette_file else None
        plans = build_plans(rt.tasks, rt.channels, params, palette)
        anchors = camera_anchors(params, rt.tasks, rt.dataset)
    except Exception as e:  # ParamError names the parameter
        raise BagError(f"node parameters: {e}") from None
    if o.copy_input:
        clash = sorted(set(_ns_join(namespace, t) for t in output_topics(plans)) & set(bag.topics()))
        if clash:
            raise BagError(f"{bag.path} already has output topic(s) {', '.join(clash)}: write the outputs under "
                           f"another --namespace or do not copy the input (--no-copy-input)")

    custom = bag.custom_data()
    custom.update({"mtlsi.infer.input": str(bag.path), "mtlsi.infer.model": summary.model or "(given runtime)",
                   "mtlsi.infer.backend": rt.info.backend,
                   "mtlsi.infer.backend_reason": getattr(getattr(rt, "selection", None), "reason", "")})
    n_images = bag.message_counts().get(image_topic, 0)
    with BagWriter(out_bag, storage=o.storage, overwrite=o.overwrite, custom_data=custom) as out:
        pending: list[_Frame] = []

        def flush() -> None:
            groups: dict[Any, list[_Frame]] = {}
            for f in pending:
                groups.setdefault(output_size_arg(params, f.rgb.shape[:2]), []).append(f)
            for arg, frames in groups.items():
                focals = [focal_length_px(f.info, f.rgb.shape[1]) for f in frames]
                t0 = time.perf_counter()
                try:
                    results = rt.infer([f.rgb for f in frames], output_size=arg, focal_lengths=focals)
                except Exception as e:
                    raise BagError(f"{bag.path}: {image_topic} message {frames[0].raw.index}: inference "
                                   f"failed ({type(e).__name__}: {' '.join(str(e).split())})") from None
                summary.infer_seconds += time.perf_counter() - t0
                for f, res in zip(frames, results):
                    if anchors:
                        st = anchor_frame(anchors[0], res, f.info, f.rgb.shape[:2], rt.tasks)
                        summary.anchor_statuses[st.status] = summary.anchor_statuses.get(st.status, 0) + 1
                        summary.anchor_scale = st.scale
                    for rel, msg in build_messages(plans, f.header, res, f.rgb, f.info):
                        out.write_msg(_ns_join(namespace, rel), msg, f.raw.log_time)
                    summary.processed += 1
            pending.clear()

        topics = None if o.copy_input else [image_topic]
        bar = tqdm(total=n_images, desc="infer", unit="frame", disable=not o.progress, leave=False,
                   dynamic_ncols=True)
        try:
            for raw in bag.messages(topics):
                if o.copy_input:
                    out.write(raw.topic, raw.msgtype, raw.log_time, raw.data)
                if raw.topic != image_topic:
                    continue
                summary.frames += 1
                bar.update(1)
                try:
                    header_msg, rgb = _decode(bag, raw, params)
                except InputError as e:
                    summary.dropped[e.reason] = summary.dropped.get(e.reason, 0) + 1
                    log.warning("%s message %d: dropped (%s): %s", image_topic, raw.index, e.reason, e)
                    continue
                info = infos.lookup(header_msg.header, raw.log_time) if params.use_camera_info else None
                pending.append(_Frame(raw, header_msg.header, rgb, info))
                if len(pending) >= o.batch:
                    flush()
            if pending:
                flush()
        finally:
            bar.close()
        if summary.frames == 0:
            raise BagError(f"{bag.path}: image topic {image_topic} has no messages")
        if summary.processed == 0:
            raise BagError(f"{bag.path}: none of the {summary.frames} frames of {image_topic} could be used "
                           f"(dropped: {summary.dropped})")
        summary.topics = {t: c for t, c in out.counts.items() if t not in bag.topics()}
        if anchors:
            summary.notes.append(f"floor anchoring ({anchors[0].plane.mount().describe()}): final scale "
                                 f"{summary.anchor_scale:.4f}; frames by anchor status: "
                                 + ", ".join(f"{k} {v}" for k, v in sorted(summary.anchor_statuses.items())))


__all__ = ["CameraInfoIndex", "InferOptions", "InferSummary", "camera_namespace", "find_image_topic", "load_runtime",
           "run_infer"]
