"""The one base of every model of the series: what torchae's extras (figures, animations, predictions, export,
checkpoints that name their class) read from a model, declared by the model, so that no shared module asks what kind
of model it has.

An autoencoder (:class:`~torchae.autoencoder.AutoencoderModule`) sits on it; so does any model of the series that is not
one (a GAN has a generator and a discriminator, not an encoder and a decoder). A LightningModule that is not a
:class:`SeriesModule` still trains, validates and predicts through ``torchae fit``, as LightningCLI takes it; it
draws no figures and exports through Lightning's own ``to_onnx``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytorch_lightning as pl
import torch
from torch import nn

from torchae.checkpoints import NamedCheckpoints
from torchae.console import quiet_known_noise
from torchae.draws import CHECKPOINT_KEY, StepDraws
from torchae.export import Exportable
from torchae.inputs import CLASSES
from torchae.networks import IMAGE_SHAPE

__all__ = ["EPOCH_MEANS", "SeriesModule", "Stage", "metric_names_of"]

Stage = Literal["train", "val", "test"]
EPOCH_MEANS = {"on_step": False, "on_epoch": True, "sync_dist": True}


class SeriesModule(NamedCheckpoints, Exportable, pl.LightningModule):
    """A LightningModule of the series, with the declarations torchae's extras read.

    Attributes:
        figures: the figures this model draws (names registered with :func:`torchae.figures.register_figure`),
            besides the loss curves.
        animations: the figures ``torchae fit`` also animates over training (frames at the article's epochs).
        loss_names: the terms logged as ``f"{stage}_{name}"``: what ``--checkpoint.monitor`` may name, checked
            before training.
        input_shape: the shape of one input without the batch dimension (MNIST's ``(1, 28, 28)``).
        datamodule: the datamodule of the data the model is trained on: the figures command draws from it, and a
            fit with another of torchae's is refused; ``None``: any.
        conditional: whether the model takes each input's label beside it (:meth:`inputs_for`).
        unsaved_arguments: constructor arguments kept out of the hyperparameters.
        counted_networks: the model's networks whose parameters the registry counts (an autoencoder's encoder and
            decoder, a GAN's generator and discriminator).
        frame_unit: what the frames of its animations count: ``epoch`` (a frame at the article's epochs), or a clock
            of the model's own (part 5's ``iteration``s), whose ``frame_after_batch`` says when a frame is due.
        progress_bar_terms: the logged terms the progress bar shows.
    """

    figures: ClassVar[tuple[str, ...]] = ()
    animations: ClassVar[tuple[str, ...]] = ()
    loss_names: ClassVar[tuple[str, ...]] = ("loss",)
    input_shape: ClassVar[tuple[int, ...]] = IMAGE_SHAPE
    datamodule: ClassVar[type[pl.LightningDataModule] | None] = None
    conditional: ClassVar[bool] = False
    unsaved_arguments: ClassVar[tuple[str, ...]] = ()
    counted_networks: ClassVar[tuple[str, ...]] = ("encoder", "decoder")
    frame_unit: ClassVar[str] = "epoch"
    progress_bar_terms: ClassVar[tuple[str, ...]] = ("loss",)

    def __init__(self) -> None:
        super().__init__()
        # Plain Python (pl.Trainer(...).fit(model)) is as quiet as the CLI: Lightning's advertising tip and the
        # harmless warnings the console module names, each by its exact text; installed once, when a model is built.
        quiet_known_noise()
        self.draws = StepDraws()
        """The model's random streams (:mod:`torchae.draws`): its step's dropout masks, samples and noise."""

    # The streams restart with each stage's epoch, seeded by (seed, epoch, stage): a subclass that overrides one of
    # these hooks calls super() to keep its draws those of a resumed run.
    def on_fit_start(self) -> None:
        if self.draws.seed is None:
            self.draws.seed = torch.initial_seed()  # the process seed, fixed for the run and its checkpoints

    def on_train_epoch_start(self) -> None:
        self.draws.start("train", self.current_epoch, self.device)

    def on_validation_epoch_start(self) -> None:
        self._start_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._start_evaluation("test")

    def on_predict_epoch_start(self) -> None:
        self._start_evaluation("predict")

    def _start_evaluation(self, stage: str) -> None:
        self.draws.eval_stage = stage
        self.draws.start(stage, self.current_epoch, self.device)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY] = self.draws.state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.draws.load_state(checkpoint)

    def log_terms(self, terms: dict[str, torch.Tensor], stage: Stage, batch_size: int) -> None:
        """Log each term as ``f"{stage}_{name}"``: epoch means weighted by ``batch_size``, reduced across devices."""
        for name, value in terms.items():
            on_bar = name in self.progress_bar_terms
            self.log(f"{stage}_{name}", value.detach(), prog_bar=on_bar, batch_size=batch_size, **EPOCH_MEANS)

    @classmethod
    def metric_names(cls) -> tuple[str, ...]:
        """The metrics a fit logs: each of :attr:`loss_names` for training and validation."""
        return tuple(f"{stage}_{name}" for stage in ("train", "val") for name in cls.loss_names)

    def inputs_for(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """The arguments the model's methods (``encode``, ``forward``, its exported parts) take for ``inputs``: the
        inputs alone, or with their labels for a conditional model."""
        if not self.conditional:
            return (inputs,)
        if labels is None:
            raise ValueError(f"{type(self).__name__} takes each input's label beside it: give the labels")
        return inputs, labels

    def prior_samples(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` inputs generated from the model's prior (its ``sample``), and the label each was generated for: a
        conditional model makes ``n / classes`` of each of its labels (rounded up), another gives ``None``. What the
        judge of digits measures (:func:`torchae.judge.judge_model`)."""
        if not self.conditional:
            return self.sample(n, generator=generator), None
        classes = int(getattr(self, "classes", CLASSES))
        per_label = -(-n // classes)
        samples = [self.sample(per_label, label, generator=generator) for label in range(classes)]
        return torch.cat(samples), torch.arange(classes, device=self.device).repeat_interleave(per_label)

    def export_parts(self) -> dict[str, nn.Module]:
        """The parts that ``torchae export --part NAME`` writes, by name (the first is the default)."""
        return {}

    def export_names(self, part: str) -> tuple[tuple[str, ...], str]:
        """The input names and the output name of the exported ``part``."""
        raise NotImplementedError(f"{type(self).__name__} names no exported part")

    def export_example(self, part: str, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Inputs of ``part`` at ``batch``, drawn from ``generator``: what the export traces and checks."""
        raise NotImplementedError(f"{type(self).__name__} names no exported part")


def metric_names_of(model: Any) -> tuple[str, ...] | None:
    """The metrics ``model`` declares it logs, or ``None`` for a model that declares none (any LightningModule)."""
    return model.metric_names() if isinstance(model, SeriesModule) else None
