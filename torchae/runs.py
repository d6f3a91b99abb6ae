"""A quiet Trainer (no files, no progress bar) and the commit of the code that runs: for evaluations, the parity
suite and the benchmarks."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

__all__ = ["quiet_trainer", "source_commit"]


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
