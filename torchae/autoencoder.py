"""The autoencoder base of the series: one Lightning module that owns the step, on
:class:`~torchae.series.SeriesModule`.

Lightning's autoencoder example grown up: a network (:class:`~torchae.networks.Autoencoder`), one shared step that
logs ``f"{stage}_loss"``, ``save_hyperparameters()`` and Keras's Adam. Variants override ``corrupt`` (denoising),
``activity_penalty`` (sparse) or ``loss_terms`` (the VAE). A plain ``pl.Trainer`` runs these steps through
Lightning's public API alone; the fast lane, :class:`torchae.engine.Engine` (the CLI installs it), runs the same
``loss_terms`` faster and is never imported here.

The randomness contract: a step's random draws come from where every way of running it draws them alike, the model's
own seeded streams (:mod:`torchae.draws`). Input noise is drawn in ``corrupt`` (denoising); draws inside the network
(dropout, a latent sample) by name, which the engine draws beforehand and hands to a compiled step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.data import MNISTDataModule, TensorDataModule, batches_of
from torchae.errors import require
from torchae.inputs import CLASSES, batch_size_of, check_codes, check_images, images_of, tracing
from torchae.networks import IMAGE_SHAPE, Autoencoder
from torchae.optim import KerasAdam
from torchae.series import EPOCH_MEANS, SeriesModule, Stage

__all__ = ["EPOCH_MEANS", "AutoencoderModule", "Stage"]


class AutoencoderModule(SeriesModule):
    """Trains an :class:`~torchae.networks.Autoencoder` to reconstruct its input, with Keras's Adam.

    Args:
        net: the encoder/decoder network.
        learning_rate: Adam's learning rate (Keras: 1e-3).
        epsilon: Adam's epsilon, placed as Keras places it (Keras 3: 1e-7).

    The declarations of :class:`~torchae.series.SeriesModule` (``figures``, ``loss_names``, ``datamodule``,
    ``conditional``, ...) say what the extras draw and read; an autoencoder draws part 1's three figures by default,
    from MNIST. A conditional autoencoder's step takes :class:`~torchae.inputs.LabelledBatch` (:meth:`inputs_of`),
    its ``encode``, ``decode`` and ``forward`` the labels as a second argument.
    """

    figures: ClassVar[tuple[str, ...]] = ("reconstructions", "codes_2d", "interpolation")
    datamodule: ClassVar[type[TensorDataModule]] = MNISTDataModule

    def __init__(self, net: Autoencoder, learning_rate: float = 1e-3, epsilon: float = 1e-7) -> None:
        super().__init__()
        # One optimizer step per image batch, written out (Lightning's manual optimization), as Keras's train_step.
        self.automatic_optimization = False
        require(learning_rate > 0, "model.learning_rate", learning_rate, "a positive number", "1e-3")
        require(epsilon > 0, "model.epsilon", epsilon, "a positive number", "1e-7")
        self.save_hyperparameters(ignore=["net", *self.unsaved_arguments])
        self.learning_rate, self.epsilon = learning_rate, epsilon
        self.net = net
        self.draws.bind(self.net)
        self.example_input_array = torch.zeros(2, *self.input_shape)

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    @property
    def decoder(self) -> nn.Module:
        return self.net.decoder

    @property
    def code_shape(self) -> tuple[int, ...]:
        return self.net.code_shape

    def export_parts(self) -> dict[str, nn.Module]:
        """The whole network (inputs to reconstructions), its encoder (to codes) and its decoder (codes to outputs)."""
        return {"autoencoder": self.net, "encoder": self.net.encoder, "decoder": self.net.decoder}

    def export_names(self, part: str) -> tuple[tuple[str, ...], str]:
        """``images`` (``points`` for a model of points), ``codes`` and ``reconstructions`` as each part takes and
        gives them, and ``labels`` as a conditional model's second input."""
        data = "images" if tuple(self.input_shape) == IMAGE_SHAPE else "points"
        given, output = {
            "autoencoder": (data, "reconstructions"),
            "encoder": (data, "codes"),
            "decoder": ("codes", data),
        }[part]
        return ((given, "labels") if self.conditional else (given,)), output

    def export_example(self, part: str, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        shape = self.code_shape if part == "decoder" else self.input_shape
        data = torch.rand(batch, *shape, generator=generator)
        labels = torch.randint(0, getattr(self, "classes", CLASSES), (batch,), generator=generator)
        return self.inputs_for(data, labels)

    def check_inputs(self, x: Any, check_finite: bool = True, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``x`` if it is a batch of this model's inputs (images of shape ``(N, 1, 28, 28)`` in [0, 1]); else an
        :class:`~torchae.errors.InputError` saying why (see :func:`~torchae.inputs.check_images`)."""
        return check_images(x, check_finite=check_finite, dtype=dtype)

    def inputs_of(self, batch: Any) -> Any:
        """What the step takes from one batch of the datamodule: its images (MNIST's batches are images, the
        prediction batches ``(images, labels)`` pairs)."""
        return images_of(batch)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes of images ``x`` of shape ``(N, 1, 28, 28)`` (the article's ``encoder.predict``)."""
        return self.net.encode(self.check_inputs(x, dtype=self.dtype))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities ``(N, 1, 28, 28)`` in [0, 1] from codes (the article's ``decoder.predict``)."""
        return self.net.decode(check_codes(code, self.code_shape, dtype=self.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions of ``x``: ``decode(encode(x))``, with ``x`` checked as :meth:`encode` checks it (shapes
        only under a tracer, which cannot read values)."""
        return self.net(self.check_inputs(x, check_finite=not tracing(), dtype=self.dtype))

    def corrupt(self, x: torch.Tensor, stage: Stage) -> torch.Tensor:
        """What the encoder sees for clean images ``x`` during ``stage``; the target stays ``x``."""
        return x

    def activity_penalty(self, code: torch.Tensor) -> torch.Tensor | None:
        """A loss on the code, already divided by the batch size; ``None`` for none."""
        return None

    def loss_terms(self, x: torch.Tensor, stage: Stage = "train") -> dict[str, torch.Tensor]:
        """The loss of clean images ``x`` during ``stage`` (inputs corrupted as the model does, target ``x``)."""
        return self.reconstruction_terms(self.corrupt(x, stage), x)

    def reconstruction_terms(self, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss of reconstructing ``target`` from ``inputs``, and with a penalty its two parts too."""
        code = self.net.encode(inputs)
        reconstruction = F.binary_cross_entropy_with_logits(self.net.decoder.logits(code), target)
        penalty = self.activity_penalty(code)
        if penalty is None:
            return {"loss": reconstruction}
        return {"loss": reconstruction + penalty, "reconstruction_loss": reconstruction, "l1_penalty": penalty}

    def shared_step(self, batch: Any, stage: Stage) -> torch.Tensor:
        x = self.check_inputs(self.inputs_of(batch), check_finite=False)  # the datamodule checked its data once
        terms = self.loss_terms(x, stage)
        self.log_terms(terms, stage, batch_size=batch_size_of(x))
        return terms["loss"]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """One optimizer step per image batch: one, or each batch of a step group (``data.steps_per_execution``)."""
        optimizer = self.optimizers()
        for images in batches_of(batch):
            optimizer.zero_grad()
            loss = self.shared_step(images, "train")
            self.manual_backward(loss)
            optimizer.step()
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        for images in batches_of(batch):
            self.shared_step(images, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        for images in batches_of(batch):
            self.shared_step(images, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Codes and reconstructions of what the encoder sees, the labels when the batch has them, and the noisy
        inputs for a model that corrupts what its encoder sees (denoising)."""
        inputs = self.corrupt(images_of(batch), "test")
        codes = self.net.encode(inputs)
        labels = {"labels": batch[1]} if isinstance(batch, (tuple, list)) else {}
        noisy = {"noisy": inputs} if type(self).corrupt is not AutoencoderModule.corrupt else {}
        return {"codes": codes, "reconstructions": self.net.decode(codes), **noisy, **labels}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return KerasAdam(self.parameters(), lr=self.learning_rate, eps=self.epsilon)
