"""Swapping :mod:`torchae.layers`' CPU kernels in for the stock layers they compute, and back."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from torchae.layers import MatmulConv2d, MaxPool2x2, Upsample2x
from torchae.networks import Conv2d

__all__ = ["fast_cpu_layer", "use_cpu_kernels"]


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value, value)


def fast_cpu_layer(layer: nn.Module) -> nn.Module | None:
    """The CPU kernel that computes what ``layer`` computes (sharing its parameters), or ``None`` if there is none."""
    if isinstance(layer, Conv2d) and not isinstance(layer, MatmulConv2d):
        return MatmulConv2d.sharing(layer)
    if type(layer) is nn.MaxPool2d and not (layer.ceil_mode or layer.return_indices):
        geometry = tuple(_pair(v) for v in (layer.kernel_size, layer.stride, layer.padding, layer.dilation))
        if geometry == ((2, 2), (2, 2), (0, 0), (1, 1)):
            return MaxPool2x2()
    if type(layer) is nn.Upsample and layer.mode == "nearest" and layer.size is None:
        if layer.scale_factor in (2, (2, 2), (2.0, 2.0)):
            return Upsample2x()
    return None


def use_cpu_kernels(net: nn.Module) -> Callable[[], None]:
    """Replace, in place, every layer of ``net`` that has a faster CPU kernel by that kernel (same parameters, same
    state_dict keys).

    Returns:
        A function that puts the original layers back.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            fast = fast_cpu_layer(child)
            if fast is not None:
                setattr(parent, name, fast)
                swapped.append((parent, name, child))

    def restore() -> None:
        for parent, name, child in reversed(swapped):
            setattr(parent, name, child)

    return restore
