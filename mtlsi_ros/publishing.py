"""Output plan (what each task publishes, from the task registry) and the per-camera publishers.

Every task the model predicts publishes ``TaskSpec.ros.topic`` in the encoding chosen by its parameter (the
registry's first encoding by default) and, when ``publish_color`` is on and the registry names one,
``TaskSpec.ros.color_topic`` as rgb8 (``mtlsi_core.viz.VISUALS[TaskSpec.visual]``). Messages are built only for
topics somebody subscribes to. Every message carries the input's header object unchanged.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
import yaml
from sensor_msgs.msg import CameraInfo, Image

from mtlsi_core.outputs import cast_for_encoding, mask_outside_range
from mtlsi_core.tasks import get_task
from mtlsi_core.viz import VISUALS, overlay
from mtlsi_ros.conversions import ENCODINGS, numpy_to_image, scale_camera_info
from mtlsi_ros.params import NodeParams, ParamError, encoding_param


# The re-stamped, scaled camera_info. Not "camera_info": that name is the input, and a remap of the input
# (camera_info:=/camera/camera_info) would also move an output of the same name onto the camera's topic.
CAMERA_INFO_TOPIC = "output/camera_info"


@dataclass(frozen=True)
class OutputPlan:
    task: str
    topic: str  # relative to the camera namespace
    encoding: str
    color_topic: str | None  # None: no colour image for this task (or publish_color off)
    colorize: Callable[[np.ndarray], np.ndarray]
    overlay_alpha: float  # > 0: colour image blended over the input
    valid_range: tuple[float, float] | None  # NaN outside (lo, hi]; hi <= 0: no upper bound


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


class CameraOutputs:
    """The publishers of one camera. ``create_publisher(msg_type, topic) -> publisher`` is the node's factory."""

    def __init__(self, namespace: str, plans: Sequence[OutputPlan], create_publisher: Callable,
                 with_camera_info: bool):
        self.namespace = namespace
        self.plans = list(plans)
        self.main = {p.task: create_publisher(Image, join_topic(namespace, p.topic)) for p in self.plans}
        self.color = {p.task: create_publisher(Image, join_topic(namespace, p.color_topic))
                      for p in self.plans if p.color_topic}
        self.camera_info = (create_publisher(CameraInfo, join_topic(namespace, CAMERA_INFO_TOPIC))
                            if with_camera_info else None)

    def publishers(self) -> list:
        pubs = list(self.main.values()) + list(self.color.values())
        return pubs + ([self.camera_info] if self.camera_info is not None else [])

    def has_subscribers(self) -> bool:
        return any(p.get_subscription_count() > 0 for p in self.publishers())

    def publish(self, header, outputs: Mapping[str, np.ndarray], rgb: np.ndarray,
                camera_info: CameraInfo | None) -> int:
        """Publish one frame's outputs (those subscribed); returns the number of messages sent."""
        sent = 0
        out_hw: tuple[int, int] | None = None
        for plan in self.plans:
            pub, cpub = self.main[plan.task], self.color.get(plan.task)
            want_main = pub.get_subscription_count() > 0
            want_color = cpub is not None and cpub.get_subscription_count() > 0
            values = outputs[plan.task]
            out_hw = values.shape[:2]
            if not (want_main or want_color):
                continue
            if plan.valid_range is not None:
                values = mask_outside_range(values, *plan.valid_range, out=values)  # the runtime's own array
            if want_main:
                pub.publish(numpy_to_image(cast_for_encoding(values, ENCODINGS[plan.encoding].dtype),
                                           plan.encoding, header))
                sent += 1
            if want_color:
                color = plan.colorize(values)
                if plan.overlay_alpha > 0:
                    base = rgb if rgb.shape[:2] == color.shape[:2] else cv2.resize(
                        rgb, (color.shape[1], color.shape[0]), interpolation=cv2.INTER_AREA)
                    color = overlay(base, color, plan.overlay_alpha)
                cpub.publish(numpy_to_image(np.ascontiguousarray(color, dtype=np.uint8), "rgb8", header))
                sent += 1
        if (self.camera_info is not None and camera_info is not None and out_hw is not None
                and self.camera_info.get_subscription_count() > 0):
            self.camera_info.publish(scale_camera_info(camera_info, header, rgb.shape[:2], out_hw))
            sent += 1
        return sent


__all__ = ["CAMERA_INFO_TOPIC", "CameraOutputs", "OutputPlan", "build_plans", "join_topic", "load_palette"]
