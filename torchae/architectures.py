"""The article's encoder/decoder networks as plain ``nn.Module``s, with Keras-equivalent initialisation.

Layout convention (the one place it is decided): torchae works in NCHW, images are ``(N, 1, 28, 28)`` float32 in
[0, 1]. Keras works in NHWC ``(N, 28, 28, 1)``. With a single channel, flattening NCHW gives the same pixel order as
flattening NHWC, which is what lets a Keras ``Dense`` kernel be copied onto an ``nn.Linear`` by a plain transpose
(see ``parity.transfer``).

Each decoder ends in a sigmoid but also exposes its pre-sigmoid ``logits``, so that the loss can be computed with
``binary_cross_entropy_with_logits`` (numerically stable; what Keras does when the sigmoid is the model's last op).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.errors import ConfigError

__all__ = [
    "IMAGE_SHAPE",
    "Autoencoder",
    "ConvAutoencoder",
    "DeepDenseAutoencoder",
    "DenseAutoencoder",
    "SigmoidDecoder",
    "build_architecture",
    "ARCHITECTURES",
    "keras_init_",
    "same_conv",
]

IMAGE_SHAPE = (1, 28, 28)
_PIXELS = 28 * 28


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
    """An encoder and a decoder; ``forward(x) == decoder(encoder(x))``.

    Attributes:
        encoder: maps images ``(N, 1, 28, 28)`` to codes of shape ``(N, *code_shape)``.
        decoder: maps codes back to pixel probabilities ``(N, 1, 28, 28)``.
        code_shape: the shape of one code, without the batch dimension.
    """

    code_shape: tuple[int, ...]

    def __init__(self, encoder: nn.Module, decoder: SigmoidDecoder, code_shape: tuple[int, ...]) -> None:
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


def _dense_stack(widths: list[int], last_activation: nn.Module | None) -> list[nn.Module]:
    """Linear layers ``widths[0] -> widths[1] -> ...`` with ReLU between them and ``last_activation`` at the end."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        is_last = i == len(widths) - 2
        if not is_last:
            layers.append(nn.ReLU())
        elif last_activation is not None:
            layers.append(last_activation)
    return layers


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` with the same parameters and function, computed in ways that are faster and more accurate on
    the CPU for this model's layers.

    - The bias is added outside the convolution. PyTorch's CPU convolution backward sums the bias gradient over
      ``N * H * W`` positions with a float32 accumulation that is off by up to 5e-4 relative for the last decoder
      layer at batch 256 (measured against float64), while autograd's ``sum`` is accurate to ~1e-8, as TensorFlow
      is; the parity suite's gradient check (1e-5) fails without this.
    - A convolution with one input channel is ``unfold`` + one matrix product, and one with one output channel is
      one matrix product + ``fold``: oneDNN handles these shapes 3-4x slower on this CPU (see benchmarks/).
      Stride-1, odd-kernel, symmetric zero padding only; everything else, and every GPU, takes ``nn.Conv2d``'s path.
    """

    def _matmul_path(self, x: torch.Tensor) -> bool:
        k = self.kernel_size[0]
        return (
            x.device.type == "cpu"
            and (self.in_channels == 1 or self.out_channels == 1)
            and self.kernel_size == (k, k)
            and k % 2 == 1
            and self.padding == (k // 2, k // 2)
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._matmul_path(x):
            out = (_conv_one_output_channel if self.out_channels == 1 else _conv_one_input_channel)(x, self.weight)
        else:
            out = self._conv_forward(x, self.weight, None)
        if self.bias is None:
            return out
        if out.is_contiguous(memory_format=torch.channels_last):  # broadcast along the contiguous channel axis
            return (out.permute(0, 2, 3, 1) + self.bias).permute(0, 3, 1, 2)
        return out + self.bias.view(1, -1, 1, 1)


def _conv_one_input_channel(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, padding=k // 2)`` for ``x`` of shape ``(N, 1, H, W)``; the result is channels-last."""
    n, _, h, w = x.shape
    out_channels, k = weight.shape[0], weight.shape[-1]
    columns = F.unfold(x, k, padding=k // 2).transpose(1, 2).reshape(n * h * w, k * k)
    return (columns @ weight.view(out_channels, k * k).t()).view(n, h, w, out_channels).permute(0, 3, 1, 2)


def _conv_one_output_channel(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, padding=k // 2)`` for ``weight`` of shape ``(1, C, k, k)``.

    Each pixel's channels are projected onto the ``k * k`` kernel taps (one matrix product), and ``fold`` adds each
    tap's contribution at its offset. ``fold`` scatters where a convolution gathers, hence the flipped tap order.
    """
    n, channels, h, w = x.shape
    k = weight.shape[-1]
    rows = x.permute(0, 2, 3, 1).reshape(n * h * w, channels)
    taps = rows @ weight.view(channels, k * k).flip(1)
    return F.fold(taps.view(n, h * w, k * k).transpose(1, 2), (h, w), k, padding=k // 2)


class _NearestUpsample2x(torch.autograd.Function):
    """Nearest 2x upsampling whose forward and backward both run in the channels-last order, each as one pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        nhwc = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, h, 2, w, 2, c)
        return nhwc.reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        n, c, h2, w2 = grad.shape
        blocks = grad.permute(0, 2, 3, 1).reshape(n, h2 // 2, 2, w2 // 2, 2, c)
        summed = blocks[:, :, 0, :, 0] + blocks[:, :, 0, :, 1] + blocks[:, :, 1, :, 0] + blocks[:, :, 1, :, 1]
        return summed.permute(0, 3, 1, 2)


class Upsample2x(nn.Module):
    """Nearest-neighbour 2x upsampling (Keras ``UpSampling2D((2, 2))``) that keeps the channels-last order; each
    direction is one pass over the data (``nn.Upsample`` and autograd's own backward of a broadcast copy both make
    extra passes on the CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _NearestUpsample2x.apply(x)


class MaxPool2x2(nn.Module):
    """2x2 max pooling with stride 2 (Keras ``MaxPooling2D((2, 2))``; no padding is needed for even sizes).

    Without gradients (inference) it is the elementwise maximum of the four strided sub-grids, 5x faster than
    ``F.max_pool2d`` on channels-last CPU tensors here; with gradients it is ``F.max_pool2d``. Same values.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"MaxPool2x2 needs even spatial sizes, got {tuple(x.shape[-2:])}")
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(x, 2)  # its index-based backward is far cheaper than that of the maxima below
        top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
        bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
        return torch.maximum(top, bottom)


def same_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    """A stride-1 convolution padded as Keras's ``padding='same'``: ``(k - 1) // 2`` zeros before, the rest after.

    For odd kernels that is PyTorch's symmetric padding. For even kernels (the 2x2 ones) Keras pads 0 before and 1
    after; the explicit ``ZeroPad2d`` says so (PyTorch's ``padding='same'`` would do the same through a hidden copy).
    """
    if kernel_size % 2:
        return Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    before, after = (kernel_size - 1) // 2, kernel_size // 2
    padding = nn.ZeroPad2d((before, after, before, after))
    return nn.Sequential(padding, Conv2d(in_channels, out_channels, kernel_size))


class DenseAutoencoder(Autoencoder):
    """The article's first model: ``Flatten, Dense(code_dim, relu)`` / ``Dense(784, sigmoid), Reshape``.

    Args:
        code_dim: size of the code (the article's ``encoding_dim``, 49).
    """

    def __init__(self, code_dim: int = 49) -> None:
        _check_positive(code_dim=code_dim)
        encoder = nn.Sequential(nn.Flatten(), *_dense_stack([_PIXELS, code_dim], nn.ReLU()))
        decoder = SigmoidDecoder(nn.Sequential(nn.Linear(code_dim, _PIXELS), nn.Unflatten(1, IMAGE_SHAPE)))
        super().__init__(encoder, decoder, (code_dim,))


class DeepDenseAutoencoder(Autoencoder):
    """The deep dense model: hidden widths ``3*code_dim, 2*code_dim``, a linear code, and the mirror decoder.

    With ``code_dim=49`` this is the article's deep autoencoder; with ``code_dim=16`` it is the network of its
    sparse autoencoder (the L1 penalty lives in the training module, not here).

    Args:
        code_dim: size of the (linear) code.
    """

    def __init__(self, code_dim: int = 49) -> None:
        _check_positive(code_dim=code_dim)
        hidden = [3 * code_dim, 2 * code_dim]
        encoder = nn.Sequential(nn.Flatten(), *_dense_stack([_PIXELS, *hidden, code_dim], None))
        decoder_layers = _dense_stack([code_dim, *hidden[::-1], _PIXELS], None)
        decoder = SigmoidDecoder(nn.Sequential(*decoder_layers, nn.Unflatten(1, IMAGE_SHAPE)))
        super().__init__(encoder, decoder, (code_dim,))


class ChannelsLast(nn.Module):
    """Puts activations in channels-last memory order (same shape and values): convolutions, pooling and
    upsampling run about twice as fast that way on the CPU (oneDNN), and as fast or faster on GPUs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)


class ConvAutoencoder(Autoencoder):
    """The article's convolutional model; the code is a ``(1, 7, 7)`` map (Keras: ``(7, 7, 1)``).

    Convolutions pad as Keras's ``padding='same'`` (see :func:`same_conv`). Max pooling never needs padding here
    (28 and 14 are even).
    """

    def __init__(self) -> None:
        encoder = nn.Sequential(
            ChannelsLast(),
            same_conv(1, 128, 7),
            nn.ReLU(),
            MaxPool2x2(),
            same_conv(128, 32, 2),
            nn.ReLU(),
            MaxPool2x2(),
            same_conv(32, 1, 7),
            nn.ReLU(),
        )
        decoder = SigmoidDecoder(
            nn.Sequential(
                ChannelsLast(),
                same_conv(1, 32, 7),
                nn.ReLU(),
                Upsample2x(),
                same_conv(32, 128, 2),
                nn.ReLU(),
                Upsample2x(),
                same_conv(128, 1, 7),
            )
        )
        super().__init__(encoder, decoder, (1, 7, 7))


ARCHITECTURES: dict[str, type[Autoencoder]] = {
    "dense": DenseAutoencoder,
    "deep": DeepDenseAutoencoder,
    "conv": ConvAutoencoder,
}


def build_architecture(name: str, code_dim: int | None = None) -> Autoencoder:
    """Build one of the wrappable architectures by name (``dense``, ``deep``, ``conv``).

    Args:
        name: architecture name.
        code_dim: code size for the dense ones; ``None`` keeps the article's. The conv code is fixed.

    Raises:
        ValueError: on an unknown name, or a ``code_dim`` given for ``conv``.
    """
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}: choose one of {', '.join(ARCHITECTURES)}")
    if name == "conv":
        if code_dim is not None:
            raise ConfigError("the conv architecture has a fixed (1, 7, 7) code: leave code_dim unset")
        return ConvAutoencoder()
    return ARCHITECTURES[name]() if code_dim is None else ARCHITECTURES[name](code_dim)


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
