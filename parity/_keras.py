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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


TENSORFLOW_NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "cudart_stub.cc",
    "cpu_feature_guard.cc",
    "oneDNN custom operations are on",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "failed call to cuInit",
)
"""Lines TensorFlow's C++ side prints while it loads and finds its devices, before its log level applies: that it
found no GPU on a CPU machine, which CPU instructions it uses, that its CUDA plugins were registered twice."""


@contextmanager
def _native_lines_filtered() -> Iterator[None]:
    """Run the body with the process's standard error (file descriptor 2, where C++ code writes) captured; then
    write back every captured line but the known harmless ones of :data:`TENSORFLOW_NOISE` (all of them where
    torch finds a GPU, whose absence they would report)."""
    import torch

    gpu = torch.cuda.is_available()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if gpu or not any(noise in line for noise in TENSORFLOW_NOISE)
            ]
            sys.stderr.write("".join(kept))


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
    from torchae.console import quiet_known_noise

    quiet_known_noise()  # the parity check compiles a step too
    with _native_lines_filtered():
        import keras

        if keras.backend.backend() == "tensorflow":  # TensorFlow looks for GPUs on first use: let it look here
            import tensorflow as tf

            tf.config.list_physical_devices()

    if backend is not None and keras.backend.backend() != backend:
        raise RuntimeError(
            f"this needs Keras's {backend} backend, not {keras.backend.backend()!r}: unset KERAS_BACKEND or set it "
            f"to {backend}"
        )
    return keras
