"""The perception node's parameters: one table (name, default, description, check), declared with descriptors
and validated in ``on_configure`` so that a bad value fails the transition with a message instead of killing
the process.

Parameters are declared with ``dynamic_typing`` so a wrongly typed value from a params file or ``-p`` reaches
our validation (and its message) instead of raising in the constructor. Values are read at configure time:
change them in the unconfigured state (or cleanup, set, configure).
"""
from __future__ import annotations

import array
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from mtlsi_core.anchoring.plane import CameraMount, MountError
from mtlsi_core.checkpoint import DEFAULT_MODEL_NAME
from mtlsi_core.runtime import BACKENDS, DEFAULT_BACKEND, PRECISIONS
from mtlsi_core.tasks import TASKS, get_task

DEFAULT_MAX_PIXELS = 4096 * 4096
RELIABILITIES = ("best_effort", "reliable")


class ParamError(ValueError):
    """A parameter value is invalid; the message names the parameter, the value and what is allowed."""


def encoding_param(task: str) -> str:
    """Name of the parameter choosing a task's output encoding (only tasks with several encodings have one)."""
    return get_task(task).ros.topic.replace("/", "_") + "_encoding"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    kind: type  # bool, int, float, str, list (of str) or tuple (a number, or a list of numbers: one per camera)
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], str | None] | None = None  # returns what is wrong, or None


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _unit(v: Any) -> str | None:
    return None if 0.0 <= v <= 1.0 else "must be in [0, 1]"


def _angle(v: float) -> str | None:
    return None if 0.0 < v <= 90.0 else "must be in (0, 90] degrees"


def _fraction(v: float) -> str | None:
    return None if 0.0 < v <= 1.0 else "must be in (0, 1]"


def _cameras(v: list[str]) -> str | None:
    if not v:
        return "must list at least one camera namespace ('' for the node's own namespace)"
    if len(set(v)) != len(v):
        return "lists a camera twice"
    for ns in v:
        bad = [c for c in ns.strip("/") if not (c.isalnum() or c in "_/")]
        if bad or "//" in ns or (ns.strip("/") and ns.strip("/")[0].isdigit()):
            return f"camera namespace {ns!r} is not a valid ROS name"
    return None


