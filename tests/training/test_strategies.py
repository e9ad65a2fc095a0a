"""The training strategies (avshared.training.strategies) and how the Lightning module runs them:
joint training unchanged, alternating conditions, the auxiliary loss, OGM-GE's gradient modulation,
the refusals, and the per-sense validation accuracy."""

from __future__ import annotations

import math
from dataclasses import replace

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avshared.models import MODEL_KINDS, ModelConfig, build_model
from avshared.training.module import EmotionClassifierModule
from avshared.training.strategies import (
    AlternatingTraining,
    OgmGeTraining,
    TrainingStrategy,
    UnimodalAuxiliaryTraining,
    modulate_gradients,
    ogm_ge_coefficients,
    soft_cross_entropy,
    training_strategy,
)

STATS = {"mean": [0.0], "std": [1.0]}
OPTIONS = {"auxiliary_weight": 0.5, "ogm_ge_alpha": 0.8}
BATCH = 6


@pytest.fixture
def config(tiny_config: ModelConfig) -> ModelConfig:
    """The tiny configuration with dropout and modality dropout, as a phase trains."""
    return replace(tiny_config, dropout=0.1, modality_dropout=0.25)


def _batch(config: ModelConfig, seed: int = 0, size: int = BATCH) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(6, (size,), generator=generator)
    return {
        "audio": torch.randn(size, 1, config.n_mels, config.audio_frames, generator=generator),
        "video": torch.randint(
            256,
            (size, config.video_frames, 3, config.image_size, config.image_size),
            generator=generator,
        ).to(torch.uint8),
        "target": torch.nn.functional.one_hot(labels, 6).float(),
        "label": labels,
    }


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"audio": batch["audio"], "video": batch["video"]}


def _model(config: ModelConfig, kind: str = "shared", modalities="bimodal"):
    torch.manual_seed(0)
    return build_model(kind, modalities, config)


def _given_modalities(model) -> list[tuple[str, ...]]:
    """Records, per forward call of ``model``, which inputs it was given."""
    calls: list[tuple[str, ...]] = []

    def record(_module, args, kwargs):
        given = dict(zip(("audio", "video"), args, strict=False)) | kwargs
        calls.append(tuple(m for m in ("audio", "video") if given.get(m) is not None))

    model.register_forward_pre_hook(record, with_kwargs=True)
    return calls


# ---------------------------------------------------------------- joint


@pytest.mark.parametrize("kind", ["shared", "separate"])
def test_joint_is_the_loss_of_one_forward_with_every_modality_as_before(kind, config):
    """The training step of every existing row: the soft cross-entropy of the model's logits on
    the whole batch, with the same dropout and modality-dropout draws (bit for bit)."""
    model = _model(config, kind).train()
    module = EmotionClassifierModule(model, ["audio", "video"], STATS)
    batch = _batch(config)
    calls = _given_modalities(model)
    for batch_idx in range(3):
        torch.manual_seed(batch_idx)
        expected = soft_cross_entropy(model(**_inputs(batch)), batch["target"])
        torch.manual_seed(batch_idx)
        loss = module.training_step(dict(batch), batch_idx)
        assert torch.equal(loss, expected)
    assert calls == [("audio", "video")] * 6
    assert type(module.training_strategy) is TrainingStrategy


# ---------------------------------------------------------------- alternating


def test_alternating_cycles_audio_video_and_both_by_batch_index(config):
    model = _model(config).train()
    strategy = training_strategy({"kind": "alternating", **OPTIONS}, model, ["audio", "video"], 0)
    batch = _batch(config)
    calls = _given_modalities(model)

    for batch_idx in range(6):
        torch.manual_seed(batch_idx)
        step = strategy.training_loss(model, _inputs(batch), batch["target"], batch_idx)
        given = calls[-1]
        torch.manual_seed(batch_idx)
        logits = model(**{m: batch[m] for m in given})
        assert torch.equal(step.logits, logits)
        assert torch.equal(step.objective, soft_cross_entropy(logits, batch["target"]))
        assert torch.equal(step.loss, step.objective)

    assert calls[::2] == [("audio",), ("video",), ("audio", "video")] * 2
    assert isinstance(strategy, AlternatingTraining)
    assert not strategy.every_step_uses_every_parameter  # DDP must look for unused parameters


# ---------------------------------------------------------------- unimodal auxiliary


