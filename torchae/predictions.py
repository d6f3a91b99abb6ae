"""Predictions on disk: ``torchae predict`` writes the codes, reconstructions and labels of the test set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from torchae.errors import ConfigError
from torchae.safety import atomic_write, file_name, refuse_existing

__all__ = ["NpzPredictionWriter"]


class NpzPredictionWriter(BasePredictionWriter):
    """Writes ``predictions.npz`` into the run's folder when predicting ends (Lightning's prediction writer):

    - ``codes``: ``(N, *code_shape)`` float32;
    - ``reconstructions``: ``(N, *input_shape)`` float32 (images ``(N, 1, 28, 28)``; part 2's points ``(N, 2)``);
    - ``labels``: ``(N,)`` int64, when the batches carry labels (``MNISTDataModule``'s prediction batches do);
    - ``noisy``: the noisy inputs, for a model that corrupts what its encoder sees (denoising);
    - for any other model, the named tensors its ``predict_step`` returns (a mapping), batches joined.

    N follows the prediction dataloader (``MNISTDataModule``: the 10,000 test images, in MNIST's order).

    Args:
        filename: the file's name in the run's folder: a plain name ending in ``.npz``. A file that exists there
            already is refused, never replaced.
    """

    def __init__(self, filename: str = "predictions.npz") -> None:
        super().__init__(write_interval="epoch")
        self.filename = file_name(filename, "predictions.filename", ".npz")
        self.path: Path | None = None
        """Where the last predictions were written."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "predict" and trainer.world_size > 1:
            raise ConfigError(
                "torchae predict writes one file from one process: set --trainer.devices 1 (the test set takes "
                "seconds on one device)"
            )

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        if not batches or not all(isinstance(batch, dict) for batch in batches):
            raise ConfigError(
                f"{type(pl_module).__name__}.predict_step returns {type(batches[0]).__name__ if batches else 'nothing'}"
                ", and torchae predict writes a mapping of named tensors (the arrays of predictions.npz): return a "
                "dict from predict_step, or give --trainer.callbacks a prediction writer of your own"
            )
        arrays = {key: torch.cat([batch[key] for batch in batches]).cpu().numpy() for key in batches[0]}
        arrays = {key: value.astype(np.int64 if key == "labels" else np.float32) for key, value in arrays.items()}
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / self.filename
        refuse_existing([self.path], "give another --predictions.filename (nothing written is replaced)")
        with atomic_write(self.path) as partial:
            np.savez(partial, **arrays)
        # on a line of its own: a progress bar's line is still open when the epoch's predictions are written
        after_bar = "\n" if trainer.progress_bar_callback is not None else ""
        print(f"{after_bar}predictions: {self.path} ({', '.join(f'{k} {v.shape}' for k, v in arrays.items())})")
