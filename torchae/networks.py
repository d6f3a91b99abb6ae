"""The networks' shared pieces, plain ``nn.Module``s of stock PyTorch layers: an autoencoder of an encoder and a
decoder, a decoder that ends in a sigmoid, Keras's initialisation and parameter count, and Keras's convolutions.
Each part's networks sit in its own package (part 1's in :mod:`torchae.part1.networks`). No training logic lives
here (that is :mod:`torchae.autoencoder`), and no speed technique (that is :mod:`torchae.engine`).

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

__all__ = [
    "IMAGE_SHAPE",
    "PIXELS",
    "Autoencoder",
    "Conv2d",
    "SigmoidDecoder",
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
