"""Part 1's networks, as the article builds them in Keras: ``dense_autoencoder()`` is its ``create_dense_ae()``,
and so on. Plain ``nn.Module``s of stock layers over the shared pieces of :mod:`torchae.networks`."""

from __future__ import annotations

from torch import nn

from torchae.errors import ConfigError, require_width
from torchae.networks import IMAGE_SHAPE, PIXELS, Autoencoder, SigmoidDecoder, same_conv

__all__ = [
    "ARCHITECTURES",
    "ConvAutoencoder",
    "DeepDenseAutoencoder",
    "DenseAutoencoder",
    "build_architecture",
    "conv_autoencoder",
    "deep_dense_autoencoder",
    "dense_autoencoder",
]


def _dense_layers(widths: list[int], last_activation: nn.Module | None) -> list[nn.Module]:
    """``Dense`` layers ``widths[0] -> widths[1] -> ...``, ReLU between them, ``last_activation`` at the end."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.pop()
    return layers if last_activation is None else [*layers, last_activation]


class DenseAutoencoder(Autoencoder):
    """The article's first model: ``Flatten, Dense(code_dim, relu)`` / ``Dense(784, sigmoid), Reshape``.

    Args:
        code_dim: size of the code (the article's ``encoding_dim``, 49).
    """

    def __init__(self, code_dim: int = 49) -> None:
        _check_positive(code_dim=code_dim)
        encoder = nn.Sequential(nn.Flatten(), *_dense_layers([PIXELS, code_dim], nn.ReLU()))
        decoder = SigmoidDecoder(nn.Sequential(nn.Linear(code_dim, PIXELS), nn.Unflatten(1, IMAGE_SHAPE)))
        super().__init__(encoder, decoder, (code_dim,))


class DeepDenseAutoencoder(Autoencoder):
    """The deep dense model: ReLU layers of ``multiples * code_dim`` units, a linear code, and the mirror decoder.

    With ``code_dim=49`` this is part 1's deep autoencoder (784-147-98-49); with ``code_dim=16`` the network of its
    sparse autoencoder (the L1 penalty lives in the training module, not here); with ``multiples=(4, 3, 2)`` and
    ``code_dim=16`` part 2's deep sparse autoencoder (784-64-48-32-16).

    Args:
        code_dim: size of the (linear) code (the article's ``encoding_dim``).
        multiples: the hidden layers' widths as multiples of ``code_dim``, from the image inwards.
    """

    def __init__(self, code_dim: int = 49, multiples: tuple[int, ...] = (3, 2)) -> None:
        _check_positive(code_dim=code_dim)
        hidden = [multiple * code_dim for multiple in multiples]
        encoder = nn.Sequential(nn.Flatten(), *_dense_layers([PIXELS, *hidden, code_dim], None))
        decoder_layers = _dense_layers([code_dim, *hidden[::-1], PIXELS], None)
        decoder = SigmoidDecoder(nn.Sequential(*decoder_layers, nn.Unflatten(1, IMAGE_SHAPE)))
        super().__init__(encoder, decoder, (code_dim,))


class ConvAutoencoder(Autoencoder):
    """The article's convolutional model; the code is a ``(1, 7, 7)`` map (Keras: ``(7, 7, 1)``).

    Convolutions pad as Keras's ``padding='same'`` (see :func:`same_conv`). Max pooling never needs padding here
    (28 and 14 are even).
    """

    def __init__(self) -> None:
        encoder = nn.Sequential(
            same_conv(1, 128, 7),
            nn.ReLU(),
            nn.MaxPool2d(2),
            same_conv(128, 32, 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            same_conv(32, 1, 7),
            nn.ReLU(),
        )
        decoder = SigmoidDecoder(
            nn.Sequential(
                same_conv(1, 32, 7),
                nn.ReLU(),
                nn.Upsample(scale_factor=2, mode="nearest"),
                same_conv(32, 128, 2),
                nn.ReLU(),
                nn.Upsample(scale_factor=2, mode="nearest"),
                same_conv(128, 1, 7),
            )
        )
        super().__init__(encoder, decoder, (1, 7, 7))


def dense_autoencoder(code_dim: int = 49) -> DenseAutoencoder:
    """The article's ``create_dense_ae()``."""
    return DenseAutoencoder(code_dim)


def deep_dense_autoencoder(code_dim: int = 49) -> DeepDenseAutoencoder:
    """The article's ``create_deep_dense_ae()`` (and, with ``code_dim=16``, the network of its sparse model)."""
    return DeepDenseAutoencoder(code_dim)


def conv_autoencoder() -> ConvAutoencoder:
    """The article's ``create_deep_conv_ae()``."""
    return ConvAutoencoder()


ARCHITECTURES = {"dense": dense_autoencoder, "deep": deep_dense_autoencoder, "conv": conv_autoencoder}
"""The networks another model can wrap (the denoising model wraps the dense one in the article)."""


def build_architecture(name: str, code_dim: int | None = None) -> Autoencoder:
    """Build one of the wrappable networks by name (``dense``, ``deep``, ``conv``).

    Args:
        name: architecture name.
        code_dim: code size for the dense ones; ``None`` keeps the article's. The conv code is fixed.

    Raises:
        ConfigError: on an unknown name, or a ``code_dim`` given for ``conv``.
    """
    if name not in ARCHITECTURES:
        raise ConfigError(
            f"model.architecture must be one of {', '.join(ARCHITECTURES)}, got {name!r}: "
            "set --model.architecture dense or similar"
        )
    if code_dim is None:
        return ARCHITECTURES[name]()
    if name == "conv":
        raise ConfigError(
            f"model.code_dim must be unset for the conv architecture (its code is a fixed (1, 7, 7) map), got "
            f"{code_dim!r}: leave --model.code_dim out, or set it to null"
        )
    return ARCHITECTURES[name](code_dim)


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        require_width(f"model.{key}", value, "49")