_COMMON: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "configure and activate on start (for use without a lifecycle manager)", bool),
    ParamSpec("model_path", "", "model file (checkpoint .pt for torch, .onnx, .engine); empty: the packaged "
              f"demo checkpoint mtlsi_core/weights/{DEFAULT_MODEL_NAME}.pt", str),
    ParamSpec("backend", DEFAULT_BACKEND, "inference runtime: auto (TensorRT where TensorRT and a GPU are present, "
              "else torch on the GPU, else ONNX Runtime on the CPU; the node logs and reports in /diagnostics what it "
              "chose and why), torch, onnx or tensorrt", str, choices=BACKENDS),
    ParamSpec("device", "cuda", "'cuda', 'cuda:N' or 'cpu'; CUDA falls back to CPU with a warning where absent", str),
    ParamSpec("precision", "fp16", "fp16, bf16 or fp32 (CPU runs fp32 whatever is asked); int8: ONNX Runtime on the "
              "CPU with a statically quantised model (made on first use)", str, choices=PRECISIONS),
    ParamSpec("model_cache_dir", "", "folder of the model files made on first use (ONNX, INT8, TensorRT engine); "
              "empty: $MTLSI_CACHE_DIR, else $XDG_CACHE_HOME/mtlsi_ros, else ~/.cache/mtlsi_ros", str),
    ParamSpec("intra_op_threads", 0, "ONNX Runtime: threads per operator; 0: the physical cores", int,
              check=_non_negative),
    ParamSpec("inter_op_threads", 0, "ONNX Runtime: > 1 runs independent graph branches in parallel on this many "
              "threads; 0: sequential", int, check=_non_negative),
    ParamSpec("graph_optimization", "all", "ONNX Runtime graph optimisation level", str,
              choices=("all", "extended", "basic", "disable")),
    ParamSpec("warmup", True, "run two dummy inferences in configure", bool),
    ParamSpec("cameras", [""], "camera namespaces (relative); each has image, camera_info and its own outputs; "
              "'' = the node's namespace", list, check=_cameras),
    ParamSpec("input_transport", "raw", "'raw' subscribes <camera>/image (sensor_msgs/Image); 'compressed' "
              "subscribes <camera>/image/compressed (sensor_msgs/CompressedImage)", str, choices=("raw", "compressed")),
    ParamSpec("use_camera_info", True, "subscribe <camera>/camera_info and republish it scaled and re-stamped", bool),
    ParamSpec("camera_info_wait_ms", 50.0, "wait up to this long for the camera_info with an image's stamp "
              "(while stamps have matched so far); then use the newest camera_info", float, check=_non_negative),
    ParamSpec("output_resolution", "input", "'input': outputs at each image's size; 'network': at the model's "
              "input size", str, choices=("input", "network")),
    ParamSpec("max_input_pixels", DEFAULT_MAX_PIXELS, "images with more pixels are refused (drop reason "
              "too_large); <= 0: no limit", int),
    ParamSpec("max_output_pixels", DEFAULT_MAX_PIXELS, "outputs larger than this are shrunk (same aspect ratio, "
              "camera_info scaled to match); <= 0: no limit", int),
    ParamSpec("publish_color", True, "publish the rgb8 colour topics (computed only while subscribed)", bool),
    ParamSpec("overlay_alpha", 0.0, "blend label colour images over the input image with this weight of the "
              "colours (0: colours only)", float, check=_unit),
    ParamSpec("palette_file", "", "YAML list of [r, g, b] rows (class id = row) for label colour images; "
              "empty: the built-in palette", str),
    ParamSpec("publish_points", False, "publish <camera>/points (sensor_msgs/PointCloud2, optical frame: x, y, z, "
              "rgb, label, confidence) back-projected from depth with output/camera_info (without camera_info: "
              "the model's training focal length); built only while subscribed", bool),
    ParamSpec("points_organized", False, "points as an organised cloud (height x width of the outputs, one point "
              "per pixel, NaN where depth is invalid; needs points_keep_invalid) instead of a list", bool),
    ParamSpec("publish_frame_msg", False, "also publish <camera>/perception_frame (mtlsi_ros_msgs/PerceptionFrame: "
              "the main images and output camera_info of a frame under one header; the package is built from msg/)",
              bool),
    ParamSpec("points_keep_invalid", False, "keep points without valid depth (x, y, z NaN); false: drop them "
              "(is_dense cloud)", bool),
    ParamSpec("min_depth", 0.0, "depth <= this is invalid (NaN), metres", float, check=_non_negative),
    ParamSpec("max_depth", 0.0, "depth > this is invalid (NaN), metres; 0: no upper limit", float,
              check=_non_negative),
    # floor anchoring (mtlsi_core.anchoring): the metric scale of depth from the floor and the camera's mount
    ParamSpec("floor_anchoring", False, "scale each camera's depth (and points) so the pixels the network labels "
              "floor lie on the floor of the camera's mount (camera_height_m, camera_pitch_deg, camera_roll_deg); "
              "needs camera_info; reports anchor.* in /diagnostics", bool),
    # The mount parameters default to a one-element list: a params file's list then overrides it (rcl keeps the
    # first file's value when a later file gives a list for a plain number).
    ParamSpec("camera_height_m", [0.0], "floor anchoring: the camera's optical centre above the floor, metres (> 0); "
              "one value for every camera or a list, one per camera", tuple),
    ParamSpec("camera_pitch_deg", [0.0], "floor anchoring: the camera's pitch on a level robot, degrees, > 0 looking "
              "down (REP 103, base_link -> camera_link); |pitch| < 90; one value or one per camera", tuple),
    ParamSpec("camera_roll_deg", [0.0], "floor anchoring: the camera's roll about its forward axis, degrees, > 0 "
              "lifts its left side (REP 103); one value or one per camera", tuple),
    ParamSpec("floor_min_confidence", 0.5, "floor anchoring: floor pixels count when the label's probability is at "
              "least this; 0: no threshold, and the runtime skips the confidence output (16-23 ms a frame on the CPU) "
              "unless publish_points needs it", float, check=_unit),
    ParamSpec("floor_max_normal_angle_deg", 20.0, "floor anchoring: ... and their predicted normal is within this "
              "angle of the floor's", float, check=_angle),
    ParamSpec("floor_min_support", 100, "floor anchoring: a frame gives a scale with at least this many floor pixels "
              "(on the sampling grid of at most 16384 pixels); fewer keep the last scale", int, check=_positive),
    ParamSpec("floor_smoothing", 0.3, "floor anchoring: weight of a new frame's scale (log space; 1: none)", float,
              check=_fraction),
    ParamSpec("floor_max_step", 0.05, "floor anchoring: the scale changes by at most this fraction per frame (after "
              "the first frame that gives one)", float, check=_positive),
    ParamSpec("floor_replace_depth", False, "floor anchoring: also set the depth of the floor pixels to the floor "
              "plane's (where it agrees with the scaled prediction within 25 %)", bool),
    ParamSpec("qos_reliability", "best_effort", "input subscriptions: best_effort or reliable", str,
              choices=RELIABILITIES),
    ParamSpec("qos_depth", 1, "input subscriptions: history depth", int, check=_positive),
    ParamSpec("output_qos_reliability", "reliable", "output publishers: reliable (matches every subscriber) or "
              "best_effort", str, choices=RELIABILITIES),
    ParamSpec("output_qos_depth", 1, "output publishers: history depth", int, check=_positive),
    ParamSpec("process_every_frame", False, "answer every frame in order (rosbag evaluation): reliable keep-all "
              "input, ordered queue that pushes back on the publisher when full", bool),
    ParamSpec("queue_size", 10, "process_every_frame: frames buffered per camera", int, check=_positive),
    ParamSpec("batch_window_ms", 5.0, "after the first frame is ready, wait this long for the other cameras' "
              "frames to run them in one batch", float, check=_non_negative),
    ParamSpec("no_image_warn_s", 5.0, "diagnostics warn when a camera sent no image for this long", float,
              check=_positive),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics messages", float, check=_positive),
    ParamSpec("error_log_throttle_s", 1.0, "log the same kind of bad-input error at most once per this period "
              "per camera (every error is counted in /diagnostics)", float, check=_non_negative),
)