@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_the_auxiliary_objective_adds_the_weighted_single_sense_losses(weight, config):
    model = _model(config).eval()  # deterministic: every forward of the batch gives the same logits
    strategy = training_strategy(
        {**OPTIONS, "kind": "unimodal_auxiliary", "auxiliary_weight": weight},
        model,
        ["audio", "video"],
        0,
    )
    batch = _batch(config)
    target = batch["target"]

    with torch.no_grad():
        step = strategy.training_loss(model, _inputs(batch), target, 0)
        both = model(**_inputs(batch))
        audio = soft_cross_entropy(model(audio=batch["audio"]), target)
        video = soft_cross_entropy(model(video=batch["video"]), target)

    assert isinstance(strategy, UnimodalAuxiliaryTraining)
    torch.testing.assert_close(step.logits, both)
    torch.testing.assert_close(step.loss, soft_cross_entropy(both, target))
    torch.testing.assert_close(step.objective, step.loss + weight * (audio + video))


# ---------------------------------------------------------------- OGM-GE


@pytest.mark.parametrize(("audio", "video"), [(0.6, 0.3), (0.2, 0.5), (0.4, 0.4)])
def test_ogm_coefficients_slow_the_dominant_modality_only(audio, video):
    alpha = 0.8
    coefficients = ogm_ge_coefficients(
        {"audio": torch.tensor(audio), "video": torch.tensor(video)}, alpha
    )
    ratio = audio / video
    expected = {
        "audio": 1 - math.tanh(alpha * ratio) if ratio > 1 else 1.0,
        "video": 1 - math.tanh(alpha / ratio) if 1 / ratio > 1 else 1.0,
    }
    assert {m: float(k) for m, k in coefficients.items()} == pytest.approx(expected)
    assert min(expected.values()) < 1 or audio == video


def _gradients(model, batch) -> dict[str, torch.Tensor]:
    model.zero_grad()
    soft_cross_entropy(model(**_inputs(batch)), batch["target"]).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_ogm_scales_each_branch_by_its_coefficient_and_nothing_else(config):
    model = _model(replace(config, dropout=0.0), "separate")
    model.eval()
    before = _gradients(model, _batch(config))
    branches = {m: model.branch_parameters(m) for m in ("audio", "video")}
    coefficients = {"audio": torch.tensor(0.3), "video": torch.tensor(1.0)}

    modulate_gradients(branches, coefficients, generator=None)

    for name, parameter in model.named_parameters():
        if name.startswith(("embeddings.audio.", "encoders.audio.")):
            torch.testing.assert_close(parameter.grad, 0.3 * before[name], rtol=0, atol=0)
        else:  # the video branch (k = 1) and both heads
            assert torch.equal(parameter.grad, before[name]), name


def test_ge_adds_noise_of_each_gradients_own_spread_the_same_for_the_same_seed():
    scaled = []
    for _ in range(2):
        parameter = torch.nn.Parameter(torch.zeros(400, 50))
        parameter.grad = torch.linspace(-3, 3, 20_000).reshape(400, 50)
        modulate_gradients(
            {"audio": [parameter]},
            {"audio": torch.tensor(0.5)},
            torch.Generator().manual_seed(7),
        )
        scaled.append(parameter.grad)
    expected = 0.5 * torch.linspace(-3, 3, 20_000).reshape(400, 50)
    noise = scaled[0] - expected
    assert torch.equal(scaled[0], scaled[1])  # DDP processes seeded alike stay equal
    assert abs(noise.mean()) < 0.05 * expected.std()
    assert float(noise.std()) == pytest.approx(float(expected.std()), rel=0.05)


def test_ogm_ge_modulates_the_branches_by_the_scores_of_every_accumulated_batch(config):
    """Two accumulated batches, modality dropout on: the coefficients follow from the mean, over
    the samples each sense is present in, of the probability its branch gives the target."""
    config = replace(config, dropout=0.0)
    model = _model(config, "separate").train()
    strategy = training_strategy({"kind": "ogm_ge", **OPTIONS}, model, ["audio", "video"], seed=3)
    assert isinstance(strategy, OgmGeTraining)
    strategy.on_train_epoch_start(epoch=2)
    batches = [_batch(config, 0), _batch(config, 1)]

    fits = {"audio": [], "video": []}
    model.zero_grad()
    for index, batch in enumerate(batches):
        torch.manual_seed(index)  # the same modality-dropout draws as the strategy's forward
        with torch.no_grad():
            logits, present = model.modality_logits(**_inputs(batch))
        for m, kept in fits.items():
            fit = (logits[m].softmax(-1) * batch["target"]).sum(-1)
            kept.append(fit[present[m]])
        torch.manual_seed(index)
        step = strategy.training_loss(model, _inputs(batch), batch["target"], index)
        step.objective.backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}

    strategy.before_optimizer_step(model, lambda tensor: tensor)

    means = {m: torch.cat(f).mean() for m, f in fits.items()}
    ratio = float(means["audio"] / means["video"])
    alpha = OPTIONS["ogm_ge_alpha"]
    k = {
        "audio": 1 - math.tanh(alpha * ratio) if ratio > 1 else 1.0,
        "video": 1 - math.tanh(alpha / ratio) if ratio < 1 else 1.0,
    }
    seed = int(np.random.SeedSequence([3, 2]).generate_state(1)[0])
    generator = torch.Generator().manual_seed(seed)
    for modality in ("audio", "video"):
        for name, parameter in model.named_parameters():
            if not name.startswith((f"embeddings.{modality}.", f"encoders.{modality}.")):
                continue
            scaled = k[modality] * before[name]
            noise = torch.randn(scaled.shape, generator=generator) * scaled.std()
            torch.testing.assert_close(parameter.grad, scaled + noise, rtol=1e-5, atol=1e-7)
    for name, parameter in model.named_parameters():
        if name.startswith("heads."):
            assert torch.equal(parameter.grad, before[name]), name


