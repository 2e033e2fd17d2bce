"""The one error type of the bag tools, and the YAML reading that raises it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


class BagError(Exception):
    """Bad input to a bag tool (path, bag file, topic, message, dataset, parameter).

    The message is one line naming what is wrong and where: the file, the topic, the message index. The CLI
    prints it as ``mtlsi-bag <command>: error: <message>`` and exits with status 2.
    """


def read_yaml(path: str | os.PathLike, what: str, kind: str = "YAML") -> Any:
    """The parsed document of a YAML (or JSON) file; BagError ``"<what> <path>: ..."`` when it cannot be read or
    parsed. ``kind`` names the expected format in that message."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text())
    except OSError as e:
        raise BagError(f"{what} {p}: cannot read it ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise BagError(f"{what} {p}: not valid {kind} ({' '.join(str(e).split())})") from None


__all__ = ["BagError", "read_yaml"]
