"""Part 5 of the series: the GAN and the conditional GAN, Lightning modules trained with the article's loop.

Lightning's GAN example (``domain_templates``) grown up: a generator and a discriminator, manual optimization with one
optimizer each (TensorFlow 1's RMSProp, :class:`~torchae.optim.TFRMSProp`, 3e-4 and 1e-4), and the article's
losses, with its ``1e-10`` inside the logs::

    L_dis = 0.5 * (mean(-log(1 - D(G(z)) + 1e-10)) + mean(-log(D(x) + 1e-10)))
    L_gen = mean(log(1 - D(G(z)) + 1e-10))

The article's loop, as a schedule over batches (:class:`AlternatingSchedule`): each outer iteration makes up to 5
discriminator steps, until its loss drops below 1.0, then up to 5 generator steps, until the discriminator's loss
rises above 0.4; every step takes a new batch and new codes. Both steps report ``L_dis`` as it was before their
update, which decides. 5000 outer iterations make a run; the model stops the fit there (Lightning's own limits stop
it sooner). ``train_loss`` is ``L_dis`` (the article prints it), ``train_generator_loss`` is ``L_gen``; validation
logs both on the test images, with dropout off.

Random draws (codes, dropout masks) come from the model's streams (:mod:`torchae.draws`): a resumed run draws what
the uninterrupted one draws, and the schedule's place travels in the checkpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from torchae.data import LabelledMNISTDataModule, MNISTDataModule, TensorDataModule
from torchae.errors import require
from torchae.inputs import (
    CLASSES,
    LabelledBatch,
    batch_size_of,
    check_codes,
    check_count,
    check_generator,
    check_label,
    images_of,
    tracing,
)
from torchae.optim import TFRMSProp
from torchae.part4.cvae import ConditionalInputs
from torchae.part5.networks import Discriminator, Generator
from torchae.registry import register_experiment
from torchae.series import SeriesModule, Stage

__all__ = ["CGAN", "GAN", "AlternatingSchedule", "ArticleLoop", "adversarial_terms"]

LOG_EPSILON = 1e-10
"""The article's ``1e-10`` inside its logs."""
SCHEDULE_KEY = "torchae_schedule"


