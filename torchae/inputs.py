"""Checks of what a user hands a model: images and codes of the right type and shape, with clear errors."""

from __future__ import annotations

import operator
import warnings
from typing import Any, NamedTuple

import torch

from torchae.errors import InputError
from torchae.networks import IMAGE_SHAPE

__all__ = [
    "CLASSES",
    "LabelledBatch",
    "MAX_SAMPLES",
    "as_integer",
    "batch_size_of",
    "check_codes",
    "check_count",
    "check_generator",
    "check_images",
    "check_label",
    "check_labels",
    "check_points",
    "images_of",
    "one_hot",
    "tracing",
]

CLASSES = 10
"""MNIST's labels: the digits 0-9."""

_EXPECTED_IMAGES = "expected a float tensor of shape (N, 1, 28, 28) with pixels in [0, 1]"


def check_images(x: Any, check_finite: bool = True, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``x`` if it is a float batch of shape ``(N, 1, 28, 28)``; else raise :class:`InputError` saying why.
    With ``check_finite``, pixels outside [0, 1] (0-255 images, say) give a warning: the models were trained on
    ``uint8 / 255``.

    Args:
        x: the candidate batch.
        check_finite: also refuse NaN or infinite pixels and warn of pixels outside [0, 1] (this reads the values
            back, so a traced or exported ``forward`` and the training loop leave it off).
        dtype: the model's floating dtype, which ``x`` must have (``None``: any floating dtype).
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"model input is a {type(x).__name__}, {_EXPECTED_IMAGES}")
    if not x.is_floating_point():
        raise InputError(f"model input has dtype {x.dtype}, {_EXPECTED_IMAGES}; for uint8 pixels use x.float() / 255")
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        hint = "; it looks like Keras's NHWC, use x.permute(0, 3, 1, 2)" if tuple(x.shape[1:]) == (28, 28, 1) else ""
        raise InputError(f"model input has shape {tuple(x.shape)} (rank {x.dim()}), {_EXPECTED_IMAGES}{hint}")
    _check_dtype("model input", x, dtype)
    if check_finite and not bool(torch.isfinite(x).all()):
        raise InputError(f"model input contains NaN or infinite values, {_EXPECTED_IMAGES}")
    if check_finite and x.numel() and not (float(x.min()) >= 0.0 and float(x.max()) <= 1.0):
        warnings.warn(
            f"model input has pixels in [{float(x.min()):g}, {float(x.max()):g}], outside [0, 1]: the models were "
            "trained on pixels / 255; for 0-255 images use x / 255",
            UserWarning,
            stacklevel=3,
        )
    return x


