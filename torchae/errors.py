"""Errors that mean the user's input is wrong (not a bug): the CLI prints them as one line and exits 2."""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "InputError", "NonFiniteLossError", "UserError"]


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
