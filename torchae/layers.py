"""Faster CPU kernels for the conv network's layers: same parameters, same function as the stock layers.

The networks (:mod:`torchae.networks`) are built from stock layers; :mod:`torchae.engine` swaps these in for CPU
training (see :func:`torchae.engine.kernels.use_cpu_kernels`). Each is tested against PyTorch's own op, for values
and with ``torch.autograd.gradcheck`` in float64 (``tests/test_layers.py``). Measured on a 2-core CPU they took the
conv model's training step to about half its time with stock layers (``benchmarks/``).

- :class:`MatmulConv2d`: a convolution with one input or one output channel as one matrix product (oneDNN handles
  these shapes several times slower here); results come out channels-last, which the following layers keep.
- :class:`Upsample2x`: nearest 2x upsampling whose forward and backward are each one pass in channels-last order.
- :class:`MaxPool2x2`: 2x2 max pooling whose inference path is the maximum of four strided views.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.networks import Conv2d

__all__ = ["MatmulConv2d", "MaxPool2x2", "Upsample2x"]


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


class MatmulConv2d(Conv2d):
    """:class:`torchae.networks.Conv2d` computed as one matrix product when it has one input or one output channel
    (stride 1, odd square kernel, symmetric zero padding); other shapes take the stock convolution. The bias is
    added along the contiguous channel axis of channels-last results.

    Build it with :meth:`sharing` to compute with an existing layer's parameters.
    """

    @classmethod
    def sharing(cls, conv: Conv2d) -> MatmulConv2d:
        """A ``MatmulConv2d`` that holds ``conv``'s own weight and bias (the same ``Parameter`` objects)."""
        fast = cls(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, bias=False)
        fast.weight, fast.bias = conv.weight, conv.bias
        return fast

    def _matmul_path(self) -> bool:
        k = self.kernel_size[0]
        return (
            (self.in_channels == 1 or self.out_channels == 1)
            and self.kernel_size == (k, k)
            and k % 2 == 1
            and self.padding == (k // 2, k // 2)
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._matmul_path():
            out = (_conv_one_output_channel if self.out_channels == 1 else _conv_one_input_channel)(x, self.weight)
        else:
            out = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        if self.bias is None:
            return out
        if out.is_contiguous(memory_format=torch.channels_last):  # broadcast along the contiguous channel axis
            return (out.permute(0, 2, 3, 1) + self.bias).permute(0, 3, 1, 2)
        return out + self.bias.view(1, -1, 1, 1)


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
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"MaxPool2x2 needs even spatial sizes, got {tuple(x.shape[-2:])}")
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(x, 2)
        top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
        bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
        return torch.maximum(top, bottom)
