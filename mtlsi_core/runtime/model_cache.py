"""A user-level cache of the model files made from a checkpoint on first use (ONNX fp32, ONNX INT8), keyed by
everything that changes them, each entry written atomically and checked before use.

Folder: the ``cache_dir`` argument (node parameter ``model_cache_dir``), else ``$MTLSI_CACHE_DIR``, else the user's
cache folder, ``platformdirs.user_cache_dir("mtlsi_ros")`` (Linux: ``$XDG_CACHE_HOME/mtlsi_ros``, else
``~/.cache/mtlsi_ros``; macOS: ``~/Library/Caches/mtlsi_ros``; Windows: ``%LOCALAPPDATA%\\mtlsi_ros\\Cache``). An
entry is ``<stem>-<digest>.onnx`` plus a sidecar ``<file>.json`` holding the key and the file's sha256. The key
(``model_key``) holds the source's sha256 (the checkpoint's content), the input size, the precision, the versions of
torch, onnx and onnxruntime, the cache format (``CACHE_FORMAT``) and, for INT8, the calibration settings; its digest
names the file, so a change of any component selects another entry. An entry whose sidecar is missing, unreadable, of
another key, or whose file's hash differs from the sidecar's (truncated or corrupt file) is rebuilt, and so is one
the runtime then fails to load (``ModelCache.invalidate``). Builds write to a temporary file and ``os.replace`` it
(readers never see a partial file); an exclusive lock on ``<file>.lock`` (``filelock``) makes a second process that
wants the same entry wait for the first build and reuse it. This module touches only files in the cache folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from filelock import FileLock
from platformdirs import user_cache_dir

from mtlsi_core.checkpoint import atomic_write

T = TypeVar("T")

log = logging.getLogger(__name__)

# bump when the way entries are made changes (export settings, quantisation recipe ...);
# 2: exports carry the auxiliary outputs (<labels task>_confidence)
CACHE_FORMAT = 2
CACHE_ENV = "MTLSI_CACHE_DIR"
APP_NAME = "mtlsi_ros"  # the folder under the user's cache folder


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else $MTLSI_CACHE_DIR, else the user's cache folder (``platformdirs``; on
    Linux $XDG_CACHE_HOME/mtlsi_ros, else ~/.cache/mtlsi_ros)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(user_cache_dir(APP_NAME, appauthor=False))


def tool_versions() -> dict[str, str]:
    """Versions of what makes and runs a cached file (part of every key)."""
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "cache_format": str(CACHE_FORMAT)}


def model_key(source_sha256: str, input_size: tuple[int, int], precision: str,
              versions: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cache key of one entry (a JSON-able dict; ``key_digest`` names the file)."""
    return {"source_sha256": str(source_sha256), "input_size": [int(input_size[0]), int(input_size[1])],
            "precision": str(precision), "versions": dict(versions if versions is not None else tool_versions()),
            "extra": dict(extra or {})}


def key_digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def sha256_file(path: str | os.PathLike) -> str:
    from mtlsi_core.runtime.export import sha256_file as _sha

    return _sha(path)


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    key: dict[str, Any]
    built: bool  # made now (False: reused)
    reason: str  # why it was (re)built, or "cached"
    seconds: float = 0.0


