"""The article's training settings per model, and a quiet training run used by the parity suite and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl

from torchae.data import MNISTDataModule
from torchae.figures import ArticleFigures
from torchae.modules import AutoencoderModule
from torchae.timing import EpochTimer

__all__ = ["ARTICLE_RUNS", "ArticleRun", "article_data", "fit_quietly", "quiet_trainer"]


@dataclass(frozen=True)
class ArticleRun:
    """How the article trains one model (SPEC.md), and the ``steps_per_execution`` the configs use."""

    epochs: int
    batch_size: int
    steps_per_execution: int


ARTICLE_RUNS = {
    "dense": ArticleRun(epochs=50, batch_size=256, steps_per_execution=32),
    "deep": ArticleRun(epochs=100, batch_size=256, steps_per_execution=32),
    "conv": ArticleRun(epochs=64, batch_size=256, steps_per_execution=32),
    "denoising": ArticleRun(epochs=200, batch_size=16, steps_per_execution=128),
    "sparse": ArticleRun(epochs=400, batch_size=256, steps_per_execution=32),
}


def article_data(name: str, train_size: int = 60_000, val_size: int = 10_000, seed: int = 0) -> MNISTDataModule:
    """MNIST with article model ``name``'s batch size and steps_per_execution."""
    run = ARTICLE_RUNS[name]
    return MNISTDataModule(
        batch_size=run.batch_size,
        seed=seed,
        train_size=train_size,
        val_size=val_size,
        steps_per_execution=run.steps_per_execution,
    )


def quiet_trainer(**options: Any) -> pl.Trainer:
    """A ``pl.Trainer`` without logger, checkpoints, progress bar, model summary or sanity check; ``options`` are
    further Trainer arguments (and may override those)."""
    quiet = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(**{**quiet, **options})


def fit_quietly(
    model: AutoencoderModule,
    name: str,
    epochs: int,
    train_size: int = 60_000,
    val_size: int = 10_000,
    seed: int = 0,
    accelerator: str = "cpu",
    callbacks: Sequence[pl.Callback] = (),
    data: MNISTDataModule | None = None,
) -> tuple[list[dict[str, float]], list[float]]:
    """Train ``model`` with article model ``name``'s settings, without logger, checkpoints, progress bar or any
    file written.

    Args:
        data: a datamodule from :func:`article_data` (made here when ``None``).

    Returns:
        The per-epoch metrics (``train_loss``, ``val_loss``, ...) and the seconds of each epoch.
    """
    pl.seed_everything(seed, verbose=False)
    data = data or article_data(name, train_size, val_size, seed)
    history, timer = ArticleFigures(enabled=False, write_history=False), EpochTimer()
    trainer = quiet_trainer(
        max_epochs=epochs, accelerator=accelerator, devices=1, callbacks=[history, timer, *callbacks]
    )
    trainer.fit(model, datamodule=data)
    return history.history, timer.seconds