class AlternatingSchedule:
    """The article's alternating loop, batch by batch: which network the next batch trains, and when an outer
    iteration ends.

    Args:
        inner_steps: the most steps of one network in a row (the article's ``k_step``, 5).
        discriminator_until: the discriminator's steps stop once its loss is below this (1.0).
        generator_until: the generator's steps stop once the discriminator's loss is above this (0.4).
        hands_on_batch: whether the generator's first step takes the discriminator's last batch (part 6's loop), not
            a new one (part 5's).
    """

    def __init__(
        self,
        inner_steps: int = 5,
        discriminator_until: float = 1.0,
        generator_until: float = 0.4,
        hands_on_batch: bool = False,
    ) -> None:
        self.inner_steps = inner_steps
        self.discriminator_until = discriminator_until
        self.generator_until = generator_until
        self.hands_on_batch = hands_on_batch
        self.network = "discriminator"
        self.steps = 0
        self.iterations = 0
        """Outer iterations done."""
        self.skip_next = False

    def next_network(self) -> str | None:
        """``"discriminator"`` or ``"generator"``: the network the next batch trains; ``None``: the article's loop
        fetches this batch and leaves it (after 5 generator steps, the next iteration fetches a fresh one)."""
        if self.skip_next:
            self.skip_next = False
            return None
        return self.network

    def record(self, discriminator_loss: float) -> bool:
        """Count a step of the current network that reported ``discriminator_loss``; whether it ended an outer
        iteration."""
        self.steps += 1
        if self.network == "discriminator":
            if discriminator_loss < self.discriminator_until or self.steps == self.inner_steps:
                self.network, self.steps = "generator", 0
            return False
        stopped = discriminator_loss > self.generator_until
        if not stopped and self.steps < self.inner_steps:
            return False
        self.skip_next = not stopped  # five steps without a stop: the article fetched a batch it will not use
        self.network, self.steps = "discriminator", 0
        self.iterations += 1
        return True

    def hands_on(self) -> bool:
        """Whether the step just recorded (a discriminator's) ended its turn in a loop whose generator then takes the
        same batch: the generator's step on this batch follows at once."""
        return self.hands_on_batch and self.network == "generator" and self.steps == 0

    def state_dict(self) -> dict[str, Any]:
        return {"network": self.network, "steps": self.steps, "iterations": self.iterations, "skip": self.skip_next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network, self.steps = str(state["network"]), int(state["steps"])
        self.iterations, self.skip_next = int(state["iterations"]), bool(state["skip"])


def adversarial_terms(real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """The article's losses from the discriminator's probabilities of real images ``real`` and generated ones
    ``fake``: ``loss`` (``L_dis``) and ``generator_loss`` (``L_gen``)."""
    log_dis_img = (-torch.log(real + LOG_EPSILON)).mean()
    log_dis_gen = (-torch.log(1.0 - fake + LOG_EPSILON)).mean()
    return {"loss": 0.5 * (log_dis_gen + log_dis_img), "generator_loss": -log_dis_gen}


class ArticleLoop:
    """What the models trained by the article's alternating loop share (mixed into their module before
    :class:`~torchae.series.SeriesModule`): the fit stops after the article's outer iterations, the schedule's place
    travels in checkpoints, and the animations' frames come at the article's periods.

    Attributes:
        frame_period: the article's ``batches_per_period``: outer iterations between frames (part 5's 20). Its
            ``save_periods`` are every period up to 99, then every 10th up to 990.
    """

    frame_period: ClassVar[int] = 20
    hparams: Any
    trainer: Any

    def start_loop(
        self,
        rates: dict[str, float],
        iterations: int,
        inner_steps: int,
        discriminator_until: float,
        generator_until: float,
        hands_on_batch: bool = False,
    ) -> None:
        """Refuse a learning rate (by its setting's name), outer iterations or inner steps that are not positive, and
        start the loop's :class:`AlternatingSchedule`; the model steps its networks itself."""
        self.automatic_optimization = False  # the article's loop steps one network at a time
        for name, rate in rates.items():
            require(rate > 0, f"model.{name}", rate, "a positive number", "1e-4")
        require(iterations > 0, "model.iterations", iterations, "a positive integer", "5000")
        require(inner_steps > 0, "model.inner_steps", inner_steps, "a positive integer", "5")
        self.schedule = AlternatingSchedule(inner_steps, discriminator_until, generator_until, hands_on_batch)
        self._ended_iteration = False

    def begin_step(self) -> str | None:
        """The network the loop trains on this batch (``None``: a batch the article leaves unused)."""
        self._ended_iteration = False
        return self.schedule.next_network()

    def end_step(self, discriminator_loss: torch.Tensor) -> None:
        """Record a step in the schedule; after the article's last outer iteration, stop the fit."""
        self._ended_iteration = self.schedule.record(float(discriminator_loss.detach()))
        if self._ended_iteration and self.schedule.iterations >= self.hparams.iterations:
            self.trainer.should_stop = True

    def frame_after_batch(self) -> int | None:
        """After outer iteration ``i`` (from 0) where ``i`` is a multiple of :attr:`frame_period` and ``i / period``
        one of the article's ``save_periods``: ``i``; else ``None``."""
        if not self._ended_iteration:
            return None
        done = self.schedule.iterations - 1
        period, rest = divmod(done, self.frame_period)
        return done if rest == 0 and (period < 100 or (period < 1000 and period % 10 == 0)) else None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)  # type: ignore[misc]
        checkpoint[SCHEDULE_KEY] = self.schedule.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)  # type: ignore[misc]
        if SCHEDULE_KEY in checkpoint:
            self.schedule.load_state_dict(checkpoint[SCHEDULE_KEY])


