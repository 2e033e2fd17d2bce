"""Output plan (what each task publishes, from the task registry) and the per-camera publishers.

Every task the model predicts publishes ``TaskSpec.ros.topic`` in the encoding chosen by its parameter (the
registry's first encoding by default) and, when ``publish_color`` is on and the registry names one,
``TaskSpec.ros.color_topic`` as rgb8 (``mtlsi_core.viz.VISUALS[TaskSpec.visual]``). Messages are built only for
topics somebody subscribes to. Every message carries the input's header object unchanged.

One code path from runtime outputs to messages: ``build_messages`` (pure: plans, header, outputs -> messages) is used
by the node (``CameraOutputs.publish``, which asks it for the subscribed topics only) and by the offline twin
``mtlsi-bag infer``; ``output_size_arg`` and ``focal_length_px`` are the node's runtime arguments, shared likewise.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import cv2
import numpy as np
import yaml
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from mtlsi_core.geometry import canonical_intrinsics, point_cloud
from mtlsi_core.outputs import cast_for_encoding, fit_within_pixels, mask_outside_range
from mtlsi_core.tasks import get_task
from mtlsi_core.viz import VISUALS, overlay
from mtlsi_ros.conversions import ENCODINGS, numpy_to_image, numpy_to_pointcloud2, scale_camera_info
from mtlsi_ros.params import NodeParams, ParamError, encoding_param


# The re-stamped, scaled camera_info. Not "camera_info": that name is the input, and a remap of the input
# (camera_info:=/camera/camera_info) would also move an output of the same name onto the camera's topic.
CAMERA_INFO_TOPIC = "output/camera_info"
POINTS_TOPIC = "points"  # sensor_msgs/PointCloud2 (publish_points)
FRAME_TOPIC = "perception_frame"  # mtlsi_ros_msgs/PerceptionFrame (publish_frame_msg): a frame's outputs, one header


@dataclass(frozen=True)
class OutputPlan:
    task: str
    topic: str  # relative to the camera namespace
    encoding: str
    color_topic: str | None  # None: no colour image for this task (or publish_color off)
    colorize: Callable[[np.ndarray], np.ndarray]
    overlay_alpha: float  # > 0: colour image blended over the input
    valid_range: tuple[float, float] | None  # NaN outside (lo, hi]; hi <= 0: no upper bound


@dataclass(frozen=True)
class PointsPlan:
    """How ``POINTS_TOPIC`` is built: depth and labels of which tasks, cloud layout, and the K to assume without
    camera_info (the training camera at the network size; None: no cloud for frames without camera_info)."""
    depth_task: str
    label_task: str
    organized: bool
    keep_invalid: bool
    valid_range: tuple[float, float]
    network_hw: tuple[int, int]
    canonical_focal: float | None


def build_points_plan(tasks: Sequence[str], params: NodeParams, network_hw: tuple[int, int],
                      canonical_focal: float | None) -> PointsPlan | None:
    """The PointsPlan under ``params`` (None when ``publish_points`` is off); ParamError when the model predicts no
    depth or no labels, or when neither camera_info nor the model's focal length gives the intrinsics."""
    if not params.publish_points:
        return None
    depth = [t for t in tasks if get_task(t).visual == "depth"]
    labels = [t for t in tasks if get_task(t).kind == "labels"]
    if not depth or not labels:
        raise ParamError(f"parameter 'publish_points': the model predicts no {'depth' if not depth else 'labels'} "
                         f"task (tasks: {', '.join(tasks)})")
    if not params.use_camera_info and not canonical_focal:
        raise ParamError("parameter 'publish_points': use_camera_info is off and the model records no training "
                         "focal length (canonical_focal): no intrinsics to back-project depth with")
    return PointsPlan(depth[0], labels[0], params.points_organized, params.points_keep_invalid,
                      (params.min_depth, params.max_depth), (int(network_hw[0]), int(network_hw[1])),
                      float(canonical_focal) if canonical_focal else None)


