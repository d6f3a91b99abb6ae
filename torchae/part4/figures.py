"""Part 4's figures: the points around two curves, generated digits of each label, each label's manifold and code
distribution (both animated over training), and the style transfer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchae.errors import require
from torchae.figures import TestSet, register_figure
from torchae.figures.animation import (
    Animation,
    animate_manifold,
    codes_frame,
    pixel_bytes,
    register_animation,
    save_animation,
)
from torchae.figures.plots import digit_colours, new_figure, plot_digit_rows, save
from torchae.inputs import check_label
from torchae.part2.dots import two_curves
from torchae.part3.figures import MANIFOLD_SIDE, manifold_image

__all__ = ["LABEL_ROWS", "label_manifolds_image", "style_sources"]


@register_figure("two_curves")
def draw_two_curves(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's figure of the points: the sine curve's points (blue) and the circle's (green), the curves (red and
    yellow), the model's reconstructions of the points given their curves (white), and each curve's learned manifold
    (its codes' range decoded with its label, black)."""
    require(test.labels is not None, "labels", None, "each point's curve", "TwoCurvesDataModule's labels")
    dots, labels = test.images.float().cpu(), test.labels.cpu()
    reconstructed = model(dots.to(model.device), labels.to(model.device)).detach().cpu()
    curves = two_curves(len(dots) // 2, noise=0.0).curves
    figure = new_figure(figsize=(9, 6), dpi=100)
    ax = figure.subplots()
    ax.set_facecolor("0.85")
    ax.set_xlim(-2.5, 2.5)
    ax.set_ylim(-1.5, 1.5)
    for label, (colour, line, name) in enumerate((("b", "red", "sine"), ("g", "yellow", "circle"))):
        chosen = labels == label
        ax.scatter(dots[chosen, 0], dots[chosen, 1], color=colour, s=8, zorder=1, label=f"points ({name})")
        curve = curves[len(dots) // 2 * label : len(dots) // 2 * (label + 1)]
        ax.plot(curve[:, 0], curve[:, 1], color=line, linewidth=4, zorder=2, label=f"the {name}")
        codes = test.codes[chosen.to(test.codes.device)].float()
        sweep = torch.linspace(float(codes.min()), float(codes.max()), 400).unsqueeze(1)
        manifold = model.decode(sweep.to(model.device, model.dtype), label).detach().cpu()
        ax.plot(manifold[:, 0], manifold[:, 1], color="k", linewidth=1.5, zorder=4)
    ax.scatter(reconstructed[:, 0], reconstructed[:, 1], color="white", s=12, zorder=3, label="reconstructions")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(f"{type(model).__name__}: one model, given each point's curve, learns both (black: decoded codes)")
    figure.tight_layout()
    return save(figure, path)


LABEL_ROWS = 2
"""Rows of the per-label panels (digits 0-4 above, 5-9 below)."""


def label_manifolds_image(model: Any, n: int = MANIFOLD_SIDE) -> torch.Tensor:
    """The article's manifold for each digit 0-9, tiled in two rows of five: ``(2 * 28 n, 5 * 28 n)``."""
    manifolds = torch.stack([manifold_image(model, n, label) for label in range(10)])
    side = manifolds.shape[-1]
    return manifolds.reshape(LABEL_ROWS, 10 // LABEL_ROWS, side, side).permute(0, 2, 1, 3).reshape(2 * side, -1)


@register_figure("generated_digits")
def draw_generated_digits(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's generated digits: a row per label, each digit decoded from a code drawn from ``N(0, I)``."""
    generator = torch.Generator(device=model.device).manual_seed(test.seed)
    rows = [(f"digit {label}", model.sample(test.n, label, generator=generator)) for label in range(10)]
    return plot_digit_rows(rows, path, f"{type(model).__name__}: each digit from codes drawn from N(0, I)")


@register_figure("label_manifolds")
def draw_label_manifolds(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's manifolds: for each label, the digits decoded from the 15 x 15 grid over the first two latent
    dimensions (the others 0)."""
    figure = new_figure(figsize=(21, 9.6), dpi=100)  # each 420-pixel manifold at about its own size
    axes = figure.subplots(LABEL_ROWS, 10 // LABEL_ROWS)
    for label, ax in enumerate(axes.flat):
        ax.imshow(manifold_image(model, MANIFOLD_SIDE, label).numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(f"digit {label}", fontsize=14)
        ax.set_axis_off()
    figure.suptitle(
        f"{type(model).__name__}: each digit decoded from a 15 x 15 grid over z[0], z[1] (normal quantiles)",
        fontsize=16,
    )
    figure.tight_layout()
    return save(figure, path)


LABEL_CODE_LIMIT = 5.0
"""The article's axes of the per-label code plots: -5 to 5."""


def scatter_per_label(axes: Any, codes: torch.Tensor, labels: torch.Tensor) -> list[Any]:
    colours = digit_colours()
    drawn = []
    for label, ax in enumerate(axes.flat):
        chosen = codes[labels.cpu() == label]
        drawn.append(ax.scatter(chosen[:, 0], chosen[:, 1], s=2, alpha=0.5, color=colours(label)))
        ax.set_xlim(-LABEL_CODE_LIMIT, LABEL_CODE_LIMIT)
        ax.set_ylim(-LABEL_CODE_LIMIT, LABEL_CODE_LIMIT)
        ax.set_title(f"digit {label}", fontsize=10)
    return drawn


@register_figure("label_distributions")
def draw_label_distributions(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's code distributions: for each label, z[0] and z[1] of its test images' mean codes."""
    require(test.labels is not None, "labels", None, "the test images' labels", "MNIST's test labels")
    figure = new_figure(figsize=(15, 6.5), dpi=100)
    axes = figure.subplots(LABEL_ROWS, 10 // LABEL_ROWS, sharex=True, sharey=True)
    scatter_per_label(axes, test.codes.float().cpu(), test.labels)
    figure.suptitle(f"{type(model).__name__}: z[0] and z[1] of each digit's test codes")
    figure.tight_layout()
    return save(figure, path)


def style_sources(test: TestSet) -> tuple[torch.Tensor, str]:
    """The first ``test.n`` images of the ``style_digit`` option in the training set (the test set's when no training
    images were given; the article's first ten sevens), and which set they come from."""
    images, labels, where = test.train_images, test.train_labels, "training"
    if images is None or labels is None:
        images, labels, where = test.images, test.labels, "test"
    return images[labels.cpu() == test.options["style_digit"]][: test.n], where


def check_style_digit(options: dict[str, Any]) -> None:
    """Refuse a style digit that is not one of 0-9."""
    check_label(options["style_digit"], "--options.style_digit")


@register_figure("style_transfer", options={"style_digit": 7}, check=check_style_digit, training_set=True)
def draw_style_transfer(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's style transfer: the style's images (the article's ten sevens) in their own row, and each other digit
    written in their style (white on black, as every digit figure of torchae)."""
    sources, where = style_sources(test)
    sources, source = sources.to(model.device), test.options["style_digit"]
    rows = []
    for label in range(10):
        digits = sources if label == source else model.style_transfer(sources, source, label)
        rows.append((f"{label}" + (" (source)" if label == source else ""), digits))
    title = f"{type(model).__name__}: each digit in the style of the first {source}s of the {where} set"
    return plot_digit_rows(rows, path, title)


def animate_label_codes(
    loaded: list[dict[str, np.ndarray]], epochs: list[str], labels: torch.Tensor, path: Path, title: str
) -> Path:

    figure = new_figure(figsize=(12, 5.5), dpi=80)
    axes = figure.subplots(LABEL_ROWS, 10 // LABEL_ROWS, sharex=True, sharey=True)

    def show_codes(index: int) -> list[Any]:
        for ax in axes.flat:
            ax.clear()
        drawn = scatter_per_label(axes, torch.from_numpy(loaded[index]["codes"]), labels)
        figure.suptitle(f"{title}: z[0], z[1] of each digit's test codes, {epochs[index]}")
        return drawn

    return save_animation(figure, show_codes, len(loaded), path)


ANIMATED_SIDE = 8
"""The grid of each digit's manifold in the animation: 8 x 8 digits at 28 pixels (the figure's 15 x 15 made a GIF
of 17.6 MB)."""


def _label_manifolds_frame(model: Any, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return pixel_bytes(label_manifolds_image(model, ANIMATED_SIDE))


register_animation("label_manifolds", Animation("manifold", _label_manifolds_frame, animate_manifold))
register_animation("label_distributions", Animation("codes", codes_frame, animate_label_codes))
