"""Weights between Keras and torchae, both ways, matched by order and shape (never by name).

Layout conventions (the one place they are converted):

- Keras ``Dense`` kernel ``(in, out)``  <->  ``nn.Linear.weight`` ``(out, in)``: a transpose. The flattened input
  has the same pixel order on both sides because NHWC and NCHW flatten alike with one channel.
- Keras ``Conv2D`` kernel ``(kh, kw, in, out)``  <->  ``nn.Conv2d.weight`` ``(out, in, kh, kw)``.
- Keras ``BatchNormalization`` ``gamma, beta, moving_mean, moving_variance``  <->  ``nn.BatchNorm1d``'s ``weight,
  bias, running_mean, running_var`` (the VAE): as they are.
- Images: Keras NHWC ``(N, 28, 28, 1)``, torchae NCHW ``(N, 1, 28, 28)`` (:func:`to_nhwc`, :func:`to_nchw`).
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

import numpy as np
import torch
from torch import nn

from parity._keras import import_keras

__all__ = [
    "TransferError",
    "keras_arrays",
    "keras_to_torch",
    "keras_variables",
    "layer_pairs",
    "to_nchw",
    "to_nhwc",
    "torch_tensors",
    "torch_to_keras",
    "worst_weight_difference",
]


class TransferError(ValueError):
    """The two models do not have the same layers; the message names the first that does not fit."""


def to_nhwc(x: Any) -> np.ndarray:
    """torchae images/codes ``(N, C, H, W)`` to Keras's ``(N, H, W, C)``; flat codes pass through."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)) if array.ndim == 4 else array


def to_nchw(x: Any) -> torch.Tensor:
    """Keras's ``(N, H, W, C)`` to torchae's ``(N, C, H, W)``; flat codes pass through."""
    array = np.asarray(x)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2) if array.ndim == 4 else array))


def _keras_weighted_layers(model: Any) -> list[Any]:
    """Dense and Conv2D layers in the order the model applies them, nested models expanded."""
    keras = import_keras(backend=None)
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(_keras_weighted_layers(layer))
        elif isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D, keras.layers.BatchNormalization)):
            found.append(layer)
        elif layer.weights:
            raise TransferError(
                f"Keras layer {layer.name!r} ({type(layer).__name__}) has weights but no torchae "
                "counterpart: the article's models hold only Dense, Conv2D and BatchNormalization weights"
            )
    return found


def _torch_weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    net = getattr(model, "net", model)
    kinds = (nn.Linear, nn.Conv2d, nn.BatchNorm1d)
    return [(name, module) for name, module in net.named_modules() if isinstance(module, kinds)]


def _keras_kernel_shape(module: nn.Module) -> tuple[int, ...]:
    shape = tuple(module.weight.shape)
    if isinstance(module, nn.BatchNorm1d):
        return shape
    return (shape[1], shape[0]) if isinstance(module, nn.Linear) else (shape[2], shape[3], shape[1], shape[0])


_KINDS = {"Dense": nn.Linear, "Conv2D": nn.Conv2d, "BatchNormalization": nn.BatchNorm1d}


def keras_arrays(layer: Any) -> list[np.ndarray]:
    """A Keras layer's weights in PyTorch's layout and the order of :func:`torch_tensors`: a kernel and its bias,
    or BatchNormalization's ``gamma, beta, moving_mean, moving_variance``."""
    if type(layer).__name__ == "BatchNormalization":
        return [np.asarray(v.numpy()) for v in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)]
    arrays = [kernel_to_torch(np.asarray(layer.kernel.numpy()))]
    return arrays + ([np.asarray(layer.bias.numpy())] if layer.bias is not None else [])


def torch_tensors(module: nn.Module) -> list[torch.Tensor]:
    """A torch layer's weights in the order of :func:`keras_arrays`: ``weight, bias``, and a BatchNorm's running
    statistics after them."""
    tensors = [module.weight] + ([module.bias] if module.bias is not None else [])
    if isinstance(module, nn.BatchNorm1d):
        tensors += [module.running_mean, module.running_var]
    return tensors