def runtime_auxiliary(params: NodeParams) -> tuple[str, ...] | None:
    """The runtime's ``auxiliary`` option under ``params``: the labels' confidence when ``publish_points`` (the cloud's
    confidence field) or ``floor_anchoring`` with ``floor_min_confidence`` > 0 (the floor pixels' threshold) is on,
    else None (it costs 16-23 ms a frame on the CPU and nothing else uses it)."""
    anchoring = params.floor_anchoring and params.floor_min_confidence > 0
    return ("confidence",) if params.publish_points or anchoring else None


def points_message(plan: PointsPlan, header: Any, outputs: Mapping[str, np.ndarray], rgb: np.ndarray,
                   camera_info: CameraInfo | None) -> PointCloud2 | None:
    """The PointCloud2 of one frame in the optical frame of ``header`` (None without any intrinsics): depth (masked to
    the valid range in place, as its image) back-projected with the output camera_info's K (the input's, scaled to
    the output size), else the training camera's; colour from ``rgb`` at the output size; confidence from
    ``outputs["<label task>_confidence"]`` where the runtime gives it, else NaN."""
    depth = mask_outside_range(outputs[plan.depth_task], *plan.valid_range, out=outputs[plan.depth_task])
    out_hw = depth.shape[:2]
    if camera_info is not None and camera_info.k[0] > 0:
        k = np.asarray(scale_camera_info(camera_info, header, rgb.shape[:2], out_hw).k)
    elif plan.canonical_focal:
        k = canonical_intrinsics(out_hw, plan.network_hw, plan.canonical_focal)
    else:
        return None
    color = rgb if rgb.shape[:2] == out_hw else cv2.resize(rgb, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_AREA)
    cloud = point_cloud(depth, k, color, outputs[plan.label_task], outputs.get(f"{plan.label_task}_confidence"),
                        organized=plan.organized, keep_invalid=plan.keep_invalid)
    return numpy_to_pointcloud2(cloud, header)


def frame_message_class(plans: Sequence[OutputPlan]) -> type:
    """``mtlsi_ros_msgs.msg.PerceptionFrame`` (built from ``msg/`` by the same colcon build), after checking it has a
    field for each planned topic; ParamError naming what is missing."""
    try:
        from mtlsi_ros_msgs.msg import PerceptionFrame
    except ImportError as e:
        raise ParamError(f"parameter 'publish_frame_msg': the message package mtlsi_ros_msgs is not available ({e}); "
                         f"`make build` builds it from msg/ where the venv has the rosidl generators, then "
                         f"source install/setup.bash") from None
    fields = PerceptionFrame.get_fields_and_field_types()
    missing = [p.topic for p in plans if _frame_field(p.topic) not in fields]
    if missing:
        raise ParamError(f"parameter 'publish_frame_msg': mtlsi_ros_msgs/PerceptionFrame has no field for "
                         f"{', '.join(missing)}")
    return PerceptionFrame


def _frame_field(topic: str) -> str:
    return "camera_info" if topic == CAMERA_INFO_TOPIC else topic.replace("/", "_")


def frame_message(cls: type, header: Any, msgs: Sequence[tuple[str, Any]]) -> Any:
    """A PerceptionFrame with ``header`` holding each message of ``msgs`` (main images, camera_info) in its field;
    colour images and points are not part of it."""
    frame = cls()
    frame.header = header
    fields = cls.get_fields_and_field_types()
    for topic, msg in msgs:
        name = _frame_field(topic)
        if name in fields and name != "header":
            setattr(frame, name, msg)
    return frame


def load_palette(path: str) -> np.ndarray:
    """A YAML list of [r, g, b] rows (0..255) -> (N, 3) uint8. Errors name the file."""
    p = Path(path)
    try:
        rows = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ParamError(f"parameter 'palette_file': cannot read {p}: {e}") from None
    arr = np.asarray(rows, dtype=np.float64) if isinstance(rows, list) else np.zeros((0,))
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0 or arr.min() < 0 or arr.max() > 255:
        raise ParamError(f"parameter 'palette_file': {p} must hold a YAML list of [r, g, b] rows with values 0..255")
    return arr.astype(np.uint8)


