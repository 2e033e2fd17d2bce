"""The one error type of the bag tools."""
from __future__ import annotations


class BagError(Exception):
    """Bad input to a bag tool (path, bag file, topic, message, dataset, parameter).

    The message is one line naming what is wrong and where: the file, the topic, the message index. The CLI
    prints it as ``mtlsi-bag <command>: error: <message>`` and exits with status 2.
    """


__all__ = ["BagError"]
