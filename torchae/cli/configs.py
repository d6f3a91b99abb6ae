"""The experiments' configs (``torchae/configs/NAME.yaml``, shipped in the package; ``configs/`` in a checkout links
to them) as the parity suite, the benchmarks and the tests run them outside the CLI: each experiment's data settings
(batch size, step groups) and engine, read from its config, which owns them."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml

from torchae.autoencoder import AutoencoderModule
from torchae.data import MNISTDataModule, TensorDataModule
from torchae.engine import Engine
from torchae.figures import ArticleFigures
from torchae.part2.dots import DATAMODULES
from torchae.runs import quiet_trainer
from torchae.timing import EpochTimer

__all__ = ["CONFIGS", "config_of", "data_of", "engine_of", "fit_quietly"]

CONFIGS = Path(str(resources.files("torchae") / "configs"))
"""The folder of the experiments' configs inside the installed package."""


def config_of(name: str) -> dict[str, Any]:
    """The parsed ``configs/NAME.yaml``."""
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def data_of(
    name: str, train_size: int | None = None, val_size: int | None = None, seed: int = 0, **overrides: Any
) -> TensorDataModule:
    """The config's datamodule with its settings: MNIST (``None`` sizes: all 60,000 / 10,000 images) or another of
    torchae's (its ``data.class_path``; the sizes are MNIST's only); ``overrides`` win."""
    section = config_of(name).get("data") or {}
    if "class_path" in section:
        data_class, settings = DATAMODULES[str(section["class_path"]).rpartition(".")[2]], section.get("init_args")
    else:
        data_class, settings = MNISTDataModule, section
    settings = {**(settings or {}), "seed": seed}
    if issubclass(data_class, MNISTDataModule):
        settings |= {"train_size": train_size, "val_size": val_size}
    return data_class(**{**settings, **overrides})


def engine_of(name: str, **overrides: Any) -> Engine:
    """The config's engine (``overrides`` win)."""
    return Engine.from_config(CONFIGS / f"{name}.yaml", **overrides)


def fit_quietly(
    model: AutoencoderModule,
    name: str,
    epochs: int,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    accelerator: str = "cpu",
    callbacks: Sequence[pl.Callback] = (),
    data: TensorDataModule | None = None,
    engine: Engine | None = None,
) -> tuple[list[dict[str, float]], list[float]]:
    """Train ``model`` as config ``name`` does (its data settings and engine), writing no file.

    Args:
        data: the datamodule (default: the config's, with these sizes and seed).
        engine: the engine (default: the config's).

    Returns:
        The per-epoch metrics (``train_loss``, ``val_loss``, ...) and the seconds of each epoch.
    """
    pl.seed_everything(seed, verbose=False)
    data = data or data_of(name, train_size, val_size, seed)
    history, timer = ArticleFigures(enabled=False, write_history=False), EpochTimer()
    engine = engine or engine_of(name)
    trainer = quiet_trainer(
        max_epochs=epochs, accelerator=accelerator, devices=1, callbacks=[engine, history, timer, *callbacks]
    )
    trainer.fit(model, datamodule=data)
    return history.history, timer.seconds
