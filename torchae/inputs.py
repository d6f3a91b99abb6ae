"""Checks of what a user hands a model: images and codes of the right type and shape, with clear errors."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from torchae.errors import InputError
from torchae.networks import IMAGE_SHAPE

__all__ = ["check_codes", "check_images", "check_points", "images_of"]

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
