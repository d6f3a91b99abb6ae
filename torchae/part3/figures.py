"""Part 3's figures: the manifold decoded from a grid over the latent plane and the test codes by digit, both
animated over training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from torchae.figures import TestSet, register_figure
from torchae.figures.animation import (
    Animation,
    animate_codes,
    animate_manifold,
    codes_frame,
    pixel_bytes,
    register_animation,
)
from torchae.figures.plots import image_axes, latent_points, scatter_codes
from torchae.safety import atomic_write

__all__ = ["MANIFOLD_SIDE", "latent_grid", "manifold_image"]


MANIFOLD_SIDE = 15
"""Digits per side of the decoded latent grid (the article's ``n = 15``)."""


def latent_grid(latent_dim: int, n: int = MANIFOLD_SIDE) -> torch.Tensor:
    """The article's grid over the latent plane, ``(n * n, latent_dim)``: the standard normal's quantiles at
    ``linspace(0.05, 0.95, n)`` (its inverse CDF, as the article's ``norm.ppf``), row ``i`` at ``z[1] = q[i]`` and
    column ``j`` at ``z[0] = q[j]``; any further dimensions 0."""
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n, dtype=torch.float64))
    rows, columns = torch.meshgrid(quantiles.float(), quantiles.float(), indexing="ij")
    codes = torch.zeros(n * n, latent_dim)
    codes[:, 0] = columns.reshape(-1)
    if latent_dim > 1:
        codes[:, 1] = rows.reshape(-1)
    return codes


def manifold_image(model: Any, n: int = MANIFOLD_SIDE, label: int | None = None) -> torch.Tensor:
    """The digits decoded from :func:`latent_grid` (with ``label``, for a conditional model), tiled into one
    ``(28 n, 28 n)`` image."""
    codes = latent_grid(model.code_shape[0], n).to(device=model.device, dtype=model.dtype)
    decoded = model.decode(codes) if label is None else model.decode(codes, label)
    digits = decoded.detach().float().cpu().reshape(n, n, 28, 28)
    return digits.permute(0, 2, 1, 3).reshape(n * 28, n * 28)


@register_figure("manifold")
def draw_manifold(model: Any, test: TestSet, path: Path) -> Path:
    """The article's manifold: digits decoded from a 15 x 15 grid over the latent plane."""
    figure, ax = image_axes(8)
    ax.imshow(manifold_image(model).numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(f"{type(model).__name__}: digits decoded from a grid of normal quantiles 0.05-0.95")
    figure.tight_layout()
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path


@register_figure("latent_distribution")
def draw_latent_distribution(model: Any, test: TestSet, path: Path) -> Path:
    """The test images' codes (for a VAE, the means of ``q(z|x)``), coloured by digit."""
    points, axis_labels = latent_points(test.codes)
    return scatter_codes(
        points, test.labels, axis_labels, f"{type(model).__name__}: the codes of {len(points):,} test digits", path
    )


def _manifold_frame(model: Any, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return pixel_bytes(manifold_image(model))


register_animation("manifold", Animation("manifold", _manifold_frame, animate_manifold))
register_animation("latent_distribution", Animation("codes", codes_frame, animate_codes))
