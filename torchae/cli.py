"""The ``torchae`` command: Lightning's CLI over the five models, plus ``torchae figures CHECKPOINT`` (or
``--pretrained NAME``) and ``torchae export CHECKPOINT``.

``torchae fit --config configs/dense.yaml`` trains the article's dense autoencoder; ``--model`` takes any of
DenseAE, DeepDenseAE, ConvAE, DenoisingAE, SparseAE. Runs go to ``<default_root_dir>/version_N/`` (metrics.csv,
history.csv, config.yaml, checkpoints/, the figures). ``--ckpt_path last`` resumes the newest run under
``default_root_dir`` from its ``last.ckpt``.

User errors (bad data, bad settings, bad checkpoints) print one line and exit 2; set ``TORCHAE_DEBUG=1`` for the
traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from torchae.checkpoints import MODEL_KEY, read_checkpoint, run_order
from torchae.data import MNISTDataModule
from torchae.engine import Engine
from torchae.errors import CheckpointError, ConfigError, NonFiniteLossError, UserError
from torchae.export import Format, Part
from torchae.figures import ArticleFigures
from torchae.models import AutoencoderModule
from torchae.predictions import NpzPredictionWriter
from torchae.progress import ImageBatchProgressBar
from torchae.registry import EXPERIMENTS, model_classes
from torchae.safety import AtomicCheckpointIO, StopOnNonFiniteLoss
from torchae.timing import EpochTimer

__all__ = ["AutoencoderCLI", "main", "find_last_checkpoint"]

_MODEL_NAMES = ", ".join(experiment.model.__name__ for experiment in EXPERIMENTS.values())
DEBUG_VARIABLE = "TORCHAE_DEBUG"


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


def default_loggers(root: Path) -> list[Logger]:
    """A CSV logger, and a TensorBoard logger in the same ``version_N`` folder when TensorBoard is installed."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(root), name="")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        _tensorboard_without_tensorflow()
        loggers.append(TensorBoardLogger(save_dir=str(root), name="", version=loggers[0].version))
    return loggers


