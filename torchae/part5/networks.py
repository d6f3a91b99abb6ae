"""Part 5's networks: the article's generator and discriminator, for the GAN and (with each image's label) the CGAN.

Keras semantics kept on purpose, so that Keras's weights load one to one:

- ``Reshape((7, 7, 64))`` and ``Flatten`` order a tensor channels last, as Keras does: the dense layers' features
  are in Keras's order (:class:`ChannelsLast` and :class:`ChannelsFirst` move between the two layouts).
- ``Conv2D(..., strides=2, padding="same")`` pads the extra row and column at the bottom and the right, as
  TensorFlow does (``nn.ZeroPad2d``).
- LeakyReLU's slope is Keras's 0.3, ``UpSampling2D`` is nearest-neighbour.
- Dropout draws its masks from the model's streams (:class:`~torchae.draws.SeededDropout`); the weights start as
  Keras's do (``glorot_uniform`` kernels, zero biases).
"""

from __future__ import annotations

import torch
from torch import nn

from torchae.draws import SeededDropout
from torchae.errors import require_rate, require_width
from torchae.inputs import CLASSES
from torchae.networks import keras_init_
from torchae.part3.vae import KERAS_LEAKY_RELU_SLOPE

__all__ = ["ChannelsFirst", "ChannelsLast", "Discriminator", "Generator", "LabelUnits"]

GENERATOR_GRID = (7, 7, 64)
"""The generator's first feature map, channels last (the article's ``Reshape((7, 7, 64))``)."""


class ChannelsFirst(nn.Module):
    """``(N, H, W, C)`` to ``(N, C, H, W)``: Keras's channels-last tensor as PyTorch's layers take it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


class ChannelsLast(nn.Module):
    """``(N, C, H, W)`` to ``(N, H, W, C)``: so that ``Flatten`` orders the features as Keras's does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class LabelUnits(nn.Module):
    """The article's ``add_units_to_conv2d``: each image's one-hot label appended to the channels of every position
    of a feature map ``(N, C, H, W)``, giving ``(N, C + classes, H, W)``."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(labels, self.classes).to(features.dtype)
        units = one_hot[:, :, None, None].expand(-1, -1, *features.shape[2:])
        return torch.cat([features, units], dim=1)


def check_gan_settings(latent_dim: int, dropout: float) -> None:
    """Refuse a latent size that is not a positive integer or a dropout rate outside [0, 1)."""
    require_width("model.latent_dim", latent_dim, "2")
    require_rate("model.dropout", dropout, "0.3")


class Generator(nn.Module):
    """The article's generator: the code (and the one-hot label, conditional), ``Dense 7*7*64 relu, Dropout,
    Reshape (7, 7, 64), UpSampling, Conv 64 5x5 relu, Dropout, Conv 32 3x3 relu, Dropout, UpSampling,
    Conv 1 5x5 sigmoid``: ``(N, 1, 28, 28)`` pixel probabilities.

    Args:
        latent_dim: size of the code (the article's 2).
        dropout: the dropout rate (0.3).
        classes: labels it takes beside the code (10 for the CGAN, 0 for the GAN).
    """

    def __init__(self, latent_dim: int = 2, dropout: float = 0.3, classes: int = 0) -> None:
        super().__init__()
        check_gan_settings(latent_dim, dropout)
        self.latent_dim, self.classes = latent_dim, classes
        self.dense = nn.Sequential(
            nn.Linear(latent_dim + classes, GENERATOR_GRID[0] * GENERATOR_GRID[1] * GENERATOR_GRID[2]),
            nn.ReLU(),
            SeededDropout(dropout),
            nn.Unflatten(1, GENERATOR_GRID),
            ChannelsFirst(),
        )
        self.convolutions = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(64, 64, 5, padding=2),
            nn.ReLU(),
            SeededDropout(dropout),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.ReLU(),
            SeededDropout(dropout),
            nn.Upsample(scale_factor=2, mode="nearest"),
        )
        self.output = nn.Conv2d(32, 1, 5, padding=2)
        keras_init_(self)

    def logits(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer's pre-sigmoid outputs, ``(N, 1, 28, 28)``."""
        if self.classes:
            codes = torch.cat([codes, nn.functional.one_hot(labels, self.classes).to(codes.dtype)], dim=1)
        return self.output(self.convolutions(self.dense(codes)))

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.logits(codes, labels))


class Discriminator(nn.Module):
    """The article's discriminator: ``Conv 128 7x7 stride 2`` (the label's units appended to every position,
    conditional), ``LeakyReLU, Dropout, MaxPool 2x2, Conv 128 3x3, LeakyReLU, Dropout, Flatten, Dense 1 sigmoid``:
    the probability that each image is real, ``(N, 1)``.

    Args:
        dropout: the dropout rate (0.3).
        classes: labels it takes beside the image (10 for the CGAN, 0 for the GAN).
    """

    def __init__(self, dropout: float = 0.3, classes: int = 0) -> None:
        super().__init__()
        require_rate("model.dropout", dropout, "0.3")
        self.classes = classes
        # TensorFlow's "same" padding at stride 2: 28 -> 14 needs 5 rows, 2 above and 3 below (and columns alike).
        self.first = nn.Sequential(nn.ZeroPad2d((2, 3, 2, 3)), nn.Conv2d(1, 128, 7, stride=2))
        self.label_units = LabelUnits(classes) if classes else None
        self.body = nn.Sequential(
            nn.LeakyReLU(KERAS_LEAKY_RELU_SLOPE),
            SeededDropout(dropout),
            nn.MaxPool2d(2),
            nn.Conv2d(128 + classes, 128, 3, padding=1),
            nn.LeakyReLU(KERAS_LEAKY_RELU_SLOPE),
            SeededDropout(dropout),
            ChannelsLast(),
            nn.Flatten(),
        )
        self.verdict = nn.Linear(7 * 7 * 128, 1)
        keras_init_(self)

    def logits(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The verdict's pre-sigmoid output, ``(N, 1)``."""
        features = self.first(images)
        if self.label_units is not None:
            features = self.label_units(features, labels)
        return self.verdict(self.body(features))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.logits(images, labels))
