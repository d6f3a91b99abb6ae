"""Where the commands write: run folders (``version_N``), evaluation folders, the loggers, and the folders a
command claimed and left empty."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import types
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from torchae.checkpoints import run_order


def _tensorboard_without_tensorflow() -> None:
    """Keep TensorBoard's event writer from importing TensorFlow (6 s here, when the [parity] extra installed it).

    TensorBoard imports TensorFlow when it is installed unless a module ``tensorboard.compat.notf`` exists (its
    ``no_tensorflow`` build provides one); it then writes with its own stub, as it does wherever TensorFlow is
    absent. This registers that empty marker module, unless TensorBoard already chose.
    """
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def find_last_checkpoint(root: str | Path) -> Path | None:
    """The ``last.ckpt`` of the newest run under ``root`` (``root/version_N/checkpoints/last.ckpt``, highest ``N``)."""
    candidates = [p for p in Path(root).glob("**/checkpoints/last.ckpt") if p.is_file()]
    return max(candidates, key=run_order) if candidates else None


def default_loggers(root: Path, version: str | None = None) -> list[Logger]:
    """A CSV logger, and a TensorBoard logger in the same folder when TensorBoard is installed: ``root/version_N``
    (the next free ``N``), or ``root/version`` when a version is given."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(root), name="", version=version)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        _tensorboard_without_tensorflow()
        loggers.append(TensorBoardLogger(save_dir=str(root), name="", version=loggers[0].version))
    return loggers


EVALUATIONS = ("validate", "test", "predict")


def evaluation_folder(subcommand: str, ckpt_path: str | None, root: str | Path) -> Path:
    """Where ``validate``, ``test`` or ``predict`` writes: into the run that wrote the checkpoint
    (``version_N/SUBCOMMAND/TIME``) when it lies in a run's ``checkpoints/`` folder, else ``root/SUBCOMMAND/TIME``;
    never a new ``version_N``. TIME is the start, to the second; :func:`~torchae.runs.claim_folder` adds a suffix
    when two start within one."""
    checkpoint = Path(ckpt_path) if ckpt_path else None
    run = checkpoint.parent.parent if checkpoint is not None and checkpoint.parent.name == "checkpoints" else Path(root)
    return run / subcommand / time.strftime("%Y-%m-%dT%H-%M-%S")


CLAIMED_VERSION = "TORCHAE_CLAIMED_VERSION"
"""Set by rank 0 of a multi-process fit to the ``version_N`` it claimed; the processes Lightning launches for the
other ranks inherit it and log there too."""
_CLAIMED: list[Path] = []


def release_unused_claims() -> None:
    """Remove the folders this process claimed and left empty (a command that failed before writing anything)."""
    for folder in _CLAIMED:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: it holds what the run wrote, which is kept
    _CLAIMED.clear()


def claim(folder: Path) -> Path:
    _CLAIMED.append(folder)
    return folder


def rank_zero() -> bool:
    """Whether this process is rank 0 of its run (Lightning's launcher sets these for the other processes)."""
    return all(int(os.environ.get(variable, "0") or 0) == 0 for variable in ("LOCAL_RANK", "NODE_RANK"))