class AutoencoderCLI(LightningCLI):
    """``LightningCLI`` in subclass mode over :class:`AutoencoderModule`, with MNIST, torchae's engine
    (``--engine.*``), checkpoints every epoch (``last.ckpt`` included, written atomically), a stop on non-finite
    losses, and the article's figures. It customises Lightning's CLI through its public hooks only."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            AutoencoderModule,
            MNISTDataModule,
            subclass_mode_model=True,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                "description": f"Train and use the article's autoencoders. Models: {_MODEL_NAMES}.",
                "exit_on_error": False,  # parse errors reach main(), which prints them as one line
            },
            # Metrics are logged once per epoch; a step interval longer than an epoch only makes Lightning warn.
            trainer_defaults={"default_root_dir": "runs", "log_every_n_steps": 1},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(Engine, "engine")
        parser.add_lightning_class_args(ArticleFigures, "figures")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(StopOnNonFiniteLoss, "nan_guard")
        parser.add_lightning_class_args(EpochTimer, "epoch_timer")
        parser.add_lightning_class_args(NpzPredictionWriter, "predictions")
        # Save after the whole epoch (validation included), so a checkpoint is always an epoch boundary.
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_on_train_epoch_end": True})

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Lightning's parsing, then ``--ckpt_path`` checked before anything is built: ``last`` means the newest
        ``last.ckpt`` under ``default_root_dir``; the file must be a readable checkpoint of the configured model
        class. (Lightning then reads the run's hyperparameters from it, with ``weights_only=True``.)"""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        ckpt_path = config.get("ckpt_path") if config is not None else None
        if ckpt_path is None:
            return
        if ckpt_path == "last":
            root = config.trainer.default_root_dir or "runs"
            found = find_last_checkpoint(root)
            if found is None:
                print(f"torchae: no last.ckpt under {root}: starting a new run", file=sys.stderr)
                config.ckpt_path = None
                return
            print(f"torchae: resuming from {found}", file=sys.stderr)
            config.ckpt_path = ckpt_path = str(found)
        saved = read_checkpoint(ckpt_path).get(MODEL_KEY)
        class_path = str(config.model.class_path) if config.get("model") is not None else ""
        expected = class_path.rsplit(".", 1)[-1]
        if saved != expected:
            raise CheckpointError(
                f"checkpoint {ckpt_path!r} holds a {saved or 'non-torchae model'}, but the model is a {expected}: "
                f"use the config of the run that wrote it (--model {saved})"
            )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's Trainer with torchae's defaults where the config leaves them unset: CSV and TensorBoard
        loggers writing into one ``version_N`` folder, atomic checkpoint writes, and a progress bar that counts
        image batches."""
        config = (self.config_init[self.subcommand] if self.subcommand else self.config_init).get("trainer", {})
        max_epochs = config.get("max_epochs")
        if max_epochs is not None and max_epochs <= 0:
            raise ConfigError(
                f"trainer.max_epochs must be a positive integer, got {max_epochs}: set --trainer.max_epochs N"
            )
        if config.get("logger") in (None, True):
            kwargs.setdefault("logger", default_loggers(Path(config.get("default_root_dir") or "runs")))
        if config.get("plugins") is None:
            kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs.setdefault("callbacks", [*callbacks, ImageBatchProgressBar()])
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError, ModuleNotFoundError) as err:
            given = {key: config.get(key) for key in ("accelerator", "devices", "strategy", "precision")}
            named = ", ".join(f"trainer.{key}={value!r}" for key, value in given.items() if value not in (None, "auto"))
            raise ConfigError(
                f"the trainer cannot start with {named or 'these settings'}: {' '.join(str(err).split())} Fix: "
                "--trainer.accelerator cpu, gpu or auto; --trainer.devices a count this machine has; "
                "--trainer.strategy auto or ddp (torchae fit --help lists the choices)"
            ) from None

    def instantiate_classes(self) -> None:
        """Lightning's, except that a torchae setting out of range ends as its own one-line error (jsonargparse
        would wrap it in a ValueError about union subtypes)."""
        try:
            super().instantiate_classes()
        except ValueError:
            self._raise_user_error()
            raise

    def _raise_user_error(self) -> None:
        """Build the model and the datamodule again from the config, outside jsonargparse: the
        :class:`~torchae.errors.UserError` behind a failed instantiation then propagates as it is."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        model = config.get("model")
        if model is not None and model.get("class_path"):
            module_name, _, class_name = str(model.class_path).rpartition(".")
            getattr(importlib.import_module(module_name), class_name)(**dict(model.get("init_args") or {}))
        MNISTDataModule(**dict(config.get("data") or {}))

    def _load_checkpoints_weights_only(self) -> None:
        config = self.config_init[self.subcommand]
        if "weights_only" in config and config.get("weights_only") is None:
            config["weights_only"] = True  # never unpickle code from a checkpoint file

    def before_fit(self) -> None:
        self._load_checkpoints_weights_only()

    def before_validate(self) -> None:
        self._load_checkpoints_weights_only()

    def before_test(self) -> None:
        self._load_checkpoints_weights_only()

    def before_predict(self) -> None:
        self._load_checkpoints_weights_only()


def load_model(checkpoint: str, model: str | None = None) -> AutoencoderModule:
    """The model of a checkpoint, in eval mode on the CPU, read with ``weights_only=True``. Its class is a registered
    one, found by the name the file holds; or the class the user names (``model``: a class path such as
    ``mypkg.MyAE``, for a model outside the package), which must be the class the file names. Nothing the file says
    is imported.

    Raises:
        CheckpointError: the file is unreadable, or names a class that is neither registered nor the one named.
        ConfigError: ``model`` is not an importable torchae model class.
    """
    saved = read_checkpoint(checkpoint).get(MODEL_KEY)
    classes = model_classes()
    if model is None:
        if saved not in classes:
            raise CheckpointError(
                f"checkpoint {checkpoint!r} holds a {saved or 'non-torchae model'}, which is not one of torchae's "
                f"models ({_MODEL_NAMES}): name its class with --model mypkg.{saved or 'MyAE'}"
            )
        cls = classes[saved]
    else:
        cls = classes.get(model) or import_model_class(model)
        if cls.__name__ != saved:
            raise CheckpointError(
                f"checkpoint {checkpoint!r} holds a {saved or 'non-torchae model'}, not a {cls.__name__}: "
                f"use --model with the class that wrote it"
            )
    return cls.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()


