"""The Lightning wrapper around a masked autoencoder (``avshared.models.MaskedAutoencoder``):
standardisation, the pretraining loss and its parts per epoch, optimiser and schedule.

As in ``module.py`` every step stays on the device: spectrograms are standardised there
(``on_after_batch_transfer``), and the losses are torchmetrics means, which Lightning reduces at
the end of the epoch over every process. The masks are drawn from torch's generator, which
``ReseedEveryEpoch`` reseeds per epoch and process, so a resumed run draws what an uninterrupted
one would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn
from torchmetrics import MeanMetric

from avshared.models import MaskedAutoencoder
from avshared.training.module import (
    StandardisesSpectrograms,
    checked_adamw_implementation,
    configure_adamw,
)

#: The per-epoch metrics of a pretraining run: the objective, each sense's reconstruction loss on
#: its hidden patches and the contrastive term (when its weight is positive).
PRETRAIN_METRICS: tuple[str, ...] = (
    "train_loss",
    "train_reconstruction_audio",
    "train_reconstruction_video",
    "train_contrastive",
)


class MaskedAutoencoderModule(StandardisesSpectrograms):
    """Trains ``model`` on batches of ``PretrainingDataModule`` (``audio`` float16 dB, ``video``
    uint8), standardising the audio with ``spectrogram_stats`` on the device. Logs per epoch the
    ``PRETRAIN_METRICS`` that apply; AdamW with warm-up and cosine decay as the phases
    (``module.configure_adamw``)."""

    def __init__(
        self,
        model: MaskedAutoencoder,
        spectrogram_stats: Mapping[str, Any] | None = None,
        *,
        learning_rate: float = 0.0,
        weight_decay: float = 0.0,
        warmup_epochs: float = 0.0,
        implementation: str = "fused",
    ):
        super().__init__()
        self.model = model
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.implementation = checked_adamw_implementation(implementation)
        self._keep_spectrogram_stats(model.modalities, spectrogram_stats)
        logged = ["train_loss", *(f"train_reconstruction_{m}" for m in model.modalities)]
        if model.contrastive_weight > 0 and len(model.modalities) > 1:
            logged.append("train_contrastive")
        self.metrics = nn.ModuleDict({name: MeanMetric() for name in logged})

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        inputs = {m: batch[m] for m in self.model.modalities}
        output = self.model(**inputs)
        values = {"train_loss": output.loss}
        values |= {f"train_reconstruction_{m}": v for m, v in output.reconstruction.items()}
        if output.contrastive is not None:
            values["train_contrastive"] = output.contrastive
        size = len(next(iter(inputs.values())))
        for name, value in values.items():
            metric = self.metrics[name]
            metric.update(value.detach(), weight=size)
            # Metric objects: Lightning computes them (synced over processes) at the epoch's end.
            self.log(name, metric, on_step=False, on_epoch=True, logger=False)
        return output.loss

    def configure_optimizers(self):
        return configure_adamw(
            self,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            implementation=self.implementation,
        )
