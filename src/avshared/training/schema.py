"""The schema of a phase's training configuration (``training.defaults`` merged with
``training.phases.<phase>``): every key, its type and its allowed values, in pydantic models.

``avshared.parameters.validate_parameters`` checks it once, when a pipeline starts; errors name the
key and the allowed values. Fields marked ``resume_independent`` do not change what a run
computes, so a run may resume from a checkpoint written under other values of them
(``resume_independent_paths``).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from avshared.crema_d import RATING_MODALITIES
from avshared.models import MODEL_KINDS, ModelConfig
from avshared.models.classifier import MODALITY_SETS
from avshared.models.config import PRESETS
from avshared.training.devices import ACCELERATORS, STRATEGIES
from avshared.training.module import ADAMW_IMPLEMENTATIONS
from avshared.training.pretrained import SCRATCH, check_init
from avshared.training.strategies import STRATEGY_KINDS

TARGET_KINDS: tuple[str, ...] = ("acted", "perceived_majority", "perceived_soft")
#: Early-stopping / best-checkpoint metrics and whether lower or higher is better.
MONITOR_MODES: dict[str, str] = {"val_loss": "min", "val_accuracy": "max"}
#: ModelConfig fields that the stored features decide, not the parameters.
FEATURE_SIZED_FIELDS: tuple[str, ...] = ("n_mels", "audio_frames", "video_frames", "image_size")
#: Lightning's precision settings, and ``auto`` (avshared.training.devices.resolve_precision).
PRECISIONS: tuple[str, ...] = (
    "auto",
    "32-true",
    "32",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
)
#: Model kinds a model may be matched to (``match_parameters``).
MATCHABLE_KINDS: tuple[str, ...] = ("shared",)

_RESUME_INDEPENDENT = {"resume_independent": True}


def _choice(values: Any) -> Any:
    return Literal.__getitem__(tuple(values))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetParameters(_Strict):
    kind: _choice(TARGET_KINDS)  # type: ignore[valid-type]
    rating_modality: _choice(RATING_MODALITIES)  # type: ignore[valid-type]


class ModelParameters(BaseModel):
    """``kind``, ``preset`` and any ModelConfig field (overriding the preset) but the input sizes,
    which the stored features decide."""

    model_config = ConfigDict(extra="allow")

    kind: _choice(MODEL_KINDS)  # type: ignore[valid-type]
    preset: _choice(PRESETS)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _known_fields(self) -> ModelParameters:
        extra = dict(self.model_extra or {})
        sized = sorted(set(extra) & set(FEATURE_SIZED_FIELDS))
        if sized:
            raise ValueError(
                f"{sized} follow the stored features; remove them from the training parameters "
                "and change parameters_features.yml instead"
            )
        known = {field.name for field in fields(ModelConfig)} - set(FEATURE_SIZED_FIELDS)
        unknown = sorted(set(extra) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s) {unknown}; valid: {sorted(known)}")
        ModelConfig.preset(self.preset, **extra)  # the dataclass's own checks of the values
        return self


class OptimiserParameters(_Strict):
    learning_rate: PositiveFloat
    weight_decay: NonNegativeFloat
    warmup_epochs: NonNegativeInt
    implementation: _choice(ADAMW_IMPLEMENTATIONS) = "fused"  # type: ignore[valid-type]


class EarlyStoppingParameters(_Strict):
    monitor: _choice(MONITOR_MODES)  # type: ignore[valid-type]
    patience: NonNegativeInt


class StrategyParameters(_Strict):
    """How a training step uses a batch (``avshared.training.strategies``); each option is read by
    one strategy only."""

    kind: _choice(STRATEGY_KINDS)  # type: ignore[valid-type]
    auxiliary_weight: NonNegativeFloat  # unimodal_auxiliary
    ogm_ge_alpha: PositiveFloat  # ogm_ge


class TrainerParameters(_Strict):
    max_epochs: PositiveInt
    min_epochs: PositiveInt
    early_stopping: EarlyStoppingParameters
    accelerator: _choice(ACCELERATORS)  # type: ignore[valid-type]
    devices: PositiveInt | Literal["auto"]
    num_nodes: PositiveInt
    strategy: _choice(STRATEGIES)  # type: ignore[valid-type]
    precision: _choice(PRECISIONS)  # type: ignore[valid-type]
    accumulate_grad_batches: PositiveInt
    gradient_clip_val: NonNegativeFloat | None
    deterministic: bool | Literal["warn"]
    progress_bar: bool = Field(json_schema_extra=_RESUME_INDEPENDENT)

    @model_validator(mode="after")
    def _epochs(self) -> TrainerParameters:
        if self.min_epochs > self.max_epochs:
            raise ValueError(
                f"min_epochs {self.min_epochs} and max_epochs {self.max_epochs}: need "
                "1 <= min_epochs <= max_epochs"
            )
        return self


class DataParameters(_Strict):
    batch_size: PositiveInt
    num_workers: NonNegativeInt | Literal["auto"] = Field(json_schema_extra=_RESUME_INDEPENDENT)
    pin_memory: bool | Literal["auto"] = Field(json_schema_extra=_RESUME_INDEPENDENT)
    persistent_workers: bool = Field(json_schema_extra=_RESUME_INDEPENDENT)


class PhaseParameters(_Strict):
    """One phase's configuration, as the training engine takes it (before ``phase``,
    ``modalities``, ``data_source`` and ``seeds`` are added; each cell adds its ``fold`` and
    ``seed``, avshared.training.cells)."""

    target: TargetParameters
    model: ModelParameters
    optimiser: OptimiserParameters
    strategy: StrategyParameters
    trainer: TrainerParameters
    data: DataParameters
    checkpoint_dir: str = Field(json_schema_extra=_RESUME_INDEPENDENT)
    match_parameters: _choice(MATCHABLE_KINDS) | None = None  # type: ignore[valid-type]
    curriculum: list[_choice(MODALITY_SETS)] | None = None  # type: ignore[valid-type]
    # scratch | pretrain | a checkpoint file (avshared.training.pretrained)
    init: str = SCRATCH

    @field_validator("init")
    @classmethod
    def _known_init(cls, init: str) -> str:
        return check_init(init)

    @model_validator(mode="after")
    def _batch_shared_evenly(self) -> PhaseParameters:
        trainer = self.trainer
        if isinstance(trainer.devices, int):
            per_step = trainer.devices * trainer.num_nodes * trainer.accumulate_grad_batches
            if self.data.batch_size % per_step:
                raise ValueError(
                    f"data.batch_size {self.data.batch_size} (samples per optimiser step, all "
                    "processes together) must be a multiple of devices x num_nodes x "
                    f"accumulate_grad_batches = {per_step}"
                )
        return self


def resume_independent_paths(
    model: type[BaseModel] = PhaseParameters, prefix: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], ...]:
    """The key paths of the fields marked ``resume_independent`` (e.g. ``("data",
    "num_workers")``): parameters that do not change what a run computes."""
    paths: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("resume_independent"):
            paths.append((*prefix, name))
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(resume_independent_paths(annotation, (*prefix, name)))
    return tuple(paths)