def check_points(x: Any, width: int = 2, check_finite: bool = True, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``x`` if it is a float batch of points of shape ``(N, width)``; else raise :class:`InputError`.

    Args:
        x: the candidate batch.
        width: the coordinates of one point (part 2's points: 2).
        check_finite: also refuse NaN or infinite coordinates (off where the values must not be read back).
        dtype: the model's floating dtype, which ``x`` must have (``None``: any floating dtype).
    """
    expected = f"expected a float tensor of shape (N, {width}): one point per row"
    if not isinstance(x, torch.Tensor):
        raise InputError(f"model input is a {type(x).__name__}, {expected}")
    if not x.is_floating_point():
        raise InputError(f"model input has dtype {x.dtype}, {expected}; use x.float()")
    if x.dim() != 2 or x.shape[1] != width:
        raise InputError(f"model input has shape {tuple(x.shape)} (rank {x.dim()}), {expected}")
    _check_dtype("model input", x, dtype)
    if check_finite and not bool(torch.isfinite(x).all()):
        raise InputError(f"model input contains NaN or infinite values, {expected}")
    return x


def _check_dtype(what: str, x: torch.Tensor, dtype: torch.dtype | None) -> None:
    if dtype is not None and x.dtype != dtype:
        cast = {torch.float32: "float", torch.float64: "double", torch.float16: "half", torch.bfloat16: "bfloat16"}
        fix = f"x.{cast[dtype]}()" if dtype in cast else f"x.to({dtype})"
        raise InputError(f"{what} has dtype {x.dtype}, the model's weights are {dtype}: convert it with {fix}")


def check_codes(code: Any, code_shape: tuple[int, ...], dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``code`` if it is a finite float batch of shape ``(N, *code_shape)``; else raise :class:`InputError`."""
    expected = f"expected a float tensor of shape (N, {', '.join(map(str, code_shape))})"
    if not isinstance(code, torch.Tensor) or not code.is_floating_point():
        raise InputError(f"code is not a float tensor, {expected}")
    if code.dim() != 1 + len(code_shape) or tuple(code.shape[1:]) != code_shape:
        raise InputError(f"code has shape {tuple(code.shape)}, {expected}")
    _check_dtype("code", code, dtype)
    if not bool(torch.isfinite(code).all()):
        raise InputError(f"code contains NaN or infinite values, {expected}")
    return code


def images_of(batch: Any) -> torch.Tensor:
    """The images of one image batch: the batch itself, or the first item of an ``(images, labels)`` pair."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


class LabelledBatch(NamedTuple):
    """A batch of inputs with their labels: what a conditional model takes (part 4's CVAE: images and their digits;
    its conditional autoencoder of points: points and their curves)."""

    inputs: torch.Tensor
    labels: torch.Tensor


def batch_size_of(x: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """The examples in a model's input: a tensor's first dimension, or that of a tuple's first tensor."""
    return int((x[0] if isinstance(x, tuple) else x).shape[0])


def check_labels(
    labels: Any, count: int | None = None, check_values: bool = True, classes: int = CLASSES
) -> torch.Tensor:
    """Return ``labels`` if it is an integer tensor of labels ``0..classes-1`` (MNIST's digits) of shape
    ``(count,)``; else raise :class:`InputError` saying why.

    Args:
        labels: the candidate labels.
        count: how many there must be (the batch size of the inputs they go with); ``None`` for any.
        check_values: also refuse a label outside ``0..classes-1`` (this reads the values back; the training loop
            leaves it off, the datamodule having checked its labels once).
        classes: how many labels there are (MNIST's 10 digits; 2 curves of part 4's points).
    """
    shape = f"({count},)" if count is not None else "(N,)"
    what = "the digits 0-9, one per image" if classes == CLASSES else f"labels 0-{classes - 1}, one per input"
    expected = f"expected an integer tensor of shape {shape} with {what}"
    if not isinstance(labels, torch.Tensor):
        raise InputError(f"labels are a {type(labels).__name__}, {expected}: use torch.tensor(labels)")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        hint = "; for one-hot rows use labels.argmax(1)" if labels.dim() == 2 else "; use labels.long()"
        raise InputError(f"labels have dtype {labels.dtype}, {expected}{hint}")
    if labels.dim() != 1 or (count is not None and labels.shape[0] != count):
        hint = "; for one-hot rows use labels.argmax(1)" if labels.dim() == 2 and labels.shape[-1] == classes else ""
        raise InputError(f"labels have shape {tuple(labels.shape)}, {expected}{hint}")
    if check_values and labels.numel() and not (int(labels.min()) >= 0 and int(labels.max()) < classes):
        raise InputError(f"labels hold {int(labels.min())}..{int(labels.max())}, {expected}")
    return labels


def tracing() -> bool:
    """Whether the model runs under a tracer (``torch.export``, ``torch.compile``, ONNX export, ``torch.jit.trace``):
    then a check that reads tensor values back cannot run, and ``forward`` checks shapes only."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def as_integer(value: Any) -> int | None:
    """``value`` as a Python int if it is one integer: a Python, NumPy or 0-d torch integer; ``None`` for anything
    else, bools (Python's, NumPy's and torch's) included."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            return None
        return int(value)
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_label(label: Any, setting: str = "label", classes: int = CLASSES) -> int:
    """Return ``label`` as a Python int if it is one label ``0..classes-1`` (one digit: a Python, NumPy or 0-d torch
    integer, not a bool); else raise :class:`InputError`."""
    value = as_integer(label)
    if value is None or not 0 <= value < classes:
        what = "one digit, an integer" if classes == CLASSES else "one label, an integer"
        raise InputError(f"{setting} is {label!r}, expected {what} from 0 to {classes - 1}")
    return value


MAX_SAMPLES = 100_000
"""The most images one call may generate (10,000 of them take 31 MB; 10**9 would ask for 3 TB)."""


def check_count(n: Any, setting: str = "n", most: int = MAX_SAMPLES) -> int:
    """Return ``n`` as a Python int if it is a count from 1 to ``most`` (a Python, NumPy or 0-d torch integer);
    else raise :class:`InputError` in Python's words."""
    value = as_integer(n)
    if value is None or not 0 < value <= most:
        raise InputError(f"{setting} is {n!r}, expected an integer from 1 to {most:,}: for example {setting}=16")
    return value


def check_generator(generator: Any) -> torch.Generator | None:
    """Return ``generator`` if it is ``None`` or a ``torch.Generator``; else raise :class:`InputError`."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InputError(
            f"generator is {generator!r}, expected a torch.Generator or None: for example "
            "generator=torch.Generator().manual_seed(0)"
        )
    return generator


def one_hot(labels: torch.Tensor, dtype: torch.dtype, classes: int = CLASSES) -> torch.Tensor:
    """``(N, classes)`` rows with a 1 at each label (Keras's ``to_categorical``), written as a comparison so that it
    exports to ONNX as one op."""
    return (labels.unsqueeze(1) == torch.arange(classes, device=labels.device)).to(dtype)
