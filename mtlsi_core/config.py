"""Experiment configuration: one YAML file per dataset x backbone, validated on load.

Unknown keys, wrong types and inconsistent values are errors that name the file and the key.
The model section lives in ``mtlsi_core.models.config`` (owned by the model code); this module composes
the sections and does the loading.

Configs are found by path, or by bare name among the packaged ones (``mtlsi_core/configs/<name>.yaml``).
``overrides`` are ``dotted.key=value`` strings (value parsed as YAML), e.g. ``train.iterations=10``.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtlsi_core.models.config import ModelConfig
from mtlsi_core.tasks import DATASETS, TASKS, get_dataset


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and key."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _range(lo_min: float, hi_max: float | None = None):
    """A validator of a (lo, hi) range field: lo_min <= lo <= hi (<= hi_max)."""
    def check(v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not lo_min <= lo <= hi or (hi_max is not None and hi > hi_max):
            bound = f"{lo_min:g} <= lo <= hi" + (f" <= {hi_max:g}" if hi_max is not None else "")
            raise ValueError(f"range {list(v)} must satisfy {bound}")
        return v
    return field_validator("*")(lambda cls, v: check(v) if isinstance(v, tuple) else v)


class _Effect(StrictModel):
    """One sim-to-real image effect: applied to a training image with probability ``p`` (0: off, the default,
    which draws no random number, so configs without it train exactly as before)."""

    p: float = Field(default=0.0, ge=0.0, le=1.0)


class DefocusBlurConfig(_Effect):
    sigma: tuple[float, float] = (0.4, 1.5)  # Gaussian PSF standard deviation, pixels of the network input
    _r = _range(0.01)


class MotionBlurConfig(_Effect):
    length: tuple[float, float] = (3.0, 9.0)  # blur streak length in pixels (any direction)
    _r = _range(1.0)


class SensorNoiseConfig(_Effect):
    # in linear intensity (0..1): variance = shot * signal + read ** 2 (Gaussian approximation of Poisson)
    shot: tuple[float, float] = (0.0, 0.01)
    read: tuple[float, float] = (0.0, 0.01)
    _r = _range(0.0)


class ExposureConfig(_Effect):
    gain: tuple[float, float] = (0.6, 1.6)  # linear-intensity multiplier (about -0.7..+0.7 EV)
    gamma: tuple[float, float] = (0.8, 1.25)  # exponent applied after the sRGB curve (tone-curve change)
    _r = _range(0.01)


class VignettingConfig(_Effect):
    strength: tuple[float, float] = (0.1, 0.4)  # fraction of the light lost in the image corners (radial, squared)
    _r = _range(0.0, 0.95)


class WhiteBalanceConfig(_Effect):
    gain: tuple[float, float] = (0.8, 1.2)  # per-channel (R, G, B) linear gains, drawn independently
    _r = _range(0.01)


class SaturationConfig(_Effect):
    scale: tuple[float, float] = (0.5, 1.3)  # chroma multiplier around the luminance
    grayscale: float = Field(default=0.0, ge=0.0, le=1.0)  # probability of scale 0 (a grey image) when applied
    _r = _range(0.0)


class JpegConfig(_Effect):
    quality: tuple[int, int] = (40, 95)  # OpenCV JPEG quality of the re-compression
    _r = _range(1, 100)


class FourierStyleConfig(_Effect):
    # Fourier domain adaptation (FDA, Yang & Soatto, CVPR 2020): the image takes the low-frequency amplitude
    # spectrum of a random real photo of data.target_photos and keeps its own phase (layout and edges stay, so the
    # ground truth stays right). beta: half-width of the swapped band as a fraction of the image's shorter side,
    # drawn uniformly from this range (the paper's L: 0.01-0.09; 0 = no change). mtlsi_core.adaptation.fourier
    beta: tuple[float, float] = (0.01, 0.05)
    _r = _range(0.0, 0.5)


class AugmentConfig(StrictModel):
    # The peers' (InvPT/ATRC) training augmentation.
    scale_range: tuple[float, float] = (0.5, 2.0)  # random rescale; depth is divided by the scale
    crop: bool = True  # random crop to data.input_size, padding with each task's ignore value
    hflip: bool = True  # horizontal flip; normals' x component is negated
    photometric: bool = True  # brightness / contrast / saturation / hue jitter
    # Sim-to-real camera effects on the image only (ground truth untouched), after the ones above, in the order a
    # camera applies them: defocus / motion blur, exposure, vignetting, white balance and sensor noise on linear
    # intensity, then the tone curve (gamma), saturation, JPEG. Each is off (p = 0) by default; see
    # mtlsi_core.data.transforms.SensorAugment. A random focal length (intrinsics jitter) is scale_range: a zoom
    # by s is the camera with focal s x canonical_focal, and depth is divided by s accordingly.
    defocus_blur: DefocusBlurConfig = Field(default_factory=DefocusBlurConfig)
    motion_blur: MotionBlurConfig = Field(default_factory=MotionBlurConfig)
    exposure: ExposureConfig = Field(default_factory=ExposureConfig)
    vignetting: VignettingConfig = Field(default_factory=VignettingConfig)
    white_balance: WhiteBalanceConfig = Field(default_factory=WhiteBalanceConfig)
    sensor_noise: SensorNoiseConfig = Field(default_factory=SensorNoiseConfig)
    saturation: SaturationConfig = Field(default_factory=SaturationConfig)
    jpeg: JpegConfig = Field(default_factory=JpegConfig)
    # Real photos' style (sim-to-real with unlabelled photos): FDA with a photo of data.target_photos, on the image
    # only, after the flip and before the photometric jitter and the camera effects above (which then act on the
    # restyled image). Off (p = 0) by default; p > 0 needs data.target_photos.
    fourier_style: FourierStyleConfig = Field(default_factory=FourierStyleConfig)


class DataConfig(StrictModel):
    dataset: Literal["nyud", "pascal", "synth"]
    root: str | None = None  # dataset folder; `--data DIR` on the command line overrides it
    tasks: list[str]
    input_size: tuple[int, int]  # (H, W) network input
    train_split: str = "train"
    val_split: str = "val"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet normalisation
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    num_workers: int = Field(default=2, ge=0)
    # Focal length (pixels) of the training images at augmentation scale 1: the camera the depth head learns
    # (training divides depth by the zoom). With it, runtimes turn depth into metres for any camera whose
    # focal length is known (camera_info K[0]) and for the resize to the network input; None: depth as predicted.
    canonical_focal: float | None = Field(default=None, gt=0)
    # Folder of real, unlabelled RGB photos of the target domain (.jpg/.jpeg/.png/.webp, searched recursively;
    # mtlsi_core.data.photos.PhotoFolder), a path relative to the working folder or absolute: where
    # data.augment.fourier_style draws its photos from (required when its p > 0). None: no target photos.
    target_photos: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        ds = get_dataset(self.dataset)
        if not self.tasks:
            raise ValueError("data.tasks must name at least one task")
        for t in self.tasks:
            if t not in TASKS:
                raise ValueError(f"data.tasks: unknown task {t!r}; known: {', '.join(TASKS)}")
            if t not in ds.tasks:
                raise ValueError(f"data.tasks: task {t!r} is not annotated in dataset {ds.name!r} ({', '.join(ds.tasks)})")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("data.tasks lists a task twice")
        h, w = self.input_size
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ValueError(f"data.input_size {self.input_size} must be positive multiples of 32")
        lo, hi = self.augment.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"data.augment.scale_range {self.augment.scale_range} must satisfy 0 < lo <= hi")
        if self.augment.fourier_style.p > 0 and not self.target_photos:
            raise ValueError(f"data.augment.fourier_style.p = {self.augment.fourier_style.p:g} needs "
                             "data.target_photos (a folder of real photos to draw the style from)")
        return self


class SelfTrainingConfig(StrictModel):
    # Mean-teacher self-training on the real photos of data.target_photos (sim-to-real, issue 20;
    # mtlsi_core.adaptation.mean_teacher): the student learns an EMA teacher's confident labels of strongly perturbed
    # photos. Off (weight 0) by default; weight > 0 needs data.target_photos.
    weight: float = Field(default=0.0, ge=0)  # of the unlabelled loss, added to the synthetic frames' loss
    ramp_iterations: int = Field(default=100, ge=0)  # linear ramp of the weight from 0 (0: full weight at once)
    ema_decay: float = Field(default=0.999, ge=0, lt=1)  # teacher <- decay x teacher + (1 - decay) x student
    photos_per_batch: int = Field(default=4, ge=1)  # photos drawn each step, beside train.batch_size frames
    tasks: list[str] = Field(default_factory=lambda: ["semseg", "normals", "edge"])  # those among data.tasks learn
    confidence: float = Field(default=0.8, gt=0, le=1)  # labels tasks: least softmax confidence of a pseudo-label
    binary_band: tuple[float, float] = (0.3, 0.9)  # binary tasks: <= lo is 0, >= hi is 1, ignored between

    @model_validator(mode="after")
    def _check(self) -> "SelfTrainingConfig":
        for t in self.tasks:
            if t not in TASKS:
                raise ValueError(f"train.self_training.tasks: unknown task {t!r}")
        lo, hi = self.binary_band
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"train.self_training.binary_band {self.binary_band} must satisfy 0 <= lo < hi <= 1")
        return self


class TrainConfig(StrictModel):
    # The paper's recipe (Sec. III-A): AdamW, lr 2e-5, polynomial decay, 40k iterations,
    # batch 8 on NYUDv2 / 4 on PASCAL-Context.
    iterations: int = Field(default=40000, ge=1)
    batch_size: int = Field(default=8, ge=1)  # per process (DDP: global batch = batch_size x world size)
    optimizer: Literal["adamw"] = "adamw"
    lr: float = Field(default=2e-5, gt=0)
    weight_decay: float = Field(default=1e-6, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
    warmup_iterations: int = Field(default=0, ge=0)
    grad_clip: float | None = None
    # Learning rate of the backbone's parameters = lr x this (their warm-up and decay follow the same schedule).
    # Below 1 keeps the ImageNet features close to where they start (a transfer recipe); 1: one lr for all, the
    # optimizer's parameter groups exactly as before.
    backbone_lr_mult: float = Field(default=1.0, gt=0)
    amp: bool = True  # mixed precision; only takes effect on CUDA
    deep_supervision: bool = True  # losses on the coarse (preliminary) and the final predictions
    coarse_loss_weight: float = Field(default=1.0, ge=0)
    loss_weights: dict[str, float] = Field(default_factory=dict)  # per-task overrides of the registry's weights
    eval_every: int = Field(default=1000, ge=1)
    checkpoint_every: int = Field(default=1000, ge=1)
    log_every: int = Field(default=20, ge=1)
    seed: int = 0
    output_dir: str | None = None  # default: runs/<config name>
    # Start from the weights of this checkpoint (a .pt path) or packaged model (a bare name, e.g.
    # synth_transfer_lite0: mtlsi_core/weights/<name>.pt) instead of the model's initialisation: weights only (BatchNorm
    # statistics included); optimizer, schedule and iteration start fresh. They must fit this config's model (an
    # error names the file). Ignored when resuming (the resumed run's own weights win). None: no initialisation.
    init_from: str | None = None
    self_training: SelfTrainingConfig = Field(default_factory=SelfTrainingConfig)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        for t in self.loss_weights:
            if t not in TASKS:
                raise ValueError(f"train.loss_weights: unknown task {t!r}")
        return self


class Config(StrictModel):
    name: str
    description: str = ""
    data: DataConfig
    model: ModelConfig
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _check_residual_tasks(self) -> "Config":
        res = self.model.refinement.coarse_residual
        unknown = [t for t in res if t not in self.data.tasks] if isinstance(res, list) else []
        if unknown:
            raise ValueError(f"model.refinement.coarse_residual names {unknown}, not among data.tasks "
                             f"({', '.join(self.data.tasks)})")
        st = self.train.self_training
        if st.weight > 0 and not self.data.target_photos:
            raise ValueError(f"train.self_training.weight = {st.weight:g} needs data.target_photos (a folder of real "
                             "photos to self-train on)")
        if st.weight > 0 and not set(st.tasks) & set(self.data.tasks):
            raise ValueError(f"train.self_training.tasks {st.tasks} names none of data.tasks {self.data.tasks}")
        return self

    @property
    def tasks(self) -> list[str]:
        return list(self.data.tasks)

    @property
    def dataset(self) -> str:
        return self.data.dataset

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def packaged_config_names() -> list[str]:
    root = resources.files("mtlsi_core") / "configs"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(path_or_name: str | Path) -> Path:
    p = Path(path_or_name)
    if p.is_file():
        return p
    if p.suffix == "" and "/" not in str(path_or_name):
        cand = Path(str(resources.files("mtlsi_core") / "configs" / f"{p.name}.yaml"))
        if cand.is_file():
            return cand
    raise ConfigError(
        f"config {str(path_or_name)!r} not found: give a YAML path or one of the packaged names: "
        f"{', '.join(packaged_config_names())}"
    )


def _set_dotted(d: dict[str, Any], key: str, value: Any, origin: str) -> None:
    parts = key.split(".")
    cur = d
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{origin}: override {key!r}: {'.'.join(parts[:i + 1])} is not a section")
        cur = nxt
    cur[parts[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], origin: str = "override") -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{origin}: {item!r} is not of the form dotted.key=value")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{origin}: value of {key!r} is not valid YAML: {e}") from None
        _set_dotted(out, key.strip(), value, origin)
    return out


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "<top>"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"  {loc}: {msg}")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None


def load_config(path_or_name: str | Path, overrides: Sequence[str] = ()) -> Config:
    path = resolve_config_path(path_or_name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    if raw is None:
        raise ConfigError(f"{path}: empty file")
    raw = apply_overrides(raw, overrides, origin=str(path))
    return config_from_dict(raw, source=str(path))


__all__ = [
    "AugmentConfig", "Config", "FourierStyleConfig", "SelfTrainingConfig", "ConfigError", "DataConfig", "TrainConfig",
    "ModelConfig",
    "apply_overrides", "config_from_dict", "load_config", "packaged_config_names", "resolve_config_path",
    "DATASETS",
]
