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

import copy
import importlib
import importlib.util
import inspect
import os
import re
import signal
import sys
import time
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Optional

import yaml
from jsonargparse import ArgumentError
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from torchae.checkpoints import MODEL_KEY, read_checkpoint, run_order
from torchae.console import DIRPATH_CHANGED, quiet_known_noise
from torchae.data import MNISTDataModule, TensorDataModule
from torchae.dots import DATAMODULES
from torchae.engine import Engine
from torchae.errors import CheckpointError, ConfigError, NonFiniteLossError, UserError
from torchae.export import Format, Part
from torchae.figures import ArticleFigures, check_digits_per_row
from torchae.inputs import check_label
from torchae.models import AutoencoderModule
from torchae.predictions import NpzPredictionWriter
from torchae.progress import ImageBatchProgressBar
from torchae.registry import EXPERIMENTS, model_classes
from torchae.runs import claim_folder, claim_version, is_run_folder
from torchae.safety import AtomicCheckpointIO, RemoveFailedLaunch, SignalStop, StopOnNonFiniteLoss, stopped_by_signal
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


def _release_unused_claims() -> None:
    """Remove the folders this process claimed and left empty (a command that failed before writing anything)."""
    for folder in _CLAIMED:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: it holds what the run wrote, which is kept
    _CLAIMED.clear()


def _claim(folder: Path) -> Path:
    _CLAIMED.append(folder)
    return folder


def shipped_names() -> str:
    """The shipped models' names, for help texts."""
    from torchae.weights import available

    return ", ".join(available())


def _with_pretrained_model(args: ArgsType) -> ArgsType:
    """``args`` with ``--model`` and the model's settings of the shipped model that ``--pretrained NAME`` names,
    placed after the rest so that they win over a config's, and, unless a config or ``--data`` names one, the model's
    own datamodule before them (part 2's points, the CVAE's labelled MNIST); unchanged without ``--pretrained``."""
    words = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else None
    if words is None:
        return args
    name = next((after for word, after in zip(words, words[1:]) if word == "--pretrained"), None)
    name = name or next((word.split("=", 1)[1] for word in words if word.startswith("--pretrained=")), None)
    if name is None:
        return args
    from torchae.weights import available, get_weights

    if name not in available():
        return args  # refused after parsing, in one line
    meta = get_weights(name).meta
    extra = ["--model", f"torchae.{meta['model']}"]
    for key, value in meta["model_arguments"].items():
        if value is not None:
            extra += [f"--model.{key}", str(value)]
    data = model_classes()[meta["model"]].datamodule
    chosen = any(word in ("--config", "--data") or word.startswith(("--config=", "--data=")) for word in words)
    lead = [] if chosen or data is MNISTDataModule else ["--data", f"torchae.{data.__name__}"]
    at = next((i + 1 for i, word in enumerate(words) if word in ("validate", "test", "predict")), 0)
    return [*words[:at], *lead, *words[at:], *extra]  # the datamodule's settings, if given, follow it


