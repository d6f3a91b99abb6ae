"""Part 1 of the series, autoencoders: the article's five models, each a few lines over the autoencoder base
(:class:`~torchae.autoencoder.AutoencoderModule`), each registering its experiment.

The dense autoencoder (49-number codes), the deep dense one, the convolutional one, the denoising one (retrained from
the dense model on noisy inputs) and the sparse one (an L1 penalty on the code).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from torchae.autoencoder import AutoencoderModule, Stage
from torchae.checkpoints import network_state
from torchae.errors import require
from torchae.networks import Autoencoder
from torchae.part1.networks import ConvAutoencoder as ConvNetwork
from torchae.part1.networks import DeepDenseAutoencoder, DenseAutoencoder, build_architecture
from torchae.registry import ParityBudget, register_experiment

__all__ = [
    "ConvAE",
    "DeepDenseAE",
    "DenoisingAE",
    "DenseAE",
    "SparseAE",
]


@register_experiment(
    "dense",
    epochs=50,
    batch_size=256,
    parameters=(38_465, 39_200, 77_665),
    article_losses=(0.0784, 0.0777),
    keras=True,
    shipped=True,
    parity_budget=ParityBudget(epochs=2),
)
class DenseAE(AutoencoderModule):
    """The article's dense autoencoder: 784 -> ``code_dim`` = 49 (relu) -> 784 (sigmoid); 77,665 parameters."""

    def __init__(self, code_dim: int = 49, learning_rate: float = 1e-3, epsilon: float = 1e-7) -> None:
        super().__init__(DenseAutoencoder(code_dim), learning_rate=learning_rate, epsilon=epsilon)


@register_experiment(
    "deep",
    epochs=100,
    batch_size=256,
    parameters=(134_750, 135_485, 270_235),
    article_losses=(0.0721, 0.0720),
    keras=True,
    shipped=True,
    # No short parity check: the deep model trains by the dense model's path (its check), and its full-length
    # record stands in parity/results/deep.json.
)
class DeepDenseAE(AutoencoderModule):
    """The article's deep dense autoencoder: 784-147-98-``code_dim`` (49) and back; 270,235 parameters."""

    def __init__(self, code_dim: int = 49, learning_rate: float = 1e-3, epsilon: float = 1e-7) -> None:
        super().__init__(DeepDenseAutoencoder(code_dim), learning_rate=learning_rate, epsilon=epsilon)


@register_experiment(
    "conv",
    epochs=64,
    batch_size=256,
    parameters=(24_385, 24_385, 48_770),
    article_losses=(0.0697, 0.0693),
    keras=True,
    shipped=True,
    # No short parity check: one epoch of a few hundred images proved less than the full-length record
    # (parity/results/conv.json) and one step of each step path against Keras (python -m parity check conv).
)
class ConvAE(AutoencoderModule):
    """The article's convolutional autoencoder with a ``(1, 7, 7)`` code; 48,770 parameters. Part 2 reuses it for its
    homotopy figure (a straight line between two digits in pixel space and in code space)."""

    figures = ("reconstructions", "codes_2d", "interpolation", "homotopy")

    def __init__(self, learning_rate: float = 1e-3, epsilon: float = 1e-7) -> None:
        super().__init__(ConvNetwork(), learning_rate=learning_rate, epsilon=epsilon)


