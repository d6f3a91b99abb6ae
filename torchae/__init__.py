"""torchae: the five MNIST autoencoders of "Autoencoders in Keras, part 1" as PyTorch Lightning modules."""

from torchae.architectures import Autoencoder, ConvAutoencoder, DeepDenseAutoencoder, DenseAutoencoder
from torchae.data import MNISTDataModule, load_mnist
from torchae.errors import CheckpointError, DataError, InputError, UserError
from torchae.modules import (
    MODELS,
    AutoencoderModule,
    ConvAE,
    DeepDenseAE,
    DenoisingAE,
    DenseAE,
    SparseAE,
    load_checkpoint,
)
from torchae.optim import KerasAdam

__all__ = [
    "MODELS",
    "Autoencoder",
    "AutoencoderModule",
    "CheckpointError",
    "ConvAE",
    "DataError",
    "InputError",
    "UserError",
    "ConvAutoencoder",
    "DeepDenseAE",
    "DeepDenseAutoencoder",
    "DenoisingAE",
    "DenseAE",
    "DenseAutoencoder",
    "KerasAdam",
    "MNISTDataModule",
    "SparseAE",
    "load_checkpoint",
    "load_mnist",
]
__version__ = "0.1.0"
