"""ROS message types by name: the rclpy class (for (de)serialising) and the definition a bag connection needs.

Type names are rosbag2's ``pkg/msg/Name``. Classes come from the installed Python message packages (what
``rosidl_runtime_py.utilities.get_message`` does; that package is not installed here). Message definitions and
RIHS01 hashes, which rosbag2 stores per connection, come from the rosbags typestore of the ROS distribution
matching our rclpy (Kilted).
"""
from __future__ import annotations

import functools
import importlib
from typing import Any

from mtlsi_ros.bag.errors import BagError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
CLOCK = "rosgraph_msgs/msg/Clock"
TF = "tf2_msgs/msg/TFMessage"  # no Python package here: (de)serialised with the rosbags typestore (bag.transforms)
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)


def normalize_type(name: str) -> str:
    """``pkg/Name`` or ``pkg/msg/Name`` -> ``pkg/msg/Name``."""
    parts = name.strip("/").split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise BagError(f"{name!r} is not a ROS message type name (pkg/msg/Name)")
    return "/".join(parts)


@functools.lru_cache(maxsize=None)
def message_class(name: str) -> type:
    """The rclpy message class of ``pkg/msg/Name``; BagError if its Python package is not installed."""
    pkg, kind, cls = normalize_type(name).split("/")
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
        return getattr(module, cls)
    except (ImportError, AttributeError):
        raise BagError(f"message type {name} is not available in this Python environment "
                       f"(no module {pkg}.{kind} with class {cls})") from None


def type_name(msg_or_class: Any) -> str:
    """``sensor_msgs.msg.Image`` (class or instance) -> ``sensor_msgs/msg/Image``."""
    cls = msg_or_class if isinstance(msg_or_class, type) else type(msg_or_class)
    pkg, kind = cls.__module__.split(".")[:2]
    return f"{pkg}/{kind}/{cls.__name__}"


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """The rosbags typestore of the newest ROS 2 distribution rosbags knows out of Kilted, Jazzy, Humble."""
    from rosbags.typesys import Stores, get_typestore

    for store in ("ROS2_KILTED", "ROS2_JAZZY", "ROS2_HUMBLE"):
        if hasattr(Stores, store):
            return get_typestore(getattr(Stores, store))
    raise BagError("rosbags has no ROS 2 typestore (Humble or newer); update rosbags")


@functools.lru_cache(maxsize=None)
def definition(name: str) -> tuple[str, str]:
    """(message definition text, RIHS01 hash) of ``name`` for a rosbag2 connection."""
    name = normalize_type(name)
    store = typestore()
    if name not in store.types:
        raise BagError(f"message type {name} is unknown to the rosbags typestore: cannot write it to a bag")
    msgdef, _ = store.generate_msgdef(name, ros_version=2)
    return msgdef, store.hash_rihs01(name)


def canonical_cdr(data: bytes, name: str) -> bytes:
    """CDR bytes with zeroed alignment padding: ``data`` decoded and re-encoded by rosbags' CDR serialiser.

    rclpy's ``serialize_message`` leaves the padding between fields uninitialised (it differs from run to run),
    while the DDS payload a subscriber receives carries zeros; re-encoding makes written bags reproducible and
    byte-comparable with recorded ones. Types unknown to the typestore are returned unchanged.
    """
    name = normalize_type(name)
    store = typestore()
    if name not in store.types:
        return data
    return bytes(store.serialize_cdr(store.deserialize_cdr(data, name), name))


__all__ = ["CAMERA_INFO", "CLOCK", "COMPRESSED_IMAGE", "IMAGE", "IMAGE_TYPES", "TF", "canonical_cdr", "definition",
           "message_class", "normalize_type", "type_name", "typestore"]
