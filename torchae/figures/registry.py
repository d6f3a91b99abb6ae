"""The open registry of figures: each part registers the figures it draws beside its models
(``@register_figure("manifold")``), a model names the ones it draws (its ``figures``), and one drawing path,
:func:`draw_figures`, serves ``torchae fit`` and ``torchae figures`` alike."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from torchae.errors import ConfigError, require
from torchae.figures.plots import encode_all, plot_loss_curves

__all__ = [
    "FIGURES",
    "FIGURE_OPTIONS",
    "MAX_DIGITS_PER_ROW",
    "FigureOptions",
    "TestSet",
    "check_digits_per_row",
    "draw_figures",
    "figure_options",
    "register_figure",
    "uses_training_set",
]

DrawFigure = Callable[[Any, "TestSet", Path], Path]
Drawer = TypeVar("Drawer", bound=DrawFigure)

FIGURES: dict[str, DrawFigure] = {}
"""Every registered figure by name, each written to ``NAME.png`` (a model's ``figures`` says which it draws)."""


@dataclass(frozen=True)
class FigureOptions:
    """What a figure takes besides the model and the test set.

    Attributes:
        defaults: its options with their defaults (the style transfer's ``style_digit``: 7), set from the command
            line as ``torchae figures CKPT --options.NAME VALUE``.
        check: checks the options' values before any figure is drawn (raises a ``UserError`` naming the fix).
        training_set: whether it takes its examples from the training set, as the article does.
    """

    defaults: dict[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None
    training_set: bool = False


FIGURE_OPTIONS: dict[str, FigureOptions] = {}
"""What each registered figure takes besides the model and the test set."""


def register_figure(
    name: str,
    options: dict[str, Any] | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
    training_set: bool = False,
) -> Callable[[Drawer], Drawer]:
    """Register the decorated function ``draw(model, test, path) -> path`` as figure ``name``; it reads its
    ``options`` (with their defaults) from ``test.options``, after ``check`` has passed them.

    Raises:
        ValueError: another function already registered ``name``.
    """

    def register(draw: Drawer) -> Drawer:
        known = FIGURES.get(name)
        if known is not None and known.__qualname__ != draw.__qualname__:
            raise ValueError(f"figure {name!r} is already registered by {known.__module__}.{known.__qualname__}")
        FIGURES[name] = draw
        FIGURE_OPTIONS[name] = FigureOptions(dict(options or {}), check, training_set)
        return draw

    return register


def figure_options(model: Any, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The options of ``model``'s figures: their defaults, with ``given`` over them, checked.

    Raises:
        ConfigError: ``given`` names an option that none of the model's figures takes.
    """
    declared = [FIGURE_OPTIONS[figure] for figure in getattr(model, "figures", ())]
    options = {key: value for figure in declared for key, value in figure.defaults.items()}
    for key in given or {}:
        if key not in options:
            takes = ", ".join(options) or "none"
            raise ConfigError(
                f"options.{key} is not an option of {type(model).__name__}'s figures (they take: {takes}): leave "
                f"--options.{key} out"
            )
    options.update(given or {})
    for figure in declared:
        if figure.check is not None:
            figure.check(options)
    return options


def uses_training_set(model: Any) -> bool:
    """Whether any of ``model``'s figures takes its examples from the training set."""
    return any(FIGURE_OPTIONS[figure].training_set for figure in getattr(model, "figures", ()))


@dataclass
class TestSet:
    """What the figures are drawn from.

    Attributes:
        images: the test images ``(N, 1, 28, 28)`` (part 2's points ``(N, 2)``); the first ``n`` are shown.
        model: the model whose :attr:`codes` the figures of the code space draw.
        labels: their digits ``(N,)``, or ``None``.
        n: digits per row.
        seed: seed of the noise in the denoising figure and of the codes of the generated digits.
        train_images: training images, where a figure takes its examples from the training set as the article does
            (the style transfer's sevens); ``None``: the test images stand in.
        train_labels: their digits.
        options: the figures' options (:func:`figure_options`), such as the style transfer's ``style_digit``.
    """

    images: torch.Tensor
    model: Any = None
    labels: torch.Tensor | None = None
    n: int = 10
    seed: int = 0
    train_images: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    options: dict[str, Any] = field(default_factory=dict)
    __test__ = False  # not a pytest class, though named like one

    @functools.cached_property
    def codes(self) -> torch.Tensor:
        """The codes of all the images, encoded once (with their labels, for a model that takes them)."""
        return encode_all(self.model, self.images, self.labels)


MAX_DIGITS_PER_ROW = 100


def check_digits_per_row(n: Any, setting: str) -> None:
    """Refuse a count of digits per figure row that is not 1 to :data:`MAX_DIGITS_PER_ROW`, naming ``setting``."""
    ok = not isinstance(n, bool) and isinstance(n, int) and 1 <= n <= MAX_DIGITS_PER_ROW
    require(ok, setting, n, f"an integer from 1 to {MAX_DIGITS_PER_ROW}", "10")


def figure_paths(model: Any, out_dir: str | Path, history: Sequence[dict[str, float]] | None = None) -> list[Path]:
    """The files :func:`draw_figures` writes for ``model`` into ``out_dir`` (with the loss curves if ``history``)."""
    names = [*getattr(model, "figures", ()), *(["loss_curves"] if history else [])]
    return [Path(out_dir) / f"{name}.png" for name in names]


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
    options: dict[str, Any] | None = None,
) -> list[Path]:
    """Draw ``model``'s figures (its ``figures``: reconstructions and the code space by default) into ``out_dir``,
    and the loss curves when ``history`` is given; returns the written paths.

    Args:
        model: a model of the series (its ``figures`` name what it draws), or any LightningModule (the loss
            curves alone).
        images: the test images ``(N, 1, 28, 28)``.
        out_dir: folder for the PNG files (created if needed).
        history: per-epoch metrics (dicts with ``epoch``, ``train_loss``, ``val_loss``) for the loss curves.
        n: digits per row.
        seed: seed of the noise in the denoising figure.
        labels: the digits of ``images``, for the code-space figures (and a conditional model's codes).
        train_images: training images, for the figures that take their examples from the training set (the style
            transfer's sevens); ``None``: the test images stand in.
        train_labels: their digits.
        options: options of the model's figures by name (:func:`figure_options`), over their defaults.
    """
    check_digits_per_row(n, "n")
    chosen = figure_options(model, options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    test = TestSet(images, model, labels, n, seed, train_images, train_labels, chosen)
    figures = getattr(model, "figures", ())  # a LightningModule that declares none draws its loss curves alone
    paths = figure_paths(model, out, history)
    written = [FIGURES[figure](model, test, path) for figure, path in zip(figures, paths)]
    if history:
        written.append(plot_loss_curves(history, paths[-1], f"{type(model).__name__}: loss per epoch"))
    model.train(was_training)
    return written
