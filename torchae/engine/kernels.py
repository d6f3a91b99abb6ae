"""Swapping :mod:`torchae.layers`' CPU kernels in for the stock layers they compute, and back."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from torchae.layers import (
    ConvReLUPool2x2,
    MatmulConv2d,
    MaxPool2x2,
    Upsample2x,
    UpsampleConv2d,
    phase_kernel_size,
    same_size_odd_kernel,
)
from torchae.networks import Conv2d

__all__ = ["fast_cpu_layer", "use_cpu_kernels"]

Swap = tuple[nn.Module, str, nn.Module]
"""``(parent, name, replacement)``: ``setattr(parent, name, replacement)``."""


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value, value)


def _stock_conv(layer: nn.Module) -> bool:
    return isinstance(layer, Conv2d) and not isinstance(layer, MatmulConv2d)


def _is_max_pool_2x2(layer: nn.Module) -> bool:
    if type(layer) is not nn.MaxPool2d or layer.ceil_mode or layer.return_indices:
        return False
    geometry = tuple(_pair(v) for v in (layer.kernel_size, layer.stride, layer.padding, layer.dilation))
    return geometry == ((2, 2), (2, 2), (0, 0), (1, 1))


def _is_nearest_upsample_2x(layer: nn.Module) -> bool:
    return (
        type(layer) is nn.Upsample
        and layer.mode == "nearest"
        and layer.size is None
        and layer.scale_factor in (2, (2, 2), (2.0, 2.0))
    )


def _upsample_then_conv_fuses(conv: nn.Module) -> bool:
    """Whether :class:`UpsampleConv2d` computes ``conv`` after an upsampling with fewer products (kernels of 5 and
    more: smaller phase kernels)."""
    return (
        _stock_conv(conv)
        and same_size_odd_kernel(conv)
        and phase_kernel_size(conv.kernel_size[0]) < conv.kernel_size[0]
    )


def fast_cpu_layer(layer: nn.Module) -> nn.Module | None:
    """The CPU kernel that computes what ``layer`` computes (sharing its parameters), or ``None`` if there is none."""
    if _stock_conv(layer):
        return MatmulConv2d.sharing(layer)
    if _is_max_pool_2x2(layer):
        return MaxPool2x2()
    if _is_nearest_upsample_2x(layer):
        return Upsample2x()
    return None


def fused_cpu_layers(sequence: nn.Sequential) -> list[Swap]:
    """Runs of layers of ``sequence`` that one kernel computes: a convolution, ``nn.ReLU`` and 2x2 max pooling
    (:class:`ConvReLUPool2x2`; the convolution alone or last in a ``nn.Sequential``, after its padding), and a
    nearest 2x upsampling followed by a convolution with a kernel of 5 or more (:class:`UpsampleConv2d`). The fused
    kernel takes the convolution's place (its parameters keep their ``state_dict`` keys) and ``nn.Identity`` the
    other layers'."""
    swaps: list[Swap] = []
    layers = list(sequence.named_children())
    i = 0
    while i < len(layers):
        name, layer = layers[i]
        following = [child for _, child in layers[i + 1 : i + 3]]
        # a convolution, or the last layer of a Sequential (its padding, then the convolution)
        conv_owner, conv_name = (layer, str(len(layer) - 1)) if isinstance(layer, nn.Sequential) else (sequence, name)
        conv = getattr(conv_owner, conv_name, None)
        if (
            _stock_conv(conv)
            and len(following) == 2
            and type(following[0]) is nn.ReLU
            and _is_max_pool_2x2(following[1])
        ):
            swaps.append((conv_owner, conv_name, ConvReLUPool2x2.sharing(conv)))
            swaps += [(sequence, layers[i + j][0], nn.Identity()) for j in (1, 2)]
            i += 3
        elif _is_nearest_upsample_2x(layer) and following and _upsample_then_conv_fuses(following[0]):
            swaps.append((sequence, name, nn.Identity()))
            swaps.append((sequence, layers[i + 1][0], UpsampleConv2d.sharing(following[0])))
            i += 2
        else:
            i += 1
    return swaps


def use_cpu_kernels(net: nn.Module) -> Callable[[], None]:
    """Replace, in place, the layers of ``net`` that have a faster CPU kernel by that kernel (same parameters, same
    ``state_dict`` keys): first the runs of layers one kernel computes (:func:`fused_cpu_layers`), then single
    layers (:func:`fast_cpu_layer`).

    Returns:
        A function that puts the original layers back.
    """
    replaced: list[Swap] = []

    def swap(parent: nn.Module, name: str, layer: nn.Module) -> None:
        replaced.append((parent, name, getattr(parent, name)))
        setattr(parent, name, layer)

    for sequence in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for parent, name, layer in fused_cpu_layers(sequence):
            swap(parent, name, layer)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            fast = fast_cpu_layer(child)
            if fast is not None:
                swap(parent, name, fast)

    def restore() -> None:
        for parent, name, layer in reversed(replaced):
            setattr(parent, name, layer)

    return restore
