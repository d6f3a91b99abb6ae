"""MNIST, read offline from the four IDX files shipped in ``torchae/data/mnist/`` (or a Keras ``mnist.npz``), served
as whole-tensor batches: :mod:`~torchae.data.files` reads and verifies the files, :mod:`~torchae.data.batches` serves
tensors as batches and step groups, :mod:`~torchae.data.mnist` is MNIST's datamodules.

The whole split is one float32 tensor ``(N, 1, 28, 28)`` in [0, 1] (``uint8 / 255``, as the article).
"""

from torchae.data.batches import BatchGroup, TensorBatches, TensorDataModule, batches_of, check_positive_int, mix_seed
from torchae.data.files import (
    MAX_ITEMS,
    MNIST_FILES,
    MNISTSplits,
    embedded_mnist_dir,
    load_mnist,
    mnist_images,
    to_image_tensor,
)
from torchae.data.mnist import LabelledMNISTDataModule, MNISTDataModule
from torchae.errors import DataError

__all__ = [
    "MAX_ITEMS",
    "MNIST_FILES",
    "BatchGroup",
    "DataError",
    "LabelledMNISTDataModule",
    "MNISTDataModule",
    "MNISTSplits",
    "TensorBatches",
    "TensorDataModule",
    "batches_of",
    "check_positive_int",
    "embedded_mnist_dir",
    "load_mnist",
    "mix_seed",
    "mnist_images",
    "to_image_tensor",
]