def _encoding_specs() -> tuple[ParamSpec, ...]:
    out = []
    for name, spec in TASKS.items():
        encs = spec.ros.encodings
        if len(encs) > 1:
            out.append(ParamSpec(encoding_param(name), encs[0],
                                 f"encoding of {spec.ros.topic} ({spec.description})", str, choices=encs))
    return tuple(out)


PARAMS: tuple[ParamSpec, ...] = _COMMON + _encoding_specs()
PARAMS_BY_NAME: Mapping[str, ParamSpec] = {p.name: p for p in PARAMS}


@dataclass(frozen=True)
class NodeParams:
    autostart: bool
    model_path: str
    backend: str
    device: str
    precision: str
    model_cache_dir: str
    intra_op_threads: int
    inter_op_threads: int
    graph_optimization: str
    warmup: bool
    cameras: tuple[str, ...]
    input_transport: str
    use_camera_info: bool
    camera_info_wait_ms: float
    output_resolution: str
    max_input_pixels: int
    max_output_pixels: int
    publish_color: bool
    overlay_alpha: float
    palette_file: str
    publish_points: bool
    points_organized: bool
    points_keep_invalid: bool
    publish_frame_msg: bool
    min_depth: float
    max_depth: float
    floor_anchoring: bool
    camera_height_m: tuple[float, ...]  # one per camera (a single number is repeated)
    camera_pitch_deg: tuple[float, ...]
    camera_roll_deg: tuple[float, ...]
    floor_min_confidence: float
    floor_max_normal_angle_deg: float
    floor_min_support: int
    floor_smoothing: float
    floor_max_step: float
    floor_replace_depth: bool
    qos_reliability: str
    qos_depth: int
    output_qos_reliability: str
    output_qos_depth: int
    process_every_frame: bool
    queue_size: int
    batch_window_ms: float
    no_image_warn_s: float
    diagnostics_period_s: float
    error_log_throttle_s: float
    encodings: Mapping[str, str]  # task -> encoding, for every task with a choice