class AutoencoderCLI(LightningCLI):
    """``LightningCLI`` in subclass mode over :class:`AutoencoderModule`, with MNIST, torchae's engine
    (``--engine.*``), checkpoints every epoch (``last.ckpt`` included, written atomically), a stop on non-finite
    losses, and the article's figures. It customises Lightning's CLI through its public hooks only."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            AutoencoderModule,
            TensorDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,  # MNIST unless --data names another (part 2's points: torchae.DotsDataModule)
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
        parser.set_defaults({"data": {"class_path": "torchae.MNISTDataModule"}})
        parser.add_argument(
            "--pretrained",
            type=Optional[str],  # noqa: UP045 (jsonargparse reads the annotation object)
            default=None,
            help=f"a model shipped with torchae ({shipped_names()}) in place of --ckpt_path: its "
            "class and settings, and its verified weights (validate, test and predict)",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Lightning's parsing, then ``--ckpt_path`` checked before anything is built: ``last`` means the newest
        ``last.ckpt`` under ``default_root_dir``; the file must be a readable checkpoint of the configured model
        class. (Lightning then reads the run's hyperparameters from it, with ``weights_only=True``.)"""
        super().parse_arguments(parser, _with_pretrained_model(args))
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        self.evaluation_dir: Path | None = None
        if config is None:
            return
        seed = config.get("seed_everything")
        if seed is not None and not isinstance(seed, bool):
            check_seed(seed)
        root = config.trainer.default_root_dir or "runs"
        if Path(root).exists() and not Path(root).is_dir():
            raise ConfigError(f"trainer.default_root_dir {root!r} is a file, not a folder: give a folder for the runs")
        if config.get("pretrained") is not None:
            self._use_pretrained(subcommand, config)
        else:
            self._check_ckpt_path(parser, subcommand, config)
        if subcommand == "fit" and config.trainer.get("logger") is False:
            self._refuse_writing_into_a_run(root, config.get("ckpt_path"))
        if subcommand in EVALUATIONS:
            ckpt_path = config.get("ckpt_path")
            if ckpt_path is None and config.get("pretrained") is None:
                print(
                    f"torchae: {subcommand} uses the model's untrained initial weights: give --ckpt_path CKPT or "
                    "--pretrained NAME for a trained model",
                    file=sys.stderr,
                )
            self.evaluation_dir = evaluation_folder(subcommand, ckpt_path, root)
            if ckpt_path is not None:  # the run's checkpoint folder: nothing is written there while evaluating
                config.checkpoint.dirpath = str(Path(ckpt_path).parent)

    def _use_pretrained(self, subcommand: str, config: Any) -> None:
        from torchae.weights import get_weights

        if subcommand not in EVALUATIONS:
            raise ConfigError(
                f"--pretrained is for validate, test and predict, not {subcommand}: leave it out (torchae fit trains "
                "from the config's initial weights)"
            )
        if config.get("ckpt_path") is not None:
            raise ConfigError("give --pretrained or --ckpt_path, not both: leave one out")
        get_weights(config.pretrained)  # an unknown name ends here, in one line

    @staticmethod
    def _refuse_writing_into_a_run(root: str, ckpt_path: str | None) -> None:
        """Without a logger, Lightning writes a run's files straight into ``default_root_dir``: refuse one that holds
        another run's, unless this run resumes from a checkpoint of that folder."""
        if not is_run_folder(root):
            return
        resuming = ckpt_path is not None and Path(root).resolve() in Path(ckpt_path).resolve().parents
        if not resuming:
            raise ConfigError(
                f"trainer.default_root_dir {root!r} holds another run's files, and with --trainer.logger false this "
                "run would write over them: give a new folder, or keep the logger so that each run gets a version_N"
            )

    def _check_ckpt_path(self, parser: LightningArgumentParser, subcommand: str, config: Any) -> None:
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None:
            return
        if ckpt_path == "last":
            root = config.trainer.default_root_dir or "runs"
            found = find_last_checkpoint(root)
            if found is None and subcommand in EVALUATIONS:
                raise CheckpointError(
                    f"--ckpt_path last: no run under {root} has a last.ckpt, so there is nothing to {subcommand}: give "
                    "a checkpoint's path, --trainer.default_root_dir of the runs, or --pretrained NAME"
                )
            if found is None:
                print(f"torchae: no last.ckpt under {root}: starting a new run", file=sys.stderr)
                config.ckpt_path = None
                return
            print(f"torchae: resuming from {found}", file=sys.stderr)
            config.ckpt_path = ckpt_path = str(found)
        checkpoint = read_checkpoint(ckpt_path)
        saved = checkpoint.get(MODEL_KEY)
        class_path = str(config.model.class_path) if config.get("model") is not None else ""
        expected = class_path.rsplit(".", 1)[-1]
        if saved != expected:
            raise CheckpointError(
                f"checkpoint {ckpt_path!r} holds a {saved or 'non-torchae model'}, but the model is a {expected}: "
                f"use the config of the run that wrote it (--model {saved})"
            )
        # Lightning's CLI next reads the checkpoint's hyperparameters into the config, and their `_class_path` would
        # be imported: only the class given on the command line, under any of its names, may stand there.
        hyper_parameters = checkpoint.get("hyper_parameters")
        named = hyper_parameters.get("_class_path") if isinstance(hyper_parameters, dict) else None
        if named is not None and named not in class_names(class_path):
            raise CheckpointError(
                f"checkpoint {ckpt_path!r} names the class {str(named)!r} in its hyperparameters, not the model "
                f"given ({class_path}): torchae imports no class that a file names; use a checkpoint that torchae "
                "fit wrote for this model"
            )
        if isinstance(hyper_parameters, dict):
            self._report_checkpoint_settings(parser, subcommand, config, ckpt_path, hyper_parameters)

    def _report_checkpoint_settings(
        self, parser: LightningArgumentParser, subcommand: str, config: Any, ckpt_path: str, saved: dict[str, Any]
    ) -> None:
        """Lightning's CLI next reads the checkpoint's model settings over the given ones, as it should (the weights
        need them). Check that they parse, as a one-line error; say which given settings they replace."""
        settings = {key: value for key, value in saved.items() if key != "_instantiator"}
        if "_class_path" in settings:
            settings = {"class_path": settings.pop("_class_path"), "dict_kwargs": settings}
        try:
            merged = parser.parse_object({subcommand: {"model": settings}}, copy.deepcopy(self.config))
        except (ArgumentError, ValueError, TypeError):
            shown = ", ".join(f"{key}={value!r}" for key, value in saved.items() if not key.startswith("_"))
            raise CheckpointError(
                f"checkpoint {ckpt_path!r} holds model settings that are not valid for its class ({shown[:200]}): the "
                "file was edited or damaged; use a checkpoint that torchae fit wrote"
            ) from None
        given = dict(config.model.get("init_args") or {})
        used = dict(merged[subcommand].model.get("init_args") or {})
        replaced = [
            f"model.{key} {given[key]!r} -> {used[key]!r}" for key in used if key in given and given[key] != used[key]
        ]
        if replaced:
            print(
                f"torchae: the checkpoint's model settings replace those given: {', '.join(replaced)} (a checkpoint's "
                "weights need the settings that trained them; leave these out, or fit a new model)",
                file=sys.stderr,
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
        if config.get("logger") in (None, True) and "logger" not in kwargs:
            if self.evaluation_dir is not None:
                folder = _claim(claim_folder(self.evaluation_dir))
                kwargs["logger"] = default_loggers(folder.parent, version=folder.name)
            else:
                root = Path(config.get("default_root_dir") or "runs")
                kwargs["logger"] = default_loggers(root, version=self._run_version(root))
        if config.get("plugins") is None:
            kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        callbacks = [*(config.get("callbacks") or []), RemoveFailedLaunch(), SignalStop()]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(ImageBatchProgressBar())
        kwargs.setdefault("callbacks", callbacks)
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError, ModuleNotFoundError) as err:
            given = {key: config.get(key) for key in ("accelerator", "devices", "strategy", "precision")}
            named = ", ".join(f"trainer.{key}={value!r}" for key, value in given.items() if value not in (None, "auto"))
            raise ConfigError(
                f"the trainer cannot start with {named or 'these settings'}: {' '.join(str(err).split())} Fix: "
                "--trainer.accelerator cpu, gpu or auto; --trainer.devices a count this machine has; "
                "--trainer.strategy auto or ddp (torchae fit --help lists the choices)"
            ) from None
        return trainer

    @staticmethod
    def _run_version(root: Path) -> str:
        """The ``version_N`` of this fit: claimed by rank 0, inherited by the ranks Lightning launches."""
        if not _rank_zero():  # only rank 0 writes logs; a rank another launcher started claims nothing
            return os.environ.get(CLAIMED_VERSION) or "version_unclaimed"
        name = f"version_{claim_version(root)}"
        _claim(root / name)
        os.environ[CLAIMED_VERSION] = name
        return name

    def instantiate_classes(self) -> None:
        """Lightning's, except that a torchae setting out of range ends as its own one-line error (jsonargparse
        would wrap it in a ValueError about union subtypes)."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, MisconfigurationException):
            self._raise_user_error()
            raise
        except (RuntimeError, MemoryError) as err:
            self._raise_if_out_of_memory(err)
            raise
        self._check_data()

    def _check_data(self) -> None:
        """Refuse one of torchae's datamodules that is not the model's (MNIST for a points model, say) before
        anything runs; a datamodule of the user's own is theirs to match."""
        wanted = getattr(self.model, "datamodule", None)
        given = type(self.datamodule)
        if wanted is None or given is wanted or given not in DATAMODULES.values():
            return
        name = type(self.model).__name__
        raise ConfigError(
            f"{name} trains on {wanted.__name__}'s data, not {given.__name__}'s: add --data torchae.{wanted.__name__} "
            f"(its config in configs/ has the article's settings)"
        )

    def _raise_if_out_of_memory(self, err: BaseException) -> None:
        if isinstance(err, MemoryError) or "allocate" in str(err):
            config = self.config[self.subcommand] if self.subcommand else self.config
            settings = dict((config.get("model") or {}).get("init_args") or {})
            raise ConfigError(
                f"the model's settings ({', '.join(f'model.{k}={v!r}' for k, v in settings.items())}) need more "
                "memory than this machine can give: set smaller sizes (model.code_dim, ...)"
            ) from None

    def _raise_user_error(self) -> None:
        """Build the model and the datamodule again from the config, outside jsonargparse: the
        :class:`~torchae.errors.UserError` behind a failed instantiation then propagates as it is."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        model = config.get("model")
        if model is not None and model.get("class_path"):
            module_name, _, class_name = str(model.class_path).rpartition(".")
            try:
                getattr(importlib.import_module(module_name), class_name)(**dict(model.get("init_args") or {}))
            except (RuntimeError, MemoryError) as err:
                self._raise_if_out_of_memory(err)
                raise
        data = config.get("data")
        if data is not None and data.get("class_path"):
            data_class = DATAMODULES.get(str(data.class_path).rpartition(".")[2])
            if data_class is not None:
                data_class(**dict(data.get("init_args") or {}))
        for section, cls in CALLBACK_SECTIONS.items():
            settings = config.get(section)
            if settings is None:
                continue
            try:
                cls(**dict(settings))
            except UserError:
                raise
            except Exception as err:  # Lightning's callbacks refuse settings with several exception types
                raise ConfigError(
                    f"the {section} settings are refused: {' '.join(str(err).split())} Fix the --{section}.* "
                    f"settings (torchae {self.subcommand or 'fit'} --help lists them)"
                ) from None

    def _load_checkpoints_weights_only(self) -> None:
        config = self.config_init[self.subcommand]
        if "weights_only" in config and config.get("weights_only") is None:
            config["weights_only"] = True  # never unpickle code from a checkpoint file
        if config.get("pretrained") is not None:
            from torchae.weights import get_weights

            self.model.load_state_dict(get_weights(config["pretrained"]).state_dict())
        if self.subcommand in EVALUATIONS:  # known harmless: evaluating never writes a checkpoint
            warnings.filterwarnings("ignore", message=DIRPATH_CHANGED.pattern)

    def before_fit(self) -> None:
        self._load_checkpoints_weights_only()
        self._check_monitors()

    def _check_monitors(self) -> None:
        """Refuse, before training, a checkpoint or early-stopping callback that watches a metric the run never
        logs (Lightning finds out after the first epoch)."""
        logged = {*self.model.metric_names(), "epoch_seconds"}
        for callback in self.trainer.callbacks:
            monitor = getattr(callback, "monitor", None)
            if isinstance(callback, (ModelCheckpoint, EarlyStopping)) and monitor is not None and monitor not in logged:
                setting = (
                    "--checkpoint.monitor" if isinstance(callback, ModelCheckpoint) else "the EarlyStopping monitor"
                )
                raise ConfigError(
                    f"{setting} {monitor!r} is not a metric this run logs ({', '.join(sorted(logged))}): set it to "
                    f"one of them, such as val_loss (a model of your own lists its terms in loss_names)"
                )

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


def class_names(class_path: str) -> set[str]:
    """The names under which a config may give the model class ``class_path`` (as given, and for a registered
    class its module path, ``torchae.NAME`` and ``NAME``): what a checkpoint's ``_class_path`` may say."""
    cls = model_classes().get(class_path.rsplit(".", 1)[-1])
    aliases = {cls.__name__, f"torchae.{cls.__name__}", f"{cls.__module__}.{cls.__name__}"} if cls else set()
    return aliases if class_path in aliases else {class_path}


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


