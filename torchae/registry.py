"""The open registry of the series' experiments: each experiment registers itself beside its model, as torchvision's
``@register_model`` does.

An experiment is a model class with the article's recipe (epochs, batch size), the facts it must measure up to
(parameter counts, the article's losses) and what it has (a Keras builder in ``parity/``, shipped weights)::

    @register_experiment("dense", epochs=50, batch_size=256, parameters=(38_465, 39_200, 77_665))
    class DenseAE(AutoencoderModule): ...

How fast it runs is not here: the configs (``configs/NAME.yaml``) own the engine settings. The tests, the parity
suite and the benchmarks iterate :data:`EXPERIMENTS` and check what each experiment declares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from torchae.checkpoints import MODEL_KEY, read_checkpoint
from torchae.errors import CheckpointError

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "ParityBudget",
    "experiment_of",
    "experiment_of_class",
    "load_checkpoint",
    "model_classes",
    "register_experiment",
]

ModelClass = TypeVar("ModelClass", bound=type)


@dataclass(frozen=True)
class ParityBudget:
    """The short training parity check of an experiment: Keras and torchae trained from the same weights for
    ``epochs`` on ``train_size`` of MNIST's training images (``None``: the experiment's own data) end within
    ``tolerance`` of each other on ``val_loss`` over ``val_size`` test images, averaged over ``seeds``.

    An experiment without one rests its training claim on its full-length record in ``parity/results/`` beside its
    seed spread (an epoch of ``dots_overfit`` is 6,667 steps of 15 points).
    """

    epochs: int
    train_size: int | None = 2048
    seeds: tuple[int, ...] = (0,)
    tolerance: float = 0.02
    val_size: int = 1024


@dataclass(frozen=True)
class Experiment:
    """One experiment of the series.

    Attributes:
        name: the short name (``dense``, ``conv``, ...): the config is ``configs/NAME.yaml``.
        model: the LightningModule class, whose defaults build the article's model.
        epochs: the article's epochs.
        batch_size: the article's batch size.
        parameters: the parameter counts of the model's ``counted_networks`` (an autoencoder's encoder and decoder),
            then the total, as the article's Keras models count them.
        article_losses: the article's last-epoch ``loss`` / ``val_loss``; ``None`` where it gives none.
        retrains: the experiment whose trained model this one starts from, as the article does.
        keras: whether ``parity/`` has a Keras builder of the article's model (then the parity checks run).
        shipped: whether a trained model ships in ``torchae/weights/`` (then ``torchae.pretrained(name)`` serves it).
        parity_budget: the short training parity check of the tests (:class:`ParityBudget`), where it has one.
        iterations: the article's outer iterations, for a model it trains by iterations (part 5's GANs: the
            config's ``model.iterations``; ``epochs`` is then the config's cap); ``None`` for one trained by epochs.
    """

    name: str
    model: type
    epochs: int
    batch_size: int
    parameters: tuple[int, ...]
    article_losses: tuple[float, float] | None = None
    retrains: str | None = None
    keras: bool = False
    shipped: bool = False
    parity_budget: ParityBudget | None = None
    iterations: int | None = None


EXPERIMENTS: dict[str, Experiment] = {}
"""Every registered experiment by name, in the order they registered (the article's order)."""


def register_experiment(name: str, **recipe: Any) -> Callable[[ModelClass], ModelClass]:
    """Register the decorated model class as experiment ``name`` (the other arguments are :class:`Experiment`'s).

    Raises:
        ValueError: another class already registered ``name``.
    """

    def register(model: ModelClass) -> ModelClass:
        known = EXPERIMENTS.get(name)
        if known is not None and known.model.__qualname__ != model.__qualname__:
            raise ValueError(f"experiment {name!r} is already registered by {known.model.__qualname__}")
        EXPERIMENTS[name] = Experiment(name, model, **recipe)
        return model

    return register


def experiment_of(model: Any) -> Experiment | None:
    """The experiment whose model class ``model`` is (or derives from, nearest first); ``None`` for a model that no
    experiment registered (a user's own, say)."""
    return experiment_of_class(type(model))


def experiment_of_class(model_class: type) -> Experiment | None:
    """The experiment that registered ``model_class`` or its nearest registered base; ``None`` if none did."""
    for cls in model_class.__mro__:
        for experiment in EXPERIMENTS.values():
            if experiment.model is cls:
                return experiment
    return None


def model_classes() -> dict[str, type]:
    """The registered model classes by class name: the only classes a checkpoint's name may select."""
    return {experiment.model.__name__: experiment.model for experiment in EXPERIMENTS.values()}


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> Any:
    """Load any checkpoint of a registered model as the class that saved it (read with ``weights_only=True``), in
    eval mode. The class is looked up by name among the registered ones: nothing the file says is imported.

    Raises:
        CheckpointError: the file is missing, unreadable, or not from a registered torchae model.
    """
    name = read_checkpoint(path).get(MODEL_KEY)
    classes = model_classes()
    if name not in classes:
        raise CheckpointError(f"{str(path)!r} was not saved by a torchae model: load it with its own class")
    return classes[name].load_from_checkpoint(path, map_location=map_location, weights_only=True).eval()