def _coerce(spec: ParamSpec, value: Any) -> Any:
    where = f"parameter {spec.name!r}"
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ParamError(f"{where}: expected true or false, got {value!r}")
        return value
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{where}: expected an integer, got {value!r}")
        return value
    if spec.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParamError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if spec.kind is str:
        if not isinstance(value, str):
            raise ParamError(f"{where}: expected a string, got {value!r}")
        return value
    if spec.kind is tuple:  # a number, or a list of numbers (ROS double / integer arrays arrive as array.array)
        items = [value] if isinstance(value, (int, float)) else value
        if (isinstance(value, (str, bytes)) or not isinstance(items, (list, tuple, array.array)) or not items
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)):
            raise ParamError(f"{where}: expected a number or a list of numbers (one per camera), got {value!r}")
        bad = [v for v in items if not math.isfinite(v)]
        if bad:
            raise ParamError(f"{where}: expected finite numbers, got {value!r}")
        return tuple(float(v) for v in items)
    if spec.kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ParamError(f"{where}: expected a list of strings, got {value!r}")
        return [v.strip("/") for v in value]
    raise AssertionError(spec.kind)


MOUNT_PARAMS = ("camera_height_m", "camera_pitch_deg", "camera_roll_deg")


def _check_mounts(clean: dict[str, Any]) -> None:
    """One mount value or one per camera; with floor_anchoring, every camera's mount is possible
    (``mtlsi_core.anchoring.CameraMount``: height > 0, |pitch| < 90); ParamError naming the parameter and camera."""
    cams = clean["cameras"]
    for name in MOUNT_PARAMS:
        v = clean[name]
        if len(v) not in (1, len(cams)):
            raise ParamError(f"parameter {name!r} = {list(v)}: lists {len(v)} values for {len(cams)} camera(s) "
                             f"({', '.join(repr(c) for c in cams)}); give one number or one per camera")
    if not clean["floor_anchoring"]:
        return
    for i, cam in enumerate(cams):
        try:
            CameraMount(*(clean[n][i if len(clean[n]) > 1 else 0] for n in MOUNT_PARAMS))
        except MountError as e:
            at = f" (camera {cam!r})" if len(cams) > 1 else ""
            raise ParamError(f"parameter 'camera_{e.field}' = {e.value}{at}: floor_anchoring: {e.reason}") from None


def validate(values: Mapping[str, Any]) -> NodeParams:
    """Check and convert raw values (missing ones take their defaults) into ``NodeParams``."""
    unknown = sorted(set(values) - set(PARAMS_BY_NAME))
    if unknown:
        raise ParamError(f"unknown parameter(s): {', '.join(unknown)}")
    clean: dict[str, Any] = {}
    for spec in PARAMS:
        v = _coerce(spec, values.get(spec.name, spec.default))
        if spec.choices is not None and v not in spec.choices:
            raise ParamError(f"parameter {spec.name!r}: {v!r} is not one of {', '.join(map(str, spec.choices))}")
        if spec.check is not None and (why := spec.check(v)) is not None:
            raise ParamError(f"parameter {spec.name!r} = {v!r}: {why}")
        clean[spec.name] = v
    if clean["max_depth"] > 0 and clean["max_depth"] <= clean["min_depth"]:
        raise ParamError(f"parameter 'max_depth' = {clean['max_depth']} must exceed min_depth = {clean['min_depth']}")
    if clean["points_organized"] and not clean["points_keep_invalid"]:
        raise ParamError("parameter 'points_organized' = True needs points_keep_invalid = True (an organised cloud "
                         "keeps one point per pixel)")
    _check_mounts(clean)
    if clean["floor_anchoring"] and not clean["use_camera_info"]:
        raise ParamError("parameter 'floor_anchoring' = True needs use_camera_info = True (the floor's depth per pixel "
                         "needs the camera's intrinsics)")
    dev = clean["device"]
    if not (dev == "cpu" or dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ParamError(f"parameter 'device': {dev!r} is not 'cpu', 'cuda' or 'cuda:N'")
    for name in MOUNT_PARAMS:  # one value per camera
        v = clean[name]
        clean[name] = v * len(clean["cameras"]) if len(v) == 1 else v
    encodings = {t: clean.pop(encoding_param(t)) for t, s in TASKS.items() if len(s.ros.encodings) > 1}
    clean["cameras"] = tuple(clean["cameras"])
    fields = {f.name for f in dataclasses.fields(NodeParams)}
    return NodeParams(encodings=encodings, **{k: v for k, v in clean.items() if k in fields})


__all__ = ["DEFAULT_MAX_PIXELS", "MOUNT_PARAMS", "PARAMS", "PARAMS_BY_NAME", "NodeParams", "ParamError", "ParamSpec",
           "encoding_param", "validate"]
