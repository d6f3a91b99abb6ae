"""Part 6 of the series: the CVAE-GAN (Larsen et al., 2016, as the article builds it), a conditional VAE whose
reconstructions are compared in the activations of a discriminator's l-th layer instead of pixel by pixel.

Three networks (:mod:`torchae.part6.networks`) and the article's losses, each summed over the batch and divided by
28 * 28 as it writes them::

    L_prior     = -0.5 * sum(1 + clip(z_log_var, -2, 2) - z_mean^2 - exp(clip(z_log_var, -2, 2))) / 784
    L_GAN       = -1/4 * sum(log(D(x)) + 2 log(1 - D(Dec(z_p))) + log(1 - D(Dec(Enc(x))))) / 784
    L_dis_llike = sum(sigmoid_cross_entropy(labels=sigmoid(d_l(x)), logits=d_l(Dec(Enc(x))))) / 784

(each log with the article's ``1e-10``), trained by three of TensorFlow 1's RMSProp: the encoder at 1e-3 on
``L_prior + L_dis_llike``, the decoder at 3e-4 on ``gamma * L_dis_llike - L_GAN`` (both from one forward pass), and
the discriminator at 1e-3 on ``L_GAN``.

The article's loop (part 5's :class:`~torchae.part5.gan.AlternatingSchedule` with 3 steps a side): up to 3
discriminator steps, until ``L_GAN`` drops below 1.0, then up to 3 encoder-and-decoder steps, until ``L_GAN`` rises
above 0.4. Unlike part 5's loop, the first encoder-and-decoder step takes the discriminator's last batch and codes
(one training step of Lightning's then makes both); each later step takes a new batch and new codes. 48000 outer
iterations make a run.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.data import LabelledMNISTDataModule, TensorDataModule
from torchae.errors import require
from torchae.inputs import (
    CLASSES,
    LabelledBatch,
    batch_size_of,
    check_codes,
    check_count,
    check_generator,
    check_images,
    check_label,
    tracing,
)
from torchae.networks import IMAGE_SHAPE, PIXELS
from torchae.optim import TFRMSProp
from torchae.part3.vae import LatentDistribution
from torchae.part4.cvae import ConditionalInputs
from torchae.part5.gan import LOG_EPSILON, ArticleLoop
from torchae.part6.networks import LOG_VARIANCE_CLIP, CVAEGANDecoder, CVAEGANDiscriminator, CVAEGANEncoder
from torchae.registry import register_experiment
from torchae.series import SeriesModule, Stage

__all__ = ["CVAEGAN", "cvae_gan_terms"]


def cvae_gan_terms(
    distribution: LatentDistribution,
    real: tuple[torch.Tensor, torch.Tensor],
    reconstructed: tuple[torch.Tensor, torch.Tensor],
    generated: torch.Tensor,
    gamma: float,
) -> dict[str, torch.Tensor]:
    """The article's losses from the codes' distribution and the discriminator's outputs: ``(verdict, l-th layer)``
    of the real images and of their reconstructions, and the verdict of the images generated from prior codes.

    Returns ``loss`` (``L_GAN``, the discriminator's), ``prior_loss``, ``llike_loss`` (``L_dis_llike``),
    ``encoder_loss`` and ``decoder_loss``.
    """
    clipped = distribution.z_log_var.clamp(-LOG_VARIANCE_CLIP, LOG_VARIANCE_CLIP)
    prior = -0.5 * (1.0 + clipped - distribution.z_mean.square() - clipped.exp()).sum() / PIXELS
    (real_verdict, real_features), (reconstructed_verdict, reconstructed_features) = real, reconstructed
    log_real = torch.log(real_verdict + LOG_EPSILON)
    log_generated = torch.log(1.0 - generated + LOG_EPSILON)
    log_reconstructed = torch.log(1.0 - reconstructed_verdict + LOG_EPSILON)
    gan = -0.25 * (log_real + 2.0 * log_generated + log_reconstructed).sum() / PIXELS
    llike = (
        F.binary_cross_entropy_with_logits(reconstructed_features, torch.sigmoid(real_features), reduction="sum")
        / PIXELS
    )
    return {
        "loss": gan,
        "prior_loss": prior,
        "llike_loss": llike,
        "encoder_loss": prior + llike,
        "decoder_loss": gamma * llike - gan,
    }


@register_experiment(
    "cvae_gan",
    epochs=1000,
    iterations=48000,
    batch_size=64,
    parameters=(221_264, 343_297, 96_209, 660_770),
    keras=True,
)
class CVAEGAN(ConditionalInputs, ArticleLoop, SeriesModule):
    """The article's CVAE-GAN (part 6): a conditional encoder and decoder, and a discriminator whose l-th layer is
    the decoder's metric.

    Args:
        latent_dim: size of the code (the article's 8).
        dropout: the dropout rate of the three networks (0.3).
        gamma: the weight of ``L_dis_llike`` in the decoder's loss (1).
        encoder_rate: the encoder's RMSProp learning rate (1e-3).
        decoder_rate: the decoder's RMSProp learning rate (3e-4).
        discriminator_rate: the discriminator's RMSProp learning rate (1e-3).
        iterations: the article's outer iterations (48000); the fit stops after them.
        inner_steps: the most steps of one side in a row (3).
        discriminator_until: the discriminator's steps stop below this ``L_GAN`` (1.0).
        generator_until: the encoder's and decoder's steps stop above this ``L_GAN`` (0.4).
    """

    figures: ClassVar[tuple[str, ...]] = (
        "reconstructions",
        "generated_digits",
        "beside_cvae",
        "label_manifolds",
        "style_transfer",
    )
    animations: ClassVar[tuple[str, ...]] = ("label_manifolds",)
    frame_unit: ClassVar[str] = "iteration"
    frame_period: ClassVar[int] = 3
    counted_networks: ClassVar[tuple[str, ...]] = ("encoder", "decoder", "discriminator")
    loss_names: ClassVar[tuple[str, ...]] = ("loss", "prior_loss", "llike_loss")
    progress_bar_terms: ClassVar[tuple[str, ...]] = ("loss", "llike_loss")
    datamodule: ClassVar[type[TensorDataModule]] = LabelledMNISTDataModule
    conditional: ClassVar[bool] = True
    classes: ClassVar[int] = CLASSES

    def __init__(
        self,
        latent_dim: int = 8,
        dropout: float = 0.3,
        gamma: float = 1.0,
        encoder_rate: float = 1e-3,
        decoder_rate: float = 3e-4,
        discriminator_rate: float = 1e-3,
        iterations: int = 48000,
        inner_steps: int = 3,
        discriminator_until: float = 1.0,
        generator_until: float = 0.4,
    ) -> None:
        super().__init__()
        rates = {"encoder_rate": encoder_rate, "decoder_rate": decoder_rate, "discriminator_rate": discriminator_rate}
        self.start_loop(rates, iterations, inner_steps, discriminator_until, generator_until, hands_on_batch=True)
        require(math.isfinite(gamma), "model.gamma", gamma, "a finite number", "1.0")
        self.save_hyperparameters()
        self.encoder = CVAEGANEncoder(latent_dim, dropout, self.classes)
        self.decoder = CVAEGANDecoder(latent_dim, dropout, self.classes)
        self.discriminator = CVAEGANDiscriminator(dropout, self.classes)
        self.draws.bind(self)
        self.example_input_array = LabelledBatch(torch.zeros(2, *IMAGE_SHAPE), torch.zeros(2, dtype=torch.long))

    # ----------------------------------------------------------------- what a user calls
    @property
    def latent_dim(self) -> int:
        return self.decoder.latent_dim

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    def distribution(self, images: torch.Tensor, labels: Any) -> LatentDistribution:
        """``q(z|x, y)`` of images and their labels (a tensor of digits, or one digit for all)."""
        images = check_images(images, dtype=self.dtype)
        return self.encoder.distribution(images, self.labels_for(labels, images.shape[0]))

    def encode(self, images: torch.Tensor, labels: Any) -> torch.Tensor:
        """The mean codes ``(N, latent_dim)`` of images given their labels (the article's ``z_mean``)."""
        return self.distribution(images, labels).z_mean

    def decode(self, codes: torch.Tensor, labels: Any) -> torch.Tensor:
        """Digits ``labels`` (a tensor, or one digit for all) written with ``codes``: ``(N, 1, 28, 28)`` in [0, 1]."""
        codes = check_codes(codes, self.code_shape, dtype=self.dtype)
        return self.decoder(codes, self.labels_for(labels, codes.shape[0]))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Reconstructions of ``images`` from their mean codes and ``labels`` (the article's ``cvae``)."""
        if tracing():
            return self.decoder(self.encoder(images, labels), labels)
        return self.decode(self.encode(images, labels), labels)

    def sample(self, n: int, digit: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` digits ``digit`` decoded from codes drawn from ``N(0, I)`` (from ``generator``, or torch's global
        one), ``(n, 1, 28, 28)`` in [0, 1]."""
        n, digit, generator = check_count(n), check_label(digit, "digit"), check_generator(generator)
        codes = torch.randn(n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype)
        return self.decode(codes, digit)

    def style_transfer(self, images: torch.Tensor, from_digit: Any, to_digit: Any) -> torch.Tensor:
        """``images`` of digits ``from_digit`` written as digits ``to_digit`` in their style: each image's mean code
        given ``from_digit``, decoded with ``to_digit`` (the article's ``style_transfer``)."""
        return self.decode(self.encode(images, from_digit), to_digit)

    def export_parts(self) -> dict[str, nn.Module]:
        """The decoder (codes and labels to images; the generator of digits), the encoder (images and labels to mean
        codes) and the whole autoencoder."""
        return {"decoder": self.decoder, "encoder": self.encoder, "autoencoder": _Reconstruction(self)}

    def export_names(self, part: str) -> tuple[tuple[str, ...], str]:
        given, output = {"decoder": ("codes", "images"), "encoder": ("images", "codes")}.get(
            part, ("images", "reconstructions")
        )
        return (given, "labels"), output

    def export_example(self, part: str, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        shape = self.code_shape if part == "decoder" else IMAGE_SHAPE
        data = torch.randn(batch, *shape, generator=generator) if part == "decoder" else torch.rand(batch, *shape)
        return data, torch.randint(0, CLASSES, (batch,), generator=generator)

    # ----------------------------------------------------------------- training
    def latent_noise(self, like: torch.Tensor, stage: Stage) -> torch.Tensor:
        """The ``eps`` of the encoder's sample, shaped as ``like``, from the model's stream of ``stage``."""
        return self.draws.normal("latent_noise", like, stage)

    def prior_noise(self, count: int, stage: Stage) -> torch.Tensor:
        """The codes ``z_p ~ N(0, I)`` a step decodes, from the model's stream of ``stage``."""
        like = torch.empty(count, self.latent_dim, device=self.device, dtype=self.dtype)
        return self.draws.normal("prior_codes", like, stage)

    def step_terms(
        self, batch: LabelledBatch, codes: torch.Tensor, stage: Stage, train_autoencoder: bool = True
    ) -> dict[str, torch.Tensor]:
        """The article's graph on a batch and prior codes: the encoder's sample (clipped as written), its
        reconstruction, the digits decoded from ``codes``, the discriminator on the three, and the losses."""
        images, labels = batch
        with torch.set_grad_enabled(train_autoencoder and torch.is_grad_enabled()):
            distribution = self.encoder.distribution(images, labels)
            deviation = torch.exp(torch.clamp(distribution.z_log_var / 2, -LOG_VARIANCE_CLIP, LOG_VARIANCE_CLIP))
            sample = distribution.z_mean + deviation * self.latent_noise(distribution.z_mean, stage)
            reconstructed = self.decoder(sample, labels)
            generated = self.decoder(codes, labels)
        real_outputs = self.discriminator(images, labels)
        reconstructed_outputs = self.discriminator(reconstructed, labels)
        generated_verdict, _ = self.discriminator(generated, labels)
        return cvae_gan_terms(distribution, real_outputs, reconstructed_outputs, generated_verdict, self.hparams.gamma)

    def discriminator_step(self, batch: LabelledBatch, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """The article's ``step_d``: one RMSProp step of the discriminator on ``L_GAN``."""
        optimizer = self.optimizers()[2]
        terms = self.step_terms(batch, codes, "train", train_autoencoder=False)
        optimizer.zero_grad()
        self.manual_backward(terms["loss"])
        optimizer.step()
        return terms

    def autoencoder_step(self, batch: LabelledBatch, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """The article's ``step``: the encoder's and the decoder's RMSProp steps, each on its own loss, both from
        one forward pass (each loss's gradient reaches only its own network's weights)."""
        encoder_optimizer, decoder_optimizer, _ = self.optimizers()
        terms = self.step_terms(batch, codes, "train")
        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()
        self.manual_backward(terms["encoder_loss"], inputs=list(self.encoder.parameters()), retain_graph=True)
        self.manual_backward(terms["decoder_loss"], inputs=list(self.decoder.parameters()))
        encoder_optimizer.step()
        decoder_optimizer.step()
        return terms

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        """The steps the article's loop makes on this batch: a discriminator step, an encoder-and-decoder step, or,
        where the discriminator's turn ends, both on the same batch and codes."""
        network = self.begin_step()
        if network is None:
            return None
        real = self.inputs_of(batch)
        codes = self.prior_noise(real.inputs.shape[0], "train")
        if network == "discriminator":
            terms = self.discriminator_step(real, codes)
            self.end_step(terms["loss"])
            if not self.schedule.hands_on():
                self.log_selected(terms, real)
                return terms["loss"].detach()
        terms = self.autoencoder_step(real, codes)
        self.log_selected(terms, real)
        self.end_step(terms["loss"])
        return terms["loss"].detach()

    def log_selected(self, terms: dict[str, torch.Tensor], real: LabelledBatch, stage: Stage = "train") -> None:
        """Log the terms :attr:`loss_names` names."""
        chosen = {name: terms[name] for name in self.loss_names}
        self.log_terms(chosen, stage, batch_size=batch_size_of(real))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        real = self.inputs_of(batch)
        self.log_selected(self.step_terms(real, self.prior_noise(real.inputs.shape[0], "val"), "val"), real, "val")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """For each image and its label: its mean code, its reconstruction, and a digit of its label decoded from a
        code drawn from the prediction stream."""
        images, labels = self.inputs_of(batch)
        codes = self.encoder(images, labels)
        prior = self.prior_noise(images.shape[0], "predict")
        return {
            "codes": codes,
            "reconstructions": self.decoder(codes, labels),
            "samples": self.decoder(prior, labels),
            "labels": labels,
        }

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """TensorFlow 1's RMSProp for the encoder, the decoder and the discriminator, in that order."""
        return [
            TFRMSProp(self.encoder.parameters(), lr=self.hparams.encoder_rate),
            TFRMSProp(self.decoder.parameters(), lr=self.hparams.decoder_rate),
            TFRMSProp(self.discriminator.parameters(), lr=self.hparams.discriminator_rate),
        ]


class _Reconstruction(nn.Module):
    """The encoder's mean code decoded: images and labels to reconstructions, for export."""

    def __init__(self, model: CVAEGAN) -> None:
        super().__init__()
        self.encoder, self.decoder = model.encoder, model.decoder

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images, labels), labels)