def worst_weight_difference(
    pairs: list[tuple[Any, str, nn.Module]], torch_model: nn.Module, statistics: bool = True
) -> float:
    """The largest absolute difference between the Keras layers of ``pairs`` and the same-named layers of
    ``torch_model`` (the model the pairs were made from, or a copy of it): kernels and biases, and BatchNorm's
    running statistics unless ``statistics`` is False."""
    worst = 0.0
    for k_layer, module_name, _ in pairs:
        arrays, tensors = keras_arrays(k_layer), torch_tensors(torch_model.get_submodule(module_name))
        if not statistics:
            arrays, tensors = arrays[:2], tensors[:2]
        for array, tensor in zip(arrays, tensors, strict=True):
            difference = np.asarray(array, dtype=np.float64) - tensor.detach().cpu().double().numpy()
            worst = max(worst, float(np.max(np.abs(difference))))
    return worst


def keras_variables(layer: Any) -> list[Any]:
    """A Keras layer's variables in the order of :func:`keras_arrays`."""
    if type(layer).__name__ == "BatchNormalization":
        return [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance]
    return [layer.kernel] + ([layer.bias] if layer.bias is not None else [])


def layer_pairs(keras_model: Any, torch_model: nn.Module) -> list[tuple[Any, str, nn.Module]]:
    """``(keras_layer, torch_name, torch_module)`` for every weighted layer, checked for kind and shape.

    Raises:
        TransferError: naming the first layer that has no counterpart or does not fit.
    """
    keras = import_keras(backend=None)
    pairs = []
    keras_layers, torch_layers = _keras_weighted_layers(keras_model), _torch_weighted_layers(torch_model)
    for index, (k_layer, t_entry) in enumerate(zip_longest(keras_layers, torch_layers)):
        if k_layer is None or t_entry is None:
            extra = f"Keras layer {k_layer.name!r}" if t_entry is None else f"torch layer {t_entry[0]!r}"
            raise TransferError(
                f"weighted layer {index}: {extra} has no counterpart (Keras has {len(keras_layers)}"
                f" Dense/Conv2D layers, torchae {len(torch_layers)})"
            )
        t_name, t_module = t_entry
        same_kind = isinstance(t_module, _KINDS[type(k_layer).__name__])
        normalizes = isinstance(k_layer, keras.layers.BatchNormalization)
        kernel_shape = tuple((k_layer.gamma if normalizes else k_layer.kernel).shape)
        bias_ok = normalizes or (k_layer.bias is None) == (t_module.bias is None)
        if not same_kind or kernel_shape != _keras_kernel_shape(t_module) or not bias_ok:
            raise TransferError(
                f"weighted layer {index} does not fit: Keras {k_layer.name!r} ({type(k_layer).__name__}, kernel "
                f"{kernel_shape}) vs torch {t_name!r} ({type(t_module).__name__}, expects a Keras kernel "
                f"{_keras_kernel_shape(t_module)})"
            )
        pairs.append((k_layer, t_name, t_module))
    return pairs


def kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """A Keras kernel in PyTorch's layout (see the module docstring)."""
    return kernel.T if kernel.ndim == 2 else kernel.transpose(3, 2, 0, 1)


def kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """A PyTorch weight in Keras's layout."""
    return weight.T if weight.ndim == 2 else weight.transpose(2, 3, 1, 0)


def keras_to_torch(keras_model: Any, torch_model: nn.Module) -> nn.Module:
    """Copy the weights of a Keras model with the article's architecture into a torchae model (in place).

    Args:
        keras_model: any Keras model with the article's layers (built here, or loaded from ``.keras``/``.h5``).
        torch_model: a torchae ``AutoencoderModule`` or ``Autoencoder``.

    Returns:
        ``torch_model``.
    """
    pairs = layer_pairs(keras_model, torch_model)
    with torch.no_grad():
        for k_layer, _, t_module in pairs:
            for tensor, array in zip(torch_tensors(t_module), keras_arrays(k_layer), strict=True):
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))
    return torch_model


def torch_to_keras(torch_model: nn.Module, keras_model: Any) -> Any:
    """Copy a torchae model's weights into a Keras model with the article's architecture (in place).

    Returns:
        ``keras_model``.
    """
    for k_layer, _, t_module in layer_pairs(keras_model, torch_model):
        for variable, tensor in zip(keras_variables(k_layer), torch_tensors(t_module), strict=True):
            array = tensor.detach().cpu().numpy()
            variable.assign(kernel_to_keras(array) if variable is getattr(k_layer, "kernel", None) else array)
    return keras_model
