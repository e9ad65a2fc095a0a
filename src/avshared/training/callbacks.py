"""Lightning callbacks of the training node: per-epoch history and throughput, reseeding, early
stopping after a warm-up. All of them are correct under DDP."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping

#: The per-epoch metrics a phase records, under the same names in MLflow and the history: every
#: phase the first four, a two-modality phase also the validation accuracy of each sense alone.
EPOCH_METRICS: tuple[str, ...] = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_accuracy_audio",
    "val_accuracy_video",
)


class EpochHistory(L.Callback):
    """Records one row per finished epoch: the epoch metrics, learning rate and training throughput.

    Global rank 0 writes the rows to ``path`` (JSON) after every epoch and logs each row to the
    trainer's logger (MLflow) with the epoch as its step: under ``ddp_spawn`` the processes that
    train are not the one that called ``fit``, so the file is how the history comes back. The rows
    are also part of the checkpoint (``state_dict``), so a resumed run's history, file and logged
    metrics still start at epoch 0. Throughput counts the samples of every process. ``metrics``:
    the logged epoch metrics to record (a phase's ``EPOCH_METRICS`` by default); ``log_prefix``
    goes in front of every name logged (several models logging into one run), not in the rows.
    """

    def __init__(
        self, path: str | Path, metrics: Sequence[str] = EPOCH_METRICS, log_prefix: str = ""
    ):
        self.path = Path(path)
        self.metrics = tuple(metrics)
        self.log_prefix = log_prefix
        self.rows: list[dict[str, float]] = []
        self.resumed_from_epoch: int | None = None
        self._epoch_seconds = 0.0
        self._epoch_samples = 0
        self._last_tick = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state_dict["rows"]]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.rows:
            self.resumed_from_epoch = trainer.current_epoch
            for row in self.rows:
                self._log(trainer, row)
            self._write(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_seconds, self._epoch_samples = 0.0, 0
        self._last_tick = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: dict[str, torch.Tensor],
        batch_idx: int,
    ) -> None:
        # Time from batch to batch: loading + forward + backward + step, but not validation.
        now = time.perf_counter()
        self._epoch_seconds += now - self._last_tick
        self._epoch_samples += len(next(iter(batch.values()))) * trainer.world_size
        self._last_tick = now

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": float(trainer.current_epoch)}
        row |= {name: float(metrics[name]) for name in self.metrics if name in metrics}
        row["learning_rate"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        row["train_seconds"] = self._epoch_seconds
        row["train_samples"] = float(self._epoch_samples)
        self.rows.append(row)
        self._log(trainer, row)
        self._write(trainer)

    def _log(self, trainer: L.Trainer, row: dict[str, float]) -> None:
        if trainer.logger is not None:  # Lightning's loggers log from global rank 0 only
            metrics = {
                self.log_prefix + name: value for name, value in row.items() if name != "epoch"
            }
            trainer.logger.log_metrics(metrics, step=int(row["epoch"]))

    def _write(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero:
            record = {"rows": self.rows, "resumed_from_epoch": self.resumed_from_epoch}
            temporary = self.path.with_suffix(".partial")
            temporary.write_text(json.dumps(record))
            temporary.replace(self.path)


def read_history(path: str | Path) -> tuple[list[dict[str, float]], int | None]:
    """The rows and resume epoch an ``EpochHistory`` wrote to ``path``."""
    record = json.loads(Path(path).read_text())
    return record["rows"], record["resumed_from_epoch"]


def samples_per_second(rows: list[dict[str, float]], resumed_from_epoch: int | None) -> float:
    """Training throughput over the epochs a run trained itself (restored epochs excluded)."""
    ran = rows[resumed_from_epoch or 0 :]
    seconds = sum(row["train_seconds"] for row in ran)
    return sum(row["train_samples"] for row in ran) / seconds if seconds > 0 else 0.0


class ReseedEveryEpoch(L.Callback):
    """Seeds torch's generator from (seed, epoch, global rank) at the start of every epoch.

    Dropout and modality dropout then draw the same numbers in epoch ``e`` whether the run went
    straight through or resumed from a checkpoint at ``e`` (a resumed run ends where an
    uninterrupted one does), and under DDP every process draws its own numbers.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        entropy = [self.seed, trainer.current_epoch, trainer.global_rank]
        torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))


class EarlyStoppingAfterWarmUp(EarlyStopping):
    """Early stopping that starts watching at epoch ``start_epoch``.

    A transformer trained from scratch on a few hundred clips can sit near chance for several
    epochs before it learns; counting those epochs towards ``patience`` would stop it just as it
    starts (Lightning's ``min_epochs`` only defers a stop already decided). Before ``start_epoch``
    nothing is counted; from then on it is Lightning's EarlyStopping.
    """

    def __init__(self, *, start_epoch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_epoch = start_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= self.start_epoch:
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= self.start_epoch:
            super().on_validation_end(trainer, pl_module)