def _model_of(checkpoint: str | None, pretrained: str | None, model: str | None) -> tuple[AutoencoderModule, Any]:
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
    history = saved[0].get("history") if saved and isinstance(saved[0], dict) else None
    if history is not None and not _is_history(history):
        raise CheckpointError(
            f"checkpoint {checkpoint!r} holds a loss history that is not a list of per-epoch numbers: the file was "
            "edited or damaged; use a checkpoint that torchae fit wrote"
        )
    return load_model(checkpoint, model), history


def _is_history(history: Any) -> bool:
    return isinstance(history, list) and all(
        isinstance(row, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in row.items())
        for row in history
    )


def figures_command(
    checkpoint: str | None = None,
    pretrained: str | None = None,
    out_dir: str | None = None,
    data_dir: str | None = None,
    n: int = 10,
    seed: int = 0,
    model: str | None = None,
    style_digit: int | None = None,
) -> None:
    """Draw a model's figures (reconstructions, the code space, its own, and the loss curves) from a checkpoint or
    a shipped model.

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        pretrained: a model shipped with torchae instead (``torchae.weights.available()`` lists them).
        out_dir: where to write the PNG files; default: a ``figures`` folder beside the checkpoint's folder, or
            ``figures/NAME`` for a shipped model.
        data_dir: MNIST source (default: the embedded copy).
        n: digits per row.
        seed: seed of the noise in the denoising figure.
        model: the class of a model defined outside torchae (``mypkg.MyAE``); torchae's own are found by name.
        style_digit: the digit whose first training images give the CVAE's style transfer its style; ``None``:
            the article's 7.
    """
    check_digits_per_row(n, "n")
    if style_digit is not None:
        check_label(style_digit, "--style_digit")
    if out_dir is not None:
        target = Path(out_dir)
        if target.exists() and not target.is_dir():
            raise ConfigError(f"--out_dir {out_dir!r} is a file, not a folder: give a folder for the figures")
        if is_run_folder(target):
            raise ConfigError(
                f"--out_dir {out_dir!r} is a run's folder, whose figures are the run's own: give another folder "
                "(by default they go to the run's figures/ folder)"
            )
    elif checkpoint is not None:
        target = Path(checkpoint).resolve().parent.parent / "figures"
    else:
        target = Path("figures") / str(pretrained)
    loaded, history = _model_of(checkpoint, pretrained, model)
    if style_digit is not None and "style_transfer" not in loaded.figures:
        raise ConfigError(
            f"--style_digit chooses the style of the CVAE's style transfer; {type(loaded).__name__} draws none: "
            "leave --style_digit out"
        )
    _draw(loaded, history, target, data_dir, n, seed, 7 if style_digit is None else style_digit)


