"""The article's five autoencoders as Lightning modules: one base that owns the step, five small models.

Lightning's autoencoder example grown up: a network (:mod:`torchae.networks`), one shared step that logs
``f"{stage}_loss"``, ``save_hyperparameters()`` and Keras's Adam. Variants override ``corrupt`` (denoising) or
``activity_penalty`` (sparse). Each model registers its experiment (:func:`~torchae.registry.register_experiment`).
A plain ``pl.Trainer`` runs these steps through Lightning's public API alone; the fast lane,
:class:`torchae.engine.Engine` (the CLI installs it), runs the same ``loss_terms`` faster and is never imported here.

The randomness contract: a step's random draws come from where every way of running it draws them alike. Input
noise is drawn in ``corrupt``, eagerly, from the model's own seeded stream (denoising); draws inside the network
(dropout, a latent sample) come from torch's global generator, which the engine checks for and then runs the step
as written.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from torchae.checkpoints import network_state
from torchae.data import MNISTDataModule, TensorDataModule, batches_of, mix_seed
from torchae.errors import require
from torchae.inputs import batch_size_of, check_codes, check_images, images_of
from torchae.networks import IMAGE_SHAPE, Autoencoder, DeepDenseAutoencoder, DenseAutoencoder, build_architecture
from torchae.networks import ConvAutoencoder as ConvNetwork
from torchae.optim import KerasAdam
from torchae.registry import register_experiment
from torchae.series import SeriesModule

__all__ = [
    "AutoencoderModule",
    "ConvAE",
    "DeepDenseAE",
    "DenoisingAE",
    "DenseAE",
    "SparseAE",
    "Stage",
]

Stage = Literal["train", "val", "test"]
EPOCH_MEANS = {"on_step": False, "on_epoch": True, "sync_dist": True}


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
        labels = torch.randint(0, getattr(self, "classes", 10), (batch,), generator=generator)
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
        """Reconstructions of ``x``: ``decode(encode(x))``. Checks shapes, not values, so it can be traced."""
        return self.net(self.check_inputs(x, check_finite=False, dtype=self.dtype))

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

    def log_terms(self, terms: dict[str, torch.Tensor], stage: Stage, batch_size: int) -> None:
        """Log each term as ``f"{stage}_{name}"``: epoch means weighted by ``batch_size``, reduced across devices."""
        for name, value in terms.items():
            on_bar = name == "loss"
            self.log(f"{stage}_{name}", value.detach(), prog_bar=on_bar, batch_size=batch_size, **EPOCH_MEANS)

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


@register_experiment(
    "dense",
    epochs=50,
    batch_size=256,
    parameters=(38_465, 39_200, 77_665),
    article_losses=(0.0784, 0.0777),
    keras=True,
    shipped=True,
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
        self._init_loaded = False
        self._noise: dict[str, torch.Generator] = {}

    figures = ("reconstructions", "denoising", "codes_2d", "interpolation")
    # The noise seed travels in the checkpoint (torchae_noise_seed); as a hyperparameter it would clash with the
    # datamodule's own `seed` when Lightning logs both.
    unsaved_arguments = ("seed",)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.init_from is not None and not self._init_loaded:
            self.net.load_state_dict(network_state(self.init_from, self.net))
            self._init_loaded = True

    def noise_seed(self) -> int:  # the process seed, if none was given
        if self.seed is None:
            self.seed = torch.initial_seed()
        return int(self.seed)

    def _start_noise_stream(self, stage: Stage) -> None:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(mix_seed(self.noise_seed(), self.current_epoch, ("train", "val", "test").index(stage)))
        self._noise[stage] = generator

    def on_train_epoch_start(self) -> None:
        self._start_noise_stream("train")

    def on_validation_epoch_start(self) -> None:
        self._start_noise_stream("val")

    def on_test_epoch_start(self) -> None:
        self._start_noise_stream("test")

    def add_noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``clip(x + N(noise_mean, noise_std), 0, 1)``, drawn from ``generator`` (default: the global RNG)."""
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + noise.mul_(self.noise_std).add_(self.noise_mean)).clamp_(0.0, 1.0)

    def corrupt(self, x: torch.Tensor, stage: Stage) -> torch.Tensor:
        if stage not in self._noise or self._noise[stage].device != x.device:
            self._start_noise_stream(stage)
        return self.add_noise(x, self._noise[stage])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["torchae_noise_seed"] = self.noise_seed()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.seed = checkpoint.get("torchae_noise_seed", self.seed)
        self._init_loaded = True  # the checkpoint's weights win over init_from


@register_experiment(
    "sparse", epochs=400, batch_size=256, parameters=(39_776, 40_544, 80_320), keras=True, shipped=True
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