def import_model_class(class_path: str) -> type[AutoencoderModule]:
    """The model class a user names on the command line (``package.module.Class``).

    Raises:
        ConfigError: the path does not name an importable subclass of :class:`AutoencoderModule`.
    """
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except (ImportError, AttributeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, AutoencoderModule)):
        raise ConfigError(
            f"--model {class_path!r} is not a torchae model class: give one of {_MODEL_NAMES} or the class path "
            "of a subclass of torchae.AutoencoderModule (mypkg.MyAE)"
        )
    return cls


def figures_command(
    checkpoint: str,
    out_dir: str | None = None,
    data_dir: str | None = None,
    n: int = 10,
    seed: int = 0,
    model: str | None = None,
) -> None:
    """Draw the article's figures from a checkpoint of any torchae model (``torchae figures --pretrained NAME`` draws
    them from a shipped model).

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        out_dir: where to write the PNG files; default: a ``figures`` folder beside the checkpoint's folder.
        data_dir: MNIST source (default: the embedded copy).
        n: digits per row.
        seed: seed of the noise in the denoising figure.
        model: the class of a model defined outside torchae (``mypkg.MyAE``); torchae's own are found by name.
    """
    model = load_model(checkpoint, model)
    state = read_checkpoint(checkpoint)
    history = next(
        (cb.get("history") for key, cb in state.get("callbacks", {}).items() if "ArticleFigures" in key), None
    )
    target = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent.parent / "figures"
    _draw(model, history, target, data_dir, n, seed)


def pretrained_figures_command(
    pretrained: str, out_dir: str | None = None, data_dir: str | None = None, n: int = 10, seed: int = 0
) -> None:
    """Draw the article's figures, loss curves included, from a model shipped with torchae.

    Args:
        pretrained: dense, deep, conv, denoising or sparse.
        out_dir: where to write the PNG files; default: ``figures/NAME`` in the current folder.
        data_dir: MNIST source (default: the embedded copy).
        n: digits per row.
        seed: seed of the noise in the denoising figure.
    """
    from torchae.weights import get_weights

    weights = get_weights(pretrained)
    _draw(weights.load(), weights.history, Path(out_dir or Path("figures") / pretrained), data_dir, n, seed)


def _draw(model: AutoencoderModule, history: Any, target: Path, data_dir: str | None, n: int, seed: int) -> None:
    import torch

    from torchae.data import load_mnist, to_image_tensor
    from torchae.figures import draw_figures

    splits = load_mnist(data_dir)
    images, labels = to_image_tensor(splits.x_test), torch.from_numpy(splits.y_test.astype("int64"))
    for path in draw_figures(model, images, target, history, n=n, seed=seed, labels=labels):
        print(path)


CONFIG_SHAPE = (
    "a config is a YAML mapping of sections (seed_everything, model, data, engine, trainer) as in configs/dense.yaml; "
    "torchae fit --print_config prints a complete one"
)


