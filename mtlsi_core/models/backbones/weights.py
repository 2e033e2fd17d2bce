"""Where pretrained backbone weights come from, and the error when they cannot be found.

``model.backbone.pretrained`` is ``false`` (random init), ``true`` (the backbone's default file, searched
in ``$MTLSI_WEIGHTS_DIR`` and ``mtlsi_core/weights/``, then its hub id when online), or a string: a local
file / directory, or a hub id (``owner/name``) used only when online.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


class PretrainedWeightsError(FileNotFoundError):
    """Pretrained weights were asked for but cannot be found or loaded; the message says what is needed."""


@dataclass(frozen=True)
class WeightsSource:
    """Resolved weights: exactly one of ``path`` (local file or directory) and ``hub_id`` is set."""

    path: Path | None = None
    hub_id: str | None = None


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("MTLSI_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["MTLSI_WEIGHTS_DIR"]))
    dirs.append(PACKAGE_WEIGHTS)
    return dirs


def hub_offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def missing_weights_message(backbone: str, files: tuple[str, ...], hub_id: str | None, detail: str = "") -> str:
    need = " or ".join(files)
    if hub_id:
        need += f" or a Hugging Face directory of {hub_id}"
    dirs = ", ".join(str(d) for d in search_dirs())
    msg = (f"backbone {backbone!r}: pretrained weights not found{': ' + detail if detail else ''}. "
           f"It needs {need}. Put the file in one of [{dirs}] (or set MTLSI_WEIGHTS_DIR), or pass its path with "
           f"--set model.backbone.pretrained=PATH")
    if hub_id:
        msg += f", or the hub id {hub_id!r} when online"
    return msg + "; use --set model.backbone.pretrained=false to build with random initialisation."


def resolve_weights(spec: bool | str, backbone: str, files: tuple[str, ...],
                    hub_id: str | None = None) -> WeightsSource | None:
    """Turn ``model.backbone.pretrained`` into a local path or a hub id; None for random init.

    Raises PretrainedWeightsError naming the expected file(s) when nothing usable is found.
    """
    if spec is False:
        return None
    if spec is True:
        for d in search_dirs():
            for name in files:
                if (d / name).exists():
                    return WeightsSource(path=d / name)
        if hub_id and not hub_offline():
            return WeightsSource(hub_id=hub_id)
        raise PretrainedWeightsError(missing_weights_message(backbone, files, hub_id, "no local file and the hub is offline"
                                                             if hub_id else "no local file"))
    p = Path(os.path.expanduser(spec))
    if p.exists():
        return WeightsSource(path=p)
    looks_like_hub_id = spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and hub_id is not None
    if looks_like_hub_id and not hub_offline():
        return WeightsSource(hub_id=spec)
    raise PretrainedWeightsError(missing_weights_message(backbone, files, hub_id, f"{spec!r} does not exist"
                                                         + (" and the hub is offline" if looks_like_hub_id else "")))


def load_state_dict_file(path: Path, backbone: str) -> dict:
    """Load a ``.pth``/``.pt``/``.bin``/``.safetensors`` state dict; unwrap {'state_dict'|'model': ...}."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PretrainedWeightsError(
            f"backbone {backbone!r}: cannot read weights file {path}: {type(e).__name__}: {e}") from None
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise PretrainedWeightsError(f"backbone {backbone!r}: {path} does not hold a state dict")
    return sd


def check_load(result, path: Path, backbone: str, ignore_unexpected: tuple[str, ...] = (),
               ignore_missing: tuple[str, ...] = ()) -> None:
    """Raise when ``load_state_dict(strict=False)`` left parameters missing or found unknown keys.

    Keys starting with ``ignore_unexpected`` (e.g. a classifier head) or ``ignore_missing`` (layers that the
    checkpoint cannot have, e.g. new output norms) are allowed.
    """
    missing = [k for k in result.missing_keys if not (ignore_missing and k.startswith(ignore_missing))]
    unexpected = [k for k in result.unexpected_keys if not (ignore_unexpected and k.startswith(ignore_unexpected))]
    if missing or unexpected:
        raise PretrainedWeightsError(
            f"backbone {backbone!r}: weights file {path} does not match the architecture: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
