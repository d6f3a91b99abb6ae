"""The registry of the five experiments: it states SPEC.md's facts, and the configs and parity follow it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import torchae
from torchae.figures import FIGURES
from torchae.registry import EXPERIMENTS, experiment_of

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# SPEC.md, written out independently of the registry: class, epochs, batch, parameters (enc / dec / total), and the
# article's last-epoch loss / val_loss.
SPEC = {
    "dense": ("DenseAE", 50, 256, (38_465, 39_200, 77_665), (0.0784, 0.0777)),
    "deep": ("DeepDenseAE", 100, 256, (134_750, 135_485, 270_235), (0.0721, 0.0720)),
    "conv": ("ConvAE", 64, 256, (24_385, 24_385, 48_770), (0.0697, 0.0693)),
    "denoising": ("DenoisingAE", 200, 16, (38_465, 39_200, 77_665), None),
    "sparse": ("SparseAE", 400, 256, (39_776, 40_544, 80_320), None),
}


def test_the_registry_holds_the_five_experiments_in_the_article_order():
    assert list(EXPERIMENTS) == list(SPEC)
    assert all(name == experiment.name for name, experiment in EXPERIMENTS.items())


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_states_the_spec(name):
    experiment = EXPERIMENTS[name]
    cls, epochs, batch, parameters, losses = SPEC[name]
    assert (experiment.model.__name__, experiment.epochs, experiment.batch_size) == (cls, epochs, batch)
    assert experiment.parameters == parameters
    assert experiment.article_losses == losses
    assert set(experiment.figures) <= set(FIGURES) and "reconstructions" in experiment.figures
    assert experiment.retrains is None or experiment.retrains in EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_the_configs_follow_the_registry(name):
    experiment = EXPERIMENTS[name]
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert config["model"]["class_path"] == f"torchae.{experiment.model.__name__}"
    assert config["trainer"]["max_epochs"] == experiment.epochs
    assert config["data"]["batch_size"] == experiment.batch_size
    assert config["engine"] == experiment.engine
    assert config["trainer"]["default_root_dir"] == f"runs/{name}"


def test_every_config_belongs_to_an_experiment():
    assert sorted(path.stem for path in CONFIGS.glob("*.yaml")) == sorted(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_a_model_finds_its_experiment(name):
    experiment = EXPERIMENTS[name]
    assert experiment_of(experiment.model()) is experiment
    with pytest.raises(KeyError, match="not one of torchae's models"):
        experiment_of(torchae.AutoencoderModule(torchae.DenseAutoencoder()))
