"""torchae: the five MNIST autoencoders of "Autoencoders in Keras, part 1" as PyTorch Lightning modules."""

from torchae.data import MNISTDataModule, load_mnist
from torchae.engine import Engine
from torchae.errors import CheckpointError, ConfigError, DataError, InputError, UserError
from torchae.models import AutoencoderModule, ConvAE, DeepDenseAE, DenoisingAE, DenseAE, SparseAE
from torchae.networks import Autoencoder, ConvAutoencoder, DeepDenseAutoencoder, DenseAutoencoder
from torchae.optim import KerasAdam
from torchae.registry import EXPERIMENTS, Experiment, load_checkpoint
from torchae.weights import pretrained

__all__ = [
    "EXPERIMENTS",
    "Autoencoder",
    "AutoencoderModule",
    "CheckpointError",
    "ConfigError",
    "ConvAE",
    "ConvAutoencoder",
    "DataError",
    "DeepDenseAE",
    "DeepDenseAutoencoder",
    "DenoisingAE",
    "DenseAE",
    "DenseAutoencoder",
    "Engine",
    "Experiment",
    "InputError",
    "KerasAdam",
    "MNISTDataModule",
    "SparseAE",
    "UserError",
    "load_checkpoint",
    "load_mnist",
    "pretrained",
]
__version__ = "0.1.0"
