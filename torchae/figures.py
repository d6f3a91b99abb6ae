"""The article's figures, drawn with matplotlib's object API (no pyplot state, no display needed).

- ``reconstructions.png``: 10 test digits over their reconstructions (every model);
- ``denoising.png``: originals / noisy / denoised rows (denoising);
- ``sparse_code_dimensions.png``: the mean code with one dimension at a time set to its maximum over the test set,
  decoded (sparse; all code dimensions);
- ``codes_2d.png``: the test codes projected to 2-D by PCA, coloured by digit (every model);
- ``interpolation.png``: two test digits of different classes blended in 10 steps, in pixel space and in code
  space (decoded), the figure that opens the next part of the article's series (every model);
- ``homotopy.png``: part 2's straight line between two test eights, in pixel space and in code space (conv);
- ``joint_codes.png``: the joint distribution of code dimensions 1 and 3 with their marginals, part 2's joint plot
  (the deep sparse models); ``code_pairs.png``: every pair of the first four code dimensions;
- ``dots_manifold.png``: part 2's points, the curve, the manifold a points model learned and PCA's (the points models);
- ``two_curves.png``: part 4's points around two curves and the manifold of each that the conditional model learned;
- ``manifold.png`` and ``latent_distribution.png``: part 3's decoded latent grid and the test codes by digit (VAE);
- ``generated_digits.png`` (each digit from codes drawn from N(0, I)), ``label_manifolds.png`` (the latent grid
  decoded with each label), ``label_distributions.png`` (the codes of each digit's test images) and
  ``style_transfer.png`` (ten sevens of the training set and each digit written in their style): part 4's (CVAE);
- ``loss_curves.png``: train and validation loss per epoch (every model, when a history is given).

Which figures a model draws is its class's ``figures`` (:class:`~torchae.models.AutoencoderModule`).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid

from torchae.dots import evenly_spaced, sine_dots, two_curves
from torchae.errors import require
from torchae.safety import atomic_write

__all__ = [
    "DEFAULT_FIGURES",
    "FIGURES",
    "ArticleFigures",
    "TestSet",
    "draw_figures",
    "interpolation_rows",
    "pca_2d",
    "plot_digit_rows",
    "plot_loss_curves",
    "sparse_dimension_codes",
]


def plot_digit_rows(rows: Sequence[tuple[str, torch.Tensor]], path: Path, title: str) -> Path:
    """Save labelled rows of ``(n, 1, 28, 28)`` images, one row per ``(label, images)``, as a PNG."""
    n = max(images.shape[0] for _, images in rows)
    figure = Figure(figsize=(max(n, 4) * 0.9, 1.0 * len(rows) + 0.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (label, images) in zip(axes, rows):
        grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=n, padding=2, pad_value=1.0)
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path


def plot_loss_curves(history: Sequence[dict[str, float]], path: Path, title: str) -> Path:
    """Save the per-epoch ``train_loss`` and ``val_loss`` of ``history`` (one dict per epoch) as a PNG."""
    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for key, label in (("train_loss", "loss (train)"), ("val_loss", "val_loss (test set)")):
        points = [(row["epoch"] + 1, row[key]) for row in history if row.get(key) is not None]
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, marker="o" if len(points) < 30 else None, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path


def sparse_dimension_codes(codes: torch.Tensor) -> torch.Tensor:
    """The article's experiment: one copy of the mean code per dimension, that dimension set to its maximum."""
    flat = codes.flatten(1)
    probes = flat.mean(0).repeat(flat.shape[1], 1)
    probes.diagonal().copy_(flat.max(0).values)
    return probes.reshape(-1, *codes.shape[1:])


@dataclass(frozen=True)
class TestSet:
    """What the figures are drawn from.

    Attributes:
        images: the test images ``(N, 1, 28, 28)``; the first ``n`` are shown.
        codes: the codes of all of them (encoded once, for every figure of the code space).
        labels: their digits ``(N,)``, or ``None``.
        n: digits per row.
        seed: seed of the noise in the denoising figure and of the codes of the generated digits.
        train_images: training images, where a figure takes its examples from the training set as the article does
            (the style transfer's sevens); ``None``: the test images stand in.
        train_labels: their digits.
        style_digit: the digit whose first ``n`` training images give the style transfer its style.
    """

    images: torch.Tensor
    codes: torch.Tensor
    labels: torch.Tensor | None = None
    n: int = 10
    seed: int = 0
    train_images: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    style_digit: int = 7


