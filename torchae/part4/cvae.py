"""Part 4 of the series: the conditional VAE, which generates a chosen digit in a chosen style.

The part opens with points (:class:`~torchae.part2.dots.TwoCurvesDataModule`): part 2's sine curve and a circle
beside it, a manifold in two pieces that one plain autoencoder cannot learn. Given each point's curve as a label beside
the point and beside the code, the same deep autoencoder learns both pieces (:class:`DotsConditionalAE`,
``dots_conditional``).

Part 3's VAE with each image's label beside it: the encoder sees the image and its one-hot label and predicts
``q(z|x, y)``; the decoder sees the code and a one-hot label. The KL term still pulls ``q(z|x, y)`` towards ``N(0, I)``
whatever the label, so the code keeps what the digits have in common (slant, stroke, width): the style. Decoding one
image's code with another label writes that digit in the image's style (:meth:`CVAE.style_transfer`, the article's
``style_t`` model).

The article's network (:class:`ConditionalVariationalAutoencoder`): ``concatenate([Flatten(image), label])``, Dense
256 ReLU, BatchNorm, Dropout 0.3, then the heads ``z_mean`` and ``z_log_var`` of an 8-D latent space; the decoder
``concatenate([z, label])``, Dense 256, LeakyReLU, BatchNorm, Dropout, Dense 784 sigmoid. Batch 500, Adam 1e-3, 1000
epochs, part 3's loss and part 3's Keras semantics (:mod:`torchae.part3.vae`: BatchNorm's momentum and epsilon,
LeakyReLU's slope, the sample drawn in evaluation too).

Labels are integer digits ``(N,)`` everywhere in the API and in the datamodule's batches
(:class:`~torchae.data.LabelledMNISTDataModule`); the network one-hots them as the article's ``to_categorical``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.data import LabelledMNISTDataModule
from torchae.errors import InputError
from torchae.inputs import (
    CLASSES,
    LabelledBatch,
    as_integer,
    check_codes,
    check_count,
    check_generator,
    check_images,
    check_label,
    check_labels,
    check_points,
    one_hot,
    tracing,
)
from torchae.networks import IMAGE_SHAPE, PIXELS, keras_init_
from torchae.part2.dots import TwoCurvesDataModule
from torchae.part2.models import POINT_WIDTH, DotsAE, check_widths, elu_layers
from torchae.part3.vae import (
    KERAS_LEAKY_RELU_SLOPE,
    VAE,
    LatentDistribution,
    check_latent_settings,
    hidden_layer,
    vae_loss_terms,
)
from torchae.registry import ParityBudget, register_experiment

__all__ = [
    "CVAE",
    "ConditionalDecoder",
    "ConditionalDotsAutoencoder",
    "ConditionalGaussianEncoder",
    "ConditionalVariationalAutoencoder",
    "DotsConditionalAE",
]


class ConditionalGaussianEncoder(nn.Module):
    """The article's encoder: ``concatenate([Flatten(image), one_hot(label)])``, Dense 256 ReLU, BN, Dropout, then
    the heads ``z_mean`` and ``z_log_var``.

    Args:
        latent_dim: size of the latent space.
        dropout: the dropout rate.
    """

    def __init__(self, latent_dim: int = 8, dropout: float = 0.3) -> None:
        super().__init__()
        self.body = nn.Sequential(*hidden_layer(PIXELS + CLASSES, 256, nn.ReLU(), dropout))
        self.z_mean = nn.Linear(256, latent_dim)
        self.z_log_var = nn.Linear(256, latent_dim)

    def distribution(self, images: torch.Tensor, labels: torch.Tensor) -> LatentDistribution:
        """``q(z|x, y)``: the mean and the log-variance of each image's code, given its label."""
        hidden = self.body(torch.cat([images.flatten(1), one_hot(labels, images.dtype)], dim=1))
        return LatentDistribution(self.z_mean(hidden), self.z_log_var(hidden))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean code (the article's ``z_meaner``): what ``encode`` gives and ``--part encoder`` exports."""
        return self.distribution(images, labels).z_mean


class ConditionalDecoder(nn.Module):
    """The article's decoder: ``concatenate([z, one_hot(label)])``, Dense 256, LeakyReLU, BN, Dropout, Dense 784
    sigmoid, Reshape.

    Args:
        latent_dim: size of the latent space.
        dropout: the dropout rate.
    """

    def __init__(self, latent_dim: int = 8, dropout: float = 0.3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *hidden_layer(latent_dim + CLASSES, 256, nn.LeakyReLU(KERAS_LEAKY_RELU_SLOPE), dropout),
            nn.Linear(256, PIXELS),
            nn.Unflatten(1, IMAGE_SHAPE),
        )

    def logits(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid outputs ``(N, 1, 28, 28)``."""
        return self.body(torch.cat([codes, one_hot(labels, codes.dtype)], dim=1))

    def forward(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities ``(N, 1, 28, 28)`` of digits ``labels`` written with ``codes``."""
        return torch.sigmoid(self.logits(codes, labels))


class ConditionalVariationalAutoencoder(nn.Module):
    """The article's CVAE network; ``forward(images, labels)`` decodes the mean codes with the same labels
    (deterministic, so that it exports). Initialised as Keras initialises.

    Args:
        latent_dim: size of the latent space (the article's 8).
        dropout: the dropout rate (the article's 0.3).
    """

    def __init__(self, latent_dim: int = 8, dropout: float = 0.3) -> None:
        check_latent_settings(latent_dim, dropout, "8")
        super().__init__()
        self.encoder = ConditionalGaussianEncoder(latent_dim, dropout)
        self.decoder = ConditionalDecoder(latent_dim, dropout)
        self.code_shape = (latent_dim,)
        keras_init_(self)

    def distribution(self, images: torch.Tensor, labels: torch.Tensor) -> LatentDistribution:
        return self.encoder.distribution(images, labels)

    def encode(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.encoder(images, labels)

    def decode(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes, labels)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images, labels), labels)


CURVES = 2
"""The labels of part 4's points: 0 for the sine curve, 1 for the circle."""


class ConditionalDotsAutoencoder(nn.Module):
    """The article's ``deep_cond_ae()``: ``concatenate([dots, label])``, Dense 64 ELU, Dense 64 ELU, a linear 1-D
    code; ``concatenate([code, label])``, Dense 64 ELU, Dense 64 ELU, a linear ``Dense(2)``. The label is one number,
    the curve (0 or 1), as the article's ``Input((1,))``. Initialised as Keras initialises.

    Args:
        hidden: the encoder's hidden widths (the decoder mirrors them).
        code_dim: size of the code (the article's 1).
    """

    def __init__(self, hidden: tuple[int, ...] = (64, 64), code_dim: int = 1) -> None:
        check_widths(hidden, code_dim)
        super().__init__()
        self.encoder = elu_layers([POINT_WIDTH + 1, *hidden, code_dim])
        self.decoder = elu_layers([code_dim + 1, *hidden[::-1], POINT_WIDTH])
        self.code_shape = (code_dim,)
        keras_init_(self)

    def encode(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.encoder(torch.cat([points, labels.unsqueeze(1).to(points.dtype)], dim=1))

    def decode(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([codes, labels.unsqueeze(1).to(codes.dtype)], dim=1))

    def forward(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(points, labels), labels)


class LabelledHalf(nn.Module):
    """One half of :class:`ConditionalDotsAutoencoder` as a module of ``(inputs, labels)``, for export (its
    ``encoder`` and ``decoder`` take the label already joined to the input). It holds no weights of its own."""

    def __init__(self, net: ConditionalDotsAutoencoder, half: str) -> None:
        super().__init__()
        self.net, self.half = net, half

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net.encode(inputs, labels) if self.half == "encode" else self.net.decode(inputs, labels)


class ConditionalInputs:
    """What a conditional model shares (mixed into its module): batches of :class:`~torchae.inputs.LabelledBatch`
    from a datamodule with labels, checked inputs and labels, and labels given as one for all or one per input."""

    classes: int = CLASSES

    def inputs_of(self, batch: Any) -> LabelledBatch:
        """The ``(inputs, labels)`` pair of a batch of the model's datamodule."""
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise InputError(
                f"{type(self).__name__} takes batches of (inputs, labels), got a {type(batch).__name__}: train it "
                f"on --data torchae.{self.datamodule.__name__}"
            )
        return LabelledBatch(*batch)

    def check_labelled(self, x: Any, check_inputs: Any, check_finite: bool) -> LabelledBatch:
        """``x`` as a :class:`~torchae.inputs.LabelledBatch` if it is a pair of inputs (``check_inputs`` checks
        them) and as many labels; else an :class:`~torchae.errors.InputError` saying why."""
        if not (isinstance(x, tuple) and len(x) == 2):
            raise InputError(f"{type(self).__name__} takes inputs and their labels, got a {type(x).__name__}")
        inputs = check_inputs(x[0])
        labels = check_labels(x[1], inputs.shape[0], check_values=check_finite, classes=self.classes)
        return LabelledBatch(inputs, labels)

    def labels_for(self, labels: Any, count: int) -> torch.Tensor:
        """``labels`` checked, on the model's device: a tensor of ``count`` labels, or one label for all."""
        one = isinstance(labels, torch.Tensor) and labels.dim() == 0
        if one or isinstance(labels, bool) or as_integer(labels) is not None:
            labels = torch.full((count,), check_label(labels, "labels", self.classes), dtype=torch.long)
        return check_labels(labels, count, classes=self.classes).to(self.device)


@register_experiment(
    "dots_conditional", epochs=300, batch_size=30, parameters=(4_481, 4_482, 8_963), keras=True, shipped=True
)
class DotsConditionalAE(ConditionalInputs, DotsAE):
    """The article's conditional autoencoder of part 4's points (:class:`ConditionalDotsAutoencoder`), trained with
    the mean squared error and Keras's Adam at 1e-3 for 300 epochs at batch 30: given each point's curve, one model
    learns both pieces of the manifold (8,963 parameters).

    Its batches are :class:`~torchae.inputs.LabelledBatch` (``--data torchae.TwoCurvesDataModule``); ``encode``,
    ``decode`` and ``forward`` take the curves (0: the sine, 1: the circle) beside the points or codes.
    """

    datamodule = TwoCurvesDataModule
    conditional = True
    classes = CURVES
    figures = ("two_curves",)

    def __init__(
        self, hidden: tuple[int, ...] = (64, 64), code_dim: int = 1, learning_rate: float = 1e-3, epsilon: float = 1e-7
    ) -> None:
        super().__init__(hidden, code_dim, learning_rate=learning_rate, epsilon=epsilon)
        self.example_input_array = LabelledBatch(torch.zeros(2, POINT_WIDTH), torch.zeros(2, dtype=torch.long))

    @staticmethod
    def network(hidden: tuple[int, ...], code_dim: int) -> nn.Module:
        """The network this model trains: the article's :class:`ConditionalDotsAutoencoder`."""
        return ConditionalDotsAutoencoder(hidden, code_dim)

    def export_parts(self) -> dict[str, nn.Module]:
        """The network, and each half taking the curve beside its input (as the whole network does)."""
        return {
            "autoencoder": self.net,
            "encoder": LabelledHalf(self.net, "encode"),
            "decoder": LabelledHalf(self.net, "decode"),
        }

    def check_inputs(self, x: Any, check_finite: bool = True, dtype: torch.dtype | None = None) -> LabelledBatch:
        """``x`` if it is a pair of points ``(N, 2)`` and their curves ``(N,)``; else an
        :class:`~torchae.errors.InputError` saying why."""
        check = functools.partial(check_points, width=POINT_WIDTH, check_finite=check_finite, dtype=dtype)
        return self.check_labelled(x, check, check_finite)

    def encode(self, points: torch.Tensor, labels: Any) -> torch.Tensor:  # type: ignore[override]
        """The 1-D codes of ``points`` on curves ``labels`` (a tensor, or one curve for all)."""
        points = check_points(points, POINT_WIDTH, dtype=self.dtype)
        return self.net.encode(points, self.labels_for(labels, points.shape[0]))

    def decode(self, code: torch.Tensor, labels: Any) -> torch.Tensor:  # type: ignore[override]
        """The points ``(N, 2)`` of codes on curves ``labels``: each curve's learned manifold, parameterised by the
        code."""
        code = check_codes(code, self.code_shape, dtype=self.dtype)
        return self.net.decode(code, self.labels_for(labels, code.shape[0]))

    def forward(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Reconstructions of ``points`` given their curves, checked as :meth:`encode` checks them (shapes only under
        a tracer)."""
        return self.net(*self.check_inputs(LabelledBatch(points, labels), check_finite=not tracing(), dtype=self.dtype))

    def reconstruction_terms(self, inputs: LabelledBatch, target: LabelledBatch) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {"loss": F.mse_loss(self.net(*inputs), target.inputs)}

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        points, labels = self.inputs_of(batch)
        codes = self.net.encode(points, labels)
        return {"codes": codes, "reconstructions": self.net.decode(codes, labels), "inputs": points, "labels": labels}


@register_experiment(
    "cvae",
    epochs=1000,
    batch_size=500,
    parameters=(208_656, 207_376, 416_032),
    keras=True,
    shipped=True,
    parity_budget=ParityBudget(epochs=1, train_size=4000),
)
class CVAE(ConditionalInputs, VAE):
    """The article's conditional VAE (part 4) with an 8-D latent space; 416,032 parameters as Keras counts them
    (1,024 of them BatchNorm running statistics).

    Its batches are :class:`~torchae.inputs.LabelledBatch` (``--data torchae.LabelledMNISTDataModule``), and each
    method that takes images takes their labels too. The loss, its logged parts and ``val_loss`` are part 3's
    (:class:`~torchae.part3.vae.VAE`).

    Args:
        latent_dim: size of the latent space.
        dropout: the dropout rate of the encoder and the decoder.
        learning_rate: Adam's learning rate (the article's ``start_lr``, 1e-3).
        epsilon: Adam's epsilon, placed as Keras places it.
    """

    figures = ("reconstructions", "generated_digits", "label_manifolds", "label_distributions", "style_transfer")
    animations = ("label_manifolds", "label_distributions")
    datamodule = LabelledMNISTDataModule
    conditional = True

    def __init__(
        self, latent_dim: int = 8, dropout: float = 0.3, learning_rate: float = 1e-3, epsilon: float = 1e-7
    ) -> None:
        super().__init__(latent_dim, dropout, learning_rate=learning_rate, epsilon=epsilon)
        self.example_input_array = LabelledBatch(torch.zeros(2, *IMAGE_SHAPE), torch.zeros(2, dtype=torch.long))

    @staticmethod
    def network(latent_dim: int, dropout: float) -> nn.Module:
        """The network this model trains: the article's :class:`ConditionalVariationalAutoencoder`."""
        return ConditionalVariationalAutoencoder(latent_dim, dropout)

    def check_inputs(self, x: Any, check_finite: bool = True, dtype: torch.dtype | None = None) -> LabelledBatch:
        """``x`` if it is a pair of images ``(N, 1, 28, 28)`` and their digits ``(N,)``; else an
        :class:`~torchae.errors.InputError` saying why."""
        check = functools.partial(check_images, check_finite=check_finite, dtype=dtype)
        return self.check_labelled(x, check, check_finite)

    def distribution(self, images: torch.Tensor, labels: Any) -> LatentDistribution:  # type: ignore[override]
        """``q(z|x, y)`` of images and their labels (a tensor of digits, or one digit for all)."""
        images = check_images(images, dtype=self.dtype)
        return self.net.distribution(images, self.labels_for(labels, images.shape[0]))

    def encode(self, images: torch.Tensor, labels: Any) -> torch.Tensor:  # type: ignore[override]
        """The mean codes ``(N, latent_dim)`` of images given their labels (the article's ``z_meaner``)."""
        images = check_images(images, dtype=self.dtype)
        return self.net.encode(images, self.labels_for(labels, images.shape[0]))

    def decode(self, codes: torch.Tensor, labels: Any) -> torch.Tensor:  # type: ignore[override]
        """Digits ``labels`` (a tensor of digits, or one digit for all) written with ``codes``: pixel probabilities
        ``(N, 1, 28, 28)`` (the article's ``decoder``)."""
        codes = check_codes(codes, self.code_shape, dtype=self.dtype)
        return self.net.decode(codes, self.labels_for(labels, codes.shape[0]))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Reconstructions of ``images`` from their mean codes and ``labels``, checked as :meth:`encode` checks them
        (shapes only under a tracer)."""
        x = self.check_inputs(LabelledBatch(images, labels), check_finite=not tracing(), dtype=self.dtype)
        return self.net(*x)

    def sample(self, n: int, label: int, generator: torch.Generator | None = None) -> torch.Tensor:  # type: ignore[override]
        """``n`` digits ``label`` decoded from codes drawn from the prior ``N(0, I)`` (from ``generator``, or
        torch's global one), ``(n, 1, 28, 28)``."""
        n, label, generator = check_count(n), check_label(label), check_generator(generator)
        codes = torch.randn(n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype)
        return self.net.decode(codes, torch.full((n,), label, dtype=torch.long, device=self.device))

    def style_transfer(self, images: torch.Tensor, from_label: Any, to_label: Any) -> torch.Tensor:
        """``images`` of digits ``from_label`` rewritten as digits ``to_label`` in their style: each image's mean
        code given ``from_label``, decoded with ``to_label`` (the article's ``style_t`` model). Each label is one
        digit for all the images or a tensor of one digit per image."""
        return self.decode(self.encode(images, from_label), to_label)

    def reconstruction_terms(self, inputs: LabelledBatch, target: LabelledBatch) -> dict[str, torch.Tensor]:  # type: ignore[override]
        distribution = self.net.distribution(*inputs)
        code = self.reparameterize(distribution)  # drawn in evaluation too, as the article's Lambda layer draws it
        return vae_loss_terms(self.net.decoder.logits(code, inputs.labels), target.inputs, distribution)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """The codes' distribution given the labels (``codes``: the means, ``log_variances``), the reconstructions
        of the means, and the labels."""
        images, labels = self.inputs_of(batch)
        z_mean, z_log_var = self.net.distribution(images, labels)
        reconstructions = self.net.decode(z_mean, labels)
        return {
            "codes": z_mean,
            "log_variances": z_log_var,
            "reconstructions": reconstructions,
            "inputs": images,
            "labels": labels,
        }