@register_experiment(
    "denoising",
    epochs=200,
    batch_size=16,
    parameters=(38_465, 39_200, 77_665),
    retrains="dense",
    keras=True,
    shipped=True,
    parity_budget=ParityBudget(epochs=2, train_size=2048, seeds=(0, 1)),
)
class DenoisingAE(AutoencoderModule):
    """Another autoencoder trained to undo noise: ``clip(x + N(noise_mean, noise_std), 0, 1)`` goes in, the clean
    ``x`` is the target. Fresh noise for every batch, in training and validation alike (the article's noise layer
    is part of the model), from streams seeded by ``(seed, epoch, stage)``: a resumed run draws the same noise.

    Args:
        architecture: which network to wrap: ``dense`` (the article's choice), ``deep`` or ``conv``.
        code_dim: code size of a dense network; ``None`` keeps the article's.
        noise_mean: mean of the additive Gaussian noise.
        noise_std: standard deviation of the noise.
        init_from: a checkpoint of the same network to start from (the article retrains its dense model).
        seed: seed of the noise; ``None`` takes the process seed (``seed_everything``).
    """

    def __init__(
        self,
        architecture: Literal["dense", "deep", "conv"] = "dense",
        code_dim: int | None = None,
        noise_mean: float = 0.5,
        noise_std: float = 0.5,
        init_from: str | None = None,
        seed: int | None = None,
        learning_rate: float = 1e-3,
        epsilon: float = 1e-7,
    ) -> None:
        require(noise_std >= 0, "model.noise_std", noise_std, "zero or a positive number", "0.5")
        require(math.isfinite(noise_mean), "model.noise_mean", noise_mean, "a finite number", "0.5")
        super().__init__(build_architecture(architecture, code_dim), learning_rate=learning_rate, epsilon=epsilon)
        self.noise_mean, self.noise_std = noise_mean, noise_std
        self.init_from, self.seed = init_from, seed
        self.draws.seed = seed
        self._init_loaded = False

    figures = ("reconstructions", "denoising", "codes_2d", "interpolation")
    # The noise seed travels in the checkpoint (with the model's streams); as a hyperparameter it would clash with
    # the datamodule's own `seed` when Lightning logs both.
    unsaved_arguments = ("seed",)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.init_from is not None and not self._init_loaded:
            self.net.load_state_dict(network_state(self.init_from, self.net))
            self._init_loaded = True

    def add_noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``clip(x + N(noise_mean, noise_std), 0, 1)``, drawn from ``generator`` (default: the global RNG)."""
        return self.noisy(x, torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype))

    def noisy(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``clip(x + noise_mean + noise_std * noise, 0, 1)`` for standard normal ``noise`` shaped as ``x``."""
        return (x + (noise * self.noise_std + self.noise_mean)).clamp(0.0, 1.0)

    def corrupt(self, x: torch.Tensor, stage: Stage) -> torch.Tensor:
        """``x`` with fresh noise from the model's stream of ``stage`` (:mod:`torchae.draws`)."""
        return self.noisy(x, self.draws.normal("input_noise", x, stage))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.seed = self.draws.seed
        self._init_loaded = True  # the checkpoint's weights win over init_from


@register_experiment(
    "sparse",
    epochs=400,
    batch_size=256,
    parameters=(39_776, 40_544, 80_320),
    keras=True,
    shipped=True,
    parity_budget=ParityBudget(epochs=2),
)
class SparseAE(AutoencoderModule):
    """The article's sparse autoencoder: the deep layout, a 16-dimensional code and an L1 penalty; 80,320 parameters.

    Args:
        code_dim: size of the code.
        l1: the L1 coefficient (the article's ``lambda_l1``); the penalty is ``l1 * sum(|code|) / batch_size``.
    """

    def __init__(
        self, code_dim: int = 16, l1: float = 1e-5, learning_rate: float = 1e-3, epsilon: float = 1e-7
    ) -> None:
        require(l1 >= 0, "model.l1", l1, "zero or a positive number", "1e-5")
        super().__init__(self.network(code_dim), learning_rate=learning_rate, epsilon=epsilon)
        self.l1 = l1

    figures = ("reconstructions", "sparse_code_dimensions", "codes_2d", "interpolation")
    loss_names = ("loss", "reconstruction_loss", "l1_penalty")

    @staticmethod
    def network(code_dim: int) -> Autoencoder:
        """The network this model trains: part 1's deep layout with a ``code_dim`` code."""
        return DeepDenseAutoencoder(code_dim)

    def activity_penalty(self, code: torch.Tensor) -> torch.Tensor:
        return self.l1 * code.abs().sum() / code.shape[0]
