"""Part 2's 2-D dataset: noisy points around a sine curve, the manifold its first autoencoders learn; and part 4's,
the same points and another set around a circle, each point labelled with its curve (a manifold in two pieces).

The article draws ``x1 = linspace(-2.2, 2.2, 1000)``, the points ``(x1, sin(x1))`` and adds Gaussian noise of standard
deviation 0.06 to both coordinates; its overfitting experiment trains on 25 evenly spaced points of them
(``range(0, 1000, 1000 // 25)``), repeated 4000 times. Here the noise is drawn from a seeded generator, so a run's
points are known from its seed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from torchae.data import LabelledMNISTDataModule, MNISTDataModule, TensorDataModule, check_positive_int, mix_seed
from torchae.errors import ConfigError, require

__all__ = [
    "CURVE_RANGE",
    "DATAMODULES",
    "DotsDataModule",
    "SineDots",
    "TwoCurves",
    "TwoCurvesDataModule",
    "evenly_spaced",
    "sine_dots",
    "two_curves",
]

CURVE_RANGE = (-2.2, 2.2)
"""The interval of ``x1`` the article draws its points over."""
MAX_POINTS = 10_000_000
"""The most points a training set may hold (``points * repeats``): 80 MB of float32 pairs."""


class SineDots(NamedTuple):
    """The points and the curve they were drawn around.

    Attributes:
        x1: the positions along the curve, ``(N,)``.
        curve: the noiseless points ``(x1, sin(x1))``, ``(N, 2)``: the manifold that defines the data.
        dots: the noisy points, ``(N, 2)`` float32.
    """

    x1: torch.Tensor
    curve: torch.Tensor
    dots: torch.Tensor


def _sine_curve(points: int) -> torch.Tensor:
    """``points`` points ``(x1, sin(x1))`` for ``x1 = linspace(-2.2, 2.2, points)``, ``(points, 2)`` float64."""
    x1 = torch.linspace(*CURVE_RANGE, points, dtype=torch.float64)
    return torch.stack([x1, torch.sin(x1)], dim=1)


def _check_noise(noise: float) -> None:
    ok = isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0
    require(ok, "data.noise", noise, "zero or a positive number", "0.06")


def sine_dots(points: int = 1000, noise: float = 0.06, generator: torch.Generator | None = None) -> SineDots:
    """The article's dataset: ``points`` points of the sine curve over [-2.2, 2.2], with Gaussian noise of standard
    deviation ``noise`` on both coordinates, drawn from ``generator`` (torch's global one by default)."""
    curve = _sine_curve(points)
    dots = curve + noise * torch.randn(curve.shape, generator=generator, dtype=torch.float64)
    return SineDots(curve[:, 0].float(), curve.float(), dots.float())


def evenly_spaced(points: int, count: int) -> torch.Tensor:
    """The article's ``idxs``: ``range(0, points, points // count)``, the indices of ``count`` evenly spaced points
    (the coloured points of its figures and the overfitting subset)."""
    return torch.arange(0, points, max(points // count, 1))[:count]


class DotsDataModule(TensorDataModule):
    """Part 2's points around a sine curve, for the autoencoders with a 1-D code (inputs and targets are the points).

    Training is on the ``points`` noisy points (or on ``subset`` evenly spaced ones of them, repeated ``repeats``
    times: the article's overfitting set); validation, testing and prediction are on all ``points`` of them, in order:
    the data the model should describe, which the figures draw.

    Args:
        batch_size: training batch size (the article: 30; 15 for the overfitting run).
        points: points along the curve (the article's 1000).
        noise: standard deviation of the Gaussian noise on each coordinate (the article's 0.06).
        subset: train on this many evenly spaced points only (the article's 25 for overfitting); ``None``: all.
        repeats: times the training set is repeated per epoch (the article repeats its 25 points 4000 times).
        val_batch_size: validation batch size; ``None`` uses ``batch_size``.
        seed: seed of the noise and of the epoch permutations; ``None`` takes the process seed (``seed_everything``).
        shuffle: shuffle the training set every epoch.
        steps_per_execution: batches per Lightning step (Keras's ``steps_per_execution``), as
            :class:`~torchae.data.MNISTDataModule`'s.
    """

    def __init__(
        self,
        batch_size: int = 30,
        points: int = 1000,
        noise: float = 0.06,
        subset: int | None = None,
        repeats: int = 1,
        val_batch_size: int | None = None,
        seed: int | None = None,
        shuffle: bool = True,
        steps_per_execution: int = 1,
    ) -> None:
        super().__init__(batch_size, val_batch_size, seed, shuffle, steps_per_execution)
        for name, value in (("points", points), ("repeats", repeats), ("subset", subset)):
            if value is not None:
                check_positive_int(name, value)
        _check_noise(noise)
        if subset is not None and subset > points:
            raise ConfigError(
                f"data.subset {subset} is more than data.points {points}: give at most {points} (the article: 25)"
            )
        if points * repeats > MAX_POINTS or points > MAX_POINTS:
            raise ConfigError(
                f"data.points x data.repeats is {points * repeats:,} points, more than {MAX_POINTS:,}: give fewer"
            )
        self.save_hyperparameters()
        self.points, self.noise, self.subset, self.repeats = points, float(noise), subset, repeats
        self.curve: torch.Tensor | None = None

    def load(self) -> None:
        generator = torch.Generator().manual_seed(mix_seed(int(self.seed or 0), 2))  # the noise: its own stream
        drawn = sine_dots(self.points, self.noise, generator)
        train = drawn.dots if self.subset is None else drawn.dots[evenly_spaced(self.points, self.subset)]
        self.train_images = train.repeat(self.repeats, 1)
        self.val_images, self.val_labels, self.curve = drawn.dots, None, drawn.curve


CIRCLE_CENTRE = (1.5, -0.5)
CIRCLE_RADIUS = 0.5


class TwoCurves(NamedTuple):
    """Part 4's points: the sine curve's and a circle's, each point labelled with its curve.

    Attributes:
        curves: the noiseless points, ``(2N, 2)``: the sine curve's ``N``, then the circle's ``N``.
        dots: the noisy points, ``(2N, 2)`` float32.
        labels: the curve of each point, ``(2N,)``: 0 for the sine, 1 for the circle.
    """

    curves: torch.Tensor
    dots: torch.Tensor
    labels: torch.Tensor


def two_curves(points: int = 1000, noise: float = 0.06, generator: torch.Generator | None = None) -> TwoCurves:
    """Part 4's dataset: ``points`` points of the sine curve over [-2.2, 2.2] (label 0) and ``points`` of the circle
    of radius 0.5 around (1.5, -0.5), ``0.5 (sin t, cos t)`` for ``t = linspace(0, 2 pi)`` (label 1), with Gaussian
    noise of standard deviation ``noise`` on both coordinates, drawn from ``generator``."""
    t = torch.linspace(0, 2 * math.pi, points, dtype=torch.float64)
    circle = CIRCLE_RADIUS * torch.stack([torch.sin(t), torch.cos(t)], dim=1) + torch.tensor(CIRCLE_CENTRE).double()
    curves = torch.cat([_sine_curve(points), circle])
    dots = curves + noise * torch.randn(curves.shape, generator=generator, dtype=torch.float64)
    labels = torch.cat([torch.zeros(points, dtype=torch.long), torch.ones(points, dtype=torch.long)])
    return TwoCurves(curves.float(), dots.float(), labels)


class TwoCurvesDataModule(TensorDataModule):
    """Part 4's points around two curves, each batch ``(points, labels)`` with the curve of each point (0: the sine,
    1: the circle): the data of the conditional autoencoder of points. Training and validation are on the same
    ``2 * points`` noisy points, as the article trains and predicts on them.

    Args:
        batch_size: training batch size (the article: 30).
        points: points along each curve (the article's 1000).
        noise: standard deviation of the Gaussian noise on each coordinate (the article's 0.06).
        val_batch_size: validation batch size; ``None`` uses ``batch_size``.
        seed: seed of the noise and of the epoch permutations; ``None`` takes the process seed (``seed_everything``).
        shuffle: shuffle the training set every epoch.
        steps_per_execution: batches per Lightning step (Keras's ``steps_per_execution``).
    """

    labelled_batches = True

    def __init__(
        self,
        batch_size: int = 30,
        points: int = 1000,
        noise: float = 0.06,
        val_batch_size: int | None = None,
        seed: int | None = None,
        shuffle: bool = True,
        steps_per_execution: int = 1,
    ) -> None:
        super().__init__(batch_size, val_batch_size, seed, shuffle, steps_per_execution)
        check_positive_int("points", points)
        _check_noise(noise)
        if 2 * points > MAX_POINTS:
            raise ConfigError(f"data.points is {points:,} a curve, more than {MAX_POINTS // 2:,}: give fewer")
        self.save_hyperparameters()
        self.points, self.noise = points, float(noise)
        self.curves: torch.Tensor | None = None

    def load(self) -> None:
        generator = torch.Generator().manual_seed(mix_seed(int(self.seed or 0), 2))  # the noise: its own stream
        drawn = two_curves(self.points, self.noise, generator)
        self.train_images = self.val_images = drawn.dots
        self.train_labels = self.val_labels = drawn.labels
        self.curves = drawn.curves


DATAMODULES: dict[str, type[TensorDataModule]] = {
    cls.__name__: cls for cls in (MNISTDataModule, LabelledMNISTDataModule, DotsDataModule, TwoCurvesDataModule)
}
"""torchae's datamodules by class name: what a config's ``data.class_path`` may name among torchae's own."""
