"""The figures' Lightning callback: the per-epoch losses (kept in checkpoints), ``history.csv``, the frames of the
training animations, and the model's figures when ``fit`` ends."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from torchae.figures.animation import ANIMATION_EPOCHS, ANIMATION_FOLDER, record_frame, write_animations
from torchae.figures.registry import check_digits_per_row, draw_figures
from torchae.safety import atomic_write
from torchae.timing import EpochTimer

__all__ = ["ArticleFigures", "write_history_csv"]


def write_history_csv(history: Sequence[dict[str, float]], path: Path) -> Path:
    """Write the per-epoch metrics as CSV (one row per epoch)."""
    keys = sorted({key for row in history for key in row}, key=lambda k: (k != "epoch", k))
    with atomic_write(path) as partial, partial.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    return path


class ArticleFigures(pl.Callback):
    """Keeps the per-epoch losses (saved in checkpoints, so a resumed run keeps its whole curve) and, when ``fit``
    ends, writes ``history.csv`` and the article's figures into the run's log folder.

    Args:
        enabled: draw the figures at the end of ``fit`` (``history.csv`` is written either way).
        n: digits per row.
        write_history: write ``history.csv`` at the end of ``fit`` (``False`` keeps the history in memory only).
    """

    def __init__(self, enabled: bool = True, n: int = 10, write_history: bool = True) -> None:
        check_digits_per_row(n, "figures.n")
        self.enabled = enabled
        self.n = n
        self.write_history = write_history
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": trainer.current_epoch}
        for key, value in trainer.callback_metrics.items():
            if key.startswith(("train_", "val_")):
                row[key] = float(value)
        # This epoch's time, from the timer the CLI installs before this callback (its logged metric comes later).
        timers = [callback.seconds for callback in trainer.callbacks if isinstance(callback, EpochTimer)]
        if timers and timers[0]:
            row["epoch_seconds"] = timers[0][-1]
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]
        self._record_frame(trainer, pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A resumed run starts its animation with the frames its checkpoint's run saved before the stop."""
        checkpoint = Path(trainer.ckpt_path) if trainer.ckpt_path else None
        if checkpoint is None or not getattr(pl_module, "animations", ()) or not trainer.is_global_zero:
            return
        if not trainer.loggers:
            return
        earlier = checkpoint.resolve().parent.parent / ANIMATION_FOLDER
        folder = Path(trainer.loggers[0].log_dir) / ANIMATION_FOLDER
        if not earlier.is_dir() or earlier == folder.resolve():
            return
        folder.mkdir(parents=True, exist_ok=True)
        for frame in sorted(earlier.glob("epoch_*.npz")):
            if not (folder / frame.name).exists():
                shutil.copy2(frame, folder / frame.name)

    def _record_frame(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At the article's epochs, a frame of the model's training animations (its ``animations``), saved in the
        run's ``animation/`` folder as it is drawn, so a resumed run keeps the frames before the stop."""
        images = getattr(trainer.datamodule, "val_images", None)
        if not self.enabled or not getattr(pl_module, "animations", ()) or images is None:
            return
        if getattr(pl_module, "frame_unit", "epoch") != "epoch":  # animated by its own clock (the GANs' iterations)
            return
        if trainer.current_epoch in ANIMATION_EPOCHS:
            self._save_frame(trainer, pl_module, trainer.current_epoch)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """A model that declares ``frame_after_batch`` (part 5's GANs) says when a frame is due, and its number."""
        due = getattr(pl_module, "frame_after_batch", None)
        number = due() if due is not None and self.enabled and getattr(pl_module, "animations", ()) else None
        if number is not None:
            self._save_frame(trainer, pl_module, number)

    def _save_frame(self, trainer: pl.Trainer, pl_module: pl.LightningModule, number: int) -> None:
        images = getattr(trainer.datamodule, "val_images", None)
        if images is None or not trainer.is_global_zero or not trainer.loggers:
            return
        folder = Path(trainer.loggers[0].log_dir) / ANIMATION_FOLDER  # no collective call: rank 0 only
        labels = getattr(trainer.datamodule, "val_labels", None)
        record_frame(pl_module, images, folder, number, labels)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.enabled or self.write_history):
            return
        out = Path(trainer.log_dir or trainer.default_root_dir)  # under DDP a collective call: every rank makes it
        if not trainer.is_global_zero:
            return
        out.mkdir(parents=True, exist_ok=True)
        if self.history and self.write_history:
            write_history_csv(self.history, out / "history.csv")
        if not self.enabled:
            return
        datamodule = trainer.datamodule
        images = getattr(datamodule, "val_images", None)
        if images is None:
            return
        labels = getattr(datamodule, "val_labels", None)
        train = {"train_images": getattr(datamodule, "train_images", None)}
        train["train_labels"] = getattr(datamodule, "train_labels", None)
        paths = draw_figures(pl_module, images, out, self.history, n=self.n, labels=labels, **train)
        if getattr(pl_module, "animations", ()):
            frames = out / ANIMATION_FOLDER
            unit = getattr(pl_module, "frame_unit", "epoch")
            paths += write_animations(frames, out, labels, type(pl_module).__name__, pl_module.animations, unit)
        print(f"figures: {', '.join(str(p) for p in paths)}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A run stopped early (a signal, an error) still leaves its ``history.csv`` up to date."""
        if self.write_history and self.history and trainer.is_global_zero and trainer.loggers:
            folder = Path(trainer.loggers[0].log_dir)  # no collective call while stopping
            if folder.is_dir():
                write_history_csv(self.history, folder / "history.csv")

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
