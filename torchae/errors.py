"""Errors that mean the user's input is wrong (not a bug): the CLI prints them as one line and exits 2."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "InputError",
    "NonFiniteLossError",
    "UserError",
    "MAX_WIDTH",
    "require",
    "require_rate",
    "require_width",
    "special_file_kind",
]

MAX_WIDTH = 65_536
"""The widest layer a setting may ask for (the series' widest is 784): a wider one is a typo, and 10**9 units would
ask for terabytes."""


class UserError(ValueError):
    """Base of errors caused by input from the user; the message names the problem and the fix."""


class DataError(UserError):
    """The data on disk is missing, damaged or not MNIST."""


class CheckpointError(UserError):
    """A checkpoint is missing, damaged, or belongs to another model class."""


class ConfigError(UserError):
    """A setting is out of range."""


class InputError(UserError):
    """A tensor given to a model has the wrong type, shape or values."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


def require(ok: bool, setting: str, value: Any, requirement: str, example: str) -> None:
    """Raise a :class:`ConfigError` naming ``setting``, its ``value`` and the fix, unless ``ok``.

    Args:
        ok: whether the value is acceptable (write the test so that NaN fails it: ``not x > 0``).
        setting: the setting as the CLI spells it, e.g. ``model.learning_rate``.
        value: the value given.
        requirement: what the value must be, e.g. ``a positive number``.
        example: a good value, e.g. ``1e-3``.
    """
    if not ok:
        raise ConfigError(f"{setting} must be {requirement}, got {value!r}: set --{setting} {example} or similar")


def require_width(setting: str, value: Any, example: str) -> None:
    """Raise a :class:`ConfigError` unless ``value`` is a layer width: an integer (not a bool) from 1 to
    :data:`MAX_WIDTH`."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_WIDTH
    require(ok, setting, value, f"an integer from 1 to {MAX_WIDTH:,}", example)


def require_rate(setting: str, value: Any, example: str) -> None:
    """Raise a :class:`ConfigError` unless ``value`` is a rate: a number (not a bool) from 0 up to, not including, 1."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
    require(ok, setting, value, "a rate from 0 up to (not including) 1", example)


def special_file_kind(path: Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file (after links): ``a folder``, ``a FIFO``, ``a
    device`` or ``a socket``; ``None`` for a regular file or a path that does not exist. Reading a FIFO or a device
    such as ``/dev/zero`` would hang or never end, so such a path is refused before it is opened."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((kind for test, kind in kinds if test(mode)), None)
