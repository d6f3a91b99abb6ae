"""Test helpers: a quiet Trainer, a model that draws random numbers inside its step, and fault injection for the
reliability tests, loaded by the CLI through ``--trainer.callbacks+=helpers.KillAt`` and ``--model
helpers.NaNAfter`` (the tests put this folder on PYTHONPATH)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

import torchae
import torchae.inputs
import torchae.networks
from torchae import runs
from torchae.data import TensorBatches

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
"""A CLI run without the progress bar and the model summary."""
EAGER = ["--engine.compiled_steps=false"]
"""For runs whose subject is not the engine: compiling a config's whole step costs seconds in every process, and
``tests/test_engine.py`` proves that compiled steps give the plain steps."""
AUTOENCODERS = [name for name, e in torchae.EXPERIMENTS.items() if issubclass(e.model, torchae.AutoencoderModule)]
"""The experiments on the autoencoder base (parts 1-4): an encoder, a decoder and the base's step."""


def run_main(args: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in this process for a command that must be refused; returns (exit code, stderr)."""
    from torchae.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


def one_line_error(code: int, err: str, *fragments: str) -> str:
    """The single ``torchae: error:`` line of a refused command (exit 2, no traceback), holding ``fragments``."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("torchae: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def load_script(relative: str) -> ModuleType:
    """A script of the repository (``tools/NAME.py``, ``benchmarks/NAME.py``: not packages) as a module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quiet_trainer(tmp_path, **kwargs) -> pl.Trainer:
    """torchae's quiet Trainer for one epoch under ``tmp_path``; ``kwargs`` override."""
    return runs.quiet_trainer(**{"max_epochs": 1, "default_root_dir": tmp_path, **kwargs})


class NoisyLatentNet(torchae.Autoencoder):
    """A dense network with what a VAE draws inside its step: dropout in the encoder, and a latent sample
    ``mean + 0.1 * N(0, 1)`` added to the code in training and evaluation alike (as the series' VAE samples)."""

    def __init__(self, code_dim: int = 8) -> None:
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, code_dim))
        body = nn.Sequential(nn.Linear(code_dim, 784), nn.Unflatten(1, (1, 28, 28)))
        super().__init__(encoder, torchae.networks.SigmoidDecoder(body), (code_dim,))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.encoder(x)
        return mean + 0.1 * torch.randn_like(mean)


class NoisyLatentAE(torchae.AutoencoderModule):
    """A model defined outside the package whose step draws random numbers: dropout and a latent sample."""

    def __init__(self, code_dim: int = 8, learning_rate: float = 1e-3) -> None:
        super().__init__(NoisyLatentNet(code_dim), learning_rate=learning_rate)


class KillAt(pl.Callback):
    """SIGKILLs its own process at the start of training batch ``batch`` of epoch ``epoch``: a real crash, in the
    middle of an epoch, with no chance to clean up."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch = epoch
        self.batch = batch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class NaNAfter(torchae.DenseAE):
    """A dense autoencoder whose loss turns NaN from training step ``step`` of epoch ``epoch`` on."""

    def __init__(self, epoch: int = 1, step: int = 3) -> None:
        super().__init__()
        self.nan_epoch = epoch
        self.nan_step = step

    def loss_terms(self, x: torch.Tensor, stage: str = "train") -> dict[str, torch.Tensor]:
        terms = super().loss_terms(x, stage)
        trainer = self._trainer
        if stage == "train" and trainer is not None and trainer.current_epoch == self.nan_epoch:
            if trainer.fit_loop.epoch_loop.batch_idx >= self.nan_step:
                terms["loss"] = terms["loss"] * float("nan")
        return terms


class NaNValidationFrom(torchae.DenseAE):
    """A dense autoencoder whose validation loss is NaN from epoch ``epoch`` on (its training loss stays finite)."""

    def __init__(self, epoch: int = 1) -> None:
        super().__init__()
        self.nan_epoch = epoch

    def loss_terms(self, x: torch.Tensor, stage: str = "train") -> dict[str, torch.Tensor]:
        terms = super().loss_terms(x, stage)
        if stage == "val" and self._trainer is not None and self.current_epoch >= self.nan_epoch:
            terms["loss"] = terms["loss"] * float("nan")
        return terms


class SaveWeights(pl.Callback):
    """Writes this rank's final weights to ``folder/rank<N>-epoch<E>.pt`` when fitting ends (the DDP tests compare
    the ranks)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        os.makedirs(self.folder, exist_ok=True)
        name = f"rank{trainer.global_rank}-epoch{trainer.current_epoch}.pt"
        torch.save({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}, os.path.join(self.folder, name))


