"""The Lightning wrapper around an avshared classifier: loss, metrics, optimiser and schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avshared.pipelines.training.data import NO_LABEL


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over the batch of ``-sum_c target_c * log softmax(logits)_c``.

    ``target`` (B, C) is a distribution per sample: one-hot for a hard label (where this equals the
    usual cross-entropy) or a crowd vote distribution for soft targets.
    """
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def labelled_accuracy(logits: Tensor, labels: Tensor) -> tuple[Tensor, int]:
    """Share of correct argmax predictions among samples that have a label, and their count."""
    has_label = labels != NO_LABEL
    count = int(has_label.sum())
    if not count:
        return logits.new_zeros(()), 0
    correct = (logits.argmax(dim=-1)[has_label] == labels[has_label]).float().mean()
    return correct, count


def inputs_of(batch: dict[str, Tensor], modalities: Sequence[str]) -> dict[str, Tensor]:
    """The model's keyword inputs (``audio``/``video``) from a batch."""
    return {modality: batch[modality] for modality in modalities}


class EmotionClassifierModule(L.LightningModule):
    """Trains ``model`` (an avshared.models classifier) on batches of ``ClipDataModule``.

    Logs per epoch ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``. AdamW with a
    linear warm-up then cosine decay to zero at ``max_epochs``, stepped every batch.
    """

    def __init__(
        self,
        model: nn.Module,
        modalities: Sequence[str],
        learning_rate: float,
        weight_decay: float,
        warmup_epochs: float,
    ):
        super().__init__()
        self.model = model
        self.modalities = tuple(modalities)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.model(**inputs_of(batch, self.modalities))

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        logits = self(batch)
        loss = soft_cross_entropy(logits, batch["target"])
        accuracy, labelled = labelled_accuracy(logits, batch["label"])
        size = len(batch["target"])
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=size)
        if labelled:
            self.log(
                f"{stage}_accuracy", accuracy, on_step=False, on_epoch=True, batch_size=labelled
            )
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self):
        # Weight decay on the matrices of linear and convolution layers only, as in ViT: not on
        # biases, norms, or learned tokens and positions.
        named = list(self.model.named_parameters())
        decay = [p for n, p in named if p.ndim >= 2 and n.endswith("weight")]
        no_decay = [p for n, p in named if not (p.ndim >= 2 and n.endswith("weight"))]
        optimiser = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.learning_rate,
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(int(self.warmup_epochs * total / max(self.trainer.max_epochs, 1)), total - 1)

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
