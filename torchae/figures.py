"""The article's figures, drawn with matplotlib's object API (no pyplot state, no display needed).

- ``reconstructions.png``: 10 test digits over their reconstructions (every model);
- ``denoising.png``: originals / noisy / denoised rows (denoising);
- ``sparse_code_dimensions.png``: the mean code with one dimension at a time set to its maximum over the test set,
  decoded (sparse; all code dimensions);
- ``loss_curves.png``: train and validation loss per epoch (every model, when a history is given).

Which figures a model draws is its experiment's ``figures`` (:mod:`torchae.registry`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid

from torchae.registry import experiment_of

Rows = tuple[list[tuple[str, torch.Tensor]], str]
"""Labelled rows of images, and a title."""

__all__ = ["FIGURES", "ArticleFigures", "draw_figures", "plot_digit_rows", "plot_loss_curves", "sparse_dimension_codes"]


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
    figure.savefig(path)
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
    figure.savefig(path)
    return path


def sparse_dimension_codes(codes: torch.Tensor) -> torch.Tensor:
    """The article's experiment: one copy of the mean code per dimension, that dimension set to its maximum."""
    flat = codes.flatten(1)
    probes = flat.mean(0).repeat(flat.shape[1], 1)
    probes.diagonal().copy_(flat.max(0).values)
    return probes.reshape(-1, *codes.shape[1:])


def reconstruction_rows(model: Any, shown: torch.Tensor, images: torch.Tensor, seed: int) -> Rows:
    """Test digits over their reconstructions (every model)."""
    return [("original", shown), ("decoded", model(shown))], "test digits and their reconstructions"


def denoising_rows(model: Any, shown: torch.Tensor, images: torch.Tensor, seed: int) -> Rows:
    """Originals, noisy inputs (noise seeded by ``seed``) and their denoising (a model with ``add_noise``)."""
    noisy = model.add_noise(shown, torch.Generator(device=shown.device).manual_seed(seed))
    return [("original", shown), ("noisy", noisy), ("denoised", model(noisy))], "noisy inputs and their denoising"


def sparse_code_dimension_rows(model: Any, shown: torch.Tensor, images: torch.Tensor, seed: int) -> Rows:
    """The mean code with one dimension at a time set to its maximum over ``images``, decoded."""
    codes = torch.cat([model.encode(chunk.to(shown.device)) for chunk in images.split(1000)])
    decoded = model.decode(sparse_dimension_codes(codes))
    return [("max dim i", decoded)], f"the mean code with dimension i at its maximum, i = 0..{decoded.shape[0] - 1}"


FIGURES: dict[str, Callable[[Any, torch.Tensor, torch.Tensor, int], Rows]] = {
    "reconstructions": reconstruction_rows,
    "denoising": denoising_rows,
    "sparse_code_dimensions": sparse_code_dimension_rows,
}
"""The article's figures by name (the registry says which a model draws), each written to ``NAME.png``."""


@torch.no_grad()
def draw_figures(
    model: Any,
    images: torch.Tensor,
    out_dir: str | Path,
    history: Sequence[dict[str, float]] | None = None,
    n: int = 10,
    seed: int = 0,
) -> list[Path]:
    """Draw the figures of ``model``'s experiment (see :mod:`torchae.registry`) into ``out_dir``, and the loss
    curves when ``history`` is given; returns the written paths.

    Args:
        model: a torchae ``AutoencoderModule``.
        images: the test images ``(N, 1, 28, 28)``; the first ``n`` are shown, all are encoded for the sparse
            experiment.
        out_dir: folder for the PNG files (created if needed).
        history: per-epoch metrics (dicts with ``epoch``, ``train_loss``, ``val_loss``) for the loss curves.
        n: digits per row.
        seed: seed of the noise in the denoising figure.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = type(model).__name__
    was_training = model.training
    model.eval()
    shown = images[:n].to(model.device)
    written = []
    for figure in experiment_of(model).figures:
        rows, title = FIGURES[figure](model, shown, images, seed)
        written.append(plot_digit_rows(rows, out / f"{figure}.png", f"{name}: {title}"))
    if history:
        written.append(plot_loss_curves(history, out / "loss_curves.png", f"{name}: loss per epoch"))
    model.train(was_training)
    return written


def write_history_csv(history: Sequence[dict[str, float]], path: Path) -> Path:
    """Write the per-epoch metrics as CSV (one row per epoch)."""
    keys = sorted({key for row in history for key in row}, key=lambda k: (k != "epoch", k))
    with path.open("w", newline="") as file:
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

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not (self.enabled or self.write_history):
            return
        out = Path(trainer.log_dir or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.history and self.write_history:
            write_history_csv(self.history, out / "history.csv")
        if not self.enabled:
            return
        datamodule = trainer.datamodule
        images = getattr(datamodule, "val_images", None)
        if images is None:
            return
        paths = draw_figures(pl_module, images, out, self.history, n=self.n)
        print(f"figures: {', '.join(str(p) for p in paths)}")

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
