"""Importing Keras 3 (TensorFlow backend) safely in a process that also runs PyTorch.

With this torch build (it ships Triton) and TensorFlow 2.21, TensorFlow loaded *before* ``torch._dynamo`` makes
the process die with a segmentation fault as soon as a torch optimizer is created. Every Keras import of the parity
suite goes through :func:`import_keras`, which loads ``torch._dynamo`` first and refuses, with a clear error, a
process where TensorFlow already came first.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["ImportOrderError", "import_keras", "load_torch_first"]


class ImportOrderError(RuntimeError):
    """TensorFlow was imported before ``torch._dynamo``; creating a torch optimizer would crash the process."""


def load_torch_first() -> None:
    """Load ``torch._dynamo`` unless TensorFlow came first, in which case raise :class:`ImportOrderError`."""
    if "tensorflow" in sys.modules and "torch._dynamo" not in sys.modules:
        raise ImportOrderError(
            "TensorFlow was imported before torch._dynamo, which crashes the process when a torch optimizer is "
            "created: import parity (or torch._dynamo) before tensorflow or keras"
        )
    import torch._dynamo  # noqa: F401  (must be loaded before TensorFlow)


def import_keras() -> ModuleType:
    """Return the ``keras`` module on the TensorFlow backend, loaded after ``torch._dynamo``.

    Raises:
        ImportOrderError: TensorFlow is already loaded but ``torch._dynamo`` is not.
        RuntimeError: Keras is set to another backend.
    """
    load_torch_first()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"the parity suite needs Keras's TensorFlow backend, not {keras.backend.backend()!r}: "
            "unset KERAS_BACKEND or set it to tensorflow"
        )
    return keras
