"""One schema per parameter file (conf/base/parameters_<pipeline>.yml), checked once when a
pipeline starts (avshared.hooks.parameters.ParameterValidationHook) with the runtime ``--params``
applied, so that a typo fails before any node runs, with an error that names the key and the
allowed values.

The schemas check the types and values of the keys the code reads; a file whose content is open by
design (the demo corpus's voice and face profiles, the phases' overrides) is checked where it is
read. Every phase of ``training.phases`` is checked merged with ``training.defaults``, as the
training pipeline merges them, and its devices against this machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Annotated, Any, Literal

from omegaconf import OmegaConf
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from avshared.analysis.representations import POOLINGS
from avshared.crema_d import SPLITS
from avshared.features.audio import NORMALISATION_MODES, LogMelConfig
from avshared.features.video import FaceFramesConfig
from avshared.models import MODEL_KINDS, DecoderConfig
from avshared.splits import SPLIT_STRATEGIES
from avshared.training.devices import trainer_settings
from avshared.training.phases import PHASE_MODALITIES
from avshared.training.pretrain import AUTOENCODERS
from avshared.training.pretrained import pretrained_kind
from avshared.training.schema import PhaseParameters
from avshared.training.strategies import check_strategy


class ParameterError(ValueError):
    """Parameters that do not fit their schema; the message lists every key at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def _between_zero_and_one(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"must be between 0 and 1, got {confidence}")
    return confidence


#: The confidence level of a bootstrap interval.
ConfidenceLevel = Annotated[float, AfterValidator(_between_zero_and_one)]


def _dataclass_fields(config_class: type, values: Mapping[str, Any]) -> Mapping[str, Any]:
    known = {field.name for field in fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; known: {sorted(known)}")
    config_class(**values)  # the dataclass's own checks of the values
    return values


# ---------------------------------------------------------------- parameters_split.yml
class ActorSplitParameters(_Strict):
    fractions: dict[str, NonNegativeFloat]

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, fractions: dict[str, float]) -> dict[str, float]:
        if set(fractions) != set(SPLITS):
            raise ValueError(f"need exactly the keys {list(SPLITS)}, got {sorted(fractions)}")
        total = sum(fractions.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"must sum to 1, got {fractions} (sum {total})")
        return fractions


class KFoldParameters(_Strict):
    folds: int
    val_fraction: NonNegativeFloat

    @field_validator("folds")
    @classmethod
    def _at_least_two(cls, folds: int) -> int:
        if folds < 2:
            raise ValueError(f"need at least 2 folds, got {folds}")
        return folds


class RandomClipParameters(_Strict):
    test_fraction: NonNegativeFloat


class FileSplitParameters(_Strict):
    test_list: str
    train_list: str | None = None


class SplitParameters(_Strict):
    strategy: Literal.__getitem__(SPLIT_STRATEGIES)  # type: ignore[valid-type]
    seed: int
    actor: ActorSplitParameters
    actor_kfold: KFoldParameters
    random_clip: RandomClipParameters
    val_fraction: NonNegativeFloat
    file: FileSplitParameters


# ---------------------------------------------------------------- parameters_features.yml
class ExtractionParameters(_Strict):
    workers: NonNegativeInt
    audio_workers: NonNegativeInt
    prefetch_per_worker: PositiveInt


class NormalisationParameters(_Strict):
    mode: Literal.__getitem__(NORMALISATION_MODES)  # type: ignore[valid-type]


class FeaturesParameters(_Strict):
    extraction: ExtractionParameters
    audio: dict[str, Any]
    normalisation: NormalisationParameters
    video: dict[str, Any]
    example: dict[str, Any] = {}

    @field_validator("audio")
    @classmethod
    def _audio(cls, audio: dict[str, Any]) -> dict[str, Any]:
        return dict(_dataclass_fields(LogMelConfig, audio))

    @field_validator("video")
    @classmethod
    def _video(cls, video: dict[str, Any]) -> dict[str, Any]:
        return dict(_dataclass_fields(FaceFramesConfig, video))


