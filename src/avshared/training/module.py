"""The Lightning wrapper around an avshared classifier: standardisation, loss, metrics, optimiser,
schedule and prediction.

Everything a step does stays on the device: spectrograms are standardised there as one batched
operation (``on_after_batch_transfer``), and loss and accuracy are torchmetrics objects, which
Lightning reduces at the end of the epoch, across every process under DDP. No step reads a value
back to the host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from avshared.training.data import NO_LABEL
from avshared.training.strategies import TrainingStrategy, soft_cross_entropy

#: How AdamW computes its update (``optimiser.implementation``); each gives the same update.
ADAMW_IMPLEMENTATIONS: tuple[str, ...] = ("fused", "foreach", "for-loop")


def inputs_of(batch: dict[str, Tensor], modalities: Sequence[str]) -> dict[str, Tensor]:
    """The model's keyword inputs (``audio``/``video``) from a batch."""
    return {modality: batch[modality] for modality in modalities}


def spectrogram_standardiser(stats: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
    """``spectrogram_stats`` as (mean, std) tensors of shape (1, 1, n_mels or 1, 1), to broadcast
    over a batch ``(B, 1, n_mels, frames)``."""
    mean = torch.tensor(stats["mean"], dtype=torch.float32).reshape(1, 1, -1, 1)
    std = torch.tensor(stats["std"], dtype=torch.float32).reshape(1, 1, -1, 1)
    return mean, std


def _accuracy(classes: int) -> MulticlassAccuracy:
    return MulticlassAccuracy(
        classes,
        average="micro",
        ignore_index=NO_LABEL,
        # Checking the labels' values would read them back to the host.
        validate_args=False,
    )


class StandardisesSpectrograms(L.LightningModule):
    """A LightningModule whose batches' spectrograms are standardised on the device, after the
    transfer, with the training clips' statistics (the classifier's and the autoencoder's)."""

    def _keep_spectrogram_stats(
        self, modalities: Sequence[str], spectrogram_stats: Mapping[str, Any] | None
    ) -> None:
        if "audio" in modalities and spectrogram_stats is None:
            raise ValueError("audio inputs need spectrogram_stats to be standardised")
        mean, std = spectrogram_standardiser(spectrogram_stats or {"mean": [0.0], "std": [1.0]})
        # Not part of the state_dict: the statistics travel in the training summary.
        self.register_buffer("audio_mean", mean, persistent=False)
        self.register_buffer("audio_std", std, persistent=False)

    def on_after_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict:
        if "audio" in batch:
            batch["audio"] = (batch["audio"].float() - self.audio_mean) / self.audio_std
        return batch


class EmotionClassifierModule(StandardisesSpectrograms):
    """Trains ``model`` (an avshared.models classifier) on batches of ``ClipDataModule``.

    Batches arrive raw (``audio`` float16 dB, ``video`` uint8); ``spectrogram_stats`` standardise
    the audio on the device. A training step is what ``strategy`` makes of the batch
    (``avshared.training.strategies``; default: joint training). Logs per epoch ``train_loss``,
    ``train_accuracy``, ``val_loss``, ``val_accuracy`` and, for a two-modality model, the
    validation accuracy of each sense alone, ``val_accuracy_audio`` and ``val_accuracy_video``
    (the model given only that input), all reduced over every process. AdamW with a linear warm-up
    then cosine decay to zero at ``max_epochs``, stepped every batch. ``predict_step`` returns class
    probabilities for the inputs named by ``predict_modalities`` (default: all the model's).
    """

    def __init__(
        self,
        model: nn.Module,
        modalities: Sequence[str],
        spectrogram_stats: Mapping[str, Any] | None = None,
        *,
        learning_rate: float = 0.0,
        weight_decay: float = 0.0,
        warmup_epochs: float = 0.0,
        implementation: str = "fused",
        strategy: TrainingStrategy | None = None,
    ):
        super().__init__()
        self.model = model
        self.modalities = tuple(modalities)
        self.training_strategy = strategy or TrainingStrategy()
        self.predict_modalities = self.modalities
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.implementation = checked_adamw_implementation(implementation)
        self._keep_spectrogram_stats(self.modalities, spectrogram_stats)
        classes = model.config.num_classes
        metrics: dict[str, nn.Module] = {}
        for stage in ("train", "val"):
            metrics |= {f"{stage}_loss": MeanMetric(), f"{stage}_accuracy": _accuracy(classes)}
        # Each sense alone, as the evaluation's missing-modality conditions: does one sense lag?
        self.single_sense_metrics = (
            {modality: f"val_accuracy_{modality}" for modality in self.modalities}
            if len(self.modalities) > 1
            else {}
        )
        metrics |= {name: _accuracy(classes) for name in self.single_sense_metrics.values()}
        self.metrics = nn.ModuleDict(metrics)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.model(**inputs_of(batch, self.modalities))

    def _record(self, stage: str, batch: dict[str, Tensor], logits: Tensor, loss: Tensor) -> None:
        loss_metric, accuracy = self.metrics[f"{stage}_loss"], self.metrics[f"{stage}_accuracy"]
        loss_metric.update(loss.detach(), weight=len(batch["target"]))
        accuracy.update(logits.detach(), batch["label"])
        # Metric objects: Lightning computes them (synced over processes) at the epoch's end.
        self.log(f"{stage}_loss", loss_metric, on_step=False, on_epoch=True, logger=False)
        self.log(f"{stage}_accuracy", accuracy, on_step=False, on_epoch=True, logger=False)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        step = self.training_strategy.training_loss(
            self.model, inputs_of(batch, self.modalities), batch["target"], batch_idx
        )
        self._record("train", batch, step.logits, step.loss)
        return step.objective

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self(batch)
        loss = soft_cross_entropy(logits, batch["target"])
        self._record("val", batch, logits, loss)
        for modality, name in self.single_sense_metrics.items():
            accuracy = self.metrics[name]
            accuracy.update(self.model(**inputs_of(batch, (modality,))), batch["label"])
            self.log(name, accuracy, on_step=False, on_epoch=True, logger=False)
        return loss

    def on_train_epoch_start(self) -> None:
        self.training_strategy.on_train_epoch_start(self.current_epoch)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # After every accumulated backward (and unscaling under 16-mixed), before clipping.
        self.training_strategy.before_optimizer_step(self.model, self._sum_over_processes)

    def _sum_over_processes(self, tensor: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="sum")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self.model(**inputs_of(batch, self.predict_modalities)).float().softmax(dim=-1)

    def configure_optimizers(self):
        return configure_adamw(
            self,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            implementation=self.implementation,
        )


def checked_adamw_implementation(implementation: str) -> str:
    """``implementation`` if it is one of ``ADAMW_IMPLEMENTATIONS``, else a ValueError."""
    if implementation not in ADAMW_IMPLEMENTATIONS:
        raise ValueError(
            f"optimiser.implementation {implementation!r} unknown; use one of "
            f"{ADAMW_IMPLEMENTATIONS}"
        )
    return implementation


def _adamw_keywords(implementation: str, precision: str) -> dict[str, bool]:
    """AdamW's keyword for ``implementation``: the same update, computed per tensor
    (``for-loop``, torch's default on a CPU), over lists of tensors (``foreach``) or in one
    kernel per parameter group (``fused``, the fastest: benchmarks/bench_optimiser.py). Under a
    mixed precision fused falls back to foreach: Lightning's mixed-precision plugin refuses to
    clip the gradients of an optimiser that could unscale them itself."""
    if implementation == "fused" and "mixed" in precision:
        implementation = "foreach"
    return {
        "fused": {"fused": True},
        "foreach": {"foreach": True},
        "for-loop": {"foreach": False},
    }[implementation]


def configure_adamw(
    module: L.LightningModule,
    *,
    learning_rate: float,
    weight_decay: float,
    warmup_epochs: float,
    implementation: str,
) -> dict[str, Any]:
    """What ``configure_optimizers`` returns for ``module.model``, in every module of the engine:
    AdamW (weight decay on the matrices of linear and convolution layers only, as in ViT: not on
    biases, norms, or learned tokens and positions), a linear warm-up over ``warmup_epochs``, then
    a cosine decay to zero at ``max_epochs``, stepped every batch."""
    named = list(module.model.named_parameters())
    decay = [p for n, p in named if p.ndim >= 2 and n.endswith("weight")]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and n.endswith("weight"))]
    trainer = module.trainer
    optimiser = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=learning_rate,
        **_adamw_keywords(implementation, str(trainer.precision)),
    )
    total = max(int(trainer.estimated_stepping_batches), 1)
    warmup = min(int(warmup_epochs * total / max(trainer.max_epochs, 1)), total - 1)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    return {
        "optimizer": optimiser,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
    }
