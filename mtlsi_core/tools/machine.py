"""The machine a benchmark ran on, saved with every result (figures are only comparable on the same machine)."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

from mtlsi_core.checkpoint import atomic_write_bytes


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: str = "cpu", **extra: Any) -> dict[str, Any]:
    """CPU, cores, memory, library versions, thread settings, load and (on CUDA) the GPU; ``extra`` is merged in."""
    import psutil
    import torch

    info: dict[str, Any] = {
        "cpu_model": cpu_model(), "physical_cores": psutil.cpu_count(logical=False), "logical_cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"), "device": device,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    for name in ("onnxruntime", "onnx", "cv2"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            pass
    if device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda)
    info.update(extra)
    return info


def summary(info: dict[str, Any]) -> str:
    """One line of :func:`describe`'s dict for reports, e.g. ``AMD EPYC, 2 cores / 2 CPUs, 23.5 GiB, ...``."""
    parts = [f"{info.get('cpu_model', '?')}, {info.get('physical_cores', '?')} cores / "
             f"{info.get('logical_cpus', '?')} CPUs, {info.get('memory_gib', '?')} GiB"]
    if "gpu" in info:
        parts.append(f"{info['gpu']} ({info.get('gpu_memory_gib', '?')} GiB, CUDA {info.get('cuda', '?')})")
    parts.append(f"torch {info.get('torch', '?')} ({info.get('torch_threads', '?')} threads)")
    if "onnxruntime" in info:
        parts.append(f"onnxruntime {info['onnxruntime']}")
    if "load_average_at_start" in info:
        parts.append(f"load average at start {info['load_average_at_start'][0]}")
    return "; ".join(parts)


def save_result(path: str | os.PathLike, doc: dict[str, Any], indent: int = 1) -> Path:
    """Write a benchmark's result ``doc`` as JSON at ``path`` atomically (folders made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(doc, indent=indent) + "\n").encode())
    return path