# ---------------------------------------------------------------- parameters_ingestion.yml
class IngestionParameters(_Strict):
    workers: PositiveInt
    min_duration_s: NonNegativeFloat
    max_duration_s: NonNegativeFloat
    max_av_duration_gap_s: NonNegativeFloat
    fps_range: tuple[NonNegativeFloat, NonNegativeFloat]
    min_frame_size: tuple[NonNegativeInt, NonNegativeInt]

    @model_validator(mode="after")
    def _ranges(self) -> IngestionParameters:
        durations = self.min_duration_s < self.max_duration_s
        if not durations or not self.fps_range[0] < self.fps_range[1]:
            raise ValueError("need min_duration_s < max_duration_s and fps_range[0] < fps_range[1]")
        return self


# ---------------------------------------------------------------- parameters_labels.yml
class LabelsParameters(_Strict):
    soft_label_pseudocount: NonNegativeFloat


# ---------------------------------------------------------------- parameters_predict.yml
class PredictOptions(_Strict):
    workers: NonNegativeInt
    batch_size: PositiveInt
    rows_shown: PositiveInt


class PredictParameters(_Strict):
    inputs: str | None
    model: str
    options: PredictOptions


# ---------------------------------------------------------------- parameters_reporting.yml
class BootstrapParameters(_Strict):
    n_boot: PositiveInt
    seed: int
    confidence: ConfidenceLevel
    unit: Literal["clip", "actor"]


class PairedComparisonParameters(_Strict):
    alpha: float
    n_permutations: PositiveInt
    pairs: list[tuple[str, str]]


class UnimodalEnsembleParameters(_Strict):
    weight_step: float

    @field_validator("weight_step")
    @classmethod
    def _a_grid_step(cls, weight_step: float) -> float:
        if not 0 < weight_step <= 1:
            raise ValueError(f"must be in (0, 1] (e.g. 0.05: 21 weights), got {weight_step}")
        return weight_step


class ReportingParameters(_Strict):
    bootstrap: BootstrapParameters
    unimodal_ensemble: UnimodalEnsembleParameters
    chance_seed: int
    paired_comparisons: PairedComparisonParameters


# ---------------------------------------------------------------- parameters_training.yml
class TrainingParameters(_Strict):
    """``defaults`` is a whole phase configuration; each phase's overrides are checked merged with
    it (``validate_parameters``). ``seeds``: every phase trains once per seed and fold (a cell);
    ``only_fold`` / ``only_seed`` (a fold, an index into ``seeds``) restrict a run to those
    cells."""

    seeds: list[int]
    only_fold: NonNegativeInt | None = None
    only_seed: NonNegativeInt | None = None
    defaults: dict[str, Any]
    phases: dict[str, dict[str, Any] | None]

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"need one or more distinct seeds, got {seeds}")
        return seeds

    @field_validator("defaults")
    @classmethod
    def _no_single_seed(cls, defaults: dict[str, Any]) -> dict[str, Any]:
        if "seed" in defaults:
            raise ValueError(
                "training.defaults.seed was replaced by training.seeds, a list (every phase trains "
                "once per seed): write `training: {seeds: [<your seed>]}` instead"
            )
        return defaults

    @model_validator(mode="after")
    def _only_seed_in_seeds(self) -> TrainingParameters:
        if self.only_seed is not None and self.only_seed >= len(self.seeds):
            raise ValueError(
                f"only_seed {self.only_seed} is an index into seeds {self.seeds}: use 0 to "
                f"{len(self.seeds) - 1}, or null for every seed"
            )
        return self

    @field_validator("phases")
    @classmethod
    def _known_phases(cls, phases: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(phases) - set(PHASE_MODALITIES))
        if unknown:
            raise ValueError(
                f"phases {unknown} have no pipeline; known: {sorted(PHASE_MODALITIES)} "
                "(PHASE_MODALITIES in avshared/training/phases.py)"
            )
        for phase, overrides in phases.items():
            if overrides and "modalities" in overrides:
                raise ValueError(
                    f"{phase}.modalities is set, but a phase's inputs are fixed by its pipeline: "
                    "PHASE_MODALITIES in avshared/training/phases.py; remove the key, or add a "
                    "phase there"
                )
        return phases


# ---------------------------------------------------------------- parameters_pretrain.yml
class DecoderParameters(_Strict):
    dim: PositiveInt
    depth: PositiveInt
    heads: PositiveInt

    @model_validator(mode="after")
    def _heads_divide_width(self) -> DecoderParameters:
        DecoderConfig(self.dim, self.depth, self.heads)  # the dataclass's own checks
        return self


class ContrastiveParameters(_Strict):
    weight: NonNegativeFloat
    temperature: PositiveFloat


