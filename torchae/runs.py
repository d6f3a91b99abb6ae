"""Run folders (claimed atomically, recognised so that nothing writes over one), a quiet Trainer (no files, no
progress bar) and the commit of the code that runs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

__all__ = ["RUN_FILES", "claim_folder", "claim_version", "is_run_folder", "quiet_trainer", "source_commit"]

RUN_FILES = ("config.yaml", "hparams.yaml", "metrics.csv", "history.csv", "checkpoints")
"""What a run's folder holds: a folder with any of them is a run's, and nothing but its run writes there."""


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is the folder of a run (``torchae fit`` wrote one of :data:`RUN_FILES` there)."""
    folder = Path(path)
    return folder.is_dir() and any((folder / name).exists() for name in RUN_FILES)


def claim_version(root: str | Path) -> int:
    """Create ``root/version_N`` for the lowest free ``N`` above every existing one, and return ``N``.

    The claim is the folder's creation, which the file system makes atomic: of several runs that start together
    into one root, each gets a folder of its own (a logger that only lists the folders can hand two the same).
    """
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(match.group(1)) for entry in base.iterdir() if (match := re.fullmatch(r"version_(\d+)", entry.name))]
    number = max(taken, default=-1) + 1
    while True:
        try:
            (base / f"version_{number}").mkdir()
            return number
        except FileExistsError:
            number += 1


def claim_folder(folder: str | Path) -> Path:
    """Create ``folder``, or ``folder-2``, ``folder-3``... if it is taken, atomically; return the one created."""
    base, count = Path(folder), 1
    base.parent.mkdir(parents=True, exist_ok=True)
    while True:
        candidate = base if count == 1 else base.with_name(f"{base.name}-{count}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            count += 1


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
