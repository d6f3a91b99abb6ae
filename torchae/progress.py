"""Lightning's progress bar, counting image batches as Keras does when each Lightning step runs a group of them."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from torchae.data import TensorBatches, batches_of

__all__ = ["ImageBatchProgressBar"]


def _image_batches(loader: Any, total: int | float) -> int | float:
    """``total`` Lightning steps of ``loader`` as image batches (the same number when nothing is grouped)."""
    if isinstance(loader, TensorBatches) and loader.steps_per_execution > 1 and total == len(loader):
        return loader.num_batches()
    return total


class ImageBatchProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` whose counts are image batches (235/235 for an epoch of the dense model, as Keras shows),
    not the groups of ``data.steps_per_execution`` batches that Lightning steps through (8/8)."""

    def __init__(self, refresh_rate: int = 1, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._done = {"train": 0, "val": 0}

    @property
    def total_train_batches(self) -> int | float:
        return _image_batches(self.trainer.train_dataloader, super().total_train_batches)

    @property
    def total_val_batches_current_dataloader(self) -> int | float:
        loaders = self.trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        return _image_batches(loader, super().total_val_batches_current_dataloader)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """Lightning's bar metrics without the logger's version (``v_num=on_0``: the run's folder says it)."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._done["train"] = 0

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        self._done["val"] = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._advance("train", self.train_progress_bar, batch, trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._advance("val", self.val_progress_bar, batch, None, None)

    def _advance(self, stage: str, bar: Any, batch: Any, trainer: Any, pl_module: Any) -> None:
        self._done[stage] += len(batches_of(batch))
        done = self._done[stage]
        if bar is None or bar.disable or self.refresh_rate == 0:
            return
        if done % self.refresh_rate and done != bar.total:
            return
        bar.n = done
        bar.refresh()
        if trainer is not None:
            bar.set_postfix(self.get_metrics(trainer, pl_module))
