"""Importing Keras 3 safely in a process that also runs PyTorch (TensorFlow's backend for parity; any of the three
for the benchmark).

With this torch build (it ships Triton) and TensorFlow 2.21, TensorFlow loaded *before* ``torch._dynamo`` makes
the process die with a segmentation fault as soon as a torch optimizer is created. Every Keras import of the parity
suite goes through :func:`import_keras`, which loads ``torch._dynamo`` first and refuses, with a clear error, a
process where TensorFlow already came first.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["BACKENDS", "ImportOrderError", "import_keras", "load_torch_first"]


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


BACKENDS = ("tensorflow", "jax", "torch")
"""Keras 3's backends that run the article's models."""


def import_keras(backend: str | None = "tensorflow") -> ModuleType:
    """Return the ``keras`` module, loaded after ``torch._dynamo``.

    Args:
        backend: the backend the caller needs (the parity checks use TensorFlow's gradient tape); ``None``
            accepts the one ``KERAS_BACKEND`` names (TensorFlow when unset), as the benchmark's workers do.

    Raises:
        ImportOrderError: TensorFlow is already loaded but ``torch._dynamo`` is not.
        RuntimeError: Keras runs on another backend than ``backend``.
    """
    load_torch_first()
    wanted = os.environ.setdefault("KERAS_BACKEND", backend or "tensorflow")
    if wanted not in BACKENDS:
        raise RuntimeError(f"KERAS_BACKEND={wanted!r} is not one of {', '.join(BACKENDS)}: set one of them")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if backend is not None and keras.backend.backend() != backend:
        raise RuntimeError(
            f"this needs Keras's {backend} backend, not {keras.backend.backend()!r}: unset KERAS_BACKEND or set it "
            f"to {backend}"
        )
    return keras