@register_experiment(
    "gan",
    epochs=1000,
    iterations=5000,
    batch_size=256,
    parameters=(131_137, 160_257, 291_394),
    keras=True,
)
class GAN(ArticleLoop, SeriesModule):
    """The article's GAN (part 5): a generator of digits from 2-D codes and a discriminator, without labels.

    Args:
        latent_dim: size of the code (the article's 2).
        dropout: the dropout rate of both networks (0.3).
        generator_rate: the generator's RMSProp learning rate (3e-4).
        discriminator_rate: the discriminator's RMSProp learning rate (1e-4).
        iterations: the article's outer iterations (5000); the fit stops after them.
        inner_steps: the most steps of one network in a row (5).
        discriminator_until: the discriminator's steps stop below this loss (1.0).
        generator_until: the generator's steps stop above this discriminator loss (0.4).

    Its registration's ``iterations`` are the article's (5000); its ``epochs`` the config's cap on them.
    """

    figures: ClassVar[tuple[str, ...]] = ("manifold",)
    animations: ClassVar[tuple[str, ...]] = ("manifold",)
    frame_unit: ClassVar[str] = "iteration"
    counted_networks: ClassVar[tuple[str, ...]] = ("generator", "discriminator")
    loss_names: ClassVar[tuple[str, ...]] = ("loss", "generator_loss")
    datamodule: ClassVar[type[TensorDataModule]] = MNISTDataModule
    classes: ClassVar[int] = 0

    def __init__(
        self,
        latent_dim: int = 2,
        dropout: float = 0.3,
        generator_rate: float = 3e-4,
        discriminator_rate: float = 1e-4,
        iterations: int = 5000,
        inner_steps: int = 5,
        discriminator_until: float = 1.0,
        generator_until: float = 0.4,
    ) -> None:
        super().__init__()
        rates = {"generator_rate": generator_rate, "discriminator_rate": discriminator_rate}
        self.start_loop(rates, iterations, inner_steps, discriminator_until, generator_until)
        self.save_hyperparameters()
        self.generator = Generator(latent_dim, dropout, self.classes)
        self.discriminator = Discriminator(dropout, self.classes)
        self.draws.bind(self)
        self.example_input_array = self.inputs_for(torch.zeros(2, latent_dim), torch.zeros(2, dtype=torch.long))

    # ----------------------------------------------------------------- what a user calls
    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    def decode(self, codes: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """Digits ``(N, 1, 28, 28)`` in [0, 1] generated from ``codes`` ``(N, latent_dim)``."""
        return self.generator(check_codes(codes, self.code_shape, dtype=self.dtype))

    def forward(self, codes: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """Digits generated from ``codes`` (and ``labels``, conditional), with the codes' shapes checked (and their
        values, but under a tracer, which cannot read them)."""
        if tracing():
            return self.generator(codes, labels)
        return self.decode(codes, labels)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` digits generated from codes drawn from ``N(0, I)`` (from ``generator``, or torch's global one),
        ``(n, 1, 28, 28)`` in [0, 1]."""
        n, generator = check_count(n), check_generator(generator)
        return self.decode(self.prior_codes(n, generator))

    def prior_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype)

    def export_parts(self) -> dict[str, nn.Module]:
        """The generator: codes (and labels, conditional) to images."""
        return {"generator": self.generator}

    def export_names(self, part: str) -> tuple[tuple[str, ...], str]:
        return (("codes", "labels") if self.conditional else ("codes",)), "images"

    def export_example(self, part: str, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        codes = torch.randn(batch, self.latent_dim, generator=generator)
        return self.inputs_for(codes, torch.randint(0, CLASSES, (batch,), generator=generator))

    # ----------------------------------------------------------------- training
    def inputs_of(self, batch: Any) -> LabelledBatch:
        """The real images of a batch, and their labels (``None`` without labels)."""
        if isinstance(batch, (tuple, list)):
            return LabelledBatch(batch[0], batch[1])
        return LabelledBatch(images_of(batch), None)  # type: ignore[arg-type]

    def latent_noise(self, count: int, stage: Stage) -> torch.Tensor:
        """The codes ``z ~ N(0, I)`` of a step's generated images, from the model's stream of ``stage``."""
        like = torch.empty(count, self.latent_dim, device=self.device, dtype=self.dtype)
        return self.draws.normal("latent_noise", like, stage)

    def adversarial_step_terms(self, batch: LabelledBatch, stage: Stage, grad_generator: bool = True) -> dict[str, Any]:
        """The article's losses on a batch of real images and as many generated from fresh codes."""
        codes = self.latent_noise(batch.inputs.shape[0], stage)
        with torch.set_grad_enabled(grad_generator and torch.is_grad_enabled()):
            generated = self.generator(codes, batch.labels)
        return adversarial_terms(
            self.discriminator(batch.inputs, batch.labels), self.discriminator(generated, batch.labels)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        """One step of the network the article's loop trains now, on this batch."""
        network = self.begin_step()
        if network is None:
            return None
        generator_optimizer, discriminator_optimizer = self.optimizers()
        optimizer = generator_optimizer if network == "generator" else discriminator_optimizer
        real = self.inputs_of(batch)
        terms = self.adversarial_step_terms(real, "train", grad_generator=network == "generator")
        optimizer.zero_grad()
        self.manual_backward(terms["loss"] if network == "discriminator" else terms["generator_loss"])
        optimizer.step()
        self.log_terms(terms, "train", batch_size=batch_size_of(real))
        self.end_step(terms["loss"])
        return terms["loss"].detach()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        real = self.inputs_of(batch)
        self.log_terms(self.adversarial_step_terms(real, "val"), "val", batch_size=batch_size_of(real))

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """For each image of the batch (its label, conditional): a code drawn from the prediction stream and the
        digit generated from it."""
        real = self.inputs_of(batch)
        codes = self.latent_noise(real.inputs.shape[0], "predict")
        labels = {} if real.labels is None else {"labels": real.labels}
        return {"codes": codes, "samples": self.generator(codes, real.labels), **labels}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """TensorFlow 1's RMSProp for each network, the generator's first."""
        return [
            TFRMSProp(self.generator.parameters(), lr=self.hparams.generator_rate),
            TFRMSProp(self.discriminator.parameters(), lr=self.hparams.discriminator_rate),
        ]


@register_experiment(
    "cgan",
    epochs=1000,
    iterations=5000,
    batch_size=256,
    parameters=(162_497, 171_777, 334_274),
    keras=True,
)
class CGAN(ConditionalInputs, GAN):
    """The article's conditional GAN (part 5): the GAN with each image's digit given to both networks (the
    generator's input beside the code, the discriminator's units beside its first feature map). Its settings are
    :class:`GAN`'s; its batches and labels are checked as every conditional model's (part 4's
    :class:`~torchae.part4.cvae.ConditionalInputs`)."""

    figures: ClassVar[tuple[str, ...]] = ("label_manifolds", "generated_digits")
    animations: ClassVar[tuple[str, ...]] = ("label_manifolds",)
    datamodule: ClassVar[type[TensorDataModule]] = LabelledMNISTDataModule
    conditional: ClassVar[bool] = True
    classes: ClassVar[int] = CLASSES

    def decode(self, codes: torch.Tensor, labels: Any = None) -> torch.Tensor:  # type: ignore[override]
        """Digits ``labels`` (a tensor, or one digit for all) generated from ``codes`` ``(N, latent_dim)``."""
        codes = check_codes(codes, self.code_shape, dtype=self.dtype)
        return self.generator(codes, self.labels_for(labels, codes.shape[0]))

    def sample(self, n: int, digit: int, generator: torch.Generator | None = None) -> torch.Tensor:  # type: ignore[override]
        """``n`` digits ``digit`` generated from codes drawn from ``N(0, I)``, ``(n, 1, 28, 28)`` in [0, 1]."""
        n, digit, generator = check_count(n), check_label(digit, "digit"), check_generator(generator)
        return self.decode(self.prior_codes(n, generator), digit)
