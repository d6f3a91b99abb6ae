"""The series' trained models (every experiment that takes more than minutes to train), trained to full length and
shipped inside the package.

``torchae.pretrained("conv")`` returns the trained :class:`~torchae.part1.models.ConvAE` in eval mode on the CPU. The
weights are files of this package (``NAME-SHA8.pt``, tensors only: loaded with ``weights_only=True``), so loading
never touches the network; every load checks the file's sha256 against ``weights.json``, which also holds each
model's metadata in the manner of torchvision's weights (parameter count, the loss on the 10,000 test images, the
recipe, the commit and the Keras 3 row). ``python tools/build_weights.py`` (in a clone of torchae) rebuilds them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from torchae.autoencoder import AutoencoderModule
from torchae.data import MNISTDataModule
from torchae.errors import CheckpointError, ConfigError
from torchae.registry import EXPERIMENTS, experiment_of
from torchae.runs import quiet_trainer

__all__ = ["METADATA_FILE", "WEIGHTS_DIR", "Weights", "available", "get_weights", "pretrained", "loss_on_test_images"]

WEIGHTS_DIR = Path(__file__).resolve().parent
METADATA_FILE = "weights.json"
REINSTALL = "reinstall torchae (pip install --force-reinstall --no-deps torchae) or rebuild the weights"


@dataclass(frozen=True)
class Weights:
    """One shipped model: its file, checksum and metadata.

    Attributes:
        name: the experiment (one of :func:`available`).
        path: the weights file inside the package.
        sha256: the file's expected checksum.
        meta: ``num_params``, ``val_loss`` (the loss on the 10,000 test images), ``check`` (the loss on their
            first ``val_batches`` batches, which a test recomputes in seconds), ``epochs``, ``batch_size``,
            ``seed``, ``config``, ``commit``, ``article`` and ``keras`` (last-epoch losses), and more.
    """

    name: str
    path: Path
    sha256: str
    meta: dict[str, Any]

    @property
    def history(self) -> list[dict[str, float]]:
        """The training run's per-epoch ``train_loss`` and ``val_loss`` (for the loss curves)."""
        return list(self.meta.get("history", []))

    def verify(self) -> None:
        """Check the file against its sha256.

        Raises:
            CheckpointError: the file is missing or its checksum differs.
        """
        if not self.path.is_file():
            raise CheckpointError(f"the pretrained {self.name} weights {str(self.path)!r} are missing: {REINSTALL}")
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise CheckpointError(
                f"the pretrained {self.name} weights {str(self.path)!r} fail their checksum (sha256 {digest[:16]}..., "
                f"expected {self.sha256[:16]}...): the file was damaged or changed; {REINSTALL}"
            )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained weights, after :meth:`verify` (tensors only, read with ``weights_only=True``)."""
        self.verify()
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def load(self) -> AutoencoderModule:
        """The trained model, after :meth:`verify`, in eval mode on the CPU."""
        model = EXPERIMENTS[self.name].model(**self.meta["model_arguments"])
        model.load_state_dict(self.state_dict())
        return model.eval()


@functools.cache
def _metadata(directory: Path) -> dict[str, dict[str, Any]]:
    path = directory / METADATA_FILE
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} is missing: {REINSTALL}")
    return json.loads(path.read_text())


def available(directory: Path = WEIGHTS_DIR) -> tuple[str, ...]:
    """The names of the shipped models, in the article's order."""
    shipped = _metadata(directory)
    return tuple(name for name in EXPERIMENTS if name in shipped)


def get_weights(name: str, directory: Path = WEIGHTS_DIR) -> Weights:
    """The shipped weights of experiment ``name``, with their metadata (nothing is read but ``weights.json``).

    Raises:
        ConfigError: ``name`` is not a shipped model.
    """
    shipped = available(directory)
    if name in EXPERIMENTS and name not in shipped:  # an experiment whose full-length training is not shipped
        raise ConfigError(
            f"the pretrained {name} model is not shipped in this version: train it with torchae fit --config "
            f"configs/{name}.yaml, or choose one of {', '.join(shipped)}"
        )
    if name not in shipped:
        raise ConfigError(f"no pretrained model {name!r}: choose one of {', '.join(shipped)}")
    entry = _metadata(directory)[name]
    return Weights(name, directory / entry["file"], entry["sha256"], entry)


def pretrained(name: str) -> AutoencoderModule:
    """The article's model ``name`` trained to full length, in eval mode on the CPU, from this package's files.

    Example::

        model = torchae.pretrained("conv")
        reconstructions = model(images)  # images: (N, 1, 28, 28) in [0, 1]

    Raises:
        ConfigError: ``name`` is not a shipped model (:func:`available` lists them).
        CheckpointError: the file is missing or fails its sha256 check (reinstall torchae).
    """
    return get_weights(name).load()


def loss_on_test_images(model: AutoencoderModule, name: str | None = None, batches: int | None = None) -> float:
    """``val_loss`` of ``model`` on the 10,000 MNIST test images (part 2's points models: on the 1000 points of seed 0),
    as ``trainer.validate`` logs it, with the experiment's batch size (a model that draws, the denoising model's noise
    or the VAE's latent samples, draws from its validation stream of epoch 0, seeded with 0 unless the model has a
    seed of its own; torch's generator is forked, so the caller's stays as it was).

    Args:
        model: the model to evaluate.
        name: the experiment whose data and batch size to use; ``None`` for the one ``model`` belongs to.
        batches: evaluate only the first ``batches`` validation batches (Lightning's ``limit_val_batches``); ``None``
            for all of them.
    """
    experiment = EXPERIMENTS[name] if name is not None else experiment_of(model)
    if experiment is None:
        raise ConfigError(f"{type(model).__name__} is no registered experiment: name the experiment whose data it uses")
    data_class = getattr(experiment.model, "datamodule", MNISTDataModule)
    data = data_class(batch_size=experiment.batch_size, seed=0)
    limit = {} if batches is None else {"limit_val_batches": batches}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        trainer = quiet_trainer(accelerator="cpu", devices=1, **limit)
        (metrics,) = trainer.validate(model, datamodule=data, verbose=False)
    return float(metrics["val_loss"])