class RecordSamples(pl.Callback):
    """Writes ``folder/rank<N>-samples.json`` when fitting ends: the indices (into the datamodule's training images)
    of the samples this rank trained on in each epoch, and the ``val_loss`` it logged (the DDP test checks the
    shards)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.seen: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx) -> None:
        images = batch if isinstance(batch, torch.Tensor) else batch[0]
        index = {image.numpy().tobytes(): i for i, image in enumerate(trainer.datamodule.train_images)}
        seen = self.seen.setdefault(trainer.current_epoch, [])
        seen.extend(index[image.detach().cpu().numpy().tobytes()] for image in images)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        os.makedirs(self.folder, exist_ok=True)
        record = {"epochs": self.seen, "val_loss": float(trainer.callback_metrics["val_loss"])}
        with open(os.path.join(self.folder, f"rank{trainer.global_rank}-samples.json"), "w") as file:
            json.dump(record, file)


def quick_data(config: str, train: int = 1024, val: int = 512) -> list[str]:
    """Command-line settings that shrink config ``config``'s data for a quick run: MNIST's first ``train`` / ``val``
    images, or for part 2's points 300 of them (the overfitting set repeated twice)."""
    if config.startswith("dots_"):
        return ["--data.points", "300", *(["--data.repeats", "2"] if config == "dots_overfit" else [])]
    return ["--data.train_size", str(train), "--data.val_size", str(val)]


def inputs_for(model_class: type, images: torch.Tensor) -> torch.Tensor:
    """Test inputs of a model class: ``images`` (MNIST's), or as many of part 2's points for a points model."""
    if issubclass(model_class.datamodule, torchae.MNISTDataModule):
        return images
    from torchae.part2.dots import sine_dots

    return sine_dots(len(images), 0.06, torch.Generator().manual_seed(0)).dots


def small_data(model_class: type, size: int = 64, batch_size: int = 32) -> torchae.data.TensorDataModule:
    """A few of a model class's training inputs: MNIST's first ``size`` images, or ``size`` of part 2's points."""
    if issubclass(model_class.datamodule, torchae.MNISTDataModule):
        return model_class.datamodule(batch_size=batch_size, train_size=size, val_size=size, seed=0)
    return model_class.datamodule(batch_size=batch_size, points=size, seed=0)


def condition_for(model_class: type, count: int) -> tuple[torch.Tensor, ...]:
    """What a model class takes beside ``count`` inputs: the labels (each of its labels in turn) for a conditional
    model (part 4's), nothing for the others; ``model.encode(x, *condition_for(type(model), len(x)))``."""
    return (torch.arange(count) % model_class.classes,) if getattr(model_class, "conditional", False) else ()


def labels_for(model_class: type, count: int) -> torch.Tensor | None:
    """The labels of ``count`` test inputs of a conditional model (:func:`condition_for`'s), else ``None``."""
    condition = condition_for(model_class, count)
    return condition[0] if condition else None


def step_inputs(model_class: type, images: torch.Tensor) -> torch.Tensor | torchae.inputs.LabelledBatch:
    """What a model class's ``loss_terms`` takes for ``images``: the images, or with their labels (the CVAE)."""
    labels = labels_for(model_class, len(images))
    return images if labels is None else torchae.inputs.LabelledBatch(images, labels)


def batches_for(model_class: type, inputs: torch.Tensor, batch_size: int, shuffle: bool, **kwargs) -> TensorBatches:
    """``TensorBatches`` of ``inputs`` as a model class's step takes them: with labels for a conditional model."""
    return TensorBatches(inputs, batch_size, shuffle, labels=labels_for(model_class, len(inputs)), **kwargs)


class CountingAE(torchae.DenseAE):
    """A user's subclass that writes its own ``training_step`` (the base's, counted): the engine must run it."""

    calls = 0

    def __init__(self, code_dim: int = 8) -> None:
        super().__init__(code_dim=code_dim)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        type(self).calls += 1
        return super().training_step(batch, batch_idx)