def check_config_file(path: str) -> None:
    """Refuse, with one line that says what a config looks like, a config file that is missing, empty, not YAML, or
    not a mapping."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path!r} does not exist: {CONFIG_SHAPE}")
    try:
        content = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        problem = " ".join(str(err).split())
        raise ConfigError(f"config file {path!r} is not valid YAML ({problem}): {CONFIG_SHAPE}") from None
    if content is None:
        raise ConfigError(f"config file {path!r} is empty: {CONFIG_SHAPE}")
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path!r} holds a {type(content).__name__}, not a mapping: {CONFIG_SHAPE}")


def _config_files(words: list[str]) -> list[str]:
    paths = [word.split("=", 1)[1] for word in words if word.startswith("--config=")]
    return paths + [after for word, after in zip(words, words[1:]) if word == "--config"]


def export_command(
    checkpoint: str,
    output: str | None = None,
    format: Format = "onnx",
    part: Part = "autoencoder",
    model: str | None = None,
) -> None:
    """Export the model of a checkpoint, or one half of it, with a dynamic batch dimension; then check the file
    against torch at another batch size (onnxruntime for ONNX).

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        output: the file to write; default: beside the checkpoint, named after it, the part and the format.
        format: ``onnx`` (one self-contained file) or ``pt2`` (``torch.export``; TorchScript, which PyTorch
            deprecates, is not offered).
        part: ``autoencoder`` (images to reconstructions), ``encoder`` (images to codes) or ``decoder``.
        model: the class of a model defined outside torchae (``mypkg.MyAE``); torchae's own are found by name.
    """
    from torchae.export import export_model

    model = load_model(checkpoint, model)
    suffix = {"onnx": ".onnx", "pt2": ".pt2"}.get(format, "")
    target = Path(output) if output else Path(checkpoint).with_name(f"{Path(checkpoint).stem}-{part}{suffix}")
    difference = export_model(model, target, format, part)
    print(f"{target}: the {part} of a {type(model).__name__} as {format}, batch dimension dynamic; at batch 7 the file")
    print(f"gives the model's outputs to {difference:.1e} (largest absolute difference)")


def _run(args: list[str] | None) -> None:
    words = sys.argv[1:] if args is None else args
    for path in _config_files(words):
        check_config_file(path)
    commands = {"figures": figures_command, "export": export_command}
    if words[:1] == ["figures"] and any(word.split("=", 1)[0] == "--pretrained" for word in words[1:]):
        commands["figures"] = pretrained_figures_command
    if words[:1] and words[0] in commands:
        from jsonargparse import auto_cli

        command = commands[words[0]]
        auto_cli(command, args=words[1:], as_positional=command is not pretrained_figures_command)
        return
    AutoencoderCLI(args=args)


def describe_type(annotation: Any) -> str:
    """What a value of ``annotation`` looks like on the command line, in words."""
    if annotation is type(None):
        return "null"
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a text or path"
    arguments = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(map(str, arguments))
    if not arguments:
        return getattr(annotation, "__name__", str(annotation))
    # A union: its Literal members' values become one list of choices, the other members are described in turn.
    choices = [value for a in arguments if typing.get_origin(a) is typing.Literal for value in typing.get_args(a)]
    parts = ["one of " + ", ".join(dict.fromkeys(map(str, choices)))] if choices else []
    parts += [describe_type(a) for a in arguments if typing.get_origin(a) is not typing.Literal]
    return " or ".join(dict.fromkeys(parts))


def _setting_type(setting: str) -> Any:
    """The annotation of a ``section.name`` setting (``None`` if unknown)."""
    section, _, name = setting.partition(".")
    owners = {
        "model": [experiment.model for experiment in EXPERIMENTS.values()],
        "data": [MNISTDataModule],
        "engine": [Engine],
        "trainer": [Trainer],
    }.get(section, [])
    for owner in owners:
        hints = typing.get_type_hints(owner.__init__)
        if name in hints:
            return hints[name]
    return None


def describe_parse_error(err: ArgumentError) -> str:
    """One line for a command-line or config error: the setting, the value, and the fix."""
    text = " ".join(str(err).split())
    nested = re.search(r"Given value: NestedArg\(key='([\w.]+)', val='(.*?)'\)", text)
    key = re.match(r'Parser key "([\w.]+)"', text)
    if nested:
        setting, value = f"model.{nested.group(1)}", nested.group(2)
    elif key and key.group(1) == "model":
        given = text.rsplit("Given value:", 1)[-1].strip()
        return f"unknown model {given!r}: choose one of {_MODEL_NAMES} (or a class path such as torchae.DenseAE)"
    elif key:
        setting, value = key.group(1), text.rsplit("value:", 1)[-1].strip()
    elif text.startswith("unrecognized arguments"):
        return f"{text}: check the spelling of the keys (torchae fit --help lists them)"
    else:
        return f"{text} (torchae fit --help lists the settings)"
    annotation = _setting_type(setting)
    expected = f"it takes {describe_type(annotation)}" if annotation is not None else "see torchae fit --help"
    return f"{setting} = {value!r} is not a valid value: {expected}; set --{setting} to such a value"


def main(args: list[str] | None = None) -> None:
    """Entry point of ``torchae`` and ``python -m torchae``; ``args`` defaults to the command line."""
    try:
        _run(args)
    except (UserError, NonFiniteLossError, FileNotFoundError, ArgumentError) as err:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        message = describe_parse_error(err) if isinstance(err, ArgumentError) else str(err)
        print(f"torchae: error: {message}", file=sys.stderr)
        sys.exit(1 if isinstance(err, NonFiniteLossError) else 2)