def encode_all(model: Any, images: torch.Tensor, labels: torch.Tensor | None = None, chunk: int = 1000) -> torch.Tensor:
    """The codes of every image, encoded ``chunk`` at a time on the model's device; a conditional model (the CVAE)
    encodes each image with its label."""
    if not getattr(model, "conditional", False):
        return torch.cat([model.encode(part.to(model.device)) for part in images.split(chunk)])
    if labels is None:
        raise ValueError(f"{type(model).__name__} encodes images with their labels: give the labels")
    pairs = zip(images.split(chunk), labels.split(chunk))
    return torch.cat([model.encode(part.to(model.device), digits.to(model.device)) for part, digits in pairs])


def pca_2d(codes: torch.Tensor) -> torch.Tensor:
    """The codes projected onto their first two principal components, ``(N, 2)``; each component's sign is chosen
    so that its largest loading is positive (an SVD's signs are arbitrary)."""
    flat = codes.flatten(1).double()
    centred = flat - flat.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:2]
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    return (centred @ (components * signs).T).float()


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


def draw_reconstructions(model: Any, test: TestSet, path: Path) -> Path:
    shown = test.images[: test.n].to(model.device)
    if getattr(model, "conditional", False):
        decoded = model(shown, test.labels[: test.n].to(model.device))
    else:
        decoded = model(shown)
    rows = [("original", shown), ("decoded", decoded)]
    return plot_digit_rows(rows, path, f"{type(model).__name__}: test digits and their reconstructions")


def draw_denoising(model: Any, test: TestSet, path: Path) -> Path:
    shown = test.images[: test.n].to(model.device)
    noisy = model.add_noise(shown, torch.Generator(device=shown.device).manual_seed(test.seed))
    rows = [("original", shown), ("noisy", noisy), ("denoised", model(noisy))]
    return plot_digit_rows(rows, path, f"{type(model).__name__}: noisy inputs and their denoising")


def draw_sparse_code_dimensions(model: Any, test: TestSet, path: Path) -> Path:
    decoded = model.decode(sparse_dimension_codes(test.codes))
    title = f"{type(model).__name__}: the mean code with dimension i at its maximum, i = 0..{decoded.shape[0] - 1}"
    return plot_digit_rows([("max dim i", decoded)], path, title)