class TinyGAN(pl.LightningModule):
    """A plain LightningModule with two optimizers and manual optimization, as Lightning's GAN example: a generator of
    images from a 2-D code and a discriminator, each with its own Adam. No torchae base."""

    def __init__(self, latent_dim: int = 2, learning_rate: float = 2e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(latent_dim, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(784, 1))
        self.steps = 0

    def training_step(self, batch, batch_idx: int) -> None:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        generator_optimizer, discriminator_optimizer = self.optimizers()
        noise = torch.randn(images.shape[0], self.hparams.latent_dim, device=images.device)
        real, fake = self.discriminator(images), self.discriminator(self.generator(noise).detach())
        loss = nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean()
        discriminator_optimizer.zero_grad()
        self.manual_backward(loss)
        discriminator_optimizer.step()
        generator_loss = nn.functional.softplus(-self.discriminator(self.generator(noise))).mean()
        generator_optimizer.zero_grad()
        self.manual_backward(generator_loss)
        generator_optimizer.step()
        self.steps += 1
        self.log("train_loss", generator_loss.detach(), on_epoch=True, on_step=False)

    def validation_step(self, batch, batch_idx: int) -> None:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        self.log("val_loss", nn.functional.softplus(-self.discriminator(images)).mean(), on_epoch=True)

    def configure_optimizers(self):
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.learning_rate),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.learning_rate),
        ]


class TwoOptimizerAE(torchae.DenseAE):
    """A model on torchae's autoencoder base with two optimizers (the encoder's and the decoder's) and its own step."""

    def __init__(self, code_dim: int = 8) -> None:
        super().__init__(code_dim=code_dim)
        self.steps = 0

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        encoder_optimizer, decoder_optimizer = self.optimizers()
        for images in torchae.data.batches_of(batch):
            loss = self.shared_step(images, "train")
            encoder_optimizer.zero_grad()
            decoder_optimizer.zero_grad()
            self.manual_backward(loss)
            encoder_optimizer.step()
            decoder_optimizer.step()
            self.steps += 1
        return loss

    def configure_optimizers(self):
        return [
            torchae.KerasAdam(self.net.encoder.parameters(), lr=self.learning_rate),
            torchae.KerasAdam(self.net.decoder.parameters(), lr=self.learning_rate),
        ]


def fit_resume_and_predict(
    config: str, tmp_path: Path, train_size: int, val_size: int, resume: bool = True
) -> tuple[Path, Any, Any]:
    """Through the CLI on a subset: a 2-epoch fit of ``config`` that draws its figures, the same fit resumed from
    its first epoch's checkpoint (with ``resume``: it must end at the uninterrupted run's weights bit for bit, the
    draws and the article's loop travel in the checkpoint), and the predictions of the last checkpoint. Returns the
    run's folder, its last checkpoint's model and the predictions' arrays."""
    from torchae.cli import main

    common = [*QUIET, "--data.init_args.train_size", str(train_size), "--data.init_args.val_size", str(val_size)]
    whole, resumed_root = tmp_path / "whole", tmp_path / "resumed"
    keep_every_epoch = ["--checkpoint.save_top_k=-1", "--trainer.max_epochs", "2"]
    main(["fit", "--config", config, *common, *keep_every_epoch, "--trainer.default_root_dir", str(whole)])
    run, last = whole / "version_0", whole / "version_0" / "checkpoints" / "last.ckpt"
    uninterrupted = torchae.load_checkpoint(last)
    if resume:
        first_epoch = str(next((run / "checkpoints").glob("epoch=0-*.ckpt")))
        args = ["fit", "--config", config, *common, "--figures.enabled", "false", "--trainer.max_epochs", "2"]
        main([*args, "--trainer.default_root_dir", str(resumed_root), "--ckpt_path", first_epoch])
        resumed = torchae.load_checkpoint(next(resumed_root.rglob("last.ckpt")))
        for (key, p), q in zip(resumed.state_dict().items(), uninterrupted.state_dict().values(), strict=True):
            assert torch.equal(p, q), key
    main(["predict", "--config", config, *common, "--ckpt_path", str(last), "--trainer.default_root_dir", str(whole)])
    with np.load(next(whole.glob("version_0/predict/*/predictions.npz"))) as arrays:
        return run, uninterrupted, dict(arrays)
