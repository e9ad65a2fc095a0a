"""Early stopping after a warm-up, on a tiny Lightning module whose validation score never moves."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from avshared.training.callbacks import EarlyStoppingAfterWarmUp


class _Flat(L.LightningModule):
    """Learns nothing useful: val_accuracy is the same every epoch, so patience runs out at once."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight - batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_accuracy", 0.5)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _epochs_run(start_epoch: int, patience: int) -> int:
    data = DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=2)
    trainer = L.Trainer(
        max_epochs=20,
        callbacks=[
            EarlyStoppingAfterWarmUp(
                start_epoch=start_epoch, monitor="val_accuracy", mode="max", patience=patience
            )
        ],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_Flat(), train_dataloaders=data, val_dataloaders=data)
    return trainer.current_epoch


@pytest.mark.parametrize("start_epoch", [0, 3, 8])
def test_patience_counts_from_the_start_epoch(start_epoch):
    # The first watched epoch sets the best score; `patience` flat epochs after it stop the run.
    assert _epochs_run(start_epoch, patience=2) == start_epoch + 3
