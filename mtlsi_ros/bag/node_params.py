"""The perception node's parameters from ROS 2 params files, for the offline tools (``mtlsi-bag infer``).

A params file maps node names to ``ros__parameters``::

    /**:                      # every node
      ros__parameters: {...}
    /camera/perception:       # one node (also "perception", "/*/perception", "/**/perception")
      ros__parameters: {...}

Sections are applied in file order, files in the order given (later values win), as ``--params-file`` does.
Parameters every ROS node has (``use_sim_time`` ...) are accepted and ignored; anything else unknown to the node,
or a bad value, is an error naming the file and the parameter (``mtlsi_ros.params.validate``).
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from mtlsi_ros.bag.errors import BagError, read_yaml
from mtlsi_ros.params import PARAMS_BY_NAME, NodeParams, ParamError, validate

NODE_NAME = "perception"
# parameters of every rclpy node (not the perception node's own)
ROS_BUILTIN = ("use_sim_time", "start_type_description_service", "qos_overrides", "start_parameter_services",
               "start_parameter_event_publisher")


def _match_tokens(pattern: Sequence[str], name: Sequence[str]) -> bool:
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":  # any number of tokens
        return any(_match_tokens(rest, name[i:]) for i in range(len(name) + 1))
    return bool(name) and fnmatch.fnmatchcase(name[0], head) and _match_tokens(rest, name[1:])


def section_matches(key: str, node_fqn: str) -> bool:
    """Whether a params-file section ``key`` applies to the node ``node_fqn`` (e.g. ``/camera/perception``): ROS
    wildcards, ``*`` one name token, ``**`` any number; a key without a leading slash matches in any namespace."""
    tokens = [t for t in key.split("/") if t]
    if not key.startswith("/"):
        tokens = ["**"] + tokens
    return _match_tokens(tokens, [t for t in node_fqn.split("/") if t])


def read_params_files(files: Sequence[str | os.PathLike], node_fqn: str = "/" + NODE_NAME) -> dict[str, Any]:
    """The merged raw values for ``node_fqn`` from ``files`` (ROS built-ins dropped); BagError naming the file."""
    values: dict[str, Any] = {}
    for f in files:
        path = Path(f)
        doc = read_yaml(path, "params file")
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise BagError(f"params file {path}: expected a mapping of node names to ros__parameters")
        for key, section in doc.items():
            if not isinstance(section, Mapping) or "ros__parameters" not in section:
                raise BagError(f"params file {path}: section {key!r} has no ros__parameters")
            if not section_matches(str(key), node_fqn):
                continue
            params = section["ros__parameters"]
            if not isinstance(params, Mapping):
                raise BagError(f"params file {path}: {key}.ros__parameters must be a mapping")
            for name, value in params.items():
                if name in ROS_BUILTIN or str(name).startswith("qos_overrides"):
                    continue
                if name not in PARAMS_BY_NAME:
                    raise BagError(f"params file {path}: unknown parameter {name!r} of the perception node")
                values[name] = value
    return values


def load_node_params(files: Sequence[str | os.PathLike] = (), overrides: Mapping[str, Any] | None = None,
                     node_fqn: str = "/" + NODE_NAME) -> NodeParams:
    """``NodeParams`` as the node would hold them when started with ``--params-file`` for each of ``files`` and then
    ``overrides`` (``-p name:=value``)."""
    values = read_params_files(files, node_fqn)
    values.update(overrides or {})
    try:
        return validate(values)
    except ParamError as e:
        where = ", ".join(str(f) for f in files) or "defaults"
        raise BagError(f"node parameters ({where}): {e}") from None


__all__ = ["NODE_NAME", "ROS_BUILTIN", "load_node_params", "read_params_files", "section_matches"]
