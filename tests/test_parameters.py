"""The parameter schemas (avshared.parameters): the shipped parameter files fit them, and a wrong
key or value fails once, at the start, naming the key and the allowed values."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from avshared.parameters import ParameterError, validate_parameters
from avshared.training.phase import RESUME_INDEPENDENT

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"


@pytest.fixture(scope="module")
def base_params() -> dict[str, Any]:
    params: dict[str, Any] = {}
    for path in sorted(CONF.glob("parameters_*.yml")):
        params |= yaml.safe_load(path.read_text())
    params["predict"]["model"] = "bimodal"  # ${globals:...} in the file
    return params


def _with(params: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(params)
    *parents, last = dotted.split(".")
    node = changed
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return changed


def test_the_shipped_parameters_fit_their_schemas(base_params):
    validate_parameters(base_params)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("training.defaults.target.kind", "guessed", r"target\.kind: .*'perceived_soft'"),
        ("training.defaults.target.rating_modality", "smell", r"rating_modality: .*'voice'"),
        ("training.defaults.trainer.early_stopping.monitor", "val_f1", r"monitor: .*'val_loss'"),
        ("training.defaults.model.kind", "ensemble", r"model\.kind: .*'shared'"),
        ("training.defaults.model.n_mels", 128, "follow the stored features"),
        ("training.defaults.model.width", 64, "unknown ModelConfig field"),
        ("training.defaults.trainer.min_epochs", 99, "min_epochs <= max_epochs"),
        ("training.defaults.trainer.strategy", "fsdp", r"strategy: .*'ddp_spawn'"),
        ("training.defaults.trainer.devices", "two", r"trainer\.devices"),
        ("training.defaults.data.batch_sise", 16, r"batch_sise: unknown key"),
        ("training.phases.bimodal.modalities", ["video"], "PHASE_MODALITIES"),
        ("training.phases.trimodal", {}, "have no pipeline"),
        ("training.defaults.strategy.kind", "balanced", r"strategy\.kind: .*'ogm_ge'"),
        ("training.defaults.strategy.ogm_ge_alpha", 0, r"strategy\.ogm_ge_alpha"),
        (
            "training.phases.bimodal.strategy",
            {"kind": "ogm_ge"},
            r"phases\.bimodal .*strategy: .*SharedEncoderClassifier has no encoder per modality",
        ),
        (
            "training.phases.audio.strategy",
            {"kind": "alternating"},
            r"phases\.audio .*alternating balances audio and video.*\['audio'\].*kind joint",
        ),
        ("training.phases.bimodal.trainer", {"devices": 16}, "this machine has"),
        ("training.phases.bimodal.trainer", {"strategy": "ddp"}, "torchrun or srun"),
        ("split.strategy", "by_sentence", r"split\.strategy: .*'random_clip'"),
        ("split.actor.fractions", {"train": 0.8, "val": 0.1, "test": 0.2}, "sum to 1"),
        ("split.actor.fractions", {"train": 0.9, "test": 0.1}, r"keys \['train', 'val', 'test'\]"),
        ("features.normalisation.mode", "max", r"mode: .*'per_band'"),
        ("features.video.on_no_face", "guess", "on_no_face 'guess' unknown"),
        ("reporting.bootstrap.unit", "sentence", r"unit: .*'actor'"),
        ("ingestion.workers", 0, r"ingestion\.workers"),
        ("training.defaults.init", "pretrained", r"init must be scratch, pretrain or the path"),
        ("training.phases.bimodal.init", "weights/vit.pth", r"'weights/vit.pth' is no such file"),
        ("pretrain.mask_ratio", 1.0, r"pretrain\.mask_ratio: must be between 0 and 1"),
        ("pretrain.model_kinds", ["shared", "late"], r"pretrain\.model_kinds\.1: .*'separate'"),
        ("pretrain.decoder", {"dim": 30, "depth": 1, "heads": 4}, "divisible by heads"),
        ("pretrain.contrastive.temperature", 0, r"contrastive\.temperature"),
        ("pretrain.training", {"trainer": {"max_epoch": 3}}, r"pretrain\.training .*max_epoch"),
        ("pretrain.model_kinds", ["shared"], r"baseline_pretrained: init pretrain with model kind"),
        ("reporting.bootstrap.confidence", 95, "between 0 and 1"),
        ("analysis.bootstrap.confidence", 1.0, "between 0 and 1"),
        ("analysis.bootstrap.n_boot", 0, r"analysis\.bootstrap\.n_boot"),
        ("analysis.clips.max_clips", 0, r"analysis\.clips\.max_clips"),
        ("analysis.alignment.pooling", "max", r"pooling: .*'mean'"),
        ("analysis.alignment.top_k", 5, r"analysis\.alignment\.top_k: unknown key"),
        ("analysis.projection.max_iter", 100, "max_iter >= 250"),
        ("analysis.rollout.clips_per_outcome", -1, r"rollout\.clips_per_outcome"),
        ("training.seeds", [], "one or more distinct seeds"),
        ("training.seeds", [3, 3], "one or more distinct seeds"),
        ("training.defaults.seed", 1, r"replaced by training\.seeds"),
        ("training.only_seed", 1, r"only_seed 1 is an index into seeds \[20240601\]"),
        ("training.only_fold", 2, "the split has folds 0 to 0"),
        ("training.only_fold", -1, r"training\.only_fold"),
    ],
)
def test_a_wrong_key_or_value_names_the_key_and_the_allowed_values(
    base_params, key, value, message
):
    with pytest.raises(ParameterError, match=message):
        validate_parameters(_with(base_params, key, value))


def test_every_phase_may_start_from_the_pretraining_set_in_the_defaults(base_params):
    # What `kedro run --pipelines=bimodal --params=training.defaults.init=pretrain` checks: the
    # late-fused shared model takes the shared pretraining, mid fusion stays from scratch.
    validate_parameters(_with(base_params, "training.defaults.init", "pretrain"))
    with pytest.raises(ParameterError, match=r"bimodal_mid: init pretrain with model kind"):
        validate_parameters(_with(base_params, "training.phases.bimodal_mid.init", "pretrain"))


def test_a_cell_of_the_k_fold_grid_is_accepted(base_params):
    params = _with(base_params, "split.strategy", "actor_kfold")
    params = _with(params, "training.seeds", [1, 2, 3])
    validate_parameters(_with(_with(params, "training.only_fold", 4), "training.only_seed", 2))
    with pytest.raises(ParameterError, match="folds 0 to 4"):
        validate_parameters(_with(params, "training.only_fold", 5))


def test_batch_size_must_be_shared_evenly_by_the_processes(base_params):
    params = _with(base_params, "training.defaults.data.batch_size", 15)
    params = _with(params, "training.defaults.trainer.devices", 2)
    with pytest.raises(ParameterError, match="multiple of"):
        validate_parameters(params, check_devices=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_where_torch_sees_none_is_refused_before_the_run(base_params):
    params = _with(base_params, "training.phases.audio.trainer", {"accelerator": "gpu"})
    with pytest.raises(ParameterError, match="no GPU"):
        validate_parameters(params)
    validate_parameters(params, check_devices=False)  # the schema itself allows it


def test_a_phase_error_is_reported_once_under_the_defaults(base_params):
    params = _with(base_params, "training.defaults.target.kind", "guessed")
    with pytest.raises(ParameterError) as error:
        validate_parameters(params)
    assert str(error.value).count("target.kind") == 1


def test_the_resume_independent_keys_come_from_the_schema():
    assert set(RESUME_INDEPENDENT) == {
        ("checkpoint_dir",),
        ("data", "num_workers"),
        ("data", "pin_memory"),
        ("data", "persistent_workers"),
        ("trainer", "progress_bar"),
    }
