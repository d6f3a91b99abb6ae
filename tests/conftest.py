"""Shared fixtures.

torch._dynamo is imported before anything can import TensorFlow: TensorFlow loaded first makes the process crash
when a torch optimizer is created (SPEC.md, "One process with both PyTorch and TensorFlow"). pytest imports this
file before any test module, so every test order is safe; ``test_import_order.py`` proves it.
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo  # noqa: F401  (must precede any TensorFlow import; see the module docstring)

from torchae.data import load_mnist, to_image_tensor


@pytest.fixture(scope="session")
def mnist():
    return load_mnist()


@pytest.fixture(scope="session")
def test_images(mnist) -> torch.Tensor:
    """The first 256 MNIST test images, ``(256, 1, 28, 28)`` float32 in [0, 1]."""
    return to_image_tensor(mnist.x_test[:256])
