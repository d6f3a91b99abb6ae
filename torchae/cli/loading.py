"""Models from checkpoints, shipped weights and class paths, for the commands that start from a trained model."""

from __future__ import annotations

import importlib
import re
import traceback
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml

from torchae.checkpoints import MODEL_KEY, NamedCheckpoints, read_checkpoint, refused_setting
from torchae.cli.checks import MAX_CONFIG_BYTES
from torchae.errors import CheckpointError, ConfigError
from torchae.registry import EXPERIMENTS, model_classes


def model_names() -> str:
    """The registered models' class names, for help texts and messages."""
    return ", ".join(experiment.model.__name__ for experiment in EXPERIMENTS.values())


def load_model(checkpoint: str, model: str | None = None) -> pl.LightningModule:
    """The model of a checkpoint, in eval mode on the CPU, read with ``weights_only=True``. Its class is a registered
    one, found by the name the file holds; or the class the user names (``model``: a class path such as
    ``mypkg.MyAE``, for a model outside the package), which must be the class the file names (a LightningModule that
    is not torchae's names none: Lightning checks its weights). Nothing the file says is imported.

    Raises:
        CheckpointError: the file is unreadable, or names a class that is neither registered nor the one named.
        ConfigError: ``model`` is not an importable LightningModule class.
    """
    saved = read_checkpoint(checkpoint).get(MODEL_KEY)
    classes = model_classes()
    if model is None:
        if saved not in classes:
            recorded = recorded_class_path(checkpoint)
            where = " (as the run's config.yaml records it)" if recorded else ""
            named = recorded or f"mypkg.{saved or 'MyModel'}"
            raise CheckpointError(
                f"checkpoint {checkpoint!r} holds a {saved or 'model of its own'}, which is not one of torchae's "
                f"models ({model_names()}): name its class with --model {named}"
                f"{where}"
            )
        cls = classes[saved]
    else:
        cls = classes.get(model) or import_model_class(model)
        names_class = issubclass(cls, NamedCheckpoints) or saved is not None
        if names_class and cls.__name__ != saved:
            raise CheckpointError(
                f"checkpoint {checkpoint!r} holds a {saved or 'model of its own'}, not a "
                f"{cls.__name__}: use --model with the class that wrote it"
            )
    try:
        return cls.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    except ConfigError as err:  # a setting the checkpoint holds, refused by its class
        raise refused_setting(checkpoint, err) from None
    except (KeyError, RuntimeError, TypeError) as err:
        if issubclass(cls, NamedCheckpoints):
            raise
        raise CheckpointError(
            f"checkpoint {checkpoint!r} does not load into {cls.__name__} ({' '.join(str(err).split())[:200]}): "
            "use --model with the class that wrote it"
        ) from None


def recorded_class_path(checkpoint: str | Path) -> str | None:
    """The model's class path that the ``config.yaml`` of the run holding ``checkpoint`` records (read as data, never
    imported), or ``None``."""
    config = Path(checkpoint).parent.parent / "config.yaml"
    try:
        if not config.is_file() or config.stat().st_size > MAX_CONFIG_BYTES:
            return None
        model = (yaml.safe_load(config.read_text()) or {}).get("model")
    except (OSError, yaml.YAMLError, UnicodeDecodeError, AttributeError):
        return None
    path = model.get("class_path") if isinstance(model, dict) else None
    return path if isinstance(path, str) and re.fullmatch(r"[A-Za-z_][\w.]*", path) else None


def class_names(class_path: str) -> set[str]:
    """The names under which a config may give the model class ``class_path`` (as given, and for a registered
    class its module path, ``torchae.NAME`` and ``NAME``): what a checkpoint's ``_class_path`` may say."""
    cls = model_classes().get(class_path.rsplit(".", 1)[-1])
    aliases = {cls.__name__, f"torchae.{cls.__name__}", f"{cls.__module__}.{cls.__name__}"} if cls else set()
    return aliases if class_path in aliases else {class_path}


def model_class_problem(class_path: str) -> str | None:
    """What keeps ``class_path`` (``package.module.Class``, or a registered model's class name) from being a model
    that the CLI can take, in one line; ``None`` when it names a LightningModule class."""
    if class_path in model_classes():
        return None
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name:
        return (
            f"unknown model {class_path!r}: give one of {model_names()} or the class path of a LightningModule "
            "(mypkg.MyModel)"
        )
    hint = (
        "check the spelling, or add the folder that holds it to PYTHONPATH "
        f"(PYTHONPATH=. torchae fit --model {class_path} ...)"
    )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        return f"--model {class_path}: cannot import {module_name!r} ({err}): {hint}"
    except SyntaxError as err:
        return (
            f"--model {class_path}: importing {module_name!r} failed: {err.msg} at {err.filename}, line {err.lineno}: "
            "fix the file"
        )
    except Exception as err:  # the user's module raised while importing
        where = _user_frame(err)
        return (
            f"--model {class_path}: importing {module_name!r} raised {type(err).__name__}: {err}{where}: fix the module"
        )
    cls = getattr(module, class_name, None)
    if cls is None:
        return f"--model {class_path}: module {module_name!r} has no {class_name!r}: {hint}"
    if not (isinstance(cls, type) and issubclass(cls, pl.LightningModule)):
        kind = cls.__name__ if isinstance(cls, type) else type(cls).__name__
        return (
            f"--model {class_path} is a {kind}, not a LightningModule: --model takes a subclass of "
            "pytorch_lightning.LightningModule (torchae's models are)"
        )
    return None


def _user_frame(err: BaseException) -> str:
    """`` (FILE, line N)`` of the innermost frame of ``err``'s traceback, or nothing."""
    frames = traceback.extract_tb(err.__traceback__)
    return f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""


def import_model_class(class_path: str) -> type[pl.LightningModule]:
    """The model class a user names on the command line (``package.module.Class``, or a registered class's name).

    Raises:
        ConfigError: the path does not name an importable LightningModule class (:func:`model_class_problem`).
    """
    problem = model_class_problem(class_path)
    if problem is not None:
        raise ConfigError(problem)
    if class_path in model_classes():
        return model_classes()[class_path]
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def model_of(checkpoint: str | None, pretrained: str | None, model: str | None) -> tuple[pl.LightningModule, Any]:
    """The model of a checkpoint or a shipped one (exactly one of them given), and its loss history."""
    if (checkpoint is None) == (pretrained is None):
        raise ConfigError("give a checkpoint or --pretrained NAME (one of them): torchae figures --help shows both")
    if pretrained is not None and model is not None:
        raise ConfigError(
            f"--model {model!r} names the class of a checkpoint; --pretrained {pretrained!r} has its own: "
            "leave --model out"
        )
    if pretrained is not None:
        from torchae.weights import get_weights

        weights = get_weights(pretrained)
        return weights.load(), weights.history
    state = read_checkpoint(checkpoint)
    callbacks = state.get("callbacks")
    saved = [cb for key, cb in (callbacks if isinstance(callbacks, dict) else {}).items() if "ArticleFigures" in key]
    history = saved[0].get("history") if saved and isinstance(saved[0], dict) else None  # checked by read_checkpoint
    return load_model(checkpoint, model), history