def build_plans(tasks: Sequence[str], channels: Mapping[str, int], params: NodeParams,
                palette: np.ndarray | None = None) -> list[OutputPlan]:
    """One OutputPlan per task of the model, driven by the registry; ParamError if an encoding cannot hold the
    model's class ids."""
    plans = []
    for t in tasks:
        spec = get_task(t)
        enc = params.encodings.get(t, spec.ros.encodings[0])
        dtype = ENCODINGS[enc].dtype
        if spec.kind == "labels" and np.issubdtype(dtype, np.integer) and channels[t] - 1 > np.iinfo(dtype).max:
            raise ParamError(f"parameter {encoding_param(t)!r}: {enc} cannot hold {channels[t]} classes of task {t!r}")
        colorize = VISUALS[spec.visual]
        if spec.visual == "labels" and palette is not None:
            colorize = functools.partial(colorize, palette=palette)
        plans.append(OutputPlan(
            task=t, topic=spec.ros.topic, encoding=enc,
            color_topic=spec.ros.color_topic if params.publish_color else None,
            colorize=colorize,
            overlay_alpha=params.overlay_alpha if spec.kind == "labels" else 0.0,
            valid_range=(params.min_depth, params.max_depth) if spec.visual == "depth" else None,
        ))
    return plans


def join_topic(namespace: str, topic: str) -> str:
    return f"{namespace}/{topic}" if namespace else topic


def output_size_arg(params: NodeParams, image_hw: tuple[int, int]) -> str | tuple[int, int]:
    """The ``output_size`` argument of ``Runtime.infer`` for an image of ``image_hw`` under the node's parameters:
    "network", "input", or the input size shrunk to ``max_output_pixels``."""
    if params.output_resolution == "network":
        return "network"
    hw = (int(image_hw[0]), int(image_hw[1]))
    fitted = fit_within_pixels(hw, params.max_output_pixels)
    return "input" if fitted == hw else fitted


def focal_length_px(info: CameraInfo | None, image_width: int) -> float | None:
    """The horizontal focal length (pixels) of an image ``image_width`` wide, from its camera_info: K[0], given for
    ``info.width`` pixels, rescaled to the image's width when the two differ. None without a usable K."""
    if info is None or not info.k[0] > 0:
        return None
    return float(info.k[0]) * (image_width / info.width if info.width > 0 else 1.0)


def build_messages(plans: Sequence[OutputPlan], header: Any, outputs: Mapping[str, np.ndarray], rgb: np.ndarray,
                   camera_info: CameraInfo | None, wanted: Collection[str] | None = None,
                   points: PointsPlan | None = None) -> list[tuple[str, Any]]:
    """The messages of one frame: ``[(topic relative to the camera namespace, message), ...]`` in plan order (main
    image, then its colour image), then ``CAMERA_INFO_TOPIC`` (when ``camera_info`` is given).

    ``outputs``: the runtime's result for the frame (``Runtime.infer``); depth-like outputs are masked to their
    valid range in place. ``rgb``: the input image (label overlays, camera_info scaling). ``wanted``: the relative
    topics to build (None: all); nothing is computed for the others. Every message carries ``header`` unchanged.
    ``points``: also ``POINTS_TOPIC`` (last), see ``points_message``.
    """
    msgs: list[tuple[str, Any]] = []
    out_hw: tuple[int, int] | None = None
    for plan in plans:
        want_main = wanted is None or plan.topic in wanted
        want_color = plan.color_topic is not None and (wanted is None or plan.color_topic in wanted)
        values = outputs[plan.task]
        out_hw = values.shape[:2]
        if not (want_main or want_color):
            continue
        if plan.valid_range is not None:
            values = mask_outside_range(values, *plan.valid_range, out=values)  # the runtime's own array
        if want_main:
            msgs.append((plan.topic, numpy_to_image(cast_for_encoding(values, ENCODINGS[plan.encoding].dtype),
                                                    plan.encoding, header)))
        if want_color:
            color = plan.colorize(values)
            if plan.overlay_alpha > 0:
                base = rgb if rgb.shape[:2] == color.shape[:2] else cv2.resize(
                    rgb, (color.shape[1], color.shape[0]), interpolation=cv2.INTER_AREA)
                color = overlay(base, color, plan.overlay_alpha)
            msgs.append((plan.color_topic, numpy_to_image(np.ascontiguousarray(color, dtype=np.uint8), "rgb8", header)))
    if camera_info is not None and out_hw is not None and (wanted is None or CAMERA_INFO_TOPIC in wanted):
        msgs.append((CAMERA_INFO_TOPIC, scale_camera_info(camera_info, header, rgb.shape[:2], out_hw)))
    if points is not None and (wanted is None or POINTS_TOPIC in wanted):
        cloud = points_message(points, header, outputs, rgb, camera_info)
        if cloud is not None:
            msgs.append((POINTS_TOPIC, cloud))
    return msgs


