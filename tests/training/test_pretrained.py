"""Where a phase's model starts (init): scratch, the pretrain pipeline's encoders (only those of its
own fold, never ones that saw its validation or test clips), or a checkpoint file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from torch import nn

from avshared.models import DecoderConfig, MaskedAutoencoder, ModelConfig, build_model
from avshared.pipelines.training import PHASE_MODALITIES
from avshared.training.cells import Cell, cell_config, plan_cells
from avshared.training.folds import build_fold_targets, train_cells, train_stages
from avshared.training.phase import phase_config
from avshared.training.pretrain import classifier_weights
from avshared.training.pretrained import apply_initial_weights, check_init, initial_weights

TARGETS = pd.DataFrame(
    {"clip_id": ["a1", "a2", "v1", "t1"], "split": ["train", "train", "val", "test"]}
)


@pytest.fixture
def model_config(tiny_config: ModelConfig) -> ModelConfig:
    """The tiny shapes 32 wide, on 32 x 32 pictures in 2 x 16 x 16 tubelets, as the small corpus
    (conftest.py) stores them."""
    return replace(tiny_config, dim=32, image_size=32, video_tubelet=(2, 16, 16))


def _pretrained(config: ModelConfig, folds=(0,)) -> dict[str, torch.Tensor]:
    """A pretrained_encoder state dict as the pretrain pipeline writes it, of untrained
    autoencoders with every tensor perturbed (biases start at zero in every model): each differs
    from a fresh classifier's and from the other folds'."""
    torch.manual_seed(123)
    per_fold = {}
    for fold in folds:
        autoencoders = {
            name: MaskedAutoencoder(senses, config, DecoderConfig(16, 1, 2))
            for name, senses in (
                ("shared", "bimodal"),
                ("separate_audio", "audio"),
                ("separate_video", "video"),
            )
        }
        per_fold[f"fold_{fold}"] = nn.ModuleDict(
            {kind: classifier_weights(kind, autoencoders) for kind in ("shared", "separate")}
        )
    generator = torch.Generator().manual_seed(7)
    return {
        name: tensor + 0.05 * torch.randn(tensor.shape, generator=generator)
        for name, tensor in nn.ModuleDict(per_fold).state_dict().items()
    }


def _summary(clips=("a1", "a2"), folds=(0,)) -> dict:
    return {"mlflow_run_id": "run", "per_fold": {str(f): {"clips": list(clips)} for f in folds}}


@pytest.fixture
def start_weights(model_config: ModelConfig):
    """start_weights(init="pretrain", *, fold=0, kind="shared", targets=TARGETS, **sources): a
    phase's initial weights; unless ``sources`` give others, from a pretraining of model_config
    on fold 0."""

    def start(init="pretrain", *, fold=0, kind="shared", targets=TARGETS, **sources):
        sources.setdefault("pretrained_encoder", _pretrained(model_config))
        sources.setdefault("pretrain_summary", _summary())
        return initial_weights(init, fold=fold, fold_targets=targets, model_kind=kind, **sources)

    return start


def test_scratch_leaves_the_seeded_model_as_built(model_config, start_weights):
    model = build_model("shared", "bimodal", model_config)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    assert start_weights("scratch") is None
    assert apply_initial_weights(model, None) == {"source": "scratch"}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# shared_late has the shared model's parameters: it starts from the shared pretraining.
@pytest.mark.parametrize(
    ("kind", "source"), [("shared", "shared"), ("separate", "separate"), ("shared_late", "shared")]
)
def test_init_pretrain_loads_exactly_the_encoders_and_embeddings(
    kind, source, model_config, start_weights
):
    pretrained = _pretrained(model_config, folds=(0, 1))
    model = build_model(kind, "bimodal", model_config)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    start = start_weights(
        fold=1, kind=kind, pretrained_encoder=pretrained, pretrain_summary=_summary(folds=(0, 1))
    )
    report = apply_initial_weights(model, start)

    state = model.state_dict()
    carried = [k for k in state if k.startswith(("encoder.", "encoders.", "embeddings."))]
    assert carried and len(carried) == report["loaded"]
    for name in carried:
        assert torch.equal(state[name], pretrained[f"fold_1.{source}.{name}"]), name
        assert not torch.equal(state[name], pretrained[f"fold_0.{source}.{name}"]), name
    for name in (k for k in state if k.startswith(("head.", "heads."))):
        assert torch.equal(state[name], before[name]), name
    encoders = ["encoder"] if source == "shared" else ["encoders.audio", "encoders.video"]
    assert report["loaded_modules"] == sorted(["embeddings.audio", "embeddings.video", *encoders])
    assert report["left_at_initialisation_modules"] == (
        ["head"] if source == "shared" else ["heads.audio", "heads.video"]
    )
    assert "fold 1" in report["source"]


def test_a_one_sense_phase_takes_its_own_embedding_and_the_shared_encoder(
    model_config, start_weights
):
    model = build_model("shared", "audio", model_config)
    report = apply_initial_weights(model, start_weights())

    assert report["loaded_modules"] == ["embeddings.audio", "encoder"]


def test_pretrain_without_the_pretrain_pipelines_outputs_says_to_run_it(start_weights):
    with pytest.raises(ValueError, match=r"run `kedro run --pipelines=pretrain` first"):
        start_weights(pretrained_encoder=None, pretrain_summary=None)


@pytest.mark.parametrize("seen", ["v1", "t1"])
def test_a_pretraining_that_saw_a_validation_or_test_clip_is_refused(seen, start_weights):
    with pytest.raises(
        ValueError, match=r"pretrained on 1 clips that this phase validates or tests"
    ):
        start_weights(pretrain_summary=_summary(clips=("a1", seen)))


def test_a_validation_or_test_clip_among_the_extra_recordings_is_refused(tmp_path, start_weights):
    summary = _summary()
    summary["per_fold"]["0"]["extra_clips"] = ["interview_3", str(tmp_path / "t1.mp4")]
    with pytest.raises(ValueError, match=r"\['t1'\]"):
        start_weights(pretrain_summary=summary)


def test_a_pretraining_of_another_split_is_refused(start_weights):
    with pytest.raises(ValueError, match=r"folds \['0'\] of another split, not for fold 2"):
        start_weights(fold=2)


def test_a_model_kind_that_was_not_pretrained_is_refused(model_config, start_weights):
    shared_only = {k: v for k, v in _pretrained(model_config).items() if ".shared." in k}
    with pytest.raises(ValueError, match=r"add separate to pretrain.model_kinds"):
        start_weights(kind="separate", pretrained_encoder=shared_only)


def test_pretrained_weights_of_other_model_sizes_are_refused(model_config, start_weights):
    wider = replace(model_config, dim=48, heads=2)
    model = build_model("shared", "bimodal", model_config)
    with pytest.raises(ValueError, match=r"do not fit this model .*set init: scratch"):
        apply_initial_weights(model, start_weights(pretrained_encoder=_pretrained(wider)))


def test_other_weights_are_another_starting_point_for_resuming(model_config, start_weights):
    first, again = start_weights(), start_weights()
    other = start_weights(
        pretrained_encoder={k: v + 1 for k, v in _pretrained(model_config).items()}
    )

    assert first.identity == again.identity != other.identity


def test_init_from_a_pretrained_encoder_file(tmp_path, model_config, start_weights):
    path = tmp_path / "pretrained_encoder.pt"
    pretrained = _pretrained(model_config)
    torch.save(pretrained, path)
    model = build_model("shared", "bimodal", model_config)

    report = apply_initial_weights(model, start_weights(str(path)))

    assert torch.equal(model.encoder.norm.weight, pretrained["fold_0.shared.encoder.norm.weight"])
    assert str(path) in report["source"]


def test_init_from_a_vit_checkpoint_file(tmp_path, model_config, start_weights):
    pytest.importorskip("timm", reason="timm (a test dependency) makes the ViT checkpoint")
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    vit = VisionTransformer(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2)
    path = tmp_path / "vit_small_test.pth"
    torch.save(vit.state_dict(), path)
    config = replace(model_config, mlp_ratio=4.0, norm_eps=1e-6)
    model = build_model("shared", "bimodal", config)

    assert check_init(str(path)) == str(path)
    report = apply_initial_weights(model, start_weights(str(path)))

    block = model.encoder.layers.layers[1]
    assert torch.equal(block.linear1.weight, vit.state_dict()["blocks.1.mlp.fc1.weight"])
    assert torch.equal(block.self_attn.in_proj_weight, vit.state_dict()["blocks.1.attn.qkv.weight"])
    assert (
        "encoder" in report["loaded_modules"]
        and "head" in (report["left_at_initialisation_modules"])
    )


@pytest.mark.parametrize(
    ("init", "why"),
    [("pretrained", "not a checkpoint file"), ("missing/vit.pth", "no such file")],
)
def test_an_unknown_init_is_refused_with_the_choices(init, why):
    with pytest.raises(ValueError, match=rf"init must be scratch, pretrain or .*{why}"):
        check_init(init)


def test_a_phase_with_init_pretrain_and_no_pretraining_stops_before_training(
    corpus, tiny_defaults, tmp_path
):
    config = phase_config(
        tiny_defaults | {"init": "pretrain"},
        {},
        str(tmp_path),
        phase="bimodal",
        modalities=PHASE_MODALITIES["bimodal"],
        seeds=[1],
    )
    targets, target_summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split, config
    )
    with pytest.raises(ValueError, match=r"run `kedro run --pipelines=pretrain` first"):
        train_cells(
            targets=targets,
            target_summary=target_summary,
            config=config,
            plan=plan_cells(
                targets,
                config,
                only_fold=None,
                only_seed=None,
                feature_stores={"audio": corpus.log_mel_spectrograms, "video": corpus.face_frames},
            ),
            log_mel_spectrograms=corpus.log_mel_spectrograms,
            spectrogram_stats=corpus.spectrogram_stats,
            face_frames=corpus.face_frames,
        )
    assert not Path(config["checkpoint_dir"]).exists()


class StartRecorder(L.Callback):
    def __init__(self):
        self.state: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}


def test_the_engine_trains_from_the_pretrained_weights(
    corpus, tiny_defaults, tmp_path, model_config, start_weights
):
    defaults = tiny_defaults | {"init": "pretrain"}
    defaults["trainer"] = defaults["trainer"] | {"max_epochs": 1}
    config = phase_config(
        defaults,
        {},
        str(tmp_path),
        phase="bimodal",
        modalities=PHASE_MODALITIES["bimodal"],
        seeds=[1],
    )
    targets, target_summary = build_fold_targets(
        corpus.clip_manifest, corpus.crowd_labels, corpus.split, config
    )
    pretrained = _pretrained(replace(model_config, depth=1))
    train = targets.loc[targets["split"] == "train", "clip_id"]
    start = start_weights(
        targets=targets,
        pretrained_encoder=pretrained,
        pretrain_summary=_summary(clips=train.tolist()),
    )
    recorder = StartRecorder()

    ((_, _, summary),) = train_stages(
        targets.drop(columns="fold"),
        target_summary,
        cell_config(config, Cell(fold=0, seed=0)),
        {"log_mel_spectrograms": corpus.log_mel_spectrograms, "face_frames": corpus.face_frames},
        corpus.spectrogram_stats,
        extra_callbacks=[recorder],
        initial_weights=start,
    )

    for name, tensor in recorder.state.items():
        if name.startswith(("encoder.", "embeddings.")):
            assert torch.equal(tensor, pretrained[f"fold_0.shared.{name}"]), name
    assert summary["initialisation"]["loaded_modules"] == [
        "embeddings.audio",
        "embeddings.video",
        "encoder",
    ]
    assert summary["config"]["initial_weights"] == start.identity