def _draw(
    model: AutoencoderModule, history: Any, target: Path, data_dir: str | None, n: int, seed: int, style_digit: int
) -> None:
    import torch

    from torchae.data import load_mnist, to_image_tensor
    from torchae.figures import draw_figures

    mnist = issubclass(model.datamodule, MNISTDataModule)
    if data_dir is not None and not mnist:
        raise ConfigError(
            f"--data_dir is MNIST's; {type(model).__name__} draws its figures from {model.datamodule.__name__}'s "
            "data: leave --data_dir out"
        )
    train: dict[str, Any] = {}
    if mnist:
        splits = load_mnist(data_dir)
        images, labels = to_image_tensor(splits.x_test), torch.from_numpy(splits.y_test.astype("int64"))
        if model.conditional:  # the style transfer's sevens come from the training set, as the article's
            train["train_images"] = to_image_tensor(splits.x_train)
            train["train_labels"] = torch.from_numpy(splits.y_train.astype("int64"))
    else:  # the model's own data, with its defaults (part 2's points: the article's 1000, seed 0)
        data = model.datamodule(seed=0)
        data.setup("test")
        images, labels = data.val_images, data.val_labels
    train["style_digit"] = style_digit
    for path in draw_figures(model, images, target, history, n=n, seed=seed, labels=labels, **train):
        print(path)


