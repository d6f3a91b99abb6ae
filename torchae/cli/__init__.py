"""The ``torchae`` command: Lightning's CLI (``fit``, ``validate``, ``test``, ``predict``) over any LightningModule,
and the series' models in particular, plus ``torchae figures`` and ``torchae export`` for a checkpoint or a shipped
model (``--pretrained NAME``).

``torchae fit --config configs/dense.yaml`` trains the article's dense autoencoder; ``--model`` takes any registered
model (``torchae.VAE``) or any LightningModule by its class path (``mypkg.MyGAN``). Runs go to
``<default_root_dir>/version_N/`` (metrics.csv, history.csv, config.yaml, checkpoints/, the figures). ``--ckpt_path
last`` resumes the newest run under ``default_root_dir`` from its ``last.ckpt``.

The package, by job: :mod:`~torchae.cli.lightning` (the LightningCLI subclass), :mod:`~torchae.cli.arguments`
(command lines rewritten before parsing), :mod:`~torchae.cli.folders` (run folders), :mod:`~torchae.cli.loading`
(models from checkpoints, weights and class paths), :mod:`~torchae.cli.commands` (figures and export),
:mod:`~torchae.cli.checks` (config files, seeds) and :mod:`~torchae.cli.messages` (one line per error).

User errors (bad data, bad settings, bad checkpoints) print one line and exit 2; set ``TORCHAE_DEBUG=1`` for the
traceback.
"""

from __future__ import annotations

import signal
import sys

from jsonargparse import ArgumentError

from torchae.cli.arguments import config_files, option_value
from torchae.cli.checks import CALLBACK_SECTIONS, check_config_file
from torchae.cli.commands import OWN_COMMANDS, own_command_parser, parameters_of
from torchae.cli.folders import find_last_checkpoint, rank_zero, release_unused_claims
from torchae.cli.help import chosen_model_class, model_settings_help
from torchae.cli.lightning import AutoencoderCLI
from torchae.cli.loading import model_names
from torchae.cli.messages import debug_enabled, describe_os_error, describe_parse_error
from torchae.console import quiet_known_noise
from torchae.errors import ConfigError, NonFiniteLossError, UserError
from torchae.safety import stopped_by_signal

__all__ = [
    "CALLBACK_SECTIONS",
    "OWN_COMMANDS",
    "SUBCOMMANDS",
    "AutoencoderCLI",
    "describe_os_error",
    "find_last_checkpoint",
    "main",
]


SUBCOMMANDS = {
    "fit": "train a model: torchae fit --config configs/dense.yaml",
    "validate": "the loss of a checkpoint (--ckpt_path) or a shipped model (--pretrained) on the test images",
    "test": "the same through Lightning's test loop",
    "predict": "codes and reconstructions of the test images into predictions.npz",
    "figures": "the figures of a checkpoint or a shipped model: torchae figures CKPT, or --pretrained NAME",
    "export": "a checkpoint or a shipped model as ONNX or torch.export, batch dimension dynamic",
}
"""Every subcommand with its line of ``torchae --help``."""


def overview() -> str:
    """``torchae --help``: what the command is and its six subcommands, one line each."""
    width = max(map(len, SUBCOMMANDS))
    lines = [
        f"usage: torchae [-h] {{{','.join(SUBCOMMANDS)}}} ...",
        "",
        f"Train and use the autoencoders of the Autoencoders in Keras series. Models: {model_names()}.",
        "",
        "subcommands (torchae SUBCOMMAND --help lists each one's settings):",
        *(f"  {name:<{width}}  {line}" for name, line in SUBCOMMANDS.items()),
    ]
    return "\n".join(lines)


def _run(args: list[str] | None) -> None:
    words = sys.argv[1:] if args is None else args
    if not words or words[0] in ("-h", "--help"):
        print(overview())
        if not words:
            raise ConfigError(f"choose a subcommand: {', '.join(SUBCOMMANDS)} (torchae --help says what each does)")
        return
    if not words[0].startswith("-") and words[0] not in SUBCOMMANDS:
        raise ConfigError(
            f"unknown subcommand {words[0]!r}: choose one of {', '.join(SUBCOMMANDS)} (torchae --help says what each "
            "does)"
        )
    configs = [check_config_file(path) for path in config_files(words)]
    if words[0] not in OWN_COMMANDS and any(word in ("-h", "--help") for word in words):
        chosen = chosen_model_class(words, configs)
        print(
            model_settings_help(chosen)
            if chosen is not None
            else "A model's own settings come first with --model NAME or --config FILE before --help.\n"
        )
    if words[0] in OWN_COMMANDS:
        parsed = own_command_parser(words[0]).parse_args(words[1:])
        OWN_COMMANDS[words[0]](**{key: value for key, value in vars(parsed).items() if key in parameters_of(words[0])})
        return
    AutoencoderCLI(args=args)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``torchae`` and ``python -m torchae``; ``args`` defaults to the command line."""
    quiet_known_noise()
    try:
        _run(args)
    except SystemExit:
        release_unused_claims()
        stop = stopped_by_signal()
        if stop is None:
            raise
        if rank_zero():
            name = signal.Signals(stop.signal).name
            where = (
                f"the last checkpoint is {stop.checkpoint}: resume with the same command and --ckpt_path last"
                if stop.checkpoint
                else "no checkpoint was written yet: run the command again"
            )
            print(f"torchae: stopped by {name} in epoch {stop.epoch}; {where}", file=sys.stderr)
        sys.exit(128 + stop.signal)
    except (UserError, NonFiniteLossError, OSError, ArgumentError) as err:
        release_unused_claims()
        if debug_enabled():
            raise
        words = sys.argv[1:] if args is None else args
        subcommand = words[0] if words and words[0] in SUBCOMMANDS else "fit"
        if isinstance(err, ArgumentError):
            message = describe_parse_error(err, subcommand)
        elif isinstance(err, OSError):
            message = describe_os_error(err, option_value(words, "--trainer.default_root_dir"))
        else:
            message = str(err)
        if rank_zero():  # every rank of a multi-process run fails alike: one line
            print(f"torchae: error: {message}", file=sys.stderr)
        sys.exit(1 if isinstance(err, NonFiniteLossError) else 2)
