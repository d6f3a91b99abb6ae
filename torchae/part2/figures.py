"""Part 2's figures: the homotopy between two eights, the deep sparse codes' joint distributions, and the points
models' manifolds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from torchae.figures import TestSet, register_figure
from torchae.figures.plots import new_figure, plot_digit_rows, save
from torchae.part1.figures import interpolation_rows
from torchae.part2.dots import evenly_spaced, sine_dots

__all__ = ["homotopy_pair", "pca_reconstruction"]


def homotopy_pair(labels: torch.Tensor | None, digit: int = 8) -> tuple[int, int]:
    """The article's homotopy ends: the second and third test images of ``digit`` (``x_test[y_test == 8][1:3]``);
    without labels, or with fewer than three of them, the first two images."""
    if labels is None:
        return 0, 1
    chosen = torch.nonzero(labels.cpu() == digit).flatten()
    return (int(chosen[1]), int(chosen[2])) if len(chosen) >= 3 else (0, 1)


@register_figure("homotopy")
def draw_homotopy(model: Any, test: TestSet, path: Path) -> Path:
    """Part 2's homotopy: the straight line between two test eights in pixel space (the images blended), and in code
    space (the codes blended, then decoded), in 10 steps."""
    first, second = homotopy_pair(test.labels)
    a, b = (test.images[i].to(model.device) for i in (first, second))
    title = f"{type(model).__name__}: a straight line between two digits, in pixel space and in code space"
    return plot_digit_rows(interpolation_rows(model, a, b), path, title)


JOINT_DIMENSIONS = (1, 3)
"""The code dimensions of the article's joint plot (``sns.jointplot(codes[:, 1], codes[:, 3])``)."""


@register_figure("joint_codes")
def draw_joint_codes(model: Any, test: TestSet, path: Path) -> Path:
    """The article's joint plot: the test codes' dimensions 1 and 3 against each other, with each one's histogram on
    the margins (seaborn's ``jointplot``, drawn with matplotlib)."""
    codes = test.codes.flatten(1).float().cpu()
    i, j = JOINT_DIMENSIONS if codes.shape[1] > max(JOINT_DIMENSIONS) else (0, min(1, codes.shape[1] - 1))
    figure = new_figure(figsize=(6.5, 6.5), dpi=100)
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
    return save(figure, path)


PAIR_DIMENSIONS = 4
"""Code dimensions in the pair plot: the first four."""


@register_figure("code_pairs")
def draw_code_pairs(model: Any, test: TestSet, path: Path) -> Path:
    """The joint distributions of every pair of the first four code dimensions (a pair plot: each dimension's
    histogram on the diagonal, the test codes' scatter of two dimensions off it)."""
    codes = test.codes.flatten(1).float().cpu()
    k = min(PAIR_DIMENSIONS, codes.shape[1])
    figure = new_figure(figsize=(2.2 * k + 0.5, 2.2 * k + 0.5), dpi=100)
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
    return save(figure, path)


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


@register_figure("dots_manifold")
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
    figure = new_figure(figsize=(9, 7.5), dpi=100)
    ax = figure.subplots()
    ax.set_facecolor("0.85")
    ax.set_xlim(-2.5, 2.5)
    ax.scatter(dots[:, 0], dots[:, 1], zorder=1, s=8, label="points")
    ax.plot(curve[:, 0], curve[:, 1], color="red", linewidth=4, zorder=10, label="the curve (sin)")
    ax.plot(reconstructed[:, 0], reconstructed[:, 1], color="white", linewidth=8, zorder=3, label="autoencoder")
    ax.plot(pca[:, 0], pca[:, 1], color="orange", linewidth=4, zorder=4, label="PCA")
    ax.scatter(
        reconstructed[marked, 0],
        reconstructed[marked, 1],
        color=colours,
        marker="*",
        s=150,
        zorder=5,
        label=f"{len(marked)} of the points' reconstructions (stars)",
    )
    ax.scatter(
        dots[marked, 0],
        dots[marked, 1],
        color=colours,
        s=60,
        zorder=6,
        edgecolors="k",
        label=f"{len(marked)} points, evenly spaced (circles; each star in its circle's colour)",
    )
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(f"{type(model).__name__}: its manifold and PCA's, over {len(dots):,} test points")
    figure.tight_layout()
    return save(figure, path)
