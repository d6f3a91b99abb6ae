"""The article's five experiments, in one place: which model, how the article trains it, what it must measure up
to, and which figures it draws. The configs (``configs/NAME.yaml``), the parity suite, the benchmarks and the tests
all read this table (``tests/test_registry.py`` checks the configs against it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchae.checkpoints import MODEL_KEY, read_checkpoint
from torchae.data import MNISTDataModule
from torchae.engine import Engine
from torchae.errors import CheckpointError
from torchae.models import AutoencoderModule, ConvAE, DeepDenseAE, DenoisingAE, DenseAE, SparseAE

__all__ = ["EXPERIMENTS", "Experiment", "experiment_of", "load_checkpoint"]


@dataclass(frozen=True)
class Experiment:
    """One of the article's experiments.

    Attributes:
        name: the short name (``dense``, ``deep``, ``conv``, ``denoising``, ``sparse``).
        model: the LightningModule class, built with its defaults for the article's model.
        epochs: the article's epochs.
        batch_size: the article's batch size.
        parameters: encoder, decoder and total parameter counts (SPEC.md).
        figures: the article's figures this model draws, besides the loss curves (see :mod:`torchae.figures`).
        article_losses: the article's last-epoch ``loss`` / ``val_loss``; ``None`` where it gives none.
        engine: the :class:`~torchae.engine.Engine` settings of the configs (speed only; results do not change).
        retrains: the experiment whose trained model this one starts from, as the article does.
    """

    name: str
    model: type[AutoencoderModule]
    epochs: int
    batch_size: int
    parameters: tuple[int, int, int]
    figures: tuple[str, ...] = ("reconstructions", "codes_2d", "interpolation")
    article_losses: tuple[float, float] | None = None
    engine: dict[str, Any] = field(default_factory=lambda: {"steps_per_execution": 32})
    retrains: str | None = None

    def build_engine(self, **overrides: Any) -> Engine:
        """The engine with this experiment's settings (``overrides`` win)."""
        return Engine(**{**self.engine, **overrides})

    def build_data(self, train_size: int | None = None, val_size: int | None = None, seed: int = 0) -> MNISTDataModule:
        """MNIST with the article's batch size (``None`` sizes: all 60,000 / 10,000 images)."""
        return MNISTDataModule(batch_size=self.batch_size, seed=seed, train_size=train_size, val_size=val_size)


EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        Experiment(
            "dense",
            DenseAE,
            50,
            256,
            (38_465, 39_200, 77_665),
            article_losses=(0.0784, 0.0777),
            engine={"steps_per_execution": 32, "compiled_steps": True},
        ),
        Experiment(
            "deep",
            DeepDenseAE,
            100,
            256,
            (134_750, 135_485, 270_235),
            article_losses=(0.0721, 0.0720),
            engine={"steps_per_execution": 32, "compiled_steps": True},
        ),
        Experiment(
            "conv",
            ConvAE,
            64,
            256,
            (24_385, 24_385, 48_770),
            article_losses=(0.0697, 0.0693),
            engine={"steps_per_execution": 32, "cpu_micro_batch_size": 32},
        ),
        Experiment(
            "denoising",
            DenoisingAE,
            200,
            16,
            (38_465, 39_200, 77_665),
            figures=("reconstructions", "denoising", "codes_2d", "interpolation"),
            engine={"steps_per_execution": 128, "compiled_steps": True, "compiled_steps_per_call": 8},
            retrains="dense",
        ),
        Experiment(
            "sparse",
            SparseAE,
            400,
            256,
            (39_776, 40_544, 80_320),
            figures=("reconstructions", "sparse_code_dimensions", "codes_2d", "interpolation"),
            engine={"steps_per_execution": 32, "compiled_steps": True},
        ),
    )
}
"""The five experiments by name, in the article's order."""


def experiment_of(model: AutoencoderModule) -> Experiment:
    """The experiment whose model class ``model`` is (or derives from, nearest first).

    Raises:
        KeyError: ``model`` is no torchae model.
    """
    for cls in type(model).__mro__:
        for experiment in EXPERIMENTS.values():
            if experiment.model is cls:
                return experiment
    raise KeyError(f"{type(model).__name__} is not one of torchae's models")


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> AutoencoderModule:
    """Load any torchae checkpoint as the model class that saved it (read with ``weights_only=True``), in eval mode.

    Raises:
        CheckpointError: the file is missing, unreadable, or not from a torchae model.
    """
    name = read_checkpoint(path).get(MODEL_KEY)
    classes = {experiment.model.__name__: experiment.model for experiment in EXPERIMENTS.values()}
    if name not in classes:
        raise CheckpointError(f"{str(path)!r} was not saved by a torchae model: load it with its own class")
    return classes[name].load_from_checkpoint(path, map_location=map_location, weights_only=True).eval()