def output_topics(plans: Sequence[OutputPlan], with_camera_info: bool = True) -> list[str]:
    """Every topic (relative to a camera namespace) ``build_messages`` can produce for ``plans``."""
    topics = [t for p in plans for t in (p.topic, p.color_topic) if t]
    return topics + ([CAMERA_INFO_TOPIC] if with_camera_info else [])


class CameraOutputs:
    """The publishers of one camera. ``create_publisher(msg_type, topic) -> publisher`` is the node's factory."""

    def __init__(self, namespace: str, plans: Sequence[OutputPlan], create_publisher: Callable,
                 with_camera_info: bool, points: PointsPlan | None = None, frame_cls: type | None = None):
        self.namespace = namespace
        self.plans = list(plans)
        self.main = {p.task: create_publisher(Image, join_topic(namespace, p.topic)) for p in self.plans}
        self.color = {p.task: create_publisher(Image, join_topic(namespace, p.color_topic))
                      for p in self.plans if p.color_topic}
        self.camera_info = (create_publisher(CameraInfo, join_topic(namespace, CAMERA_INFO_TOPIC))
                            if with_camera_info else None)
        # relative topic -> publisher (what build_messages returns -> where it goes)
        self.by_topic = {p.topic: self.main[p.task] for p in self.plans}
        self.by_topic.update({p.color_topic: self.color[p.task] for p in self.plans if p.color_topic})
        if self.camera_info is not None:
            self.by_topic[CAMERA_INFO_TOPIC] = self.camera_info
        self.points_plan = points
        self.points = (create_publisher(PointCloud2, join_topic(namespace, POINTS_TOPIC))
                       if points is not None else None)
        if self.points is not None:
            self.by_topic[POINTS_TOPIC] = self.points
        self.frame_cls = frame_cls
        self.frame = create_publisher(frame_cls, join_topic(namespace, FRAME_TOPIC)) if frame_cls else None

    def publishers(self) -> list:
        pubs = list(self.main.values()) + list(self.color.values())
        pubs += [self.camera_info] if self.camera_info is not None else []
        pubs += [self.points] if self.points is not None else []
        return pubs + ([self.frame] if self.frame is not None else [])

    def has_subscribers(self) -> bool:
        return any(p.get_subscription_count() > 0 for p in self.publishers())

    def publish(self, header, outputs: Mapping[str, np.ndarray], rgb: np.ndarray,
                camera_info: CameraInfo | None) -> int:
        """Publish one frame's outputs (those subscribed); returns the number of messages sent."""
        wanted = {topic for topic, pub in self.by_topic.items() if pub.get_subscription_count() > 0}
        with_frame = self.frame is not None and self.frame.get_subscription_count() > 0
        build = wanted | ({p.topic for p in self.plans} | {CAMERA_INFO_TOPIC}) if with_frame else wanted
        msgs = build_messages(self.plans, header, outputs, rgb, camera_info, build, self.points_plan)
        sent = 0
        for topic, msg in msgs:
            if topic in wanted:
                self.by_topic[topic].publish(msg)
                sent += 1
        if with_frame:
            self.frame.publish(frame_message(self.frame_cls, header, msgs))
            sent += 1
        return sent


__all__ = ["CAMERA_INFO_TOPIC", "FRAME_TOPIC", "POINTS_TOPIC", "CameraOutputs", "OutputPlan", "PointsPlan",
           "build_messages", "build_plans", "build_points_plan", "focal_length_px", "frame_message",
           "frame_message_class", "join_topic", "load_palette", "output_size_arg", "output_topics", "points_message"]
