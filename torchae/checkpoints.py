"""Reading checkpoints safely: ``weights_only=True`` always, and one clear error for every bad file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from torchae.errors import CheckpointError, special_file_kind

__all__ = [
    "MODEL_KEY",
    "NamedCheckpoints",
    "check_weights",
    "network_state",
    "read_checkpoint",
    "require_model_class",
    "run_order",
]

MODEL_KEY = "torchae_model"
"""The checkpoint entry that names the torchae model class that saved it."""


def run_order(path: Path) -> tuple[int, int]:
    """Sort key of a file in a run's ``version_N`` folder, oldest run first: ``N`` (Lightning's loggers number a
    folder's runs in order), then the file's time. File times alone do not survive a copy or a git clone."""
    version = next((int(part[8:]) for part in reversed(path.parts) if re.fullmatch(r"version_\d+", part)), -1)
    return version, path.stat().st_mtime_ns


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning checkpoint with ``weights_only=True`` (no code from the file runs).

    Raises:
        CheckpointError: the file is missing, truncated or not a checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a folder, not a file: give a .ckpt file in it (runs keep theirs in "
            "<log dir>/checkpoints/)"
        )
    if special_file_kind(path) is not None:
        raise CheckpointError(f"checkpoint {str(path)!r} is {special_file_kind(path)}, not a file: give a .ckpt file")
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist: check the path (runs keep theirs in <log dir>/checkpoints/)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files; all mean the same to the user
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}): the file is "
            "truncated or not a torch checkpoint; use another one"
        ) from None
    if isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(
            f"{str(path)!r} holds weights only, not a Lightning checkpoint: for a model shipped with torchae use "
            "--pretrained NAME (torchae.weights.available() lists them); in Python, model.load_state_dict(torch.load("
            "path, weights_only=True))"
        )
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{str(path)!r} is not a Lightning checkpoint (no state_dict): use a .ckpt from a run")
    return checkpoint


def require_model_class(checkpoint: dict[str, Any], cls: type) -> None:
    """Raise :class:`CheckpointError` if ``checkpoint`` was saved by another torchae model class than ``cls``."""
    saved = checkpoint.get(MODEL_KEY)
    if saved is not None and saved != cls.__name__:
        raise CheckpointError(
            f"this checkpoint holds a {saved}, not a {cls.__name__}: load it with "
            f"{saved}.load_from_checkpoint(...) or torchae.load_checkpoint(...)"
        )


def check_weights(state_dict: Any, model: nn.Module) -> None:
    """Refuse, before loading, weights that do not fit ``model`` (missing, extra or misshapen entries) or that hold
    NaN or infinite values (a run that diverged): each as one :class:`CheckpointError` naming the first entry."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(
            "the checkpoint's state_dict is not a mapping of tensors: use a checkpoint torchae fit wrote"
        )
    expected = model.state_dict()
    problems = [f"{key} missing" for key in expected if key not in state_dict]
    problems += [f"{key} unexpected" for key in state_dict if key not in expected]
    problems += [
        f"{key} of shape {tuple(state_dict[key].shape)}, expected {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise CheckpointError(
            f"the checkpoint's weights do not fit a {type(model).__name__} ({problems[0]}{more}): it was written for "
            "other settings or edited; use a checkpoint that torchae fit wrote with these settings"
        )
    broken = [key for key, value in state_dict.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:
        raise CheckpointError(
            f"the checkpoint's weights hold NaN or infinite values ({broken[0]}): the run had diverged when it was "
            "written; use an earlier checkpoint of the run (its checkpoints/ folder keeps one per epoch)"
        )


def network_state(path: str | Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """The ``net.*`` weights of a torchae checkpoint (``model.init_from``), checked against ``net``'s names and
    shapes."""
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"model.init_from: {err}") from None
    state = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    expected = net.state_dict()
    mismatched = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if mismatched or len(state) != len(expected):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds another network (first mismatch: {(mismatched or ['extra keys'])[0]}): "
            "init_from must be a checkpoint of the architecture being wrapped"
        )
    return state


class NamedCheckpoints(pl.LightningModule):
    """A LightningModule whose checkpoints name its class, checked whenever one is loaded: a checkpoint of another
    torchae model is refused with a :class:`CheckpointError` that names the class it holds."""

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``, after checking (with ``weights_only=True``) that the file is a
        readable checkpoint of this class."""
        if isinstance(checkpoint_path, (str, Path)):
            require_model_class(read_checkpoint(checkpoint_path), cls)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[MODEL_KEY] = type(self).__name__

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        require_model_class(checkpoint, type(self))
        check_weights(checkpoint.get("state_dict"), self)
