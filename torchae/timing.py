"""Wall-clock time per epoch, logged like any other metric."""

from __future__ import annotations

import time

import pytorch_lightning as pl

__all__ = ["EpochTimer"]


class EpochTimer(pl.Callback):
    """Logs ``epoch_seconds``: the wall-clock time of each training epoch, its validation included (Keras's
    per-epoch figure; under DDP the mean over the ranks). This process's values are kept in ``seconds``."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        elapsed = time.perf_counter() - self._start  # validation runs inside the training epoch
        self.seconds.append(elapsed)
        pl_module.log("epoch_seconds", elapsed, on_step=False, on_epoch=True, batch_size=1, sync_dist=True)
