"""What an exported model file carries so a runtime needs no checkpoint: tasks, dataset, input size, mean/std,
classes, output names, the full experiment config, and where the weights came from.

Stored in ONNX ``metadata_props`` (keys ``mtlsi.format``, ``mtlsi.version``, ``mtlsi.meta`` = this JSON,
``mtlsi.config`` = the config JSON again, readable with any ONNX viewer) and in the JSON sidecar of a
TensorRT engine.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Collection, Mapping

from mtlsi_core.runtime.base import ModelFileError
from mtlsi_core.tasks import TASKS, auxiliary_outputs, get_dataset, get_task, output_spec, task_channels

FORMAT = "mtlsi-onnx"
VERSION = 1
INPUT_NAME = "images"
KEY_FORMAT, KEY_VERSION, KEY_META, KEY_CONFIG = "mtlsi.format", "mtlsi.version", "mtlsi.meta", "mtlsi.config"


def output_layout(task: str) -> str:
    """The layout of a task's (or auxiliary output key's) network output (see ``processing``): "BHW" or "BCHW"."""
    spec, aux = output_spec(task)
    return "BCHW" if aux is None and spec.activation == "unit_normals" else "BHW"


@dataclass(frozen=True)
class ModelMeta:
    name: str
    tasks: tuple[str, ...]
    dataset: str
    input_size: tuple[int, int]  # (H, W) network input
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: dict[str, int]  # output channels / classes per task
    config: dict[str, Any]  # the full experiment config (Config.to_dict())
    source: dict[str, Any] = field(default_factory=dict)  # checkpoint path + sha256, or {"random_init": seed}
    exporter: str = ""  # "dynamo" or "torchscript"; filled in by the exporter
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> layout

    @classmethod
    def from_config(cls, cfg: Any, source: Mapping[str, Any] | None = None,
                    auxiliary: Collection[str] | None = None) -> "ModelMeta":
        """``auxiliary``: the auxiliary outputs the file holds (None: all the tasks declare), listed in ``outputs``."""
        tasks = tuple(cfg.data.tasks)
        return cls(name=cfg.name, tasks=tasks, dataset=cfg.data.dataset,
                   input_size=(int(cfg.data.input_size[0]), int(cfg.data.input_size[1])),
                   mean=tuple(float(v) for v in cfg.data.mean), std=tuple(float(v) for v in cfg.data.std),
                   channels=task_channels(tasks, cfg.data.dataset), config=cfg.to_dict(), source=dict(source or {}),
                   outputs={t: output_layout(t) for t in (*tasks, *auxiliary_outputs(tasks, auxiliary))})

    @property
    def canonical_focal(self) -> float | None:
        """The training camera's focal length (``data.canonical_focal`` of the config), for metric depth."""
        return (self.config.get("data") or {}).get("canonical_focal")

    def with_exporter(self, exporter: str) -> "ModelMeta":
        d = asdict(self)
        d["exporter"] = exporter
        return ModelMeta(**d)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def to_props(self) -> dict[str, str]:
        return {KEY_FORMAT: FORMAT, KEY_VERSION: str(VERSION), KEY_META: self.to_json(),
                KEY_CONFIG: json.dumps(self.config, sort_keys=True)}

    @classmethod
    def from_json(cls, text: str, where: str) -> "ModelMeta":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelFileError(f"{where}: mtlsi metadata is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ModelFileError(f"{where}: mtlsi metadata must be a JSON object")
        required = ("name", "tasks", "dataset", "input_size", "mean", "std", "channels", "config")
        missing = [k for k in required if k not in d]
        if missing:
            raise ModelFileError(f"{where}: mtlsi metadata lacks {', '.join(missing)}")
        try:
            meta = cls(name=str(d["name"]), tasks=tuple(d["tasks"]), dataset=str(d["dataset"]),
                       input_size=(int(d["input_size"][0]), int(d["input_size"][1])),
                       mean=tuple(float(v) for v in d["mean"]), std=tuple(float(v) for v in d["std"]),
                       channels={str(k): int(v) for k, v in d["channels"].items()}, config=dict(d["config"]),
                       source=dict(d.get("source") or {}), exporter=str(d.get("exporter", "")),
                       outputs={str(k): str(v) for k, v in (d.get("outputs") or {}).items()})
        except (TypeError, ValueError, IndexError, AttributeError) as e:
            raise ModelFileError(f"{where}: mtlsi metadata has a malformed field: {e}") from None
        meta.validate(where)
        return meta

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str) -> "ModelMeta":
        if props.get(KEY_FORMAT) != FORMAT or KEY_META not in props:
            raise ModelFileError(f"{where}: no mtlsi metadata ({KEY_FORMAT}={FORMAT!r} missing): "
                                 "export the model with `mtlsi-export --format onnx`")
        try:
            version = int(props.get(KEY_VERSION, "-1"))
        except ValueError:
            version = -1
        if not 1 <= version <= VERSION:
            raise ModelFileError(f"{where}: mtlsi metadata version {props.get(KEY_VERSION)!r} is not supported "
                                 f"(this code reads 1..{VERSION})")
        return cls.from_json(props[KEY_META], where)

    def validate(self, where: str) -> None:
        """Check the fields against the task registry; raise ModelFileError naming ``where``."""
        try:
            ds = get_dataset(self.dataset)
        except KeyError as e:
            raise ModelFileError(f"{where}: metadata: {e.args[0]}") from None
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ModelFileError(f"{where}: metadata names unknown tasks {unknown}" if unknown
                                 else f"{where}: metadata lists no tasks")
        if self.channels != task_channels(self.tasks, ds.name):
            raise ModelFileError(f"{where}: metadata channels {self.channels} disagree with the task registry "
                                 f"{task_channels(self.tasks, ds.name)}")
        if min(self.input_size) < 1 or len(self.mean) != 3 or len(self.std) != 3:
            raise ModelFileError(f"{where}: metadata input_size/mean/std malformed: "
                                 f"{self.input_size}, {self.mean}, {self.std}")
