"""Training parity: Keras 3 and torchae trained side by side from the same initial weights on the same data.

Both see the article's settings (Adam with Keras's defaults, BCE, the article's batch size, shuffling every epoch,
validation on the test images after every epoch). The shuffling orders and, for denoising, the noise draws come
from each framework's own generator: the curves are compared statistically (final ``val_loss`` within a relative
tolerance), while ``python -m parity check`` pins the arithmetic exactly.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

import torchae
from parity._keras import import_keras
from parity.keras_models import KERAS_REFERENCES, build_keras
from parity.transfer import keras_to_torch, to_nhwc, torch_to_keras
from torchae.checkpoints import network_state, run_order
from torchae.cli.configs import data_of, fit_quietly
from torchae.data import MNISTDataModule, TensorDataModule
from torchae.registry import EXPERIMENTS
from torchae.runs import source_commit

__all__ = ["TrainRecord", "keras_against_run", "machine_description", "train_both"]


@dataclass
class TrainRecord:
    model: str
    epochs: int
    train_size: int
    val_size: int
    batch_size: int
    seed: int
    keras: dict[str, list[float]]
    torchae: dict[str, list[float]]
    machine: str
    versions: dict[str, str]
    commit: str | None = None
    """The torchae commit that ran it."""
    torchae_run: str | None = None
    """For ``python -m parity against``: the ``torchae fit`` run whose curves are the torchae side (Keras started from
    that run's initial weights); ``None`` when both ran here from Keras's initial weights."""

    def final_rel_diff(self, key: str) -> float:
        k, t = self.keras[key][-1], self.torchae[key][-1]
        return abs(t - k) / abs(k)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "final_rel_diff": {k: self.final_rel_diff(k) for k in ("loss", "val_loss")}}


def machine_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {torch.get_num_threads()} threads, {platform.system()}"


def versions() -> dict[str, str]:
    """The versions that ran a record, with the backend Keras ran on (``KERAS_BACKEND``) and that backend's version."""
    from importlib.metadata import version

    keras = import_keras(backend=None)
    backend = keras.backend.backend()
    found = {"torch": torch.__version__, "pytorch_lightning": pl.__version__, "keras": keras.__version__}
    found["keras_backend"] = backend
    if backend != "torch":  # the torch backend's version is torch's, already there
        found[backend] = version(backend)
    return found | {"torchae": torchae.__version__}


def parity_inputs(
    name: str, train_size: int | None = None, val_size: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and validation inputs of experiment ``name`` as its config's datamodule gives them to torchae
    (MNIST's first ``train_size`` / ``val_size`` images, or part 2's points drawn from ``seed``): what Keras gets
    too, through :func:`~parity.transfer.to_nhwc`."""
    data = parity_data(name, train_size, val_size, seed)
    return data.train_images, data.val_images


def parity_data(
    name: str, train_size: int | None = None, val_size: int | None = None, seed: int = 0
) -> TensorDataModule:
    """Experiment ``name``'s config's datamodule with these sizes and seed, set up: the inputs (and labels) both
    frameworks train on."""
    data = data_of(name, train_size, val_size, seed)
    data.setup("fit")
    return data


def keras_inputs(name: str, images: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
    """What experiment ``name``'s Keras model takes for ``images``: the images in NHWC, or for a conditional model the
    article's list of inputs and labels (its Keras reference's ``labels``: the CVAE's ``[images,
    to_categorical(labels), to_categorical(labels)]``)."""
    x = to_nhwc(images)
    if not EXPERIMENTS[name].model.conditional:
        return x
    if labels is None:
        raise ValueError(f"{name} takes each input's label: give the labels")
    return [x, *(np.asarray(part, dtype=np.float32) for part in KERAS_REFERENCES[name].labels(labels.numpy()))]


def keras_data(name: str, train_size: int | None = None, val_size: int | None = None, seed: int = 0) -> tuple[Any, Any]:
    """The training and validation inputs of :func:`parity_inputs` as experiment ``name``'s Keras model takes them
    (:func:`keras_inputs`)."""
    data = parity_data(name, train_size, val_size, seed)
    train = keras_inputs(name, data.train_images, data.train_labels)
    return train, keras_inputs(name, data.val_images, data.val_labels)


def keras_targets(x: Any) -> Any:
    """What the Keras model reconstructs from inputs ``x``: the images (the first input of a conditional model)."""
    return x[0] if isinstance(x, list) else x


def full_sizes(name: str) -> tuple[int, int]:
    """The training and validation set sizes of experiment ``name`` at the article's length: MNIST's 60,000 and
    10,000 images, or the points its config draws."""
    if issubclass(EXPERIMENTS[name].model.datamodule, MNISTDataModule):
        return 60_000, 10_000
    train, val = parity_inputs(name)
    return len(train), len(val)


def _train_keras(
    models: Any, x_train: np.ndarray, x_val: np.ndarray, epochs: int, batch_size: int
) -> dict[str, list[float]]:
    keras = import_keras(backend=None)

    class Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)  # after validation

    timer = Timer()
    history = models.autoencoder.fit(
        x_train,
        keras_targets(x_train),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        validation_data=(x_val, keras_targets(x_val)),
        verbose=0,
        callbacks=[timer],
    )
    return {
        "loss": [float(v) for v in history.history["loss"]],
        "val_loss": [float(v) for v in history.history["val_loss"]],
        "seconds": timer.seconds,
    }


def _train_torch(
    model: torchae.AutoencoderModule, name: str, epochs: int, train_size: int, val_size: int, seed: int
) -> dict[str, list[float]]:
    history, seconds = fit_quietly(model, name, epochs, train_size, val_size, seed)
    return {
        "loss": [row["train_loss"] for row in history],
        "val_loss": [row["val_loss"] for row in history],
        "seconds": seconds,
    }


def train_both(
    name: str,
    epochs: int,
    train_size: int = 60_000,
    val_size: int = 10_000,
    seed: int = 0,
) -> TrainRecord:
    """Train the Keras reference and torchae from the same initial weights, with the article's batch size and
    the configs' steps_per_execution; returns both curves."""
    batch_size = EXPERIMENTS[name].batch_size
    x_train, x_val = keras_data(name, train_size, val_size, seed)
    keras_models = build_keras(name, seed=seed)
    torch.manual_seed(seed)  # the denoising model's noise seed is the process seed
    torch_model = EXPERIMENTS[name].model()
    keras_to_torch(keras_models.inner, torch_model)
    keras_curves = _train_keras(keras_models, x_train, x_val, epochs, batch_size)
    x_train, x_val = keras_targets(x_train), keras_targets(x_val)
    torch_curves = _train_torch(torch_model, name, epochs, len(x_train), len(x_val), seed)
    return TrainRecord(
        name,
        epochs,
        len(x_train),
        len(x_val),
        batch_size,
        seed,
        keras_curves,
        torch_curves,
        machine_description(),
        versions(),
        source_commit(),
    )


