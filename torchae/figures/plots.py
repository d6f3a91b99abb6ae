"""Figure plumbing shared by every part: rows of digits, loss curves, scatter plots of codes by digit, PCA, and
saving a figure atomically. matplotlib's object API (no pyplot state, no display), imported when a figure is drawn,
so that registering the parts' figures costs nothing at import."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from torchae.safety import atomic_write

__all__ = [
    "digit_colours",
    "encode_all",
    "image_axes",
    "latent_points",
    "new_figure",
    "pca_2d",
    "plot_digit_rows",
    "plot_loss_curves",
    "save",
    "scatter_by_digit",
    "scatter_codes",
]


def new_figure(figsize: tuple[float, float], dpi: int = 100) -> Any:
    """A matplotlib ``Figure`` with an Agg canvas: drawn without pyplot or a display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def digit_colours() -> Any:
    """The colour map of the ten digits (matplotlib's ``tab10``)."""
    import matplotlib

    return matplotlib.colormaps["tab10"]


def plot_digit_rows(rows: Sequence[tuple[str, torch.Tensor]], path: Path, title: str) -> Path:
    """Save labelled rows of ``(n, 1, 28, 28)`` images, one row per ``(label, images)``, as a PNG."""
    from torchvision.utils import make_grid

    n = max(images.shape[0] for _, images in rows)
    figure = new_figure(figsize=(max(n, 4) * 0.9, 1.0 * len(rows) + 0.6), dpi=100)
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
        figure.savefig(partial, bbox_inches="tight")  # the rows' labels sit left of the axes: keep them whole
    return path


def plot_loss_curves(history: Sequence[dict[str, float]], path: Path, title: str) -> Path:
    """Save the per-epoch ``train_loss`` and ``val_loss`` of ``history`` (one dict per epoch) as a PNG."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(figsize=(6, 4), dpi=100)
    ax = figure.subplots()
    for key, label in (("train_loss", "loss (train)"), ("val_loss", "val_loss (test set)")):
        points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, marker="o" if len(points) < 30 else None, label=label)
    ax.set_xlabel("epoch (from 0, as history.csv and the checkpoints count)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path


def encode_all(model: Any, images: torch.Tensor, labels: torch.Tensor | None = None, chunk: int = 1000) -> torch.Tensor:
    """The codes of every image, encoded ``chunk`` at a time on the model's device, with what the model takes beside
    each image (its ``inputs_for``: a conditional model's labels)."""
    parts = images.split(chunk)
    label_parts = labels.split(chunk) if labels is not None else [None] * len(parts)
    return torch.cat(
        [
            model.encode(
                *model.inputs_for(part.to(model.device), None if part_labels is None else part_labels.to(model.device))
            )
            for part, part_labels in zip(parts, label_parts)
        ]
    )


def _on(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device)


def pca_2d(codes: torch.Tensor) -> torch.Tensor:
    """The codes projected onto their first two principal components, ``(N, 2)``; each component's sign is chosen
    so that its largest loading is positive (an SVD's signs are arbitrary)."""
    flat = codes.flatten(1).double()
    centred = flat - flat.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:2]
    signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
    return (centred @ (components * signs).T).float()


def latent_points(codes: torch.Tensor) -> tuple[torch.Tensor, tuple[str, str]]:
    """Two coordinates per code for a scatter plot, and their axis labels: the code itself when it is 2-D, else its
    first two principal components."""
    if codes.flatten(1).shape[1] == 2:
        return codes.flatten(1).float().cpu(), ("z[0]", "z[1]")
    return pca_2d(codes).cpu(), ("principal component 1", "principal component 2")


def scatter_by_digit(
    ax: Any, points: torch.Tensor, labels: torch.Tensor | None, legend: str = "upper right"
) -> list[Any]:
    if labels is None:
        return [ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)]
    colours = digit_colours()
    drawn = []
    for digit in range(10):
        chosen = labels.cpu() == digit
        drawn.append(
            ax.scatter(points[chosen, 0], points[chosen, 1], s=2, alpha=0.6, color=colours(digit), label=str(digit))
        )
    ax.legend(title="digit", markerscale=5, loc=legend, fontsize=8)
    return drawn


def scatter_codes(
    points: torch.Tensor,
    labels: torch.Tensor | None,
    axis_labels: tuple[str, str],
    title: str,
    path: Path,
    legend: str = "upper right",
) -> Path:
    """Save a scatter plot of 2-D ``points`` coloured by digit, with its axis labels and title."""
    figure = new_figure((6.5, 6))
    ax = figure.subplots()
    scatter_by_digit(ax, points, labels, legend=legend)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    figure.tight_layout()
    return save(figure, path)


def image_axes(size: float) -> tuple[Any, Any]:
    """A square figure of ``size`` inches with one axes for an image, without ticks."""
    figure = new_figure(figsize=(size, size), dpi=100)
    ax = figure.subplots()
    ax.set_xticks([])
    ax.set_yticks([])
    return figure, ax


def save(figure: Any, path: Path) -> Path:
    """Write ``figure`` to ``path`` atomically (a stop leaves the old file or the new one)."""
    with atomic_write(path) as partial:
        figure.savefig(partial)
    return path
