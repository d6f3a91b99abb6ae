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
    "content_problem",
    "network_state",
    "read_checkpoint",
    "refused_setting",
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
    kind = special_file_kind(path)
    if kind is not None:
        raise CheckpointError(f"checkpoint {str(path)!r} is {kind}, not a file: give a .ckpt file")
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
    problem = content_problem(checkpoint)
    if problem is not None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} {problem}: the file was edited or damaged; use a checkpoint that torchae fit "
            "wrote"
        )
    return checkpoint


OLDEST_LIGHTNING = (2, 0)
"""The oldest Lightning whose checkpoints torchae reads (it writes them with 2.6 or newer)."""
MAX_SEED = 2**32 - 1
"""The largest seed: numpy's generators, which Lightning seeds too, take seeds of 32 bits."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_history(history: Any) -> bool:
    """A loss history: a list of per-epoch mappings of names to numbers."""
    return isinstance(history, list) and all(
        isinstance(row, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in row.items())
        for row in history
    )


def _lightning_version(text: Any) -> tuple[int, ...] | None:
    found = re.match(r"(\d+)\.(\d+)", text) if isinstance(text, str) else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def content_problem(checkpoint: dict[str, Any]) -> str | None:
    """What is wrong with the entries of a checkpoint that every command reads (``None`` if nothing is): checked
    once, here, before a model, a datamodule or a trainer is built from them.

    Returns:
        A phrase such as ``holds hyper_parameters of type list, not a mapping``.
    """
    for key in ("hyper_parameters", "datamodule_hyper_parameters", "loops", "callbacks"):
        if key in checkpoint and not isinstance(checkpoint[key], dict):
            return f"holds {key} of type {type(checkpoint[key]).__name__}, not a mapping"
    if MODEL_KEY in checkpoint and not isinstance(checkpoint[MODEL_KEY], str):
        return f"names its model class with a {type(checkpoint[MODEL_KEY]).__name__}, not a class name"
    if "pytorch-lightning_version" in checkpoint:
        version = _lightning_version(checkpoint["pytorch-lightning_version"])
        if version is None or version < OLDEST_LIGHTNING:
            return (
                f"was written by Lightning {checkpoint['pytorch-lightning_version']!r}, and torchae reads "
                f"checkpoints of Lightning {'.'.join(map(str, OLDEST_LIGHTNING))} or newer"
            )
    for key in ("epoch", "global_step"):
        if key in checkpoint and not (_is_int(checkpoint[key]) and checkpoint[key] >= 0):
            return f"holds {key} = {checkpoint[key]!r}, not a count"
    for key, value in checkpoint.items():
        if isinstance(key, str) and key.endswith("DataModule"):  # a datamodule's state: its seed
            seed = value.get("seed") if isinstance(value, dict) else None
            if not (_is_int(seed) and 0 <= seed <= MAX_SEED):
                return f"holds a {key} state without a seed from 0 to {MAX_SEED} ({value!r})"
    states = checkpoint.get("optimizer_states", [])
    if not isinstance(states, list) or not all(_is_optimizer_state(state) for state in states):
        return "holds optimizer states without their parameter groups"
    for key, callback in (checkpoint.get("callbacks") or {}).items():
        history = callback.get("history") if isinstance(callback, dict) else None
        if history is not None and not _is_history(history):
            return f"holds a loss history ({key}) that is not a list of per-epoch numbers"
    return None


def _is_optimizer_state(state: Any) -> bool:
    groups = state.get("param_groups") if isinstance(state, dict) else None
    return (
        isinstance(state.get("state") if isinstance(state, dict) else None, dict)
        and isinstance(groups, list)
        and len(groups) > 0
        and all(isinstance(group, dict) and isinstance(group.get("params"), list) for group in groups)
    )


def refused_setting(path: str | Path, err: Exception) -> CheckpointError:
    """The error for a model setting that a checkpoint holds and its class refuses (``err``, a ``require`` message
    whose fix, a flag to set, does not apply to a file): the checkpoint's fault, not the command line's."""
    problem = str(err).split(": set --", 1)[0]
    return CheckpointError(
        f"checkpoint {str(path)!r} holds a model setting that its class refuses ({problem}): the file was edited or "
        "damaged; use a checkpoint that torchae fit wrote"
    )


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
