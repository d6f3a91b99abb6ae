"""Part 3 of the series: the variational autoencoder, as a network of stock layers and a Lightning module.

The encoder predicts the parameters of ``q(z|x)``, a Gaussian with diagonal covariance (its mean and its log-variance);
a code is drawn from it with the reparameterisation trick, ``z = z_mean + exp(z_log_var / 2) * eps``, ``eps ~ N(0, I)``;
the decoder maps a code back to pixel probabilities. The loss is the article's ``vae_loss``:
``(784 * binary_crossentropy(x, decoded) + KL) / 2 / 784`` per image, with ``KL = -0.5 * sum(1 + z_log_var -
z_mean**2 - exp(z_log_var))`` over the latent dimensions, averaged over the batch.

Keras semantics where they differ from PyTorch's defaults, each kept here on purpose:

- BatchNormalization: Keras's ``momentum=0.99`` is the weight of the old running value; PyTorch's ``momentum`` is the
  weight of the new batch, so it is 0.01 here. Keras's ``epsilon`` is 1e-3 (PyTorch's default 1e-5). The running
  variance is the one difference left: PyTorch updates it with the unbiased batch variance, Keras with the biased one
  (a factor 500/499 at batch 500 on the 1% of each update that is new); the parity suite states its tolerance.
- LeakyReLU: Keras's default slope is 0.3 (PyTorch's 0.01).
- Adam: Keras's (:class:`~torchae.optim.KerasAdam`), at the article's learning rate 1e-4.
- The sample is drawn in evaluation too: the article draws it in a ``Lambda`` layer, which Keras runs in inference
  as well. So ``val_loss`` is the loss of one random code per test image (BatchNorm on its running statistics,
  dropout off), a noisy estimate of the expected loss, as the article's ``val_loss`` is.

Randomness: the latent sample and the dropout masks are drawn by name from the model's own streams, seeded by
``(seed, epoch, stage)`` (:mod:`torchae.draws`): plain Lightning draws them in the step, the fast lane beforehand,
and a resumed run draws what the uninterrupted one does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.autoencoder import AutoencoderModule
from torchae.draws import SeededDropout
from torchae.errors import require_rate, require_width
from torchae.inputs import check_count, check_generator, images_of
from torchae.networks import IMAGE_SHAPE, PIXELS, Autoencoder, SigmoidDecoder
from torchae.registry import ParityBudget, register_experiment

__all__ = [
    "VAE",
    "GaussianEncoder",
    "LatentDistribution",
    "VariationalAutoencoder",
    "KerasBatchNorm1d",
    "keras_batch_norm",
    "vae_loss_terms",
]

KERAS_BATCH_NORM_MOMENTUM = 0.01
"""Keras's ``BatchNormalization(momentum=0.99)`` in PyTorch's convention (the weight of the new batch)."""
KERAS_BATCH_NORM_EPSILON = 1e-3
KERAS_LEAKY_RELU_SLOPE = 0.3


class LatentDistribution(NamedTuple):
    """The Gaussian ``q(z|x)`` of a batch of images: its mean and its log-variance, each ``(N, latent_dim)``."""

    z_mean: torch.Tensor
    z_log_var: torch.Tensor


def check_latent_settings(latent_dim: int, dropout: float, latent_example: str) -> None:
    """Refuse a latent size that is not a positive integer or a dropout rate outside [0, 1), naming the setting, its
    value and an example (``latent_example``: the article's latent size)."""
    require_width("model.latent_dim", latent_dim, latent_example)
    require_rate("model.dropout", dropout, "0.3")


class KerasBatchNorm1d(nn.BatchNorm1d):
    """PyTorch's ``BatchNorm1d``, which also trains on a batch of one as Keras's ``BatchNormalization`` does: the
    batch's variance is then 0, so the layer gives its offset (beta), and the moving variance decays towards 0
    (PyTorch refuses such a batch: its running variance is the unbiased one, undefined for one sample). A last batch
    of one image (``--data.train_size 1001`` at batch 500) then trains as in Keras."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and x.shape[0] == 1):
            return super().forward(x)
        mean, variance = x.mean(0), x.var(0, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(variance, self.momentum)
            self.num_batches_tracked.add_(1)
        return (x - mean) * torch.rsqrt(variance + self.eps) * self.weight + self.bias


def keras_batch_norm(features: int) -> nn.BatchNorm1d:
    """``BatchNormalization()`` with Keras's defaults: momentum 0.99 (PyTorch's 0.01) and epsilon 1e-3; a batch of
    one trains as in Keras (:class:`KerasBatchNorm1d`)."""
    return KerasBatchNorm1d(features, eps=KERAS_BATCH_NORM_EPSILON, momentum=KERAS_BATCH_NORM_MOMENTUM)


def hidden_layer(in_features: int, out_features: int, activation: nn.Module, dropout: float) -> list[nn.Module]:
    """The article's hidden layer, ``Dense, activation, BatchNormalization(), Dropout``, as layers to unpack into a
    ``Sequential`` (their state-dict names stay the ``Sequential``'s indices)."""
    return [nn.Linear(in_features, out_features), activation, keras_batch_norm(out_features), SeededDropout(dropout)]


class GaussianEncoder(nn.Module):
    """The article's encoder: ``Flatten, Dense 256 relu, BN, Dropout, Dense 128 relu, BN, Dropout``, then the two
    heads ``z_mean`` and ``z_log_var``.

    Args:
        latent_dim: size of the latent space.
        dropout: the dropout rate.
    """

    def __init__(self, latent_dim: int = 2, dropout: float = 0.3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            *hidden_layer(PIXELS, 256, nn.ReLU(), dropout),
            *hidden_layer(256, 128, nn.ReLU(), dropout),
        )
        self.z_mean = nn.Linear(128, latent_dim)
        self.z_log_var = nn.Linear(128, latent_dim)

    def distribution(self, x: torch.Tensor) -> LatentDistribution:
        """``q(z|x)``: the mean and the log-variance of each image's code."""
        hidden = self.body(x)
        return LatentDistribution(self.z_mean(hidden), self.z_log_var(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The mean code (the article's ``z_meaner``): what ``encode`` gives and ``--part encoder`` exports."""
        return self.z_mean(self.body(x))


class VariationalAutoencoder(Autoencoder):
    """The article's VAE network: a :class:`GaussianEncoder` and the decoder ``Dense 128, LeakyReLU, BN, Dropout,
    Dense 256, LeakyReLU, BN, Dropout, Dense 784 sigmoid, Reshape``.

    ``encode`` (the encoder's ``forward``) gives the mean code and ``forward`` decodes it: deterministic, so that it
    can be exported. ``distribution`` gives the mean and the log-variance; training decodes a sampled code
    (:meth:`VAE.reconstruction_terms`).

    Args:
        latent_dim: size of the latent space (the article's 2).
        dropout: the dropout rate (the article's 0.3).
    """

    def __init__(self, latent_dim: int = 2, dropout: float = 0.3) -> None:
        check_latent_settings(latent_dim, dropout, "2")
        decoder = SigmoidDecoder(
            nn.Sequential(
                *hidden_layer(latent_dim, 128, nn.LeakyReLU(KERAS_LEAKY_RELU_SLOPE), dropout),
                *hidden_layer(128, 256, nn.LeakyReLU(KERAS_LEAKY_RELU_SLOPE), dropout),
                nn.Linear(256, PIXELS),
                nn.Unflatten(1, IMAGE_SHAPE),
            )
        )
        super().__init__(GaussianEncoder(latent_dim, dropout), decoder, (latent_dim,))

    def distribution(self, x: torch.Tensor) -> LatentDistribution:
        return self.encoder.distribution(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))


@register_experiment(
    "vae",
    epochs=1000,
    batch_size=500,
    parameters=(235_908, 236_432, 472_340),
    keras=True,
    shipped=True,
    parity_budget=ParityBudget(epochs=2, train_size=8000),
)
class VAE(AutoencoderModule):
    """The article's variational autoencoder (part 3) with a 2-D latent space; 472,340 parameters as Keras counts
    them (1,536 of them BatchNorm running statistics).

    Args:
        latent_dim: size of the latent space.
        dropout: the dropout rate of the encoder and the decoder.
        learning_rate: Adam's learning rate (the article's ``start_lr``, 1e-4).
        epsilon: Adam's epsilon, placed as Keras places it.

    The logged terms add up to the loss: ``reconstruction_loss`` is the batch mean of ``binary_crossentropy / 2``
    and ``kl_loss`` that of ``KL / 2 / 784``.
    """

    figures = ("reconstructions", "manifold", "latent_distribution")
    animations = ("manifold", "latent_distribution")
    loss_names = ("loss", "reconstruction_loss", "kl_loss")

    def __init__(
        self, latent_dim: int = 2, dropout: float = 0.3, learning_rate: float = 1e-4, epsilon: float = 1e-7
    ) -> None:
        super().__init__(self.network(latent_dim, dropout), learning_rate=learning_rate, epsilon=epsilon)

    @staticmethod
    def network(latent_dim: int, dropout: float) -> nn.Module:
        """The network this model trains: the article's :class:`VariationalAutoencoder`."""
        return VariationalAutoencoder(latent_dim, dropout)

    @property
    def latent_dim(self) -> int:
        return self.code_shape[0]

    def distribution(self, x: torch.Tensor) -> LatentDistribution:
        """``q(z|x)`` of images ``x``: the mean and log-variance of each image's code (``z_mean``, ``z_log_var``)."""
        return self.net.distribution(self.check_inputs(x, dtype=self.dtype))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images decoded from codes drawn from the prior ``N(0, I)`` (from ``generator``, or torch's global
        one), ``(n, 1, 28, 28)``.

        Raises:
            InputError: ``n`` is not an integer from 1 to :data:`~torchae.inputs.MAX_SAMPLES`, or ``generator`` is
                not a ``torch.Generator``.
        """
        n, generator = check_count(n), check_generator(generator)
        codes = torch.randn(n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype)
        return self.net.decode(codes)

    def latent_noise(self, z_mean: torch.Tensor) -> torch.Tensor:
        """The ``eps ~ N(0, I)`` of the reparameterisation trick, shaped as ``z_mean``, from the model's stream of
        the stage (:mod:`torchae.draws`; the parity check replaces it to feed Keras and torch the same noise)."""
        return self.draws.normal("latent_noise", z_mean, self.draws.stage_of(self.training))

    def reparameterize(self, distribution: LatentDistribution) -> torch.Tensor:
        """A code drawn from ``q(z|x)``: ``z_mean + exp(z_log_var / 2) * eps`` (the reparameterisation trick)."""
        return distribution.z_mean + torch.exp(distribution.z_log_var / 2) * self.latent_noise(distribution.z_mean)

    def reconstruction_terms(self, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        distribution = self.net.distribution(inputs)
        code = self.reparameterize(distribution)  # drawn in evaluation too, as the article's Lambda layer draws it
        return vae_loss_terms(self.net.decoder.logits(code), target, distribution)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """The codes' distribution (``codes``: the means, ``log_variances``) and the reconstructions of the means."""
        inputs = images_of(batch)
        z_mean, z_log_var = self.net.distribution(inputs)
        labels = {"labels": batch[1]} if isinstance(batch, (tuple, list)) else {}
        outputs = {"codes": z_mean, "log_variances": z_log_var, "reconstructions": self.net.decode(z_mean)}
        return {**outputs, "inputs": inputs, **labels}


def vae_loss_terms(
    logits: torch.Tensor, target: torch.Tensor, distribution: LatentDistribution
) -> dict[str, torch.Tensor]:
    """The article's ``vae_loss`` of a batch and its two parts: ``(784 * BCE + KL) / 2 / 784`` per image, averaged.

    Args:
        logits: the decoder's pre-sigmoid outputs for the sampled codes, shaped as ``target``.
        target: the images to reconstruct.
        distribution: ``q(z|x)`` of the batch, for the KL term.
    """
    # Keras's binary_crossentropy: the mean over the 784 pixels of each image.
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(1)
    z_mean, z_log_var = distribution
    kl = -0.5 * torch.sum(1 + z_log_var - z_mean.square() - z_log_var.exp(), dim=1)
    reconstruction, divergence = (cross_entropy / 2).mean(), (kl / 2 / PIXELS).mean()
    return {"loss": reconstruction + divergence, "reconstruction_loss": reconstruction, "kl_loss": divergence}
