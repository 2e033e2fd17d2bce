"""The one registry of tasks and datasets.

Every task is declared once here: its output channels, loss (name in ``mtlsi_core.losses.LOSSES``) and
weight, metric (name in ``mtlsi_core.metrics.METRICS``), output activation, how ground truth is padded,
and how its prediction becomes a ROS image. Loss, metric, post-processing, visualisation and ROS code
look the task up here instead of repeating ``if task == ...`` chains.

Loss weights follow InvPT / ATRC (the peers the paper takes its loss weights from, Sec. III-A):
semseg CE 1, depth masked L1 1, normals L1 on L2-normalised prediction 10, edge balanced BCE
(positive weight 0.95) 50, human_parts CE 2, sal balanced CE 5.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Collection, Mapping

import torch

# --------------------------------------------------------------------------------------------------
# Output activations: raw network output (B, C, H, W) -> prediction in physical units.
# All run on the tensor's device; no per-pixel Python.
# --------------------------------------------------------------------------------------------------


def _argmax(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) logits -> (B, H, W) int64 labels."""
    return x.argmax(dim=1)


def _depth(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> (B, H, W) metres, non-negative."""
    return x[:, 0].clamp_min(0.0)


def unit_vectors(x: torch.Tensor, dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """``x / max(||x||_2, eps)`` along ``dim``, as ``F.normalize``, computed in float32.

    On CPU ``F.normalize`` over the channel dim of an NCHW map is ~60x slower (torch 2.13, 2-core EPYC:
    12 ms vs 0.2 ms at 3x224x288) because its norm reduces over a non-innermost dim.
    """
    x32 = x.float()
    out = x32 * torch.rsqrt((x32 * x32).sum(dim, keepdim=True).clamp_min(eps * eps))
    return out.to(x.dtype)


def _unit_normals(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, H, W) unit vectors (camera optical frame)."""
    return unit_vectors(x, dim=1)


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) logits -> (B, H, W) probability."""
    return torch.sigmoid(x[:, 0])


def _softmax_fg(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) logits -> (B, H, W) foreground probability."""
    return torch.softmax(x, dim=1)[:, 1]


