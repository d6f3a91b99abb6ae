"""The Lightning CLI of ``torchae fit``, ``validate``, ``test`` and ``predict``: LightningCLI over any
LightningModule, with torchae's callbacks, run folders and checks, through its public hooks."""

from __future__ import annotations

import copy
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ArgumentError
from pytorch_lightning import LightningDataModule, LightningModule, Trainer
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from torchae.checkpoints import MODEL_KEY, read_checkpoint, refused_setting
from torchae.cli.arguments import shipped_names, with_experiment_recipe, with_pretrained_model
from torchae.cli.checks import CALLBACK_SECTIONS, check_seed
from torchae.cli.folders import (
    CLAIMED_VERSION,
    EVALUATIONS,
    claim,
    default_loggers,
    evaluation_folder,
    find_last_checkpoint,
    rank_zero,
)
from torchae.cli.loading import class_names, model_names
from torchae.cli.messages import describe_trainer_error, exception_chain, user_code_line
from torchae.console import DIRPATH_CHANGED
from torchae.engine import Engine
from torchae.errors import CheckpointError, ConfigError, UserError
from torchae.figures import ArticleFigures
from torchae.part2.dots import DATAMODULES
from torchae.predictions import NpzPredictionWriter
from torchae.progress import ImageBatchProgressBar
from torchae.registry import model_classes
from torchae.runs import claim_folder, claim_version, is_run_folder
from torchae.safety import AtomicCheckpointIO, RemoveFailedLaunch, SignalStop, StopOnNonFiniteLoss, file_name
from torchae.series import metric_names_of
from torchae.timing import EpochTimer