class PretrainParameters(_Strict):
    """``training`` is checked merged with ``training.defaults`` (``validate_parameters``)."""

    seed: int
    model_kinds: list[Literal.__getitem__(tuple(AUTOENCODERS))]  # type: ignore[valid-type]
    mask_ratio: float
    decoder: DecoderParameters
    contrastive: ContrastiveParameters
    extra_inputs: str | None
    figure_clips: PositiveInt
    training: dict[str, Any]

    @field_validator("model_kinds")
    @classmethod
    def _some_kinds(cls, kinds: list[str]) -> list[str]:
        if not kinds or len(set(kinds)) != len(kinds):
            raise ValueError(f"need one or more distinct model kinds of {list(AUTOENCODERS)}")
        return kinds

    @field_validator("mask_ratio")
    @classmethod
    def _a_share(cls, mask_ratio: float) -> float:
        if not 0 < mask_ratio < 1:
            raise ValueError("must be between 0 and 1 (exclusive)")
        return mask_ratio


# ---------------------------------------------------------------- parameters_analysis.yml
class AnalysisClipsParameters(_Strict):
    max_clips: PositiveInt | None
    seed: int
    batch_size: PositiveInt


class AnalysisBootstrapParameters(_Strict):
    n_boot: PositiveInt
    cka_n_boot: PositiveInt
    seed: int
    confidence: ConfidenceLevel


class AlignmentParameters(_Strict):
    same_emotion_k: PositiveInt
    pooling: Literal.__getitem__(POOLINGS)  # type: ignore[valid-type]


class RolloutParameters(_Strict):
    clips_per_outcome: PositiveInt


class ProjectionParameters(_Strict):
    perplexity: float
    seed: int
    max_iter: int

    @model_validator(mode="after")
    def _tsne_settings(self) -> ProjectionParameters:
        if self.perplexity <= 0 or self.max_iter < 250:
            raise ValueError(
                "need perplexity > 0 and max_iter >= 250 (scikit-learn's t-SNE), got "
                f"perplexity {self.perplexity}, max_iter {self.max_iter}"
            )
        return self


class AnalysisParameters(_Strict):
    clips: AnalysisClipsParameters
    bootstrap: AnalysisBootstrapParameters
    alignment: AlignmentParameters
    rollout: RolloutParameters
    projection: ProjectionParameters


# ---------------------------------------------------------------- parameters_demo_data.yml
class DemoDataParameters(_Open):
    """The generator's knobs: the corpus's extent is checked here, the voice, face and crowd models
    (open dictionaries of profiles) where the generator reads them."""

    seed: int
    actors: list[int] | Literal["all"]
    sentences: list[str] | Literal["all"]
    workers: NonNegativeInt


#: The schema of each top-level key of the parameter files.
SCHEMAS: dict[str, type[BaseModel]] = {
    "split": SplitParameters,
    "features": FeaturesParameters,
    "ingestion": IngestionParameters,
    "labels": LabelsParameters,
    "predict": PredictParameters,
    "reporting": ReportingParameters,
    "training": TrainingParameters,
    "demo_data": DemoDataParameters,
    "pretrain": PretrainParameters,
    "analysis": AnalysisParameters,
}


def _messages(error: ValidationError, prefix: str) -> list[tuple[tuple, str]]:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in (prefix, *item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif item["type"] == "missing":
            message = "missing"
        shown = item["type"] not in ("missing", "model_type") and not isinstance(
            item["input"], dict | list
        )
        got = f" (got {item['input']!r})" if shown else ""
        lines.append((tuple(item["loc"]), f"{location}: {message}{got}"))
    return lines


def merged_phase_parameters(defaults: Mapping[str, Any], overrides: Mapping | None) -> dict:
    """``training.defaults`` with a phase's overrides merged in, key by key, as the pipeline
    merges them."""
    merged = OmegaConf.merge(OmegaConf.create(dict(defaults)), OmegaConf.create(overrides or {}))
    return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]