CONFIG_SHAPE = (
    "a config is a YAML mapping of sections (seed_everything, model, data, engine, trainer) as in configs/dense.yaml; "
    "torchae fit --print_config prints a complete one"
)


SECTIONS = ("model", "data", "trainer", "engine", "figures", "checkpoint", "nan_guard", "epoch_timer", "predictions")
"""The sections of a config that hold settings (mappings)."""
CALLBACK_SECTIONS = {
    "engine": Engine,
    "figures": ArticleFigures,
    "checkpoint": ModelCheckpoint,
    "nan_guard": StopOnNonFiniteLoss,
    "epoch_timer": EpochTimer,
    "predictions": NpzPredictionWriter,
}
"""The callbacks the CLI adds, by the section of their settings."""
MAX_SEED = 2**32 - 1  # numpy's generators, which Lightning seeds too, take seeds of 32 bits


def check_seed(seed: Any, setting: str = "seed_everything") -> None:
    """Refuse a seed that Lightning cannot pass to numpy (an integer from 0 to 2**32 - 1)."""
    ok = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED
    if not ok:
        raise ConfigError(
            f"{setting} must be an integer from 0 to {MAX_SEED} (numpy's seeds are 32 bits), got {seed!r}: "
            "set --seed_everything 0 or another seed in that range"
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
    for section, value in content.items():
        allowed = (dict, str) if section == "model" else (dict,)
        if section in SECTIONS and value is not None and not isinstance(value, allowed):
            raise ConfigError(
                f"config file {path!r}: section {section!r} holds {value!r}, not a mapping of settings "
                f"({section}: {{name: value, ...}}): {CONFIG_SHAPE}"
            )
    seed = content.get("seed_everything")
    if seed is not None and not isinstance(seed, bool):
        check_seed(seed, f"config file {path!r}: seed_everything")


def _config_files(words: list[str]) -> list[str]:
    paths = [word.split("=", 1)[1] for word in words if word.startswith("--config=")]
    return paths + [after for word, after in zip(words, words[1:]) if word == "--config"]


def export_command(
    checkpoint: str | None = None,
    pretrained: str | None = None,
    output: str | None = None,
    format: Format = "onnx",
    part: Part = "autoencoder",
    model: str | None = None,
) -> None:
    """Export a checkpoint's or a shipped model, or one half of it, as one self-contained file with a dynamic batch
    dimension; then check the file against torch at another batch size (onnxruntime for ONNX).

    Args:
        checkpoint: a ``.ckpt`` written by ``torchae fit``.
        pretrained: a model shipped with torchae instead (``torchae.weights.available()`` lists them).
        output: the file to write; default: beside the checkpoint (in the current folder for a shipped model),
            named after it, the part and the format.
        format: ``onnx``, or ``pt2`` (``torch.export``; TorchScript, which PyTorch deprecates, is not offered).
        part: ``autoencoder`` (images to reconstructions), ``encoder`` (images to codes) or ``decoder``.
        model: the class of a model defined outside torchae (``mypkg.MyAE``); torchae's own are found by name.
        style_digit: the digit whose first training images give the CVAE's style transfer its style; ``None``:
            the article's 7.
    """
    from torchae.export import export_model

    loaded, _ = _model_of(checkpoint, pretrained, model)
    suffix = {"onnx": ".onnx", "pt2": ".pt2"}.get(format, "")
    source = Path(checkpoint) if checkpoint is not None else Path(str(pretrained))
    target = Path(output) if output else source.with_name(f"{source.stem}-{part}{suffix}")
    if checkpoint is not None and target.resolve() == Path(checkpoint).resolve():
        raise ConfigError(f"--output {str(target)!r} is the checkpoint being exported: give another file name")
    difference = export_model(loaded, target, format, part)
    print(f"{target}: the {part} of a {type(loaded).__name__} as {format}, batch dimension dynamic; at batch 7 the")
    print(f"file gives the model's outputs to {difference:.1e} (largest absolute difference)")


SUBCOMMANDS = {
    "fit": "train a model: torchae fit --config configs/dense.yaml",
    "validate": "the loss of a checkpoint (--ckpt_path) or a shipped model (--pretrained) on the test images",
    "test": "the same through Lightning's test loop",
    "predict": "codes and reconstructions of the test images into predictions.npz",
    "figures": "the figures of a checkpoint or a shipped model: torchae figures CKPT, or --pretrained NAME",
    "export": "a checkpoint or a shipped model as ONNX or torch.export, batch dimension dynamic",
}
"""Every subcommand with its line of ``torchae --help``."""

OWN_COMMANDS = {"figures": figures_command, "export": export_command}


def overview() -> str:
    """``torchae --help``: what the command is and its six subcommands, one line each."""
    width = max(map(len, SUBCOMMANDS))
    lines = [
        f"usage: torchae [-h] {{{','.join(SUBCOMMANDS)}}} ...",
        "",
        f"Train and use the autoencoders of the Autoencoders in Keras series. Models: {_MODEL_NAMES}.",
        "",
        "subcommands (torchae SUBCOMMAND --help lists each one's settings):",
        *(f"  {name:<{width}}  {line}" for name, line in SUBCOMMANDS.items()),
    ]
    return "\n".join(lines)


def own_command_parser(name: str) -> Any:
    """The parser of ``torchae figures`` or ``torchae export``: the checkpoint as an optional positional argument,
    the function's other arguments as options; errors are raised, not printed (:func:`main` prints one line)."""
    from jsonargparse import ArgumentParser

    function = OWN_COMMANDS[name]
    summary = " ".join((function.__doc__ or "").split("Args:")[0].split())
    parser = ArgumentParser(prog=f"torchae {name}", description=summary, exit_on_error=False)
    parser.add_argument("checkpoint", nargs="?", default=None, help="a .ckpt written by torchae fit")
    parser.add_function_arguments(function, as_group=False, skip={"checkpoint"})
    return parser


def _run(args: list[str] | None) -> None:
    words = sys.argv[1:] if args is None else args
    if not words or words[0] in ("-h", "--help"):
        print(overview())
        if not words:
            raise ConfigError(f"choose a subcommand: {', '.join(SUBCOMMANDS)} (torchae --help says what each does)")
        return
    for path in _config_files(words):
        check_config_file(path)
    if words[0] in OWN_COMMANDS:
        parsed = own_command_parser(words[0]).parse_args(words[1:])
        OWN_COMMANDS[words[0]](**{key: value for key, value in vars(parsed).items() if key in _parameters(words[0])})
        return
    AutoencoderCLI(args=args)


def _parameters(name: str) -> set[str]:
    return set(inspect.signature(OWN_COMMANDS[name]).parameters)


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
        "data": list(DATAMODULES.values()),
        "trainer": [Trainer],
        **{name: [cls] for name, cls in CALLBACK_SECTIONS.items()},
    }.get(section, [])
    for owner in owners:
        hints = typing.get_type_hints(owner.__init__)
        if name in hints:
            return hints[name]
    return None


