"""BatchNorm statistics re-estimated on real photos (AdaBN; Li et al., "Revisiting Batch Normalization For Practical
Domain Adaptation", 2016).

A network's BatchNorm layers normalise with running means and variances collected on its training images: ImageNet
photos for a backbone kept frozen (``model.backbone.freeze_bn``), synthetic frames otherwise. AdaBN replaces them with
the statistics of target-domain images (here: real, unlabelled photos) and changes nothing else.

``reestimate_bn(model, batches, modules=...)`` resets the running mean / variance of the chosen layers and recomputes
them by a forward pass over the batches with only those layers in training mode (every other module in eval mode: no
dropout, no drop-path, other BatchNorms use their stored statistics) and no gradient. ``momentum=None`` (default)
makes each layer's statistics the cumulative average over the batches (every batch weighs the same; the variance is
the mean of the per-batch unbiased variances); a number is the exponential moving average of that momentum instead.
Parameters never change; afterwards every module's training flag and every layer's momentum are what they were.

``modules="backbone"`` re-estimates the backbone's BatchNorm layers only and then runs the backbone alone (the head
cannot change its statistics); ``"head"`` every BatchNorm layer outside the backbone (decoders, interaction,
distillers), the backbone normalising with its stored statistics; ``"all"`` every BatchNorm layer of the model. The
last two run full forward passes.

Which layers to choose: AdaBN assumes a layer's stored statistics are those of the training (source) images and
that the layers after it learned on features normalised by them. That holds for every layer of a model trained with
its BatchNorms in training mode; with ``model.backbone.freeze_bn`` the backbone kept ImageNet's statistics (already
those of real photos) and only the head's were estimated on synthetic frames: there ``"head"`` is the AdaBN choice,
and changing the backbone's moves the features away from what the head learned on.

Layers frozen by ``model.backbone.freeze_bn`` (kept in eval mode while training) are re-estimated all the same: the
stored statistics are what that option keeps, so a model loaded from the adapted checkpoint, and one fine-tuned from
it with the option on, keeps the re-estimated ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

MODULES = ("backbone", "head", "all")


@dataclass(frozen=True)
class BNReport:
    """What ``reestimate_bn`` did: layer names, images and batches seen."""

    layers: tuple[str, ...]
    images: int
    batches: int
    modules: str
    momentum: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"layers": len(self.layers), "images": self.images, "batches": self.batches, "modules": self.modules,
                "momentum": self.momentum}


def batchnorm_layers(model: nn.Module, modules: Literal["backbone", "head", "all"] = "backbone"
                     ) -> dict[str, _BatchNorm]:
    """The BatchNorm layers (with running statistics) that ``modules`` selects, by their name in ``model``."""
    if modules not in MODULES:
        raise ValueError(f"modules must be one of {', '.join(MODULES)}, got {modules!r}")
    if modules != "all" and not isinstance(getattr(model, "backbone", None), nn.Module):
        raise ValueError(f"modules={modules!r}: {type(model).__name__} has no backbone submodule")

    def chosen(name: str) -> bool:
        in_backbone = (name + ".").startswith("backbone.")
        return modules == "all" or in_backbone == (modules == "backbone")

    return {name: m for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats and chosen(name)}


def _images(batch: Any) -> torch.Tensor:
    x = batch["image"] if isinstance(batch, Mapping) else batch
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError("reestimate_bn: each batch must be a (B, 3, H, W) tensor of normalised images or a dict with "
                         f"one under 'image', got {type(x).__name__}{tuple(x.shape) if hasattr(x, 'shape') else ''}")
    return x


def reestimate_bn(model: nn.Module, images_iterable: Iterable[Any], *,
                  modules: Literal["backbone", "head", "all"] = "backbone", momentum: float | None = None) -> BNReport:
    """Reset and re-estimate the running statistics of ``model``'s BatchNorm layers chosen by ``modules`` on
    ``images_iterable`` (batches of normalised images as the network takes them: (B, 3, H, W) tensors or sample
    dicts with ``"image"``, e.g. a DataLoader over ``mtlsi_core.data.photos.PhotoFolder``). See the module docstring.
    The model is changed in place; batches are moved to the device of its parameters."""
    if momentum is not None and not 0.0 < float(momentum) <= 1.0:
        raise ValueError(f"momentum must be None (cumulative average) or in (0, 1], got {momentum}")
    layers = batchnorm_layers(model, modules)
    if not layers:
        raise ValueError(f"reestimate_bn: {type(model).__name__} has no BatchNorm layer with running statistics"
                         + {"backbone": " in its backbone", "head": " outside its backbone"}.get(modules, ""))
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    forward = model.backbone if modules == "backbone" else model
    flags = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in layers.values()}
    saved = {m: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in layers.values()}
    n_images = n_batches = 0
    try:
        model.eval()
        for m in layers.values():
            m.reset_running_stats()
            m.momentum = None if momentum is None else float(momentum)
            m.training = True  # the layer alone: not m.train(), which a backbone may override
        with torch.no_grad():
            for batch in images_iterable:
                x = _images(batch).to(device=device, dtype=dtype, non_blocking=True)
                if x.shape[0] == 0:
                    continue
                forward(x)
                n_images += int(x.shape[0])
                n_batches += 1
        if n_batches == 0:
            raise ValueError("reestimate_bn: no images (the iterable gave no batch)")
    except BaseException:
        for m, (mean, var, count) in saved.items():  # a failed pass leaves the statistics as they were
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
        raise
    finally:
        for m, mom in momenta.items():
            m.momentum = mom
        for m, flag in flags.items():
            m.training = flag
    return BNReport(tuple(layers), n_images, n_batches, modules, None if momentum is None else float(momentum))


__all__ = ["BNReport", "MODULES", "batchnorm_layers", "reestimate_bn"]
