"""The one exception type of the data package."""
from __future__ import annotations


class DatasetError(ValueError):
    """A dataset folder, split file or sample file is missing or invalid; the message names the path."""