def describe_parse_error(err: ArgumentError, subcommand: str = "fit") -> str:
    """One line for a command-line or config error: the setting, the value, and the fix."""
    text = " ".join(str(err).split())
    nested = re.search(r"Given value: NestedArg\(key='([\w.]+)', val='(.*?)'\)", text)
    key = re.match(r'Parser key "([\w.]+)"', text)
    if nested:
        section = key.group(1) if key else "model"
        setting, value = f"{section}.{nested.group(1)}", nested.group(2)
        unknown = re.search(r"class_path '([\w.]+)': Option '(\w+)' is not accepted", text)
        if unknown and unknown.group(2) == nested.group(1):
            owner = unknown.group(1)
            return (
                f"{setting} is not a setting of {owner}: check its spelling, or leave --{setting} out "
                f"(torchae {subcommand} --{section}.help {owner.rpartition('.')[2]} lists them)"
            )
    elif key and key.group(1) == "model":
        given = text.rsplit("Given value:", 1)[-1].strip()
        return f"unknown model {given!r}: choose one of {_MODEL_NAMES} (or a class path such as torchae.DenseAE)"
    elif key:
        setting, value = key.group(1), text.rsplit("value:", 1)[-1].strip()
    elif text.startswith("unrecognized arguments"):
        return f"{text}: check the spelling of the keys (torchae {subcommand} --help lists them)"
    else:
        return f"{text} (torchae {subcommand} --help lists the settings)"
    annotation = _setting_type(setting)
    expected = f"it takes {describe_type(annotation)}" if annotation is not None else f"see torchae {subcommand} --help"
    return f"{setting} = {value!r} is not a valid value: {expected}; set --{setting} to such a value"


