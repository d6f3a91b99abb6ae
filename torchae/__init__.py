"""torchae: the autoencoders of the "Autoencoders in Keras" series as PyTorch Lightning modules.

Importing torchae loads the core only (networks, models, data, optim, the registry, checkpoints, weights): neither
matplotlib (:mod:`torchae.figures`) nor the fast lane (:mod:`torchae.engine`), which the CLI installs.
Each experiment registers itself where its model is defined (part 1 in :mod:`torchae.models`, part 2 in
:mod:`torchae.manifolds`, part 3 in :mod:`torchae.vae`, part 4 in :mod:`torchae.cvae`); importing its module here is
all it takes.
"""

# isort: off
# The parts register their experiments in the series' order (the registry's order is the listing's).
from torchae import models, manifolds, vae, cvae  # noqa: F401

# isort: on
from torchae.cvae import CVAE, DotsConditionalAE
from torchae.data import LabelledMNISTDataModule, MNISTDataModule, load_mnist
from torchae.dots import DotsDataModule, TwoCurvesDataModule
from torchae.errors import CheckpointError, ConfigError, DataError, InputError, UserError
from torchae.manifolds import DeepSparseAE, DeepSparseL1AE, DotsAE, DotsDeepAE, DotsLinearAE, DotsOverfitAE
from torchae.models import AutoencoderModule, ConvAE, DeepDenseAE, DenoisingAE, DenseAE, SparseAE
from torchae.networks import Autoencoder, ConvAutoencoder, DeepDenseAutoencoder, DenseAutoencoder
from torchae.optim import KerasAdam
from torchae.registry import EXPERIMENTS, Experiment, load_checkpoint, register_experiment
from torchae.vae import VAE
from torchae.weights import pretrained

__all__ = [
    "EXPERIMENTS",
    "Autoencoder",
    "AutoencoderModule",
    "CVAE",
    "CheckpointError",
    "ConfigError",
    "ConvAE",
    "ConvAutoencoder",
    "DataError",
    "DeepDenseAE",
    "DeepDenseAutoencoder",
    "DeepSparseAE",
    "DeepSparseL1AE",
    "DenoisingAE",
    "DenseAE",
    "DenseAutoencoder",
    "DotsAE",
    "DotsDataModule",
    "DotsConditionalAE",
    "DotsDeepAE",
    "DotsLinearAE",
    "DotsOverfitAE",
    "Experiment",
    "InputError",
    "KerasAdam",
    "LabelledMNISTDataModule",
    "MNISTDataModule",
    "SparseAE",
    "TwoCurvesDataModule",
    "UserError",
    "VAE",
    "load_checkpoint",
    "load_mnist",
    "pretrained",
    "register_experiment",
]
__version__ = "0.1.0"