class ModelCache:
    """Entries of one cache folder (see the module docstring)."""

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.root = cache_root(cache_dir)

    def entry_path(self, stem: str, key: Mapping[str, Any], suffix: str = ".onnx") -> Path:
        return self.root / f"{stem}-{key['precision']}-{key_digest(key)}{suffix}"

    @staticmethod
    def sidecar(path: Path) -> Path:
        return Path(f"{path}.json")

    def stale_reason(self, path: Path, key: Mapping[str, Any]) -> str | None:
        """Why ``path`` cannot be used for ``key`` (None: it can)."""
        if not path.is_file():
            return "not cached yet"
        side = self.sidecar(path)
        try:
            rec = json.loads(side.read_text())
            old_key, want_sha = rec["key"], rec["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"its sidecar {side.name} is missing or unreadable"
        if old_key != dict(key):
            changed = sorted(k for k in set(old_key) | set(key) if old_key.get(k) != key.get(k))
            return "stale entry (key differs in " + ", ".join(changed) + ")"
        if sha256_file(path) != want_sha:
            return "the cached file is corrupt (its sha256 differs from the sidecar's)"
        return None

    def _lock(self, path: Path) -> FileLock:
        """The exclusive lock of one entry, held while it is checked again and built."""
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(f"{path}.lock")

    def get(self, stem: str, key: Mapping[str, Any], build: Callable[[Path], Any], force: bool = False,
            suffix: str = ".onnx") -> CacheEntry:
        """The entry of ``key``: reused when valid, else ``build(path)`` writes it (it must write ``path``
        atomically, e.g. with ``checkpoint.atomic_write``) and the sidecar is written after it."""
        key = dict(key)
        path = self.entry_path(stem, key, suffix)
        reason = "rebuild requested" if force else self.stale_reason(path, key)
        if reason is None:
            log.info("using cached model %s", path)
            return CacheEntry(path, key, False, "cached")
        with self._lock(path):
            if not force:  # another process may have built it while we waited for the lock
                again = self.stale_reason(path, key)
                if again is None:
                    log.info("using cached model %s (built by another process)", path)
                    return CacheEntry(path, key, False, "cached")
                reason = again
            log.warning("building cached model %s: %s", path, reason)
            t0 = time.monotonic()
            build(path)
            if not path.is_file():
                raise RuntimeError(f"building cache entry {path} wrote no file")
            rec = {"key": key, "sha256": sha256_file(path), "reason": reason,
                   "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            atomic_write(self.sidecar(path), lambda f: f.write(json.dumps(rec, indent=1, sort_keys=True).encode()))
            seconds = time.monotonic() - t0
        log.warning("built %s in %.1f s", path, seconds)
        return CacheEntry(path, key, True, reason, seconds)

    def invalidate(self, path: Path) -> None:
        """Drop an entry that could not be used (its sidecar first, so it is rebuilt even if the file stays)."""
        for p in (self.sidecar(path), path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


# --------------------------------------------------------------------------------------------------
# The entries this project makes: the fp32 ONNX export of a checkpoint and its INT8 quantisation.
# --------------------------------------------------------------------------------------------------

ONNX_PRECISIONS = ("fp32", "int8")


def _checkpoint_input_size(checkpoint: Path) -> tuple[int, int]:
    from mtlsi_core.checkpoint import CheckpointError, load_checkpoint

    try:
        h, w = load_checkpoint(checkpoint)["config"]["data"]["input_size"]
        return int(h), int(w)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{checkpoint}: stored config has no valid data.input_size ({e})") from None


def cached_onnx(source: str | os.PathLike, precision: str = "fp32", cache_dir: str | os.PathLike | None = None,
                calibration: Any = None, force: bool = False, exporter: str = "cache") -> CacheEntry:
    """The ONNX of ``source`` (an mtlsi checkpoint ``.pt``, or an fp32 ``.onnx`` for ``int8``) at ``precision``
    from the cache, made on first use: fp32 by ``export.export_onnx`` (verified against PyTorch), int8 by
    ``quantize.quantize_onnx`` of the fp32 entry (``calibration``: a ``quantize.CalibrationSpec``).

    ``exporter`` "cache" (default): the TorchScript exporter, the dynamo one where it fails (TorchScript is 5x faster
    to export here: 5.5 vs 31.5 s on the tiny test model, and ORT runs both exports of the edge model equally fast),
    so a node's first start waits less; or one of ``export.EXPORTERS``."""
    from mtlsi_core.checkpoint import CheckpointError
    from mtlsi_core.runtime.base import ModelFileError

    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"cached ONNX precision must be one of {', '.join(ONNX_PRECISIONS)}, got {precision!r}")
    src = Path(source)
    if not src.is_file():
        raise (ModelFileError if src.suffix == ".onnx" else CheckpointError)(f"model file not found: {src}")
    cache = ModelCache(cache_dir)
    sha = sha256_file(src)
    if src.suffix == ".onnx":
        if precision != "int8":
            raise ValueError(f"{src}: an .onnx file is used as it is at fp32; only int8 is made from it")
        from mtlsi_core.runtime.export import read_onnx_meta

        fp32_path, input_size = src, read_onnx_meta(src).input_size
    else:
        input_size = _checkpoint_input_size(src)

        def export(path: Path) -> None:
            from mtlsi_core.runtime.export import export_onnx, load_for_export

            model, cfg, source_info = load_for_export(src)
            if exporter != "cache":
                export_onnx(model, cfg, path, source=source_info, exporter=exporter)
                return
            try:
                export_onnx(model, cfg, path, source=source_info, exporter="torchscript")
            except Exception as e:  # ExportError, or the exporter itself
                log.warning("TorchScript export failed (%s: %s): trying the dynamo exporter", type(e).__name__, e)
                export_onnx(model, cfg, path, source=source_info, exporter="dynamo")

        fp32 = cache.get(src.stem, model_key(sha, input_size, "fp32"), export, force=force and precision == "fp32")
        if precision == "fp32":
            return fp32
        fp32_path = fp32.path  # int8 starts from the fp32 entry
    from mtlsi_core.runtime.quantize import CalibrationSpec, quantize_onnx

    spec = (calibration if calibration is not None else CalibrationSpec()).resolved()  # the scheme for this CPU
    key = model_key(sha, input_size, "int8", extra={"calibration": spec.key()})
    return cache.get(src.stem, key, lambda path: quantize_onnx(fp32_path, path, spec), force=force)


def load_cached_onnx(source: str | os.PathLike, precision: str, loader: Callable[[Path], T], *,
                     cache_dir: str | os.PathLike | None = None, calibration: Any = None) -> tuple[T, CacheEntry]:
    """``loader(path)`` of ``cached_onnx(source, precision)``; an entry that passed its hash check but that the
    loader rejects (``ModelFileError``: a truncated or foreign file) is dropped and rebuilt once, and a second
    rejection is raised. Returns the loader's result and the entry it loaded."""
    from mtlsi_core.runtime.base import ModelFileError

    entry = cached_onnx(source, precision, cache_dir=cache_dir, calibration=calibration)
    try:
        return loader(entry.path), entry
    except ModelFileError as e:
        log.warning("cached %s model %s cannot be loaded (%s): rebuilding it", precision, entry.path, e)
        ModelCache(cache_dir).invalidate(entry.path)
    entry = cached_onnx(source, precision, cache_dir=cache_dir, calibration=calibration, force=True)
    return loader(entry.path), entry


__all__ = ["CACHE_ENV", "CACHE_FORMAT", "CacheEntry", "ModelCache", "cache_root", "cached_onnx", "key_digest",
           "load_cached_onnx", "model_key", "tool_versions"]
