"""The pretrain pipeline's wiring, and a run of it through Kedro's runner that a pretrained phase
starts from, fold by fold, with the catalog's own dataset types."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from avshared.pipeline_registry import register_pipelines
from avshared.pipelines.pretrain import create_pipeline
from avshared.pipelines.training import PHASE_MODALITIES, create_phase_pipeline
from avshared.pipelines.training.pipeline import CELL_DATASETS
from avshared.training.pretrained import initial_weights

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PRETRAIN_OUTPUTS = {"pretrained_encoder", "pretrain_summary"}
PROJECT_CATALOG = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog.yml").read_text())


def _parameters(name: str) -> dict:
    return yaml.safe_load((PROJECT_ROOT / f"conf/base/parameters_{name}.yml").read_text())


def test_the_pretrain_pipeline_reads_the_split_and_features_and_writes_the_encoders():
    pipeline = create_pipeline()

    assert pipeline.inputs() == {
        "split",
        "log_mel_spectrograms",
        "face_frames",
        "spectrogram_stats",
        "pretrain_extra_log_mel_spectrograms",
        "pretrain_extra_face_frames",
        "pretrain.mlflow_run",
        "params:training.defaults",
        "params:pretrain",
        "params:pretrain.extra_inputs",
        "params:crema_d_root",
    }
    assert {
        *PRETRAIN_OUTPUTS,
        "pretrain.training_history",
        "pretrain.reconstructions",
        "pretrain_extra_recordings",
    } == pipeline.outputs()


def test_pretrain_is_registered_outside_the_default_and_before_every_comparison_phase():
    pipelines = register_pipelines()
    pretrain = pipelines["pretrain"]

    names = {node.name for node in pretrain.nodes}
    # The extra recordings go through the features pipeline's own extraction nodes.
    assert {
        "pretrain_extra.extract_log_mel_spectrograms",
        "pretrain_extra.extract_face_frames",
    } < names
    assert {"extract_log_mel_spectrograms", "split_clips", "pretrain_encoders"} < names
    assert "build_crowd_labels" not in names  # pretraining needs no labels
    own = {node.name for node in create_pipeline().nodes}
    assert not own & {node.name for node in pipelines["__default__"].nodes}
    comparison = [node.name for node in pipelines["comparison"].nodes]
    assert comparison.index("pretrain_encoders") < comparison.index(
        "bimodal_pretrained.train_cells"
    )
    assert {"bimodal_pretrained", "baseline_pretrained"} <= set(pipelines)


@pytest.mark.parametrize("phase", sorted(PHASE_MODALITIES))
def test_every_phase_takes_the_pretrained_encoders_as_an_input_it_may_ignore(phase):
    assert create_phase_pipeline(phase).inputs() >= PRETRAIN_OUTPUTS
    # A phase's own pipeline never pretrains: it reads what the pretrain pipeline left.
    assert "pretrain_encoders" not in {n.name for n in register_pipelines()[phase].nodes}


def test_a_pretrained_phase_starts_each_fold_from_that_folds_pretraining(tiny_corpus, tmp_path):
    phase = "bimodal_pretrained"
    catalog = DataCatalog.from_config(
        {
            "pretrained_encoder": {
                "type": "avshared.datasets.optional.OptionalPyTorchDataset",
                "filepath": str(tmp_path / "pretrained_encoder.pt"),
                "versioned": True,
            },
            "pretrain_summary": {
                "type": "avshared.datasets.optional.OptionalJSONDataset",
                "filepath": str(tmp_path / "pretrain_summary.json"),
                "versioned": True,
            },
            f"{phase}.training_summary": {
                "type": "json.JSONDataset",
                "filepath": str(tmp_path / "training_summary.json"),
            },
            f"{phase}.model_weights": {
                "type": "kedro_datasets_experimental.pytorch.PyTorchDataset",
                "filepath": str(tmp_path / "model_weights.pt"),
            },
        }
        # The cells' partitioned datasets as the project's catalog defines them.
        | {
            f"{phase}.{name}": PROJECT_CATALOG[f"{{phase}}.{name}"] | {"path": str(tmp_path / name)}
            for name in CELL_DATASETS
        }
    )
    for name in ("clip_manifest", "split", "log_mel_spectrograms", "face_frames"):
        catalog[name] = getattr(tiny_corpus, name)
    catalog["spectrogram_stats"] = tiny_corpus.spectrogram_stats
    catalog["crowd_labels"] = None  # acted targets need no ratings
    catalog["pretrain_extra_log_mel_spectrograms"] = tiny_corpus.empty_store
    catalog["pretrain_extra_face_frames"] = tiny_corpus.empty_store
    training = _parameters("training")["training"]
    defaults = copy.deepcopy(training["defaults"])
    defaults["model"] |= {
        "preset": "tiny",
        "depth": 1,
        "audio_patch": [8, 8],
        "video_tubelet": [2, 16, 16],
    }
    defaults["trainer"] |= {
        "max_epochs": 1,
        "min_epochs": 1,
        "accelerator": "cpu",
        "progress_bar": False,
    }
    defaults["data"] |= {"num_workers": 0}
    defaults["checkpoint_dir"] = str(tmp_path / "checkpoints")
    pretrain = _parameters("pretrain")["pretrain"]
    pretrain["model_kinds"] = ["shared"]
    pretrain["decoder"] = {"dim": 16, "depth": 1, "heads": 2}
    pretrain["training"] |= {"checkpoint_dir": str(tmp_path / "pretrain_checkpoints")}
    pretrain["training"]["trainer"] = {"max_epochs": 1}
    for name, value in {
        "training.defaults": defaults,
        "training.seeds": training["seeds"],
        "training.only_fold": None,
        "training.only_seed": None,
        f"training.phases.{phase}": training["phases"][phase],
        "pretrain": pretrain,
        "pretrain.extra_inputs": None,
        "crema_d_root": str(tmp_path),
    }.items():
        catalog[f"params:{name}"] = value
    catalog["pretrain.mlflow_run"] = None
    catalog[f"{phase}.mlflow_run"] = None

    SequentialRunner().run(create_pipeline() + create_phase_pipeline(phase), catalog)

    summary = catalog.load("pretrain_summary")
    encoders = catalog.load("pretrained_encoder")
    assert sorted(summary["per_fold"]) == ["0", "1"]
    assert {name.split(".")[0] for name in encoders} == {"fold_0", "fold_1"}
    for fold in (0, 1):
        train = tiny_corpus.split.query(f"fold == {fold} and split == 'train'")["clip_id"]
        assert summary["per_fold"][str(fold)]["clips"] == train.tolist()
    training_summary = catalog.load(f"{phase}.training_summary")
    assert sorted(cell["fold"] for cell in training_summary["per_cell"]) == [0, 1]
    for fold_summary in training_summary["per_cell"]:
        fold = fold_summary["fold"]
        start = fold_summary["initialisation"]
        assert start["source"].endswith(f"fold {fold}")
        assert start["loaded_modules"] == ["embeddings.audio", "embeddings.video", "encoder"]
    # Each fold trained from its own fold's tensors (the identity of what it started from).
    for fold_summary in training_summary["per_cell"]:
        fold = fold_summary["fold"]
        own = initial_weights(
            "pretrain",
            fold=fold,
            fold_targets=tiny_corpus.split.query(f"fold == {fold}"),
            model_kind="shared",
            pretrained_encoder=encoders,
            pretrain_summary=summary,
        )
        assert fold_summary["config"]["initial_weights"] == own.identity