class AutoencoderCLI(LightningCLI):
    """``LightningCLI`` in subclass mode over any LightningModule (the series' models and a user's own), with MNIST,
    torchae's engine (``--engine.*``), checkpoints every epoch (``last.ckpt`` included, written atomically), a stop
    on non-finite losses, and the article's figures. It customises Lightning's CLI through its public hooks only."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            LightningModule,  # any LightningModule, as LightningCLI takes; torchae's own add figures, export, ...
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,  # MNIST unless --data names another (part 2's points: torchae.DotsDataModule)
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                "description": f"Train and use the article's autoencoders. Models: {model_names()}.",
                "exit_on_error": False,  # parse errors reach main(), which prints them as one line
            },
            # Metrics are logged once per epoch; a step interval longer than an epoch only makes Lightning warn.
            trainer_defaults={"default_root_dir": "runs", "log_every_n_steps": 1},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(Engine, "engine")
        parser.add_lightning_class_args(EpochTimer, "epoch_timer")  # before figures, whose history reads its time
        parser.add_lightning_class_args(ArticleFigures, "figures")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(StopOnNonFiniteLoss, "nan_guard")
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
        super().parse_arguments(parser, with_experiment_recipe(with_pretrained_model(args)))
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        self.evaluation_dir: Path | None = None
        self._checkpoint_settings: set[str] = set()
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
        self._check_checkpoint_names(subcommand, config)
        if subcommand in EVALUATIONS:
            ckpt_path = config.get("ckpt_path")
            if ckpt_path is None and config.get("pretrained") is None:
                raise ConfigError(
                    f"torchae {subcommand} needs trained weights, and none were given (the model's initial weights "
                    "are random): give --ckpt_path CKPT (a run's checkpoint) or --pretrained NAME (a shipped model)"
                )
            self.evaluation_dir = evaluation_folder(subcommand, ckpt_path, root)
            if ckpt_path is not None:  # the run's checkpoint folder: nothing is written there while evaluating
                config.checkpoint.dirpath = str(Path(ckpt_path).parent)

    @staticmethod
    def _check_checkpoint_names(subcommand: str, config: Any) -> None:
        """Checkpoints stay in their run's folder: a ``--checkpoint.filename`` with a folder part, or a fit's
        ``--checkpoint.dirpath`` that holds files already (another run's checkpoints), is refused."""
        filename = config.checkpoint.get("filename")
        if filename is not None:
            file_name(filename, "checkpoint.filename")
        dirpath = config.checkpoint.get("dirpath")
        if subcommand == "fit" and dirpath is not None and Path(dirpath).is_dir() and any(Path(dirpath).iterdir()):
            raise ConfigError(
                f"checkpoint.dirpath {str(dirpath)!r} holds files already, which this run's checkpoints could "
                "replace: leave --checkpoint.dirpath out (each run keeps its own in <run>/checkpoints/) or give an "
                "empty folder"
            )

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
            config.ckpt_path = ckpt_path = str(found)
        checkpoint = read_checkpoint(ckpt_path)
        saved = checkpoint.get(MODEL_KEY)
        class_path = str(config.model.class_path) if config.get("model") is not None else ""
        expected = class_path.rsplit(".", 1)[-1]
        # A LightningModule of the user's own names no class in its checkpoints: Lightning checks its weights.
        plain = saved is None and "torchae_model" not in checkpoint and expected not in model_classes()
        if saved != expected and not plain:
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
        self._checkpoint_settings = set(settings)
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
                folder = claim(claim_folder(self.evaluation_dir))
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
            settings = dict(config.items()) if hasattr(config, "items") else dict(vars(config))
            raise ConfigError(describe_trainer_error(err, settings)) from None
        return trainer

    @staticmethod
    def _run_version(root: Path) -> str:
        """The ``version_N`` of this fit: claimed by rank 0, inherited by the ranks Lightning launches."""
        if not rank_zero():  # only rank 0 writes logs; a rank another launcher started claims nothing
            return os.environ.get(CLAIMED_VERSION) or "version_unclaimed"
        name = f"version_{claim_version(root)}"
        claim(root / name)
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

    def _raise_as_checkpoints(self, err: UserError, config: Any) -> None:
        """Raise ``err`` as the checkpoint's fault when it refuses a model setting that the checkpoint gave."""
        ckpt_path = config.get("ckpt_path")
        setting = str(err).split(" ", 1)[0]
        if ckpt_path and setting.removeprefix("model.") in self._checkpoint_settings:
            raise refused_setting(ckpt_path, err) from None

    def _raise_if_out_of_memory(self, err: BaseException) -> None:
        if isinstance(err, MemoryError) or "allocate" in str(err):  # a model too large for this machine
            config = self.config[self.subcommand] if self.subcommand else self.config
            settings = dict((config.get("model") or {}).get("init_args") or {})
            raise ConfigError(
                f"the model's settings ({', '.join(f'model.{k}={v!r}' for k, v in settings.items())}) need more "
                "memory than this machine can give: set smaller sizes (model.code_dim, ...)"
            ) from None

    def _raise_user_error(self) -> None:
        """The :class:`~torchae.errors.UserError` behind a failed instantiation (jsonargparse wraps it in a
        ValueError about union subtypes), raised as it is; a model setting that a checkpoint gave is named as the
        checkpoint's. An error in the user's own class is one line naming its file and line."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        chain = exception_chain(sys.exc_info()[1])
        found = next((err for err in chain if isinstance(err, UserError)), None)
        if found is not None:
            self._raise_as_checkpoints(found, config)
            raise found.with_traceback(None) from None
        for err in chain:
            if isinstance(err, (RuntimeError, MemoryError)):
                self._raise_if_out_of_memory(err)
        where = user_code_line(chain[-1]) if chain else None
        if where is not None:
            model = config.get("model") or {}
            raise ConfigError(
                f"{model.get('class_path') or 'the model'} could not be built: {type(chain[-1]).__name__}: "
                f"{' '.join(str(chain[-1]).split())[:300]} (at {where}): fix the class or its settings"
            ) from None
        for section, cls in CALLBACK_SECTIONS.items():  # Lightning's callbacks refuse with several types
            settings = config.get(section)
            if settings is None:
                continue
            try:
                cls(**dict(settings))
            except UserError:
                raise
            except Exception as err:
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
        # Known harmless: an evaluation writes no checkpoint, and a resumed fit writes into a folder of its own.
        warnings.filterwarnings("ignore", message=DIRPATH_CHANGED.pattern)

    def before_fit(self) -> None:
        self._load_checkpoints_weights_only()
        self._check_monitors()
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if ckpt_path and self.trainer.is_global_zero:
            print(
                f"torchae: resuming from {ckpt_path} into {self.trainer.log_dir} (a resumed run writes into a folder "
                "of its own and leaves the earlier one as it is; history.csv and the loss curves hold every epoch)",
                file=sys.stderr,
            )

    def _check_monitors(self) -> None:
        """Refuse, before training, a checkpoint or early-stopping callback that watches a metric the run never
        logs (Lightning finds out after the first epoch)."""
        declared = metric_names_of(self.model)
        if declared is None:  # any LightningModule: what it logs is its own, and Lightning checks after an epoch
            return
        logged = {*declared, "epoch_seconds"}
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