def draw_codes_2d(model: Any, test: TestSet, path: Path) -> Path:
    """The test codes by PCA onto two dimensions, coloured by digit."""
    points = pca_2d(test.codes).cpu()
    figure = Figure(figsize=(6.5, 6), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    _scatter_by_digit(ax, points, test.labels, legend="best")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(f"{type(model).__name__}: {len(points):,} test codes, PCA to 2-D")
    figure.tight_layout()
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path


def draw_interpolation(model: Any, test: TestSet, path: Path) -> Path:
    """Two test digits of different classes blended in 10 steps, in pixel space and in code space."""
    first, second = interpolation_pair(test.labels)
    a, b = (test.images[i].to(model.device) for i in (first, second))
    title = f"{type(model).__name__}: from one digit to another, in pixel space and in code space"
    return plot_digit_rows(interpolation_rows(model, a, b), path, title)


def homotopy_pair(labels: torch.Tensor | None, digit: int = 8) -> tuple[int, int]:
    """The article's homotopy ends: the second and third test images of ``digit`` (``x_test[y_test == 8][1:3]``);
    without labels, or with fewer than three of them, the first two images."""
    if labels is None:
        return 0, 1
    chosen = torch.nonzero(labels.cpu() == digit).flatten()
    return (int(chosen[1]), int(chosen[2])) if len(chosen) >= 3 else (0, 1)


def draw_homotopy(model: Any, test: TestSet, path: Path) -> Path:
    """Part 2's homotopy: the straight line between two test eights in pixel space (the images blended), and in code
    space (the codes blended, then decoded), in 10 steps."""
    first, second = homotopy_pair(test.labels)
    a, b = (test.images[i].to(model.device) for i in (first, second))
    title = f"{type(model).__name__}: a straight line between two digits, in pixel space and in code space"
    return plot_digit_rows(interpolation_rows(model, a, b), path, title)


def _save(figure: Figure, path: Path) -> Path:
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path


JOINT_DIMENSIONS = (1, 3)
"""The code dimensions of the article's joint plot (``sns.jointplot(codes[:, 1], codes[:, 3])``)."""


def draw_joint_codes(model: Any, test: TestSet, path: Path) -> Path:
    """The article's joint plot: the test codes' dimensions 1 and 3 against each other, with each one's histogram on
    the margins (seaborn's ``jointplot``, drawn with matplotlib)."""
    codes = test.codes.flatten(1).float().cpu()
    i, j = JOINT_DIMENSIONS if codes.shape[1] > max(JOINT_DIMENSIONS) else (0, min(1, codes.shape[1] - 1))
    figure = Figure(figsize=(6.5, 6.5), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, width_ratios=(5, 1), height_ratios=(1, 5), hspace=0.05, wspace=0.05)
    joint = figure.add_subplot(grid[1, 0])
    top = figure.add_subplot(grid[0, 0], sharex=joint)
    right = figure.add_subplot(grid[1, 1], sharey=joint)
    joint.scatter(codes[:, i], codes[:, j], s=2, alpha=0.3)
    top.hist(codes[:, i].numpy(), bins=50)
    right.hist(codes[:, j].numpy(), bins=50, orientation="horizontal")
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    joint.set_xlabel(f"z[{i}]")
    joint.set_ylabel(f"z[{j}]")
    figure.suptitle(
        f"{type(model).__name__}: the joint distribution of z[{i}] and z[{j}] over {len(codes):,} test codes"
    )
    return _save(figure, path)


PAIR_DIMENSIONS = 4
"""Code dimensions in the pair plot: the first four."""


def draw_code_pairs(model: Any, test: TestSet, path: Path) -> Path:
    """The joint distributions of every pair of the first four code dimensions (a pair plot: each dimension's
    histogram on the diagonal, the test codes' scatter of two dimensions off it)."""
    codes = test.codes.flatten(1).float().cpu()
    k = min(PAIR_DIMENSIONS, codes.shape[1])
    figure = Figure(figsize=(2.2 * k + 0.5, 2.2 * k + 0.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(k, k, squeeze=False)
    for row in range(k):
        for column in range(k):
            ax = axes[row, column]
            if row == column:
                ax.hist(codes[:, row].numpy(), bins=40)
            else:
                ax.scatter(codes[:, column], codes[:, row], s=1, alpha=0.2)
            ax.set_xlabel(f"z[{column}]" if row == k - 1 else "")
            ax.set_ylabel(f"z[{row}]" if column == 0 else "")
            ax.tick_params(labelsize=6)
    figure.suptitle(f"{type(model).__name__}: pairs of code dimensions over {len(codes):,} test codes")
    figure.tight_layout()
    return _save(figure, path)


DOT_COLOURS = ("r", "g", "c", "y", "m")
"""The article's colours of its marked points (``colors = ["r", "g", "c", "y", "m"]``)."""
MARKED_DOTS = 25


def pca_reconstruction(points: torch.Tensor, components: int = 1) -> torch.Tensor:
    """``points`` projected onto their first ``components`` principal components and mapped back (scikit-learn's
    ``PCA(k).inverse_transform(fit_transform(x))``), computed in torch."""
    flat = points.double()
    mean = flat.mean(0)
    _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    basis = vh[:components]
    return ((flat - mean) @ basis.T @ basis + mean).to(points.dtype)


def draw_dots_manifold(model: Any, test: TestSet, path: Path) -> Path:
    """Part 2's figure of the points: the noisy points (blue), the curve they were drawn around (red), the model's
    reconstructions of them, the manifold it learned (white), PCA's line (orange), and 25 evenly spaced points
    (circles) with their reconstructions (stars, in the same colours)."""
    dots = test.images.float().cpu()
    reconstructed = torch.cat([model(part.to(model.device)).cpu() for part in dots.split(1000)])
    curve = sine_dots(len(dots), noise=0.0).curve
    pca = pca_reconstruction(dots)
    marked = evenly_spaced(len(dots), MARKED_DOTS)
    colours = [DOT_COLOURS[i % len(DOT_COLOURS)] for i in range(len(marked))]
    figure = Figure(figsize=(9, 7.5), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.set_facecolor("0.85")
    ax.set_xlim(-2.5, 2.5)
    ax.scatter(dots[:, 0], dots[:, 1], zorder=1, s=8, label="points")
    ax.plot(curve[:, 0], curve[:, 1], color="red", linewidth=4, zorder=10, label="the curve (sin)")
    ax.plot(reconstructed[:, 0], reconstructed[:, 1], color="white", linewidth=8, zorder=3, label="autoencoder")
    ax.plot(pca[:, 0], pca[:, 1], color="orange", linewidth=4, zorder=4, label="PCA")
    ax.scatter(reconstructed[marked, 0], reconstructed[marked, 1], color=colours, marker="*", s=150, zorder=5)
    ax.scatter(dots[marked, 0], dots[marked, 1], color=colours, s=60, zorder=6, edgecolors="k")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(f"{type(model).__name__}: the manifold it learned from {len(dots):,} points, and PCA's")
    figure.tight_layout()
    return _save(figure, path)


def draw_two_curves(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's figure of the points: the sine curve's points (blue) and the circle's (green), the curves (red and
    yellow), the model's reconstructions of the points given their curves (white), and each curve's learned manifold
    (its codes' range decoded with its label, black)."""
    require(test.labels is not None, "labels", None, "each point's curve", "TwoCurvesDataModule's labels")
    dots, labels = test.images.float().cpu(), test.labels.cpu()
    reconstructed = model(dots.to(model.device), labels.to(model.device)).detach().cpu()
    curves = two_curves(len(dots) // 2, noise=0.0).curves
    figure = Figure(figsize=(9, 6), dpi=100)
    FigureCanvasAgg(figure)
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
    return _save(figure, path)


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


LABEL_ROWS = 2
"""Rows of the per-label panels (digits 0-4 above, 5-9 below)."""


def label_manifolds_image(model: Any, n: int = MANIFOLD_SIDE) -> torch.Tensor:
    """The article's manifold for each digit 0-9, tiled in two rows of five: ``(2 * 28 n, 5 * 28 n)``."""
    manifolds = torch.stack([manifold_image(model, n, label) for label in range(10)])
    side = manifolds.shape[-1]
    return manifolds.reshape(LABEL_ROWS, 10 // LABEL_ROWS, side, side).permute(0, 2, 1, 3).reshape(2 * side, -1)


def _image_axes(size: float) -> tuple[Figure, Any]:
    figure = Figure(figsize=(size, size), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.set_xticks([])
    ax.set_yticks([])
    return figure, ax


def draw_manifold(model: Any, test: TestSet, path: Path) -> Path:
    """The article's manifold: digits decoded from a 15 x 15 grid over the latent plane."""
    figure, ax = _image_axes(8)
    ax.imshow(manifold_image(model).numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(f"{type(model).__name__}: digits decoded from a grid of normal quantiles 0.05-0.95")
    figure.tight_layout()
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path


def latent_points(codes: torch.Tensor) -> tuple[torch.Tensor, tuple[str, str]]:
    """Two coordinates per code for a scatter plot, and their axis labels: the code itself when it is 2-D, else its
    first two principal components."""
    if codes.flatten(1).shape[1] == 2:
        return codes.flatten(1).float().cpu(), ("z[0]", "z[1]")
    return pca_2d(codes).cpu(), ("principal component 1", "principal component 2")


def _scatter_by_digit(
    ax: Any, points: torch.Tensor, labels: torch.Tensor | None, legend: str = "upper right"
) -> list[Any]:
    if labels is None:
        return [ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)]
    colours = matplotlib.colormaps["tab10"]
    drawn = []
    for digit in range(10):
        chosen = labels.cpu() == digit
        drawn.append(
            ax.scatter(points[chosen, 0], points[chosen, 1], s=2, alpha=0.6, color=colours(digit), label=str(digit))
        )
    ax.legend(title="digit", markerscale=5, loc=legend, fontsize=8)
    return drawn


def draw_latent_distribution(model: Any, test: TestSet, path: Path) -> Path:
    """The test images' codes (for a VAE, the means of ``q(z|x)``), coloured by digit."""
    points, (x_label, y_label) = latent_points(test.codes)
    figure = Figure(figsize=(6.5, 6), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    _scatter_by_digit(ax, points, test.labels)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(f"{type(model).__name__}: the codes of {len(points):,} test digits")
    figure.tight_layout()
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path


def draw_generated_digits(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's generated digits: a row per label, each digit decoded from a code drawn from ``N(0, I)``."""
    generator = torch.Generator(device=model.device).manual_seed(test.seed)
    rows = [(f"digit {label}", model.sample(test.n, label, generator=generator)) for label in range(10)]
    return plot_digit_rows(rows, path, f"{type(model).__name__}: each digit from codes drawn from N(0, I)")


def draw_label_manifolds(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's manifolds: for each label, the digits decoded from the 15 x 15 grid over the first two latent
    dimensions (the others 0)."""
    figure, ax = _image_axes(8)
    figure.set_size_inches(16, 7)
    ax.imshow(label_manifolds_image(model).numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(f"{type(model).__name__}: digits 0-4 and 5-9 decoded from a grid over z[0], z[1] (normal quantiles)")
    figure.tight_layout()
    return _save(figure, path)


LABEL_CODE_LIMIT = 5.0
"""The article's axes of the per-label code plots: -5 to 5."""


def _scatter_per_label(axes: Any, codes: torch.Tensor, labels: torch.Tensor) -> list[Any]:
    colours = matplotlib.colormaps["tab10"]
    drawn = []
    for label, ax in enumerate(axes.flat):
        chosen = codes[labels.cpu() == label]
        drawn.append(ax.scatter(chosen[:, 0], chosen[:, 1], s=2, alpha=0.5, color=colours(label)))
        ax.set_xlim(-LABEL_CODE_LIMIT, LABEL_CODE_LIMIT)
        ax.set_ylim(-LABEL_CODE_LIMIT, LABEL_CODE_LIMIT)
        ax.set_title(f"digit {label}", fontsize=10)
    return drawn


def draw_label_distributions(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's code distributions: for each label, z[0] and z[1] of its test images' mean codes."""
    require(test.labels is not None, "labels", None, "the test images' labels", "MNIST's test labels")
    figure = Figure(figsize=(15, 6.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(LABEL_ROWS, 10 // LABEL_ROWS, sharex=True, sharey=True)
    _scatter_per_label(axes, test.codes.float().cpu(), test.labels)
    figure.suptitle(f"{type(model).__name__}: z[0] and z[1] of each digit's test codes")
    figure.tight_layout()
    return _save(figure, path)


def style_sources(test: TestSet) -> tuple[torch.Tensor, str]:
    """The first ``test.n`` images of ``test.style_digit`` in the training set (the test set's when no training
    images were given; the article's first ten sevens), and which set they come from."""
    images, labels, where = test.train_images, test.train_labels, "training"
    if images is None or labels is None:
        images, labels, where = test.images, test.labels, "test"
    return images[labels.cpu() == test.style_digit][: test.n], where


def draw_style_transfer(model: Any, test: TestSet, path: Path) -> Path:
    """Part 4's style transfer: the style's images (the article's ten sevens) in their own row, and each other digit
    written in their style, black on white as the article draws it."""
    sources, where = style_sources(test)
    sources, source = sources.to(model.device), test.style_digit
    rows = []
    for label in range(10):
        digits = sources if label == source else model.style_transfer(sources, source, label)
        rows.append((f"{label}" + (" (source)" if label == source else ""), 1 - digits))
    title = f"{type(model).__name__}: each digit in the style of the first {source}s of the {where} set"
    return plot_digit_rows(rows, path, title)


ANIMATION_EPOCHS = frozenset(int(e) for e in (np.arange(0, 59) ** 1.701).astype(int)) | frozenset(range(10))
"""The article's ``save_epochs``: every epoch up to 9, then ever sparser up to 999 (0-based, as Keras counts)."""
ANIMATION_FOLDER = "animation"


def record_frame(
    model: Any, images: torch.Tensor, folder: Path, epoch: int, labels: torch.Tensor | None = None
) -> Path:
    """Save the animation frame of ``epoch``: the decoded manifold (each label's, for a conditional model) and the
    codes of ``images`` (given ``labels``), in inference mode (which draws no random numbers), to
    ``folder/epoch_NNNN.npz``."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        manifold = label_manifolds_image(model) if getattr(model, "conditional", False) else manifold_image(model)
        codes = encode_all(model, images, labels)
    model.train(was_training)
    path = folder / f"epoch_{epoch:04d}.npz"
    pixels = (manifold * 255).round().to(torch.uint8).numpy()
    with atomic_write(path) as partial:
        np.savez_compressed(partial, manifold=pixels, codes=codes.float().cpu().numpy())
    return path


def write_animations(
    folder: Path,
    out: Path,
    labels: torch.Tensor | None,
    title: str,
    names: Sequence[str] = ("manifold", "latent_distribution"),
) -> list[Path]:
    """The training animations ``names`` from the frames in ``folder``: ``manifold.gif`` and
    ``latent_distribution.gif``, one frame per saved epoch (matplotlib's Pillow writer, Pillow being a dependency of
    matplotlib)."""

    frames = sorted(folder.glob("epoch_*.npz"))
    if not frames:
        return []
    epochs = [int(path.stem.split("_")[1]) for path in frames]
    loaded = [dict(np.load(path, allow_pickle=False)) for path in frames]
    written = []
    if "manifold" in names:
        written.append(_animate_manifold(loaded, epochs, out / "manifold.gif", title))
    if "latent_distribution" in names:
        written.append(_animate_codes(loaded, epochs, labels, out / "latent_distribution.gif", title))
    if "label_manifolds" in names:
        written.append(_animate_manifold(loaded, epochs, out / "label_manifolds.gif", title))
    if "label_distributions" in names and labels is not None:
        written.append(_animate_label_codes(loaded, epochs, labels, out / "label_distributions.gif", title))
    return written


def _animate_manifold(loaded: list[dict[str, np.ndarray]], epochs: list[int], path: Path, title: str) -> Path:
    from matplotlib.animation import FuncAnimation

    figure, ax = _image_axes(6)
    height, width = loaded[0]["manifold"].shape
    figure.set_size_inches(6 * width / height, 6.4)
    shown = ax.imshow(loaded[0]["manifold"], cmap="gray", vmin=0, vmax=255, interpolation="nearest")

    def show_manifold(index: int) -> list[Any]:
        shown.set_data(loaded[index]["manifold"])
        ax.set_title(f"{title}: epoch {epochs[index] + 1}")
        return [shown]

    return _save_animation(FuncAnimation(figure, show_manifold, frames=len(loaded)), path)


def _animate_codes(
    loaded: list[dict[str, np.ndarray]], epochs: list[int], labels: torch.Tensor | None, path: Path, title: str
) -> Path:
    from matplotlib.animation import FuncAnimation

    figure = Figure(figsize=(6.5, 6), dpi=80)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    points = [latent_points(torch.from_numpy(frame["codes"]))[0] for frame in loaded]
    every = torch.cat(points)
    low, high = torch.quantile(every, 0.001, dim=0), torch.quantile(every, 0.999, dim=0)

    def show_codes(index: int) -> list[Any]:
        ax.clear()
        drawn = _scatter_by_digit(ax, points[index], labels)
        ax.set_xlim(float(low[0]), float(high[0]))
        ax.set_ylim(float(low[1]), float(high[1]))
        ax.set_title(f"{title}: test codes, epoch {epochs[index] + 1}")
        return drawn

    return _save_animation(FuncAnimation(figure, show_codes, frames=len(loaded)), path)


def _animate_label_codes(
    loaded: list[dict[str, np.ndarray]], epochs: list[int], labels: torch.Tensor, path: Path, title: str
) -> Path:
    from matplotlib.animation import FuncAnimation

    figure = Figure(figsize=(12, 5.5), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.subplots(LABEL_ROWS, 10 // LABEL_ROWS, sharex=True, sharey=True)

    def show_codes(index: int) -> list[Any]:
        for ax in axes.flat:
            ax.clear()
        drawn = _scatter_per_label(axes, torch.from_numpy(loaded[index]["codes"]), labels)
        figure.suptitle(f"{title}: z[0], z[1] of each digit's test codes, epoch {epochs[index] + 1}")
        return drawn

    return _save_animation(FuncAnimation(figure, show_codes, frames=len(loaded)), path)


def _save_animation(animation: Any, path: Path) -> Path:
    from matplotlib.animation import PillowWriter

    with atomic_write(path) as partial:
        animation.save(partial, writer=PillowWriter(fps=4))
    return path


FIGURES: dict[str, Callable[[Any, TestSet, Path], Path]] = {
    "reconstructions": draw_reconstructions,
    "denoising": draw_denoising,
    "sparse_code_dimensions": draw_sparse_code_dimensions,
    "codes_2d": draw_codes_2d,
    "interpolation": draw_interpolation,
    "homotopy": draw_homotopy,
    "joint_codes": draw_joint_codes,
    "code_pairs": draw_code_pairs,
    "dots_manifold": draw_dots_manifold,
    "two_curves": draw_two_curves,
    "manifold": draw_manifold,
    "latent_distribution": draw_latent_distribution,
    "generated_digits": draw_generated_digits,
    "label_manifolds": draw_label_manifolds,
    "label_distributions": draw_label_distributions,
    "style_transfer": draw_style_transfer,
}
"""Every figure by name, each written to ``NAME.png`` (a model's ``figures`` says which it draws)."""

DEFAULT_FIGURES = ("reconstructions", "codes_2d", "interpolation")
"""What a model without a ``figures`` attribute draws."""


@torch.no_grad()
def draw_figures(
    model: Any,
    images: torch.Tensor,
    out_dir: str | Path,
    history: Sequence[dict[str, float]] | None = None,
    n: int = 10,
    seed: int = 0,
    labels: torch.Tensor | None = None,
    train_images: torch.Tensor | None = None,
    train_labels: torch.Tensor | None = None,
    style_digit: int = 7,
) -> list[Path]:
    """Draw ``model``'s figures (its ``figures``: reconstructions and the code space by default) into ``out_dir``,
    and the loss curves when ``history`` is given; returns the written paths.

    Args:
        model: a torchae ``AutoencoderModule``.
        images: the test images ``(N, 1, 28, 28)``.
        out_dir: folder for the PNG files (created if needed).
        history: per-epoch metrics (dicts with ``epoch``, ``train_loss``, ``val_loss``) for the loss curves.
        n: digits per row.
        seed: seed of the noise in the denoising figure.
        labels: the digits of ``images``, for the code-space figures (and a conditional model's codes).
        train_images: training images, for the figures that take their examples from the training set (the style
            transfer's sevens); ``None``: the test images stand in.
        train_labels: their digits.
        style_digit: the digit whose first ``n`` training images give the style transfer its style.
    """
    check_digits_per_row(n, "n")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    codes = encode_all(model, images, labels)
    test = TestSet(images, codes, labels, n, seed, train_images, train_labels, style_digit)
    figures = getattr(model, "figures", DEFAULT_FIGURES)
    written = [FIGURES[figure](model, test, out / f"{figure}.png") for figure in figures]
    if history:
        written.append(plot_loss_curves(history, out / "loss_curves.png", f"{type(model).__name__}: loss per epoch"))
    model.train(was_training)
    return written


MAX_DIGITS_PER_ROW = 100


def check_digits_per_row(n: Any, setting: str) -> None:
    """Refuse a count of digits per figure row that is not 1 to :data:`MAX_DIGITS_PER_ROW`, naming ``setting``."""
    ok = not isinstance(n, bool) and isinstance(n, int) and 1 <= n <= MAX_DIGITS_PER_ROW
    require(ok, setting, n, f"an integer from 1 to {MAX_DIGITS_PER_ROW}", "10")


def write_history_csv(history: Sequence[dict[str, float]], path: Path) -> Path:
    """Write the per-epoch metrics as CSV (one row per epoch)."""
    keys = sorted({key for row in history for key in row}, key=lambda k: (k != "epoch", k))
    with atomic_write(path) as partial, partial.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    return path


class ArticleFigures(pl.Callback):
    """Keeps the per-epoch losses (saved in checkpoints, so a resumed run keeps its whole curve) and, when ``fit``
    ends, writes ``history.csv`` and the article's figures into the run's log folder.

    Args:
        enabled: draw the figures at the end of ``fit`` (``history.csv`` is written either way).
        n: digits per row.
        write_history: write ``history.csv`` at the end of ``fit`` (``False`` keeps the history in memory only).
    """

    def __init__(self, enabled: bool = True, n: int = 10, write_history: bool = True) -> None:
        check_digits_per_row(n, "figures.n")
        self.enabled = enabled
        self.n = n
        self.write_history = write_history
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": trainer.current_epoch}
        for key, value in trainer.callback_metrics.items():
            if key.startswith(("train_", "val_")):
                row[key] = float(value)
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]
        self._record_frame(trainer, pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A resumed run starts its animation with the frames its checkpoint's run saved before the stop."""
        checkpoint = Path(trainer.ckpt_path) if trainer.ckpt_path else None
        if checkpoint is None or not getattr(pl_module, "animations", ()) or not trainer.is_global_zero:
            return
        if not trainer.loggers:
            return
        earlier = checkpoint.resolve().parent.parent / ANIMATION_FOLDER
        folder = Path(trainer.loggers[0].log_dir) / ANIMATION_FOLDER
        if not earlier.is_dir() or earlier == folder.resolve():
            return
        folder.mkdir(parents=True, exist_ok=True)
        for frame in sorted(earlier.glob("epoch_*.npz")):
            if not (folder / frame.name).exists():
                shutil.copy2(frame, folder / frame.name)

    def _record_frame(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At the article's epochs, a frame of the model's training animations (its ``animations``), saved in the
        run's ``animation/`` folder as it is drawn, so a resumed run keeps the frames before the stop."""
        images = getattr(trainer.datamodule, "val_images", None)
        if not self.enabled or not getattr(pl_module, "animations", ()) or images is None:
            return
        if trainer.current_epoch not in ANIMATION_EPOCHS or not trainer.is_global_zero or not trainer.loggers:
            return
        folder = Path(trainer.loggers[0].log_dir) / ANIMATION_FOLDER  # no collective call: rank 0 only
        labels = getattr(trainer.datamodule, "val_labels", None)
        record_frame(pl_module, images, folder, trainer.current_epoch, labels)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.enabled or self.write_history):
            return
        out = Path(trainer.log_dir or trainer.default_root_dir)  # under DDP a collective call: every rank makes it
        if not trainer.is_global_zero:
            return
        out.mkdir(parents=True, exist_ok=True)
        if self.history and self.write_history:
            write_history_csv(self.history, out / "history.csv")
        if not self.enabled:
            return
        datamodule = trainer.datamodule
        images = getattr(datamodule, "val_images", None)
        if images is None:
            return
        labels = getattr(datamodule, "val_labels", None)
        train = {"train_images": getattr(datamodule, "train_images", None)}
        train["train_labels"] = getattr(datamodule, "train_labels", None)
        paths = draw_figures(pl_module, images, out, self.history, n=self.n, labels=labels, **train)
        if getattr(pl_module, "animations", ()):
            frames = out / ANIMATION_FOLDER
            paths += write_animations(frames, out, labels, type(pl_module).__name__, pl_module.animations)
        print(f"figures: {', '.join(str(p) for p in paths)}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A run stopped early (a signal, an error) still leaves its ``history.csv`` up to date."""
        if self.write_history and self.history and trainer.is_global_zero and trainer.loggers:
            folder = Path(trainer.loggers[0].log_dir)  # no collective call while stopping
            if folder.is_dir():
                write_history_csv(self.history, folder / "history.csv")

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
