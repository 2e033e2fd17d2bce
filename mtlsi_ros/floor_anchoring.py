"""Floor anchoring for the node and ``mtlsi-bag infer``: one ``mtlsi_core.anchoring.FloorAnchor`` per camera from the
node parameters, and the anchoring of one frame's runtime outputs with its camera_info.

The mount comes from parameters only (``camera_height_m``, ``camera_pitch_deg``, ``camera_roll_deg``): reading it from
live ``/tf`` needs ``tf2_msgs``, which has no wheel in this environment. Without camera_info a frame cannot be
anchored (no intrinsics for the floor's depth): its depth is published as predicted and the camera's anchor state
says ``no_intrinsics``. What it may touch: the outputs' depth (in place) and the anchors' state.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from mtlsi_core.anchoring import (AnchorConfig, AnchorState, CameraMount, FloorAnchor, FloorPlane, anchor_keys,
                                  anchor_outputs, floor_classes)
from mtlsi_ros.params import NodeParams, ParamError


def anchor_config(params: NodeParams) -> AnchorConfig:
    return AnchorConfig(min_confidence=params.floor_min_confidence,
                        max_normal_angle_deg=params.floor_max_normal_angle_deg,
                        min_support=params.floor_min_support, smoothing=params.floor_smoothing,
                        max_step=params.floor_max_step, replace_floor=params.floor_replace_depth)


def camera_mounts(params: NodeParams) -> list[CameraMount]:
    """Each camera's mount (``validate`` has checked them)."""
    return [CameraMount(h, p, r) for h, p, r in zip(params.camera_height_m, params.camera_pitch_deg,
                                                    params.camera_roll_deg)]


def camera_anchors(params: NodeParams, tasks: Sequence[str], dataset: str) -> list[FloorAnchor] | None:
    """One FloorAnchor per camera when ``floor_anchoring`` is on (else None); ParamError naming ``floor_anchoring``
    when the model cannot be anchored (no depth, no labels, no floor class)."""
    if not params.floor_anchoring:
        return None
    try:
        _, labels, _ = anchor_keys(tasks)
        ids = floor_classes(dataset, labels)
        config = anchor_config(params)
    except ValueError as e:
        raise ParamError(f"parameter 'floor_anchoring': {str(e).removeprefix('floor anchoring: ')}") from None
    return [FloorAnchor(FloorPlane.from_mount(m), ids, config) for m in camera_mounts(params)]


def camera_info_k(info: Any, image_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """(K, the size K is for) of a camera_info (its calibration size, else the image's), None without a usable K
    (the same rule as ``conversions.scale_camera_info``)."""
    if info is None or not info.k[0] > 0 or not info.k[4] > 0:
        return None
    hw = (int(info.height), int(info.width)) if info.height > 0 and info.width > 0 else tuple(image_hw)
    return np.asarray(info.k, dtype=np.float64), hw


def anchor_frame(anchor: FloorAnchor, outputs: Mapping[str, np.ndarray], info: Any, image_hw: tuple[int, int],
                 tasks: Sequence[str]) -> AnchorState:
    """Anchor one frame's outputs with its camera_info (None: ``no_intrinsics``, depth as predicted)."""
    k = camera_info_k(info, image_hw)
    if k is None:
        return anchor_outputs(outputs, anchor, None, tasks=tasks)
    return anchor_outputs(outputs, anchor, k[0], k[1], tasks=tasks)


__all__ = ["anchor_config", "anchor_frame", "camera_anchors", "camera_info_k", "camera_mounts"]