def _rank_zero() -> bool:
    """Whether this process is rank 0 of its run (Lightning's launcher sets these for the other processes)."""
    return all(int(os.environ.get(variable, "0") or 0) == 0 for variable in ("LOCAL_RANK", "NODE_RANK"))


def debug_enabled() -> bool:
    """Whether ``TORCHAE_DEBUG`` asks for tracebacks: ``1``, ``true``, ``yes`` or ``on`` (any case); ``0``, ``false``,
    ``no``, ``off`` and empty do not."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def describe_os_error(err: OSError) -> str:
    """One line for a file system error: the path, the cause in the system's words, and what to check."""
    where = f" {str(err.filename)!r}" if err.filename is not None else ""
    fixes = {
        FileNotFoundError: "check the path",
        FileExistsError: "a file stands where a folder is needed: give another path or move the file",
        NotADirectoryError: "a part of the path is a file, not a folder: give another path",
        IsADirectoryError: "a folder stands where a file is needed: give a file's path",
        PermissionError: "give a path you may write to, or change its permissions",
    }
    fix = next((text for kind, text in fixes.items() if isinstance(err, kind)), "check the path and the disk")
    return f"cannot use{where}: {err.strerror or err}; {fix}"


def main(args: list[str] | None = None) -> None:
    """Entry point of ``torchae`` and ``python -m torchae``; ``args`` defaults to the command line."""
    quiet_known_noise()
    try:
        _run(args)
    except SystemExit:
        _release_unused_claims()
        stop = stopped_by_signal()
        if stop is None:
            raise
        if _rank_zero():
            name = signal.Signals(stop.signal).name
            where = (
                f"the last checkpoint is {stop.checkpoint}: resume with the same command and --ckpt_path last"
                if stop.checkpoint
                else "no checkpoint was written yet: run the command again"
            )
            print(f"torchae: stopped by {name} in epoch {stop.epoch}; {where}", file=sys.stderr)
        sys.exit(128 + stop.signal)
    except (UserError, NonFiniteLossError, OSError, ArgumentError) as err:
        _release_unused_claims()
        if debug_enabled():
            raise
        words = sys.argv[1:] if args is None else args
        subcommand = words[0] if words and words[0] in SUBCOMMANDS else "fit"
        if isinstance(err, ArgumentError):
            message = describe_parse_error(err, subcommand)
        elif isinstance(err, OSError):
            message = describe_os_error(err)
        else:
            message = str(err)
        if _rank_zero():  # every rank of a multi-process run fails alike: one line
            print(f"torchae: error: {message}", file=sys.stderr)
        sys.exit(1 if isinstance(err, NonFiniteLossError) else 2)