def _max_softmax(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) logits -> (B, H, W) float32 probability of the arg-max class, max_c softmax(x)_c in (0, 1].

    Computed as 1 / sum_c exp(x_c - max_c x) (no division over all C channels)."""
    x = x.float()
    return torch.exp(x - x.amax(dim=1, keepdim=True)).sum(dim=1).reciprocal()


ACTIVATIONS: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] = MappingProxyType(
    {
        "argmax": _argmax,
        "depth": _depth,
        "unit_normals": _unit_normals,
        "sigmoid": _sigmoid,
        "softmax_fg": _softmax_fg,
        "max_softmax": _max_softmax,
    }
)


@dataclass(frozen=True)
class AuxOutput:
    """An extra output of a task, computed from the same raw network output by another activation; it leaves the
    runtimes under the key ``f"{task}_{name}"`` (``output_key``), (B, H, W) float32, resized to the output size
    with ``interpolation``. Runtimes compute it only when asked (``Runtime(auxiliary=...)``); model files exported
    before it existed lack it, and then the key is absent."""

    name: str
    activation: str  # key in ACTIVATIONS, applied to the task's raw (B, C, H, W) output
    interpolation: str  # "nearest" or "bilinear"
    description: str = ""


# Labels tasks: the probability of the predicted class. Resized like the labels (nearest), so each output pixel's
# confidence is the one of the network pixel its label comes from (bilinear would blend confidences across a
# class boundary and pair a label with its neighbour's probability).
LABEL_CONFIDENCE = AuxOutput("confidence", "max_softmax", "nearest",
                             "probability of the predicted class, max softmax, float32 in (0, 1]")


@dataclass(frozen=True)
class RosOutput:
    """How a task's prediction is published (see mtlsi_ros).

    ``topic`` is relative to the camera namespace. ``encodings`` lists the allowed encodings of the main
    image, the first being the default; ``color_topic`` (if set) carries an rgb8 visualisation.
    """

    topic: str
    encodings: tuple[str, ...]
    color_topic: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # "labels" (integer classes), "dense" (continuous), "binary" (probability)
    channels: int | None  # None: the number of classes of the dataset (see DatasetSpec.num_classes)
    loss: str  # key in mtlsi_core.losses.LOSSES
    loss_kwargs: Mapping[str, object]
    weight: float
    metric: str  # key in mtlsi_core.metrics.METRICS
    activation: str  # key in ACTIVATIONS
    ignore_value: float  # value used for unlabelled / invalid pixels and for padding ground truth
    interpolation: str  # how ground truth and predictions are resized: "nearest" or "bilinear"
    higher_is_better: bool  # of the task's headline metric (for Delta_m and "best" checkpoints)
    visual: str  # colour visualisation in mtlsi_core.viz.VISUALS: "labels", "depth", "normals", "probability"
    ros: RosOutput
    description: str = ""
    # Geometry of the target under image transforms: enlarging the image by s multiplies the target by
    # s ** zoom_exponent (depth: -1, the scene looks s times closer); a horizontal mirror negates the channels
    # in hflip_negate (normals: x of the optical frame).
    zoom_exponent: float = 0.0
    hflip_negate: tuple[int, ...] = ()
    # extra keyword arguments of the metric (``mtlsi_core.metrics.METRICS[metric](task, dataset, **metric_kwargs)``)
    metric_kwargs: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    # extra outputs computed from the same raw output (labels tasks: "confidence"), see AuxOutput
    auxiliary: tuple[AuxOutput, ...] = ()

    def output_key(self, aux: AuxOutput) -> str:
        return f"{self.name}_{aux.name}"

    def num_channels(self, dataset: "DatasetSpec | str") -> int:
        if self.channels is not None:
            return self.channels
        ds = get_dataset(dataset) if isinstance(dataset, str) else dataset
        if self.name not in ds.num_classes:
            raise KeyError(f"dataset {ds.name!r} declares no class count for task {self.name!r}")
        return ds.num_classes[self.name]

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.activation](raw)


def _frozen(**kw: object) -> Mapping[str, object]:
    return MappingProxyType(dict(kw))


def _class_ids(name: str, *, weight: float, topic: str, description: str, **extra: Any) -> TaskSpec:
    """A task of one class id per pixel: cross-entropy, mIoU, argmax, nearest resampling, 255 = ignore, published
    as mono8 / mono16 ids on ``topic`` (and colourised on ``topic``/color), with the confidence of its argmax as an
    auxiliary output. Every labels task is trained, scored and published this way."""
    return TaskSpec(
        name=name, kind="labels", channels=None,
        loss="cross_entropy", loss_kwargs=_frozen(ignore_index=255), weight=weight,
        metric="miou", activation="argmax", ignore_value=255, interpolation="nearest",
        higher_is_better=True,
        visual="labels",
        ros=RosOutput(topic, ("mono8", "mono16"), color_topic=f"{topic}/color"),
        description=description,
        auxiliary=(LABEL_CONFIDENCE,),
        **extra,
    )


TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "semseg": _class_ids(
            "semseg", weight=1.0, topic="segmentation",
            description="semantic segmentation, class ids (0-based; 255 = ignore)",
        ),
        "depth": TaskSpec(
            name="depth", kind="dense", channels=1,
            loss="masked_l1", loss_kwargs=_frozen(invalid_value=0.0), weight=1.0,
            metric="depth", activation="depth", ignore_value=0.0, interpolation="bilinear",
            higher_is_better=False,
            visual="depth",
            ros=RosOutput("depth", ("32FC1",), color_topic="depth/color"),
            description="metric depth along the optical z axis, metres (0 = invalid in ground truth)",
            zoom_exponent=-1.0,
        ),
        "normals": TaskSpec(
            name="normals", kind="dense", channels=3,
            loss="normals_l1", loss_kwargs=_frozen(), weight=10.0,
            metric="normals", activation="unit_normals", ignore_value=0.0, interpolation="bilinear",
            higher_is_better=False,
            visual="normals",
            ros=RosOutput("normals", ("32FC3",), color_topic="normals/color"),
            description="unit surface normals in the camera optical frame (zero vector = invalid)",
            hflip_negate=(0,),
        ),
        "edge": TaskSpec(
            name="edge", kind="binary", channels=1,
            loss="balanced_bce", loss_kwargs=_frozen(pos_weight=0.95, ignore_index=255), weight=50.0,
            metric="boundary", activation="sigmoid", ignore_value=255, interpolation="nearest",
            higher_is_better=True,
            visual="probability",
            ros=RosOutput("boundary", ("mono8", "32FC1")),
            description="object boundaries, probability",
        ),
        "human_parts": _class_ids(
            "human_parts", weight=2.0, topic="human_parts",
            description="human part parsing, class ids (0 = background; 255 = ignore)",
            # InvPT/ATRC ignore images without any part annotation (all 0/255) when scoring parts
            metric_kwargs=_frozen(skip_images_without_foreground=True),
        ),
        "sal": TaskSpec(
            name="sal", kind="binary", channels=2,
            loss="balanced_ce", loss_kwargs=_frozen(ignore_index=255), weight=5.0,
            metric="maxf", activation="softmax_fg", ignore_value=255, interpolation="nearest",
            higher_is_better=True,
            visual="probability",
            ros=RosOutput("saliency", ("mono8", "32FC1")),
            description="saliency, foreground probability",
        ),
    }
)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    tasks: tuple[str, ...]
    num_classes: Mapping[str, int]
    input_size: tuple[int, int]  # (H, W) the peers train and test at
    boundary_max_dist: float  # SEISM/BSDS matching tolerance, fraction of the image diagonal
    class_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Rotation taking the dataset's stored normals into the camera optical frame (x right, y down, z forward),
    # the frame the network predicts and the ROS node publishes. Rows: optical axes in stored coordinates.
    normals_to_optical: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    # Horizontal focal length (pixels) of the dataset's frames as stored, for the focal-length correction of depth
    # in evaluation (a folder's camera.json takes precedence); None: unknown.
    focal_length: float | None = None


NYUD_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)
PASCAL_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
PASCAL_PART_CLASSES = ("background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg")

DATASETS: Mapping[str, DatasetSpec] = MappingProxyType(
    {
        "nyud": DatasetSpec(
            name="nyud", tasks=("semseg", "depth", "normals", "edge"),
            num_classes=MappingProxyType({"semseg": 40}), input_size=(448, 576),
            boundary_max_dist=0.011,
            class_names=MappingProxyType({"semseg": NYUD_CLASSES}),
            # NYUDv2 normals are stored as (x right, y away from the camera, z up): on the real frames in
            # shared/data/nyud_real_samples the floor decodes to (0, -0.18, 0.98) and walls facing the camera to
            # y < 0. Optical = (x, -z, y). Angular errors are unchanged by the rotation, so benchmark metrics are too.
            normals_to_optical=((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
            focal_length=518.8579,  # Kinect colour camera (NYU toolbox); NYUD-MT frames are crops, not resized
        ),
        "pascal": DatasetSpec(
            name="pascal", tasks=("semseg", "human_parts", "sal", "normals", "edge"),
            num_classes=MappingProxyType({"semseg": 21, "human_parts": 7}), input_size=(512, 512),
            boundary_max_dist=0.0075,
            class_names=MappingProxyType({"semseg": PASCAL_CLASSES, "human_parts": PASCAL_PART_CLASSES}),
        ),
        # Synthetic indoor scenes (mtlsi-synth) are written in the NYUD-MT layout with NYUD's 40 classes.
        "synth": DatasetSpec(
            name="synth", tasks=("semseg", "depth", "normals", "edge"),
            num_classes=MappingProxyType({"semseg": 40}), input_size=(448, 576),
            boundary_max_dist=0.011,
            class_names=MappingProxyType({"semseg": NYUD_CLASSES}),
        ),
    }
)


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None


def task_channels(tasks: tuple[str, ...] | list[str], dataset: str) -> dict[str, int]:
    """Output channels per task for a dataset, in task order."""
    ds = get_dataset(dataset)
    return {t: get_task(t).num_channels(ds) for t in tasks}


def auxiliary_outputs(tasks: tuple[str, ...] | list[str],
                      names: Collection[str] | None = None) -> dict[str, tuple[str, AuxOutput]]:
    """``{output key: (task, AuxOutput)}`` of ``tasks``' auxiliary outputs in task order (``names``: only those
    auxiliary names, e.g. ("confidence",); None: all)."""
    return {get_task(t).output_key(a): (t, a) for t in tasks for a in get_task(t).auxiliary
            if names is None or a.name in names}


def output_spec(key: str) -> tuple[TaskSpec, AuxOutput | None]:
    """The task of a runtime output key, and its AuxOutput when the key is an auxiliary output (else None)."""
    if key in TASKS:
        return TASKS[key], None
    for spec in TASKS.values():
        for aux in spec.auxiliary:
            if spec.output_key(aux) == key:
                return spec, aux
    raise KeyError(f"unknown output {key!r}: neither a task nor a task's auxiliary output")


def auxiliary_names() -> tuple[str, ...]:
    """Every auxiliary output name some task declares (the values ``Runtime(auxiliary=...)`` accepts)."""
    return tuple(dict.fromkeys(a.name for spec in TASKS.values() for a in spec.auxiliary))


def activate(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply each task's output activation to a dict of raw outputs keyed by task."""
    return {t: get_task(t).activate(x) for t, x in raw.items()}
