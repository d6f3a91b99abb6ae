"""The ``torchae`` command: Lightning's CLI over the five models, plus ``torchae figures CHECKPOINT``.

``torchae fit --config configs/dense.yaml`` trains the article's dense autoencoder; ``--model`` takes any of
DenseAE, DeepDenseAE, ConvAE, DenoisingAE, SparseAE. Runs go to ``<default_root_dir>/version_N/`` (metrics.csv,
history.csv, config.yaml, checkpoints/, the figures). ``--ckpt_path last`` resumes the newest run under
``default_root_dir`` from its ``last.ckpt``.

User errors (bad data, bad settings, bad checkpoints) print one line and exit 2; set ``TORCHAE_DEBUG=1`` for the
traceback.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from torchae.checkpoints import MODEL_KEY, read_checkpoint
from torchae.data import MNISTDataModule
from torchae.engine import Engine
from torchae.errors import CheckpointError, ConfigError, NonFiniteLossError, UserError
from torchae.figures import ArticleFigures
from torchae.models import AutoencoderModule
from torchae.registry import EXPERIMENTS
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
    """The newest ``last.ckpt`` of the runs under ``root`` (``root/version_*/checkpoints/last.ckpt``)."""
    candidates = [p for p in Path(root).glob("**/checkpoints/last.ckpt") if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime_ns) if candidates else None


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
        loggers writing into one ``version_N`` folder, and atomic checkpoint writes."""
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
        return super().instantiate_trainer(**kwargs)

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


def figures_command(
    checkpoint: str, out_dir: str | None = None, data_dir: str | None = None, n: int = 10, seed: int = 0
) -> None:
    """Draw the article's figures from a checkpoint of any torchae model.

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        out_dir: where to write the PNG files; default: a ``figures`` folder beside the checkpoint's folder.
        data_dir: MNIST source (default: the embedded copy).
        n: digits per row.
        seed: seed of the noise in the denoising figure.
    """
    from torchae.data import load_mnist, to_image_tensor
    from torchae.figures import draw_figures
    from torchae.registry import load_checkpoint

    model = load_checkpoint(checkpoint)
    state = read_checkpoint(checkpoint)
    history = next(
        (cb.get("history") for key, cb in state.get("callbacks", {}).items() if "ArticleFigures" in key), None
    )
    images = to_image_tensor(load_mnist(data_dir).x_test)
    target = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent.parent / "figures"
    for path in draw_figures(model, images, target, history, n=n, seed=seed):
        print(path)


def _run(args: list[str] | None) -> None:
    words = sys.argv[1:] if args is None else args
    if words[:1] == ["figures"]:
        from jsonargparse import auto_cli

        auto_cli(figures_command, args=words[1:], as_positional=True)
        return
    AutoencoderCLI(args=args)


def describe_parse_error(err: ArgumentError) -> str:
    """One line for a command-line or config error, naming the fix."""
    text = " ".join(str(err).split())
    if text.startswith('Parser key "model"'):
        given = text.rsplit("Given value:", 1)[-1].strip()
        return f"unknown model {given!r}: choose one of {_MODEL_NAMES} (or a class path such as torchae.DenseAE)"
    if text.startswith("unrecognized arguments"):
        return f"{text}: check the spelling of the keys (torchae fit --help lists them)"
    return f"{text} (torchae fit --help lists the settings)"


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
