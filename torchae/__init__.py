"""torchae: the autoencoders and GANs of the "Autoencoders in Keras" series as PyTorch Lightning modules.

Importing torchae loads the core only (networks, models, data, optim, the registry, checkpoints, weights): neither
matplotlib (:mod:`torchae.figures`) nor the fast lane (:mod:`torchae.engine`), which the CLI installs.
Each part is a package (:mod:`torchae.part1` to :mod:`torchae.part6`) whose models register their experiments and
whose figures register themselves; importing the packages here is all it takes.
"""

# isort: off
# The parts register their experiments in the series' order (the registry's order is the listing's).
from torchae import part1, part2, part3, part4, part5, part6  # noqa: F401
from torchae import judge  # noqa: F401  (the judge of generated digits registers after the series)

# isort: on
from torchae.autoencoder import AutoencoderModule
from torchae.data import LabelledMNISTDataModule, MNISTDataModule, load_mnist, mnist_images
from torchae.errors import CheckpointError, ConfigError, DataError, InputError, UserError
from torchae.judge import DigitClassifier
from torchae.networks import Autoencoder
from torchae.optim import KerasAdam, TFRMSProp
from torchae.part1.models import ConvAE, DeepDenseAE, DenoisingAE, DenseAE, SparseAE
from torchae.part1.networks import ConvAutoencoder, DeepDenseAutoencoder, DenseAutoencoder
from torchae.part2.dots import DotsDataModule, TwoCurvesDataModule
from torchae.part2.models import DeepSparseAE, DeepSparseL1AE, DotsAE, DotsDeepAE, DotsLinearAE, DotsOverfitAE
from torchae.part3.vae import VAE
from torchae.part4.cvae import CVAE, DotsConditionalAE
from torchae.part5.gan import CGAN, GAN
from torchae.part6.cvae_gan import CVAEGAN
from torchae.registry import EXPERIMENTS, Experiment, load_checkpoint, register_experiment
from torchae.weights import pretrained

__all__ = [
    "EXPERIMENTS",
    "Autoencoder",
    "AutoencoderModule",
    "CGAN",
    "CVAE",
    "CVAEGAN",
    "CheckpointError",
    "ConfigError",
    "ConvAE",
    "ConvAutoencoder",
    "DataError",
    "DeepDenseAE",
    "DigitClassifier",
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
    "GAN",
    "InputError",
    "KerasAdam",
    "LabelledMNISTDataModule",
    "MNISTDataModule",
    "SparseAE",
    "TFRMSProp",
    "TwoCurvesDataModule",
    "UserError",
    "VAE",
    "load_checkpoint",
    "load_mnist",
    "mnist_images",
    "pretrained",
    "register_experiment",
]
__version__ = "0.1.0"
