"""Keeping runs safe: checkpoints that a crash cannot corrupt, outputs that never replace a file or leave their
folder, and a stop on a NaN or infinite loss."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from torchae.errors import ConfigError, NonFiniteLossError, require

__all__ = [
    "AtomicCheckpointIO",
    "atomic_write",
    "file_name",
    "refuse_existing",
    "RemoveFailedLaunch",
    "SignalStop",
    "StopOnNonFiniteLoss",
    "stopped_by_signal",
    "write_text_atomically",
]


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same folder, same suffix) to write to; when the block ends it is renamed onto
    ``path``, so that a stop at any moment leaves the old file or the new one, never half of it. After an error
    the temporary file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def file_name(name: Any, setting: str, suffix: str = "") -> str:
    """``name`` if it is a plain file name ending in ``suffix`` (if one is given): no folder part, so the file stays
    in the folder it is written to.

    Raises:
        ConfigError: ``name`` holds a folder part, is ``.`` or ``..``, or lacks the suffix.
    """
    text = str(name)
    separators = [sep for sep in (os.sep, os.altsep, "\\") if sep]
    if not text or text in (".", "..") or any(sep in text for sep in separators):
        raise ConfigError(
            f"{setting} = {text!r} is not a file name: give a name without a folder part, such as output{suffix} "
            "(the file goes into its run's folder)"
        )
    if suffix and (not text.endswith(suffix) or text == suffix):
        raise ConfigError(f"{setting} = {text!r} does not end in {suffix}: give a name such as output{suffix}")
    return text


def refuse_existing(paths: list[Path], fix: str) -> None:
    """Refuse to write over files that exist already (torchae never replaces a file it did not write in this run).

    Args:
        paths: the files about to be written.
        fix: what the user can do instead, e.g. ``give another --output, or --overwrite true to replace it``.

    Raises:
        ConfigError: one of ``paths`` exists (a link, even a broken one, counts).
    """
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more of the files to write)" if len(existing) > 1 else ""
        raise ConfigError(f"{existing[0]} exists already{more}: {fix}")


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder renamed into place, so that a stop at
    any moment leaves the old file or the new one, never half of it."""
    with atomic_write(path) as partial:
        partial.write_text(text)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, fsyncs it, then renames it into place.

    A rename within one folder is atomic, so a crash at any moment leaves either the old file or the complete new
    one, never a truncated checkpoint. (Lightning's own writer moves a temporary file from the system's temp
    folder, which is a copy, not an atomic rename, when that folder is on another filesystem.)
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class StopOnNonFiniteLoss(pl.Callback):
    """Stops training with :class:`NonFiniteLossError` (epoch and step within it named) when the training loss is NaN or
    infinite, before the epoch's checkpoint is written, so the last checkpoint on disk stays the last good one.

    The test runs on the device and is read back every ``check_every_n_steps`` steps and at the end of every
    epoch, so the hot loop does not wait for the GPU at every step.

    Args:
        check_every_n_steps: how often the flag is read back (1 checks every step).
    """

    def __init__(self, check_every_n_steps: int = 50) -> None:
        require(
            not isinstance(check_every_n_steps, bool)
            and isinstance(check_every_n_steps, int)
            and check_every_n_steps > 0,
            "nan_guard.check_every_n_steps",
            check_every_n_steps,
            "a positive integer",
            "50",
        )
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: torch.Tensor | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_bad = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):  # a step of the user's that returns no loss: nothing to watch
            return
        step = torch.full((), batch_idx, device=loss.device, dtype=torch.long)
        bad = ~torch.isfinite(loss.detach())
        if self._first_bad is None:
            self._first_bad = torch.where(bad, step, torch.full_like(step, -1))
        else:
            self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)
        if (batch_idx + 1) % self.check_every_n_steps == 0:
            self._raise_if_bad(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._raise_if_bad(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A NaN or infinite ``val_loss`` stops the fit too, before the epoch's checkpoint (and figures drawn from
        broken weights). ``val_loss`` is reduced over the ranks, so every rank stops together."""
        loss = trainer.callback_metrics.get("val_loss")
        if trainer.state.fn != "fit" or not isinstance(loss, torch.Tensor) or bool(torch.isfinite(loss).all()):
            return
        where = (
            "in the sanity check before training" if trainer.sanity_checking else f"at epoch {trainer.current_epoch}"
        )
        raise NonFiniteLossError(
            f"the validation loss became NaN or infinite {where}: training stopped and {_kept(trainer)}; check the "
            "weights the run started from (a checkpoint with broken BatchNorm statistics does this) or lower the "
            "learning rate"
        )

    def _raise_if_bad(self, trainer: pl.Trainer) -> None:
        if self._first_bad is None:
            return
        batch = int(self._first_bad)
        # Under DDP every rank must stop together: one rank raising alone would leave the others waiting for it.
        if trainer.strategy.reduce_boolean_decision(batch >= 0, all=False):
            raise NonFiniteLossError(
                f"the training loss became NaN or infinite at epoch {trainer.current_epoch}, "
                f"{f'step {batch}' if batch >= 0 else 'on another rank'} "
                f"(global step {trainer.global_step}): training stopped and {_kept(trainer)}; "
                "lower the learning rate or check the data"
            )


def _kept(trainer: pl.Trainer) -> str:
    """What a stopped fit leaves: its last good checkpoint, when one was written."""
    written = [
        path
        for callback in trainer.checkpoint_callbacks
        for path in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", ""))
        if path and Path(path).is_file()
    ]
    return f"the last good checkpoint was kept ({written[0]})" if written else "no checkpoint had been written yet"


STARTUP_FILES = ("config.yaml", "hparams.yaml", "metrics.csv")
"""What a run writes into its folder before its first optimizer step (besides TensorBoard's event files)."""


class RemoveFailedLaunch(pl.Callback):
    """A run that fails before its first optimizer step (or stops on a NaN loss before its first checkpoint) leaves
    no ``version_N`` behind: the folder its loggers
    claimed for it holds only what a start writes (config, hyperparameters, an empty metrics file, event files),
    and it is removed. A folder holding anything else (a checkpoint, a figure) is kept whole."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # A run stopped by a NaN before its first checkpoint has nothing to resume from either.
        started = trainer.global_step > 0 and not isinstance(exception, NonFiniteLossError)
        if started or trainer.global_rank != 0 or not trainer.loggers:
            return
        folder = Path(trainer.loggers[0].log_dir)  # the logger's own path: no collective call while failing
        if not folder.is_dir():
            return
        entries = list(folder.iterdir())
        startup = all(
            (entry.is_file() and (entry.name in STARTUP_FILES or entry.name.startswith("events.out.tfevents.")))
            or (entry.is_dir() and entry.name == "checkpoints" and not any(entry.iterdir()))
            for entry in entries
        )
        if startup:
            for entry in entries:
                entry.rmdir() if entry.is_dir() else entry.unlink()
            folder.rmdir()


@dataclass(frozen=True)
class Stop:
    """A fit stopped by a signal: which, in which epoch, and the last checkpoint on disk ("" for none)."""

    signal: int
    epoch: int
    checkpoint: str


_STOPS: list[Stop] = []


def stopped_by_signal() -> Stop | None:
    """The stop :class:`SignalStop` saw in this process, if any."""
    return _STOPS[-1] if _STOPS else None


class SignalStop(pl.Callback):
    """Stops a fit on SIGTERM (a scheduler, ``kill``) or SIGINT (Ctrl-C) and remembers it, with the last checkpoint, so
    that the ``torchae`` command can say where it is and exit with 128 + the signal, as a process a signal stopped
    does (Lightning would exit 0 on SIGTERM).

    While training, SIGTERM only sets a flag, read after each training step; with several processes the ranks
    decide together (one all-reduce of the flag) and all stop at the same step. (Lightning's own SIGTERM handler
    starts a collective inside the signal handler, out of step with the other ranks' collectives, and a DDP fit
    can hang on it.)
    """

    def __init__(self) -> None:
        self._signalled: int | None = None
        self._previous: Any = None

    def _note(self, signum: int, frame: Any) -> None:
        self._signalled = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._signalled = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._note)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop = self._signalled is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            raise SIGTERMException

    def _restore(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, KeyboardInterrupt):
            number = signal.SIGINT
        elif isinstance(exception, SIGTERMException):
            number = signal.SIGTERM
        else:
            return
        callback = trainer.checkpoint_callback
        last = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "") or ""
        _STOPS.append(Stop(int(number), trainer.current_epoch, str(last)))