def format_curves(record: TrainRecord) -> str:
    lines = [
        f"{record.model}: {record.epochs} epochs, {record.train_size:,} training / {record.val_size:,} "
        f"validation images, batch {record.batch_size}, seed {record.seed}",
        f"{'epoch':>5} {'keras loss':>11} {'torchae':>9} {'rel':>7}  {'keras val':>10} {'torchae':>9} "
        f"{'rel':>7}  {'keras s':>8} {'torchae s':>9}",
    ]
    k, t = record.keras, record.torchae
    for e in range(record.epochs):
        rel = [abs(t[key][e] - k[key][e]) / abs(k[key][e]) for key in ("loss", "val_loss")]
        lines.append(
            f"{e + 1:>5} {k['loss'][e]:>11.5f} {t['loss'][e]:>9.5f} {rel[0]:>7.2%}  {k['val_loss'][e]:>10.5f}"
            f" {t['val_loss'][e]:>9.5f} {rel[1]:>7.2%}  {k['seconds'][e]:>8.2f} {t['seconds'][e]:>9.2f}"
        )
    return "\n".join(lines)


def save_record(record: TrainRecord, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.as_dict(), indent=1))
    return path


def load_record(path: Path) -> TrainRecord:
    data = json.loads(path.read_text())
    data.pop("final_rel_diff", None)
    return TrainRecord(**data)


class RunStateError(ValueError):
    """What is saved of a run does not fit the command (another backend, missing or unfinished epochs): the user's
    to fix, said in one line."""


def run_curves(run_dir: Path) -> dict[str, list[float]]:
    """The per-epoch ``loss``, ``val_loss`` and seconds of a ``torchae fit`` run.

    A run that stopped and resumed logs each part into a new ``version_N``, so the curves join the versions' logs,
    oldest first, a later part replacing the epochs it logged again; a version that starts at epoch 0 is a run from
    the start, which replaces everything before it.

    Raises:
        FileNotFoundError: no ``version_*/metrics.csv`` under ``run_dir``.
        RunStateError: the logs miss an epoch.
    """
    metrics_files = sorted(Path(run_dir).glob("version_*/metrics.csv"), key=run_order)
    if not metrics_files:
        raise FileNotFoundError(f"no version_*/metrics.csv under {run_dir}: give the folder of a torchae fit run")
    by_epoch: dict[int, dict[str, float]] = {}
    for metrics_file in metrics_files:
        with metrics_file.open() as file:
            part: dict[int, dict[str, float]] = {}
            for row in csv.DictReader(file):
                epoch = part.setdefault(int(row["epoch"]), {})
                epoch.update(
                    {key: float(value) for key, value in row.items() if value not in ("", None) and key != "epoch"}
                )
        if 0 in part:
            by_epoch = {}
        by_epoch.update({e: values for e, values in part.items() if {"train_loss", "val_loss"} <= values.keys()})
    if sorted(by_epoch) != list(range(len(by_epoch))):
        missing = sorted(set(range(max(by_epoch, default=-1) + 1)) - set(by_epoch))
        raise RunStateError(
            f"the logs under {run_dir} miss epoch {missing[0]}: resume the run from a checkpoint before it"
        )
    epochs = [by_epoch[e] for e in sorted(by_epoch)]
    return {
        "loss": [row["train_loss"] for row in epochs],
        "val_loss": [row["val_loss"] for row in epochs],
        "seconds": [row.get("epoch_seconds", float("nan")) for row in epochs],
    }


