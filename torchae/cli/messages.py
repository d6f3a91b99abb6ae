"""One line for each error a user can cause: parse errors, file system errors; ``TORCHAE_DEBUG`` for the
traceback."""

from __future__ import annotations

import errno
import os
import re
import sys
import typing
from typing import Any

from jsonargparse import ArgumentError
from pytorch_lightning import Trainer

from torchae.cli.checks import CALLBACK_SECTIONS
from torchae.cli.loading import model_class_problem, model_names
from torchae.part2.dots import DATAMODULES
from torchae.registry import EXPERIMENTS


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
        unknown = re.search(r"class_path '([\w.]+)': Option '(\w+)' is not accepted", text)
        if unknown:  # a config's model section with a setting its class does not take
            owner, setting = unknown.groups()
            return (
                f"model.{setting} is not a setting of {owner}: check its spelling, or leave it out "
                f"(torchae {subcommand} --model.help {owner.rpartition('.')[2]} lists them)"
            )
        if not re.fullmatch(r"[A-Za-z_][\w.]*", given):  # not a class path: never echo what a file may hold
            return (
                f"model is not a class path: give one of {model_names()}, or a LightningModule's class path "
                "(mypkg.MyModel)"
            )
        problem = model_class_problem(given)
        if problem is not None:
            return problem
        return f"model {given!r} cannot be built with these settings: {text[:300]}"
    elif key:
        setting, value = key.group(1), text.rsplit("value:", 1)[-1].strip()
    elif text.startswith("unrecognized arguments"):
        return f"{text}: check the spelling of the keys (torchae {subcommand} --help lists them)"
    else:
        return f"{text} (torchae {subcommand} --help lists the settings)"
    annotation = _setting_type(setting)
    expected = f"it takes {describe_type(annotation)}" if annotation is not None else f"see torchae {subcommand} --help"
    return f"{setting} = {value!r} is not a valid value: {expected}; set --{setting} to such a value"


DEBUG_VARIABLE = "TORCHAE_DEBUG"


def debug_enabled() -> bool:
    """Whether ``TORCHAE_DEBUG`` asks for tracebacks: ``1``, ``true``, ``yes`` or ``on`` (any case); ``0``, ``false``,
    ``no``, ``off`` and empty do not."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def describe_os_error(err: OSError, run_folder: str | None = None) -> str:
    """One line for a file system error: the path, the cause in the system's words, and what to check.

    Args:
        err: the error.
        run_folder: where the command writes its runs, named when the error itself names no path (a full disk).
    """
    if err.errno == errno.ENOSPC:
        where = str(err.filename) if err.filename is not None else run_folder or "the current folder"
        return (
            f"no space left on the disk that holds {where!r}: free space there (the last complete checkpoint is "
            "kept), or give --trainer.default_root_dir on another disk"
        )
    where = f" {str(err.filename)!r}" if err.filename is not None else ""
    fixes = {
        FileNotFoundError: "check the path",
        FileExistsError: "a file stands where a folder is needed: give another path or move the file",
        NotADirectoryError: "a part of the path is a file, not a folder: give another path",
        IsADirectoryError: "a folder stands where a file is needed: give a file's path",
        PermissionError: "this user may not read or write there: change its permissions, or give another path",
    }
    fix = next((text for kind, text in fixes.items() if isinstance(err, kind)), "check the path and the disk")
    return f"cannot use{where}: {err.strerror or err}; {fix}"


def exception_chain(err: BaseException | None) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def user_code_line(err: BaseException) -> str | None:
    """``FILE:LINE`` of the innermost frame of ``err``'s traceback in the user's own code (outside the installed
    packages and torchae), or ``None`` when the error did not pass through it."""
    import traceback
    from pathlib import Path

    package = str(Path(__file__).resolve().parents[1])
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        name = frame.filename
        if "site-packages" in name or "dist-packages" in name or name.startswith(("<", package)):
            continue
        if Path(name).resolve().is_relative_to(Path(sys.prefix).resolve()):
            continue
        return f"{name}:{frame.lineno}"
    return None


HARDWARE = ("accelerator", "devices", "strategy", "precision")


def describe_trainer_error(err: BaseException, settings: dict[str, Any]) -> str:
    """One line for a Trainer that refuses its settings: the settings Lightning's message names (else the hardware
    ones given), its message, and the fix for those settings."""
    text = " ".join(str(err).split())
    blamed = [key for key, value in settings.items() if key in text and value is not None]
    if blamed and not any(key in HARDWARE for key in blamed):
        named = ", ".join(f"trainer.{key}={settings[key]!r}" for key in blamed)
        fix = f"set --trainer.{blamed[0]} to a value that Lightning takes"
    else:
        given = {key: settings.get(key) for key in HARDWARE}
        named = ", ".join(f"trainer.{key}={value!r}" for key, value in given.items() if value not in (None, "auto"))
        fix = (
            "--trainer.accelerator cpu, gpu or auto; --trainer.devices a count this machine has; --trainer.strategy "
            "auto or ddp"
        )
    help_text = "(torchae fit --help lists the choices)"
    return f"the trainer cannot start with {named or 'these settings'}: {text} Fix: {fix} {help_text}"
