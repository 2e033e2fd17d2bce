"""Loading original (non-Hugging-Face) checkpoints into transformers backbones by renaming keys."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch

from mtlsi_core.models.backbones.weights import (PretrainedWeightsError, check_load, load_state_dict_file,
                                                  missing_weights_message)

Rule = tuple[str, str]  # (regex on the original key, replacement)


def rename_state_dict(sd: dict[str, torch.Tensor], rules: list[Rule], qkv_suffix: str | None,
                      qkv_targets: tuple[str, str, str] = ("q_proj", "k_proj", "v_proj"),
                      drop: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Apply the first matching rule to each key; fused ``qkv`` tensors are split into three keys.

    ``qkv_suffix`` is the fused module name (e.g. ``attn.qkv``); its renamed key must contain ``{qkv}``
    where the q/k/v target names go. Keys matching a pattern in ``drop`` are discarded.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if any(re.search(p, key) for p in drop):
            continue
        new = key
        for pat, rep in rules:
            if re.search(pat, key):
                new = re.sub(pat, rep, key)
                break
        if qkv_suffix and f"{qkv_suffix}." in key:
            for name, part in zip(qkv_targets, value.chunk(3, dim=0)):
                out[new.replace("{qkv}", name)] = part.contiguous()
        else:
            out[new] = value
    return out


def load_original_checkpoint(model: torch.nn.Module, path: Path, backbone: str,
                             convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                             allowed_missing: tuple[str, ...] = ()) -> None:
    """Load an original-format ``.pth`` into ``model`` after ``convert``; raise naming the file on mismatch."""
    sd = convert(load_state_dict_file(path, backbone))
    try:
        result = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatch (e.g. another window size / width)
        raise PretrainedWeightsError(
            f"backbone {backbone!r}: weights file {path} does not fit the architecture: {e}") from None
    check_load(result, path, backbone, ignore_missing=allowed_missing)


def from_pretrained(cls, source: str, backbone: str, files: tuple[str, ...], hub_id: str | None, **overrides):
    """``cls.from_pretrained`` (a local HF directory or a hub id) with errors turned into PretrainedWeightsError
    that also say which files would do."""
    try:
        return cls.from_pretrained(source, **overrides)
    except Exception as e:  # OSError (offline / missing files), ValueError (config mismatch), RuntimeError (shapes)
        raise PretrainedWeightsError(missing_weights_message(
            backbone, files, hub_id, f"loading {source!r} failed ({type(e).__name__}: {str(e)[:300]})")) from None