def initial_network(name: str, initial: Path) -> torchae.AutoencoderModule:
    """Experiment ``name``'s model holding the network weights of ``initial``: a state dict of the network
    (``initial_weights.pt`` of a weights build) or a torchae checkpoint (the trained model a run retrains)."""
    model = EXPERIMENTS[name].model()
    if initial.suffix == ".ckpt":
        model.net.load_state_dict(network_state(initial, model.net))
    else:
        model.net.load_state_dict(torch.load(initial, map_location="cpu", weights_only=True))
    return model


def run_data_sizes(run_dir: Path) -> tuple[int | None, int | None]:
    """The ``train_size`` and ``val_size`` a ``torchae fit`` run trained on, as its first ``config.yaml`` (which
    LightningCLI writes into each version's folder) gives them; ``None`` for a size it leaves whole (or no config)."""
    import yaml

    configs = sorted(Path(run_dir).glob("version_*/config.yaml"), key=run_order)
    if not configs:
        return None, None
    data = (yaml.safe_load(configs[0].read_text()) or {}).get("data") or {}
    data = data.get("init_args", data) if isinstance(data, dict) else {}
    return data.get("train_size"), data.get("val_size")


def keras_against_run(
    name: str, run_dir: Path, initial: Path, state_dir: Path, seed: int = 0, epochs: int | None = None
) -> TrainRecord:
    """Train the Keras reference from the network weights a ``torchae fit`` run started from, and pair its curves
    with that run's: the torchae side of the record is the run itself (for example a weights build,
    ``python tools/build_weights.py``), so an hours-long run is not repeated.

    Keras runs on the backend ``KERAS_BACKEND`` names (TensorFlow when unset), and the record says which. The Keras
    run saves itself (model, optimizer and curves) into ``state_dir`` after every epoch and resumes from there when
    called again, on the backend it started on.

    Raises:
        RunStateError: the saved Keras run started on another backend, or the torchae run has fewer epochs.
    """
    keras = import_keras(backend=None)
    backend = keras.backend.backend()
    experiment = EXPERIMENTS[name]
    epochs = epochs or experiment.epochs
    state_dir.mkdir(parents=True, exist_ok=True)
    saved, curves_file = state_dir / "keras_model.keras", state_dir / "keras_curves.json"
    if saved.is_file() and curves_file.is_file():
        curves = json.loads(curves_file.read_text())
        started_on = curves.setdefault("backend", "tensorflow")  # state saved before the key existed: TensorFlow's
        if started_on != backend:
            raise RunStateError(
                f"the Keras run in {state_dir} started on the {started_on} backend, not {backend}: "
                f"set KERAS_BACKEND={started_on}, or give a new --state folder"
            )
        model = keras.saving.load_model(saved, safe_mode=True)
        print(f"resuming the Keras run in {state_dir} ({backend}) after epoch {len(curves['loss'])}", flush=True)
    else:
        keras_models = build_keras(name, seed=seed)
        torch_to_keras(initial_network(name, initial), keras_models.inner)
        model, curves = keras_models.autoencoder, {"backend": backend, "loss": [], "val_loss": [], "seconds": []}
    x_train, x_val = keras_data(name, *run_data_sizes(run_dir), seed=seed)

    class SaveEveryEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            curves["seconds"].append(time.perf_counter() - self._start)
            curves["loss"].append(float(logs["loss"]))
            curves["val_loss"].append(float(logs["val_loss"]))
            self.model.save(saved.with_suffix(".partial.keras"))
            saved.with_suffix(".partial.keras").replace(saved)
            curves_file.write_text(json.dumps(curves))
            print(f"keras epoch {epoch + 1}/{epochs}: {logs['loss']:.5f} / {logs['val_loss']:.5f}", flush=True)

    done = len(curves["loss"])
    if done < epochs:
        model.fit(
            x_train,
            keras_targets(x_train),
            epochs=epochs,
            initial_epoch=done,
            batch_size=experiment.batch_size,
            shuffle=True,
            validation_data=(x_val, keras_targets(x_val)),
            verbose=0,
            callbacks=[SaveEveryEpoch()],
        )
    torch_curves = run_curves(run_dir)  # read now: the torchae run may have been running beside this one
    if len(torch_curves["loss"]) < epochs:
        raise RunStateError(
            f"Keras has trained {epochs} epochs (saved in {state_dir}), the torchae run in {run_dir} "
            f"{len(torch_curves['loss'])}: run this again when it has finished"
        )
    torch_curves = {key: values[:epochs] for key, values in torch_curves.items()}
    return TrainRecord(
        name,
        epochs,
        len(keras_targets(x_train)),
        len(keras_targets(x_val)),
        experiment.batch_size,
        seed,
        {key: curves[key][:epochs] for key in ("loss", "val_loss", "seconds")},
        torch_curves,
        machine_description(),
        versions(),
        source_commit(),
        str(run_dir),
    )
