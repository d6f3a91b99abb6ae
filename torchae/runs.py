"""Quiet training runs with an experiment's settings, for the parity suite and the benchmarks."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from torchae.data import MNISTDataModule
from torchae.engine import Engine
from torchae.figures import ArticleFigures
from torchae.models import AutoencoderModule
from torchae.registry import EXPERIMENTS
from torchae.timing import EpochTimer

__all__ = ["fit_quietly", "quiet_trainer", "source_commit"]


def source_commit() -> str | None:
    """The git commit of the torchae checkout that runs this, or ``None`` outside a git checkout (an installed
    package): what parity records and the weights' metadata name as the code that ran."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True
        )
    except OSError:
        return None
    return done.stdout.strip() or None


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
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    accelerator: str = "cpu",
    callbacks: Sequence[pl.Callback] = (),
    data: MNISTDataModule | None = None,
    engine: Engine | None = None,
) -> tuple[list[dict[str, float]], list[float]]:
    """Train ``model`` with experiment ``name``'s batch size and engine, writing no file.

    Args:
        data: the datamodule (default: the experiment's, with these sizes and seed).
        engine: the engine (default: the experiment's).

    Returns:
        The per-epoch metrics (``train_loss``, ``val_loss``, ...) and the seconds of each epoch.
    """
    experiment = EXPERIMENTS[name]
    pl.seed_everything(seed, verbose=False)
    data = data or experiment.build_data(train_size, val_size, seed)
    history, timer = ArticleFigures(enabled=False, write_history=False), EpochTimer()
    engine = engine or experiment.build_engine()
    trainer = quiet_trainer(
        max_epochs=epochs, accelerator=accelerator, devices=1, callbacks=[engine, history, timer, *callbacks]
    )
    trainer.fit(model, datamodule=data)
    return history.history, timer.seconds
