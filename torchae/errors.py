"""Errors that mean the user's input is wrong (not a bug): the CLI prints them as one line and exits 2."""

from __future__ import annotations

from typing import Any

__all__ = ["CheckpointError", "ConfigError", "DataError", "InputError", "NonFiniteLossError", "UserError", "require"]


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