def validate_parameters(params: Mapping[str, Any], *, check_devices: bool = True) -> None:
    """Check every top-level key of ``params`` that has a schema, and every training phase merged
    with the defaults (and, with ``check_devices``, its devices against this machine); raise one
    ``ParameterError`` listing every key at fault, with the allowed values."""
    problems: list[str] = []
    for key, schema in SCHEMAS.items():
        if key in params:
            try:
                schema.model_validate(params[key])
            except ValidationError as error:
                problems.extend(message for _, message in _messages(error, key))
    training = params.get("training")
    if isinstance(training, Mapping) and isinstance(training.get("defaults"), Mapping):
        try:
            PhaseParameters.model_validate(training["defaults"])
            in_defaults: set[tuple] = set()
        except ValidationError as error:
            found = _messages(error, "training.defaults")
            problems.extend(message for _, message in found)
            in_defaults = {location for location, _ in found}
        phases = training.get("phases") or {}
        for phase, overrides in phases.items():
            if phase not in PHASE_MODALITIES or (overrides and "modalities" in overrides):
                continue  # reported above
            where = f"training.phases.{phase} (merged with training.defaults)"
            config = merged_phase_parameters(training["defaults"], overrides)
            try:
                PhaseParameters.model_validate(config)
            except ValidationError as error:
                found = _messages(error, where)
                problems.extend(m for location, m in found if location not in in_defaults)
                continue
            try:
                check_strategy(
                    config["strategy"]["kind"],
                    MODEL_KINDS[config["model"]["kind"]],
                    PHASE_MODALITIES[phase],
                )
            except ValueError as error:
                problems.append(f"{where}.strategy: {error}")
            if check_devices:
                try:
                    trainer_settings(config["trainer"], config["data"])
                except ValueError as error:
                    problems.append(f"{where}.trainer: {error}")
    problems += _pretrain_problems(params, check_devices)
    problems.extend(_only_fold_problems(params))
    if problems:
        raise ParameterError(
            "parameters do not fit their schema (avshared.parameters):\n  " + "\n  ".join(problems)
        )


def _pretrain_problems(params: Mapping[str, Any], check_devices: bool) -> list[str]:
    """``pretrain.training`` merged with ``training.defaults`` (a phase's schema, and its devices
    with ``check_devices``), and each phase with ``init: pretrain`` against ``pretrain.model_kinds``
    (its model kind must be pretrained)."""
    pretrain, training = params.get("pretrain"), params.get("training")
    if not isinstance(pretrain, Mapping) or not isinstance(training, Mapping):
        return []
    defaults = training.get("defaults")
    if not isinstance(defaults, Mapping):
        return []
    problems: list[str] = []
    where = "pretrain.training (merged with training.defaults)"
    config = merged_phase_parameters(defaults, pretrain.get("training"))
    try:
        PhaseParameters.model_validate(config)
    except ValidationError as error:
        try:
            PhaseParameters.model_validate(defaults)
        except ValidationError:
            return []  # reported as training.defaults' problems
        return [message for _, message in _messages(error, where)]
    if check_devices:
        try:
            trainer_settings(config["trainer"], config["data"])
        except ValueError as error:
            problems.append(f"{where}.trainer: {error}")
    kinds = pretrain.get("model_kinds") or []
    for phase, overrides in (training.get("phases") or {}).items():
        phase_config = merged_phase_parameters(defaults, overrides)
        kind = phase_config.get("model", {}).get("kind")
        if phase_config.get("init") == "pretrain" and pretrained_kind(kind) not in kinds:
            problems.append(
                f"training.phases.{phase}: init pretrain with model kind {kind!r}, which "
                f"pretrain.model_kinds {list(kinds)} does not pretrain; add it there"
            )
    return problems


def _only_fold_problems(params: Mapping[str, Any]) -> list[str]:
    """``training.only_fold`` against the folds the split parameters make (one fold, 0, unless
    ``split.strategy`` is ``actor_kfold``)."""
    training, split = params.get("training"), params.get("split")
    if not (isinstance(training, Mapping) and isinstance(split, Mapping)):
        return []
    only_fold = training.get("only_fold")
    kfold = split.get("strategy") == "actor_kfold"
    folds = (split.get("actor_kfold") or {}).get("folds", 1) if kfold else 1
    if not isinstance(only_fold, int) or not isinstance(folds, int) or only_fold < folds:
        return []
    return [
        f"training.only_fold: the split has folds 0 to {folds - 1} (split.strategy "
        f"{split.get('strategy')!r}), not {only_fold}; use one of those, or null for every fold "
        f"(got {only_fold!r})"
    ]


__all__ = ["SCHEMAS", "ParameterError", "validate_parameters"]
