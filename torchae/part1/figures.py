"""Part 1's figures: reconstructions, the denoising rows, the sparse code's dimensions, the codes by PCA and the
interpolation between two digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from torchae.figures import TestSet, register_figure
from torchae.figures.plots import pca_2d, plot_digit_rows, scatter_codes

__all__ = ["interpolation_pair", "interpolation_rows", "sparse_dimension_codes"]


@register_figure("reconstructions")
def draw_reconstructions(model: Any, test: TestSet, path: Path) -> Path:
    """The first test digits over their reconstructions."""
    shown = test.images[: test.n].to(model.device)
    labels = test.labels[: test.n].to(model.device) if test.labels is not None else None
    rows = [("original", shown), ("decoded", model(*model.inputs_for(shown, labels)))]
    return plot_digit_rows(rows, path, f"{type(model).__name__}: test digits and their reconstructions")


@register_figure("denoising")
def draw_denoising(model: Any, test: TestSet, path: Path) -> Path:
    shown = test.images[: test.n].to(model.device)
    noisy = model.add_noise(shown, torch.Generator(device=shown.device).manual_seed(test.seed))
    rows = [("original", shown), ("noisy", noisy), ("denoised", model(noisy))]
    return plot_digit_rows(rows, path, f"{type(model).__name__}: noisy inputs and their denoising")


def sparse_dimension_codes(codes: torch.Tensor) -> torch.Tensor:
    """The article's experiment: one copy of the mean code per dimension, that dimension set to its maximum."""
    flat = codes.flatten(1)
    probes = flat.mean(0).repeat(flat.shape[1], 1)
    probes.diagonal().copy_(flat.max(0).values)
    return probes.reshape(-1, *codes.shape[1:])


@register_figure("sparse_code_dimensions")
def draw_sparse_code_dimensions(model: Any, test: TestSet, path: Path) -> Path:
    decoded = model.decode(sparse_dimension_codes(test.codes))
    title = f"{type(model).__name__}: the mean code with dimension i at its maximum, i = 0..{decoded.shape[0] - 1}"
    return plot_digit_rows([("max dim i", decoded)], path, title)


@register_figure("codes_2d")
def draw_codes_2d(model: Any, test: TestSet, path: Path) -> Path:
    """The test codes by PCA onto two dimensions, coloured by digit."""
    points = pca_2d(test.codes).cpu()
    title = f"{type(model).__name__}: {len(points):,} test codes, PCA to 2-D"
    return scatter_codes(points, test.labels, ("principal component 1", "principal component 2"), title, path, "best")


def interpolation_pair(labels: torch.Tensor | None) -> tuple[int, int]:
    """Indices of two test digits to blend: the first image, and the first of another class after it."""
    if labels is None:
        return 0, 1
    other = torch.nonzero(labels != labels[0])
    return 0, int(other[0]) if len(other) else 1


def interpolation_rows(model: Any, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> list[tuple[str, torch.Tensor]]:
    """Images ``a`` and ``b`` (``(1, 28, 28)`` each) blended in ``steps`` steps: in pixel space, and in code space
    (their codes blended, then decoded)."""
    weights = torch.linspace(0.0, 1.0, steps, device=a.device).view(-1, 1, 1, 1)
    pixels = (1 - weights) * a + weights * b
    codes = model.encode(torch.stack([a, b]))
    code_weights = weights.view(-1, *([1] * (codes.dim() - 1)))
    blended = (1 - code_weights) * codes[:1] + code_weights * codes[1:]
    return [("pixel space", pixels), ("code space", model.decode(blended))]


@register_figure("interpolation")
def draw_interpolation(model: Any, test: TestSet, path: Path) -> Path:
    """Two test digits of different classes blended in 10 steps, in pixel space and in code space."""
    first, second = interpolation_pair(test.labels)
    a, b = (test.images[i].to(model.device) for i in (first, second))
    title = f"{type(model).__name__}: from one digit to another, in pixel space and in code space"
    return plot_digit_rows(interpolation_rows(model, a, b), path, title)
