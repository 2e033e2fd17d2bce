"""Process-group set-up for ``torchrun`` (DistributedDataParallel) and single-process runs.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK (plus MASTER_ADDR / MASTER_PORT). Where they are set and
WORLD_SIZE > 1, :func:`init_distributed` joins the group: NCCL on CUDA, Gloo on CPU. Everything else in the
trainer asks :class:`DistInfo` who it is instead of reading the environment again.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


class DeviceError(RuntimeError):
    """The requested device does not exist here."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: not distributed

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str) -> int | None:
    val = os.environ.get(name)
    if val is None or val == "":
        return None
    try:
        return int(val)
    except ValueError:
        raise ValueError(f"environment variable {name}={val!r} is not an integer") from None


def env_dist_info() -> DistInfo:
    """Rank / world size from torchrun's environment (single process where unset)."""
    world = _env_int("WORLD_SIZE") or 1
    rank = _env_int("RANK") or 0
    local = _env_int("LOCAL_RANK")
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistInfo(rank=rank, world_size=world, local_rank=rank if local is None else local)


def resolve_train_device(requested: str | None, info: DistInfo) -> torch.device:
    """The device of this process: ``cuda:<LOCAL_RANK>`` under DDP on GPU, else the requested one.

    ``None`` / "auto" picks CUDA when available. Asking for CUDA where there is none is an error here
    (training silently on CPU for days is worse than failing).
    """
    req = (requested or "auto").lower()
    if req == "auto":
        req = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(req)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {requested!r}: CUDA is not available on this machine")
        if info.enabled or dev.index is None:
            dev = torch.device("cuda", info.local_rank if info.enabled else 0)
        torch.cuda.set_device(dev)
    return dev


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group when launched by torchrun with WORLD_SIZE > 1; return who we are."""
    info = env_dist_info()
    if not info.enabled:
        return info
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kw: dict[str, Any] = {}
        if device.type == "cuda":
            kw["device_id"] = device
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s), **kw)
    return DistInfo(info.rank, info.world_size, info.local_rank, backend)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` when not distributed."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
