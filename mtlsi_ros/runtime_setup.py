"""The runtime the node builds from its parameters: one rule for the node and ``mtlsi-bag infer``.

``model_file(params, override)`` is the model the parameters name (``model_path``, else the packaged default);
``load_runtime(params, path)`` builds the runtime of ``backend`` with the node's options and raises
``FileNotFoundError`` / ``RuntimeError`` with one line naming the file. It reads the parameters and the model file;
it publishes and logs nothing (its callers do).
"""
from __future__ import annotations

from pathlib import Path

from mtlsi_core.checkpoint import packaged_model
from mtlsi_core.runtime import Runtime, create_runtime, runtime_options
from mtlsi_ros.params import NodeParams
from mtlsi_ros.publishing import runtime_auxiliary


def model_file(params: NodeParams, override: str | None = None) -> Path:
    """``override``, else ``params.model_path``, else the packaged default model."""
    given = override or params.model_path
    return Path(given).expanduser() if given else packaged_model()


def load_runtime(params: NodeParams, path: Path, default_hint: str = "set model_path") -> Runtime:
    """The runtime for ``path`` as the node configures it; ``default_hint`` ends the error when the packaged default
    is missing (how the caller names another model)."""
    if not path.is_file():
        packaged = path == packaged_model()
        raise FileNotFoundError(f"model file not found: {path}"
                                + (f" (the packaged default; {default_hint})" if packaged else ""))
    try:
        return create_runtime(params.backend, str(path), device=params.device, precision=params.precision,
                              **runtime_options(params.backend, cache_dir=params.model_cache_dir or None,
                                                intra_op_threads=params.intra_op_threads or None,
                                                inter_op_threads=params.inter_op_threads or None,
                                                graph_optimization=params.graph_optimization,
                                                auxiliary=runtime_auxiliary(params)))
    except Exception as e:  # corrupt file, wrong format, missing backend library ...
        msg = str(e) if str(path) in str(e) else f"{path}: {e}"
        raise RuntimeError(f"cannot load model {' '.join(msg.split())} ({type(e).__name__})") from None


__all__ = ["load_runtime", "model_file"]
