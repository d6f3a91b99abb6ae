"""Faster CPU kernels for the conv network's layers: same parameters, same function as the stock layers.

The networks (:mod:`torchae.networks`) are built from stock layers; :mod:`torchae.engine` swaps these in for CPU
training (see :func:`torchae.engine.kernels.use_cpu_kernels`). Each is tested against PyTorch's own op, for values
and with ``torch.autograd.gradcheck`` in float64 (``tests/test_layers.py``).

- :class:`MatmulConv2d`: a convolution with one input or one output channel as one matrix product (oneDNN handles
  these shapes several times slower here); results come out channels-last, which the following layers keep.
- :class:`ConvReLUPool2x2`: a convolution, ReLU and 2x2 max pooling in the order pool, bias, ReLU: the same
  function (a maximum commutes with adding a per-channel constant and with ReLU), with the bias and the ReLU, and
  their gradients, on a quarter of the pixels.
- :class:`UpsampleConv2d`: nearest 2x upsampling followed by a convolution, as one convolution of the small map
  with the kernel's four phase kernels and a pixel shuffle: the upsampled map is never made, and a 7x7 kernel
  becomes four 5x5 ones (half the products).
- :class:`Upsample2x`: nearest 2x upsampling whose forward and backward are each one pass in channels-last order.
- :class:`MaxPool2x2`: 2x2 max pooling whose inference path is the maximum of four strided views.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.networks import Conv2d

__all__ = [
    "ConvReLUPool2x2",
    "MatmulConv2d",
    "MaxPool2x2",
    "Upsample2x",
    "UpsampleConv2d",
    "phase_kernel_size",
    "same_size_odd_kernel",
]


def _conv_one_input_channel(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, padding=k // 2)`` for ``x`` of shape ``(N, 1, H, W)``; the result is channels-last."""
    n, _, h, w = x.shape
    out_channels, k = weight.shape[0], weight.shape[-1]
    columns = F.unfold(x, k, padding=k // 2).transpose(1, 2).reshape(n * h * w, k * k)
    return (columns @ weight.view(out_channels, k * k).t()).view(n, h, w, out_channels).permute(0, 3, 1, 2)


def _conv_few_output_channels(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, padding=k // 2)`` for a ``weight`` of shape ``(O, C, k, k)`` with few outputs ``O``.

    Each pixel's channels are projected onto the ``O * k * k`` kernel taps (one matrix product), and ``fold`` adds
    each tap's contribution at its offset. ``fold`` scatters where a convolution gathers, hence the flipped taps.
    """
    n, channels, h, w = x.shape
    out_channels, k = weight.shape[0], weight.shape[-1]
    rows = x.permute(0, 2, 3, 1).reshape(n * h * w, channels)
    taps = rows @ weight.flip(2, 3).transpose(0, 1).reshape(channels, out_channels * k * k)
    return F.fold(taps.view(n, h * w, out_channels * k * k).transpose(1, 2), (h, w), k, padding=k // 2)


def _add_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``out + bias`` per channel, along the contiguous channel axis where ``out`` is channels-last."""
    if bias is None:
        return out
    if out.is_contiguous(memory_format=torch.channels_last):
        return (out.permute(0, 2, 3, 1) + bias).permute(0, 3, 1, 2)
    return out + bias.view(1, -1, 1, 1)


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling with stride 2: ``F.max_pool2d`` with gradients, the maximum of the four strided sub-grids
    without (5x faster on channels-last CPU tensors here; ``F.max_pool2d``'s index-based backward is far cheaper
    than that of the maxima). The same values either way."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"2x2 max pooling needs even spatial sizes, got {tuple(x.shape[-2:])}")
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2)
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
    return torch.maximum(top, bottom)


def same_size_odd_kernel(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` has an odd square kernel ``k``, ``k // 2`` zeros of padding and stride 1 (so its output has
    its input's size), without dilation or groups."""
    k = conv.kernel_size[0]
    return (
        conv.kernel_size == (k, k)
        and k % 2 == 1
        and conv.padding == (k // 2, k // 2)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


class MatmulConv2d(Conv2d):
    """:class:`torchae.networks.Conv2d` computed as one matrix product when it has one input or one output channel
    (stride 1, odd square kernel, symmetric zero padding); other shapes take the stock convolution. The bias is
    added along the contiguous channel axis of channels-last results.

    Build it with :meth:`sharing` to compute with an existing layer's parameters.
    """

    @classmethod
    def sharing(cls, conv: Conv2d) -> MatmulConv2d:
        """A layer of this class that holds ``conv``'s own weight and bias (the same ``Parameter`` objects)."""
        fast = cls(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, bias=False)
        fast.weight, fast.bias = conv.weight, conv.bias
        return fast

    def _matmul_path(self) -> bool:
        return (self.in_channels == 1 or self.out_channels == 1) and same_size_odd_kernel(self)

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution without its bias."""
        if self._matmul_path():
            return (_conv_few_output_channels if self.out_channels == 1 else _conv_one_input_channel)(x, self.weight)
        return F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _add_bias(self.convolve(x), self.bias)


class ConvReLUPool2x2(MatmulConv2d):
    """``MaxPool2d(2)(relu(conv(x)))`` for a :class:`MatmulConv2d`'s convolution, computed as
    ``relu(max_pool(conv_without_bias(x)) + bias)``.

    The same function: the maximum of four values plus a constant is the maximum of the four sums, and ReLU, being
    monotone, commutes with the maximum. The gradients are the same too, except where two of a window's values tie
    after the bias is added but not before (float rounding), where each routes the gradient to one of the tied
    values. Build it with :meth:`sharing`; it holds the convolution's parameters, so the ReLU and the pooling it
    replaces have none.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(_add_bias(_max_pool_2x2(self.convolve(x)), self.bias))


def _phase_taps(kernel_size: int, before: int) -> tuple[torch.Tensor, int]:
    """How a ``kernel_size``-tap kernel with ``before`` zeros of padding, applied along one axis of a signal upsampled
    by 2 (nearest), reads the original signal: ``taps[a, j, t]`` is 1 where tap ``t`` of the kernel, for outputs of
    parity ``a``, reads original sample ``i + j + lowest`` for output ``2 * i + a``.

    Returns:
        ``(taps, lowest)``: the ``(2, span, kernel_size)`` 0/1 tensor and the lowest offset read (``span`` offsets).
    """
    offsets = [[(phase - before + t) // 2 for t in range(kernel_size)] for phase in (0, 1)]
    lowest = min(min(row) for row in offsets)
    span = max(max(row) for row in offsets) - lowest + 1
    taps = torch.zeros(2, span, kernel_size)
    for phase, row in enumerate(offsets):
        for t, offset in enumerate(row):
            taps[phase, offset - lowest, t] = 1.0
    return taps, lowest


def phase_kernel_size(kernel_size: int) -> int:
    """The size of the phase kernels of :class:`UpsampleConv2d` for an odd ``kernel_size`` (5 for 7)."""
    return _phase_taps(kernel_size, kernel_size // 2)[0].shape[1]


class UpsampleConv2d(MatmulConv2d):
    """``conv(Upsample(scale_factor=2, mode="nearest")(x))`` for a :class:`MatmulConv2d`'s convolution with an odd
    square kernel and ``k // 2`` zeros of padding, computed on ``x`` itself.

    Each output pixel of parity ``(a, b)`` reads a ``k x k`` window of the upsampled map, which covers fewer pixels
    of ``x``: the kernel's taps that fall on the same pixel of ``x`` add up into a smaller phase kernel (``5 x 5``
    for ``7 x 7``; :func:`phase_kernel_size`). One convolution of ``x`` with the four phase kernels as output
    channels, then ``F.pixel_shuffle``, gives the result. The phase kernels are sums of the kernel's weights, so the
    result equals the stock layers' up to float rounding, and autograd gives the kernel's gradient through the sums.
    Build it with :meth:`sharing`; the upsampling it replaces has no parameters.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not same_size_odd_kernel(self):
            raise ValueError(
                f"UpsampleConv2d needs a stride-1 odd square kernel with k // 2 zeros of padding, got kernel "
                f"{self.kernel_size}, padding {self.padding}, stride {self.stride}"
            )
        taps, lowest = _phase_taps(self.kernel_size[0], self.padding[0])
        self.register_buffer("phase_taps", taps, persistent=False)
        self.phase_padding = -lowest  # the phase kernels are centred: -lowest zeros on every side

    def phase_weight(self) -> torch.Tensor:
        """The four phase kernels, ``(4 * out_channels, in_channels, s, s)`` in ``F.pixel_shuffle``'s channel order
        (output channel ``o``'s phase ``(a, b)`` at ``4 * o + 2 * a + b``)."""
        taps = self.phase_taps.to(self.weight.dtype)
        phases = torch.einsum("ajt,blu,octu->oabcjl", taps, taps, self.weight)
        span = taps.shape[1]
        return phases.reshape(4 * self.out_channels, self.in_channels, span, span)

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.phase_weight()
        if self.out_channels == 1:  # four phase channels: few enough for the matrix product
            return F.pixel_shuffle(_conv_few_output_channels(x, weight), 2)
        return F.pixel_shuffle(F.conv2d(x, weight, padding=self.phase_padding), 2)


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
    """Nearest-neighbour 2x upsampling (``nn.Upsample(scale_factor=2)``) that keeps the channels-last order; each
    direction is one pass over the data (``nn.Upsample`` and autograd's own backward of a broadcast copy both make
    extra passes on the CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _NearestUpsample2x.apply(x)


class MaxPool2x2(nn.Module):
    """2x2 max pooling with stride 2 (``nn.MaxPool2d(2)``) for even spatial sizes.

    Without gradients (inference) it is the elementwise maximum of the four strided sub-grids, 5x faster than
    ``F.max_pool2d`` on channels-last CPU tensors here; with gradients it is ``F.max_pool2d``, whose index-based
    backward is far cheaper than that of the maxima. Same values either way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _max_pool_2x2(x)
