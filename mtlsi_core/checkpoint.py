"""Checkpoints: atomic writes, loads that fail with a message naming the file.

A checkpoint is a dict saved with ``torch.save``:
``{"format": "mtlsi-checkpoint", "version": 1, "config": <Config as dict>, "model": <state_dict>,
   "meta": {...}, ...training state (optimizer, scheduler, rng, iteration) when saved by mtlsi-train}``.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

FORMAT = "mtlsi-checkpoint"
VERSION = 1
# the packaged model that the node, the demo and the benchmarks use when none is given (mtlsi_core/weights/<name>.pt)
DEFAULT_MODEL_NAME = "synth_transfer_lite0"


def packaged_model(name: str = DEFAULT_MODEL_NAME) -> Path:
    """Path of a checkpoint shipped inside the package (``mtlsi_core/weights/<name>.pt``), by default the one the
    node loads when its ``model_path`` is empty."""
    from importlib import resources

    return Path(str(resources.files("mtlsi_core").joinpath("weights", f"{name}.pt")))


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not an mtlsi checkpoint; the message names the file."""


def packaged_model_names() -> list[str]:
    """Names of the checkpoints shipped inside the package (``mtlsi_core/weights/<name>.pt``)."""
    folder = packaged_model().parent
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def resolve_checkpoint(path_or_name: str | os.PathLike) -> Path:
    """A checkpoint given as a file path, or as the bare name of a packaged model (``synth_transfer_lite0``). An
    existing file wins over a packaged name; neither raises CheckpointError naming what was given."""
    text = str(path_or_name)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if text and "/" not in text and os.sep not in text and path.suffix == "":
        packaged = packaged_model(text)
        if packaged.is_file():
            return packaged
    if path.exists():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    raise CheckpointError(f"checkpoint {text!r} not found: give a checkpoint file (.pt) or the name of a packaged "
                          f"model ({', '.join(packaged_model_names()) or 'none installed'})")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees either the old file or the whole new one."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | os.PathLike, writer: Callable[[io.BufferedWriter], Any]) -> None:
    """Call ``writer(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _new_file_mode(path))  # mkstemp's files are 0600: others could not read a map or a model
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _new_file_mode(path: Path) -> int:
    """The mode ``open()`` would give ``path``: the replaced file's own, else 0666 less the process's umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    try:  # Linux reports the umask without changing it (os.umask would, for every thread, for a moment)
        umask = next(int(line.split()[1], 8) for line in Path("/proc/self/status").read_text().splitlines()
                     if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = 0o022
    return 0o666 & ~umask


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def make_checkpoint(model_state: dict[str, torch.Tensor], config: dict[str, Any], meta: dict[str, Any] | None = None,
                    **extra: Any) -> dict[str, Any]:
    ckpt = {"format": FORMAT, "version": VERSION, "config": config, "model": model_state, "meta": dict(meta or {})}
    ckpt.update(extra)
    return ckpt


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and sanity-check a checkpoint. Raises CheckpointError naming the file on any problem."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated zip, pickle errors, wrong file type ...
        raise CheckpointError(f"checkpoint file {path} is corrupt or not a PyTorch file: {type(e).__name__}: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mtlsi checkpoint (missing format tag {FORMAT!r})")
    if int(ckpt.get("version", -1)) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt.get('version')}, newer than this code supports ({VERSION})")
    for key in ("config", "model"):
        if key not in ckpt:
            raise CheckpointError(f"{path} lacks the {key!r} entry")
    return ckpt
