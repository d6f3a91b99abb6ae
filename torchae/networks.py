"""The article's encoder/decoder networks, as plain ``nn.Module``s built from stock PyTorch layers.

Each factory reads like the article's Keras code: ``dense_autoencoder()`` is its ``create_dense_ae()``, and so on.
No training logic lives here (that is :mod:`torchae.autoencoder`), and no speed technique (that is
:mod:`torchae.engine`, which swaps faster CPU kernels from :mod:`torchae.layers` in for training).

Layout convention (the one place it is decided): torchae works in NCHW, images are ``(N, 1, 28, 28)`` float32 in
[0, 1]. Keras works in NHWC ``(N, 28, 28, 1)``. With a single channel, flattening NCHW gives the same pixel order as
flattening NHWC, which is what lets a Keras ``Dense`` kernel be copied onto an ``nn.Linear`` by a plain transpose
(see ``parity.transfer``).

Each decoder ends in a sigmoid but also exposes its pre-sigmoid ``logits``, so that the loss can be computed with
``binary_cross_entropy_with_logits`` (numerically stable; what Keras does when the sigmoid is the model's last op).

Two Keras-semantics fixes that parity needs, both correctness, not speed:

- :class:`Conv2d` adds its bias outside the convolution, so that the bias gradient is autograd's accurate sum.
- :func:`same_conv` pads even kernels as Keras's ``padding='same'`` does (0 before, 1 after).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.errors import ConfigError

__all__ = [
    "ARCHITECTURES",
    "IMAGE_SHAPE",
    "Autoencoder",
    "Conv2d",
    "ConvAutoencoder",
    "DeepDenseAutoencoder",
    "DenseAutoencoder",
    "SigmoidDecoder",
    "build_architecture",
    "conv_autoencoder",
    "deep_dense_autoencoder",
    "dense_autoencoder",
    "keras_init_",
    "keras_parameter_count",
    "same_conv",
]

IMAGE_SHAPE = (1, 28, 28)
PIXELS = 28 * 28


def keras_parameter_count(module: nn.Module, trainable: bool | None = None) -> int:
    """The parameters of ``module`` as Keras counts them: the trainable ones and the BatchNorm running statistics
    (Keras's non-trainable weights; PyTorch keeps them as buffers). ``trainable`` True or False counts one kind."""
    learned = sum(p.numel() for p in module.parameters()) if trainable in (None, True) else 0
    statistics = [b for name, b in module.named_buffers() if name.endswith(("running_mean", "running_var"))]
    return learned + (sum(b.numel() for b in statistics) if trainable in (None, False) else 0)


def keras_init_(module: nn.Module) -> None:
    """Initialise like Keras: ``glorot_uniform`` kernels and zero biases for every Linear and Conv2d layer.

    PyTorch's fan computation for a ``(out, in, kh, kw)`` conv kernel (fan_in = in*kh*kw, fan_out = out*kh*kw)
    equals Keras's for ``(kh, kw, in, out)``, so ``xavier_uniform_`` draws from Keras's interval.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class SigmoidDecoder(nn.Module):
    """A decoder whose ``body`` maps a code to pre-sigmoid logits of shape ``(N, 1, 28, 28)``.

    Args:
        body: the layers from the code to the logits.
    """

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def logits(self, code: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid outputs, shape ``(N, 1, 28, 28)``."""
        return self.body(code)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities in [0, 1], shape ``(N, 1, 28, 28)``."""
        return torch.sigmoid(self.logits(code))


class Autoencoder(nn.Module):
    """An encoder and a decoder; ``forward(x) == decoder(encoder(x))``. Initialised as Keras initialises.

    Attributes:
        encoder: maps images ``(N, 1, 28, 28)`` to codes of shape ``(N, *code_shape)``.
        decoder: maps codes back to pixel probabilities ``(N, 1, 28, 28)``.
        code_shape: the shape of one code, without the batch dimension.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, code_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.code_shape = tuple(code_shape)
        keras_init_(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` with its bias added after the convolution instead of inside it (a correctness fix).

    PyTorch's CPU convolution backward sums the bias gradient over ``N * H * W`` positions with a float32
    accumulation that is off by up to 5e-4 relative for the conv model's last layer at batch 256 (measured against
    float64), while autograd's ``sum`` of the broadcast addition is accurate to ~1e-8, as TensorFlow is; the parity
    suite's gradient check (1e-5) fails without this. Same parameters, same function.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def same_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    """A stride-1 convolution padded as Keras's ``padding='same'``: ``(k - 1) // 2`` zeros before, the rest after.

    For odd kernels that is PyTorch's symmetric padding. For even kernels (the 2x2 ones) Keras pads 0 before and 1
    after; the explicit ``ZeroPad2d`` says so (PyTorch's ``padding='same'`` would do the same through a hidden copy).
    """
    if kernel_size % 2:
        return Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    before, after = (kernel_size - 1) // 2, kernel_size // 2
    return nn.Sequential(nn.ZeroPad2d((before, after, before, after)), Conv2d(in_channels, out_channels, kernel_size))


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
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"model.{key} must be a positive integer, got {value!r}: set --model.{key} 49 or similar")