class _Spy(OgmGeTraining):
    """Records, at each modulation, how many batches it accumulated and the gradient norm."""

    def __init__(self, *args):
        super().__init__(*args)
        self.batches, self.accumulated, self.norms = 0, [], []

    def training_loss(self, *args):
        self.batches += 1
        return super().training_loss(*args)

    def before_optimizer_step(self, model, sum_over_processes):
        self.accumulated.append(self.batches)
        self.batches = 0
        super().before_optimizer_step(model, sum_over_processes)
        grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
        self.norms.append(float(torch.cat(grads).norm()))


def test_lightning_modulates_once_per_optimiser_step_after_accumulation_before_clipping(config):
    model = _model(config, "separate")
    spy = _Spy(0.8, 0)
    module = EmotionClassifierModule(
        model, ["audio", "video"], STATS, learning_rate=1e-3, warmup_epochs=0, strategy=spy
    )
    clip = 1e-4  # far below any norm: clipping after the modulation would show in the norms
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        accumulate_grad_batches=2,
        gradient_clip_val=clip,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader([_batch(config, i, size=4) for i in range(4)], batch_size=None))

    assert spy.accumulated == [2, 2]
    assert min(spy.norms) > 100 * clip


@pytest.mark.parametrize("kind", ["shared", "shared_late", "shared_mid"])
def test_ogm_ge_is_refused_for_a_model_without_an_encoder_per_modality(kind, config):
    with pytest.raises(
        ValueError, match=r"no encoder per modality: use it with model\.kind separate"
    ):
        training_strategy(
            {"kind": "ogm_ge", **OPTIONS}, _model(config, kind), ["audio", "video"], 0
        )


@pytest.mark.parametrize("kind", ["alternating", "unimodal_auxiliary", "ogm_ge"])
def test_strategies_other_than_joint_are_refused_for_one_modality(kind, config):
    model = _model(config, "separate", modalities="audio")
    with pytest.raises(ValueError, match=r"balances audio and video.*\['audio'\].*kind joint"):
        training_strategy({"kind": kind, **OPTIONS}, model, ["audio"], 0)
    assert type(training_strategy({"kind": "joint", **OPTIONS}, model, ["audio"], 0)) is (
        TrainingStrategy
    )


# ---------------------------------------------------------------- per-sense validation accuracy


def _validate(
    config: ModelConfig, kind: str, modalities: list[str], batches: list[dict]
) -> dict[str, float]:
    model = _model(config, kind, modalities=modalities).eval()
    module = EmotionClassifierModule(model, modalities, STATS)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(module, DataLoader(batches, batch_size=None), verbose=False)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_two_modality_models_report_each_senses_validation_accuracy(kind, config):
    batches = [_batch(config, i, size=8) for i in range(3)]
    metrics = _validate(config, kind, ["audio", "video"], batches)

    model = _model(config, kind).eval()
    labels = torch.cat([b["label"] for b in batches])
    with torch.no_grad():
        for modality in ("audio", "video"):
            standardised = [
                {**b, "audio": b["audio"].float()} if modality == "audio" else b for b in batches
            ]
            predicted = torch.cat(
                [model(**{modality: b[modality]}).argmax(-1) for b in standardised]
            )
            expected = (predicted == labels).float().mean().item()
            assert metrics[f"val_accuracy_{modality}"] == pytest.approx(expected)
    assert {"val_loss", "val_accuracy"} <= set(metrics)


def test_a_one_modality_model_has_no_per_sense_accuracy(config):
    metrics = _validate(config, "shared", ["video"], [_batch(config, 0, size=8)])
    assert set(metrics) == {"val_loss", "val_accuracy"}
