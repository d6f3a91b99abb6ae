"""Part 6's networks: the CVAE-GAN's encoder, decoder and discriminator, as the article builds them.

Each block is the article's ``apply_bn_relu_and_dropout`` as its code calls it: LeakyReLU (Keras's slope, 0.3) and
Dropout. The article's helper also holds a BatchNorm (``momentum=0.99, scale=False``), but every call leaves it off
(``bn=False`` is the helper's default and no call sets it): the networks have none, and their parameter counts are
those of the article's Keras models.

Keras semantics kept on purpose, as in part 5 (:mod:`torchae.part5.networks`): channels-last ``Flatten`` and
``Reshape``; TensorFlow's ``"same"`` padding at stride 2 (the extra row and column at the bottom and the right);
``MaxPool2D(padding="same")`` of an odd side keeps its last row (``ceil_mode``); Keras's initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from torchae.draws import SeededDropout
from torchae.errors import require_rate, require_width
from torchae.inputs import CLASSES
from torchae.networks import keras_init_
from torchae.part3.vae import KERAS_LEAKY_RELU_SLOPE, LatentDistribution
from torchae.part5.networks import ChannelsFirst, ChannelsLast, LabelUnits

__all__ = ["CVAEGANDecoder", "CVAEGANDiscriminator", "CVAEGANEncoder", "LOG_VARIANCE_CLIP", "leaky_dropout"]

LOG_VARIANCE_CLIP = 2.0
"""The article clips ``z_log_var / 2`` (the sample's log deviation) and ``z_log_var`` (in ``L_prior``) to +-2."""
DECODER_GRID = (7, 7, 128)
"""The decoder's first feature map, channels last (the article's ``Reshape((7, 7, 128))``)."""


def leaky_dropout(dropout: float) -> list[nn.Module]:
    """The article's ``apply_bn_relu_and_dropout(x)`` as it calls it: LeakyReLU, then Dropout."""
    return [nn.LeakyReLU(KERAS_LEAKY_RELU_SLOPE), SeededDropout(dropout)]


def check_settings(latent_dim: int, dropout: float) -> None:
    """Refuse a latent size that is not a positive integer or a dropout rate outside [0, 1)."""
    require_width("model.latent_dim", latent_dim, "8")
    require_rate("model.dropout", dropout, "0.3")


class CVAEGANEncoder(nn.Module):
    """The article's encoder: ``Conv 32 3x3 stride 2, MaxPool, Conv 64 3x3, Flatten``, the one-hot label joined,
    ``Dense 64``, then the heads ``z_mean`` and ``z_log_var`` (each block LeakyReLU and Dropout).

    Args:
        latent_dim: size of the code (the article's 8).
        dropout: the dropout rate (0.3).
        classes: the labels (10).
    """

    def __init__(self, latent_dim: int = 8, dropout: float = 0.3, classes: int = CLASSES) -> None:
        super().__init__()
        check_settings(latent_dim, dropout)
        self.classes = classes
        self.convolutions = nn.Sequential(
            nn.ZeroPad2d((0, 1, 0, 1)),  # TensorFlow's "same" at stride 2: 28 -> 14 pads one row below
            nn.Conv2d(1, 32, 3, stride=2),
            *leaky_dropout(dropout),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            *leaky_dropout(dropout),
            ChannelsLast(),
            nn.Flatten(),
        )
        self.hidden = nn.Sequential(nn.Linear(7 * 7 * 64 + classes, 64), *leaky_dropout(dropout))
        self.z_mean = nn.Linear(64, latent_dim)
        self.z_log_var = nn.Linear(64, latent_dim)
        keras_init_(self)

    def distribution(self, images: torch.Tensor, labels: torch.Tensor) -> LatentDistribution:
        """``q(z|x, y)``: the mean and log variance of each image's code, given its label."""
        features = self.convolutions(images)
        one_hot = nn.functional.one_hot(labels, self.classes).to(features.dtype)
        hidden = self.hidden(torch.cat([features, one_hot], dim=1))
        return LatentDistribution(self.z_mean(hidden), self.z_log_var(hidden))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean codes ``(N, latent_dim)``."""
        return self.distribution(images, labels).z_mean


class CVAEGANDecoder(nn.Module):
    """The article's decoder: the code and the one-hot label, ``Dense 7*7*128``, ``Reshape (7, 7, 128)``,
    ``UpSampling, Conv 64 5x5, Conv 32 3x3, UpSampling, Conv 1 5x5 sigmoid`` (each block LeakyReLU and Dropout).

    Args:
        latent_dim: size of the code (8).
        dropout: the dropout rate (0.3).
        classes: the labels (10).
    """

    def __init__(self, latent_dim: int = 8, dropout: float = 0.3, classes: int = CLASSES) -> None:
        super().__init__()
        check_settings(latent_dim, dropout)
        self.latent_dim, self.classes = latent_dim, classes
        self.dense = nn.Sequential(
            nn.Linear(latent_dim + classes, DECODER_GRID[0] * DECODER_GRID[1] * DECODER_GRID[2]),
            *leaky_dropout(dropout),
            nn.Unflatten(1, DECODER_GRID),
            ChannelsFirst(),
        )
        self.convolutions = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(128, 64, 5, padding=2),
            *leaky_dropout(dropout),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *leaky_dropout(dropout),
        )
        self.output = nn.Conv2d(32, 1, 5, padding=2)
        keras_init_(self)

    def logits(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The last layer's pre-sigmoid outputs, ``(N, 1, 28, 28)``."""
        one_hot = nn.functional.one_hot(labels, self.classes).to(codes.dtype)
        return self.output(self.convolutions(self.dense(torch.cat([codes, one_hot], dim=1))))

    def forward(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(codes, labels))


class CVAEGANDiscriminator(nn.Module):
    """The article's discriminator: ``Conv 128 7x7 stride 2, MaxPool``, block, the label's units appended to every
    position, ``Conv 64 3x3, MaxPool``, block; there the l-th layer, ``Conv 16 3x3``, whose activations the decoder
    is compared on; the main path takes another block, ``Flatten, Dense 1 sigmoid``.

    Args:
        dropout: the dropout rate (0.3).
        classes: the labels (10).
    """

    def __init__(self, dropout: float = 0.3, classes: int = CLASSES) -> None:
        super().__init__()
        require_rate("model.dropout", dropout, "0.3")
        self.first = nn.Sequential(
            nn.ZeroPad2d((2, 3, 2, 3)),  # TensorFlow's "same" at stride 2: 28 -> 14 needs 2 rows above, 3 below
            nn.Conv2d(1, 128, 7, stride=2),
            nn.MaxPool2d(2),
            *leaky_dropout(dropout),
        )
        self.label_units = LabelUnits(classes)
        self.second = nn.Sequential(
            nn.Conv2d(128 + classes, 64, 3, padding=1),
            nn.MaxPool2d(2, ceil_mode=True),  # Keras's "same" pooling: 7 -> 4
            *leaky_dropout(dropout),
        )
        # The article applies its block once more to the main path (a second LeakyReLU and Dropout), as written.
        self.head = nn.Sequential(*leaky_dropout(dropout), ChannelsLast(), nn.Flatten())
        self.verdict = nn.Linear(4 * 4 * 64, 1)
        # Registered after the verdict, as Keras orders the article's model (outputs [d, l]): weights load in order.
        self.feature_layer = nn.Conv2d(64, 16, 3, padding=1)
        keras_init_(self)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The probability that each image is real, ``(N, 1)``, and the l-th layer's activations ``(N, 16, 4, 4)``
        (pre-activation, as the article takes them)."""
        features = self.second(self.label_units(self.first(images), labels))
        verdict = torch.sigmoid(self.verdict(self.head(features)))
        return verdict, self.feature_layer(features)
