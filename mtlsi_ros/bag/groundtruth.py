"""Ground truth on bag topics: ``<camera>/gt/<task topic>`` (the registry's ``TaskSpec.ros.topic``), one
sensor_msgs/Image per frame with the image's header. The encoding follows the task's kind in the registry, and the
values are the dataset's targets (``mtlsi_core.data``), so ``frames.decode_image`` with side "gt" gives back exactly
the target that ``encode_gt`` wrote:

    labels  (segmentation)  the first integer encoding of the task's ROS encodings that holds every class id and the
                            ignore value (mono8 for NYUD's 40 classes): class ids 0-based, 255 = ignore
    binary  (boundary)      likewise (mono8): 0 = no boundary, 1 = boundary, 255 = ignore. Not 0/255: 255 is the
                            registry's ignore value of the task
    dense   (depth, normals) the task's float encoding (32FC1 metres, 32FC3 unit vectors, optical frame):
                            NaN = invalid (REP 118, as the node's own outputs), where the dataset stores the task's
                            ignore value (depth 0, normals the zero vector)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mtlsi_core.tasks import TaskSpec, get_task
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.conversions import ENCODINGS, numpy_to_image

GT_NAMESPACE = "gt"


def gt_topic(camera: str, task: str) -> str:
    """``/camera`` + semseg -> ``/camera/gt/segmentation``."""
    return f"{camera.rstrip('/')}/{GT_NAMESPACE}/{get_task(task).ros.topic}"


def gt_encoding(task: str, dataset: str) -> str:
    """The encoding of a task's ground truth (module docstring), from the registry."""
    spec = get_task(task)
    if spec.kind == "dense":
        for enc in spec.ros.encodings:
            if ENCODINGS[enc].dtype.kind == "f" and ENCODINGS[enc].channels == spec.num_channels(dataset):
                return enc
        raise BagError(f"task {task!r}: no float encoding among its ROS encodings {spec.ros.encodings}")
    # largest value stored: the highest class id (labels) or 1 (binary), and the ignore value
    top = max(int(spec.ignore_value), spec.num_channels(dataset) - 1 if spec.kind == "labels" else 1)
    for enc in spec.ros.encodings:
        e = ENCODINGS[enc]
        if e.dtype.kind == "u" and e.channels == 1 and np.iinfo(e.dtype).max >= top:
            return enc
    raise BagError(f"task {task!r}: none of its ROS encodings {spec.ros.encodings} holds values up to {top}")


def _invalid_mask(spec: TaskSpec, values: np.ndarray) -> np.ndarray:
    eq = values == np.float32(spec.ignore_value)
    return eq.all(axis=-1) if values.ndim == 3 else eq


def encode_gt(task: str, dataset: str, target: np.ndarray, header: Any) -> Any:
    """A dataset target (``load_raw`` format) -> sensor_msgs/Image."""
    spec = get_task(task)
    enc = gt_encoding(task, dataset)
    dtype = ENCODINGS[enc].dtype
    if spec.kind == "dense":
        values = np.array(target, dtype=np.float32, copy=True)
        values[_invalid_mask(spec, values)] = np.nan
    else:
        values = np.asarray(target)
        if values.size and (int(values.min()) < 0 or int(values.max()) > np.iinfo(dtype).max):
            raise BagError(f"task {task!r}: ground truth values {int(values.min())}..{int(values.max())} do not "
                           f"fit {enc}")
        values = values.astype(dtype)
    return numpy_to_image(np.ascontiguousarray(values), enc, header)


__all__ = ["GT_NAMESPACE", "encode_gt", "gt_encoding", "gt_topic"]
