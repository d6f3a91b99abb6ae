"""The open registry: each experiment registers itself beside its model, states the article's facts, and declares
what it has; the configs own the engine settings."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from helpers import CONFIGS, ROOT

import torchae
from torchae.figures import FIGURES
from torchae.registry import EXPERIMENTS, Experiment, experiment_of, register_experiment

# The articles' facts, written out independently of the registry: class, epochs, batch, parameters (enc / dec /
# total), and the article's last-epoch loss / val_loss.
ARTICLE = {
    "dense": ("DenseAE", 50, 256, (38_465, 39_200, 77_665), (0.0784, 0.0777)),
    "deep": ("DeepDenseAE", 100, 256, (134_750, 135_485, 270_235), (0.0721, 0.0720)),
    "conv": ("ConvAE", 64, 256, (24_385, 24_385, 48_770), (0.0697, 0.0693)),
    "denoising": ("DenoisingAE", 200, 16, (38_465, 39_200, 77_665), None),
    "sparse": ("SparseAE", 400, 256, (39_776, 40_544, 80_320), None),
}
# Part 2: class, epochs, batch, parameters, and the settings its code gives the model (learning rate, L1).
PART_2 = {
    "dots_linear": ("DotsLinearAE", 15, 30, (3, 4, 7), {"learning_rate": 0.01}),
    "dots_deep": ("DotsDeepAE", 200, 30, (4_417, 4_418, 8_835), {"learning_rate": 0.003}),
    "dots_overfit": ("DotsOverfitAE", 200, 15, (4_417, 4_418, 8_835), {"learning_rate": 3e-4}),
    "deep_sparse": ("DeepSparseAE", 100, 64, (55_456, 56_224, 111_680), {"learning_rate": 3e-4, "l1": 0.0}),
    "deep_sparse_l1": ("DeepSparseL1AE", 200, 256, (55_456, 56_224, 111_680), {"learning_rate": 3e-4, "l1": 1e-5}),
}


def data_settings(config: dict) -> dict:
    """A config's data settings, given plainly (MNIST) or under a ``class_path`` (another datamodule)."""
    data = config["data"]
    return data.get("init_args", {}) if "class_path" in data else data


def test_the_part_one_experiments_register_in_the_article_order():
    assert list(EXPERIMENTS)[: len(ARTICLE)] == list(ARTICLE)
    assert all(name == experiment.name for name, experiment in EXPERIMENTS.items())


@pytest.mark.parametrize("name", ARTICLE)
def test_each_part_one_experiment_states_the_article(name):
    experiment = EXPERIMENTS[name]
    cls, epochs, batch, parameters, losses = ARTICLE[name]
    assert (experiment.model.__name__, experiment.epochs, experiment.batch_size) == (cls, epochs, batch)
    assert experiment.parameters == parameters
    assert experiment.article_losses == losses


@pytest.mark.parametrize("name", PART_2)
def test_each_part_two_experiment_states_the_article(name):
    experiment = EXPERIMENTS[name]
    cls, epochs, batch, parameters, settings = PART_2[name]
    assert (experiment.model.__name__, experiment.epochs, experiment.batch_size) == (cls, epochs, batch)
    assert experiment.parameters == parameters and experiment.keras
    model = experiment.model()
    assert {key: model.hparams[key] for key in settings} == settings
    assert sum(p.numel() for p in model.parameters()) == parameters[2]


def test_the_parts_register_in_the_series_order():
    names = list(EXPERIMENTS)
    assert names[len(ARTICLE) : len(ARTICLE) + len(PART_2)] == list(PART_2)
    assert names.index("cvae") > names.index("vae") > names.index("deep_sparse_l1")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_is_consistent(name):
    experiment = EXPERIMENTS[name]
    figures = experiment.model.figures
    assert set(figures) <= set(FIGURES)
    if issubclass(experiment.model, torchae.AutoencoderModule):  # an autoencoder shows what it reconstructs
        assert {"reconstructions", "dots_manifold", "two_curves"} & set(figures)
    elif experiment.keras:  # a GAN shows the digits it generates
        assert {"manifold", "label_manifolds"} & set(figures)
    assert experiment.retrains is None or experiment.retrains in EXPERIMENTS
    assert getattr(torchae, experiment.model.__name__) is experiment.model  # importable as the configs name it


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_has_one_config_that_follows_it(name):
    experiment = EXPERIMENTS[name]
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert config["model"]["class_path"] == f"torchae.{experiment.model.__name__}"
    assert config["trainer"]["max_epochs"] == experiment.epochs
    assert data_settings(config)["batch_size"] == experiment.batch_size
    init_args = config["model"].get("init_args", {})
    assert init_args.get("iterations") == experiment.iterations  # the GANs' article length, in outer iterations
    model = experiment.model()
    saved = {key: list(value) if isinstance(value, tuple) else value for key, value in model.hparams.items()}
    assert {key: saved[key] for key in init_args} == init_args  # the config restates the model's defaults
    assert config["trainer"]["default_root_dir"] == f"runs/{name}"


def test_every_config_belongs_to_an_experiment():
    assert sorted(path.stem for path in CONFIGS.glob("*.yaml")) == sorted(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_a_model_finds_its_experiment(name):
    experiment = EXPERIMENTS[name]
    assert experiment_of(experiment.model()) is experiment
    assert experiment_of(torchae.AutoencoderModule(torchae.DenseAutoencoder())) is None


def test_a_new_experiment_registers_with_one_decorator(monkeypatch):
    """What a new article's module does: decorate its model; the registry holds it, and a second class cannot
    take the same name."""
    monkeypatch.setattr(torchae.registry, "EXPERIMENTS", dict(EXPERIMENTS))

    @register_experiment("tiny", epochs=3, batch_size=8, parameters=(1, 2, 3), keras=False)
    class TinyAE(torchae.DenseAE):
        pass

    registry = torchae.registry.EXPERIMENTS
    assert registry["tiny"] == Experiment("tiny", TinyAE, 3, 8, (1, 2, 3))
    assert experiment_of(TinyAE()) is registry["tiny"]
    with pytest.raises(ValueError, match="'tiny' is already registered by .*TinyAE"):

        @register_experiment("tiny", epochs=3, batch_size=8, parameters=(1, 2, 3))
        class OtherAE(torchae.DenseAE):
            pass


def test_import_torchae_loads_the_core_only():
    """``import torchae`` loads neither the fast lane nor the CLI, the parts register their figures without drawing
    anything, and no torchae module imports matplotlib (Lightning's torchmetrics may, where it is installed: that is
    Lightning's import, not ours)."""
    code = "import sys, torchae\nprint(sorted(m for m in sys.modules if m.startswith('torchae')))\n"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 (our own print of a list of names)
    assert "torchae.engine" not in loaded and "torchae.cli" not in loaded
    assert {"torchae.part1.models", "torchae.part4.figures", "torchae.weights"} <= set(loaded)
    rows = [line.split("|")[-1] for line in done.stderr.splitlines() if line.startswith("import time:")][1:]
    for index, row in enumerate(rows):
        if row.strip() == "matplotlib":  # who imported it: the first later row with less indentation
            depth = len(row) - len(row.lstrip())
            importer = next(later for later in rows[index + 1 :] if len(later) - len(later.lstrip()) < depth)
            assert not importer.strip().startswith("torchae"), importer


def test_the_core_never_imports_the_fast_lane():
    """Layers point one way: only the CLI, at the top, imports ``torchae.engine``; the engine may import the core."""
    import ast

    offenders = []
    for path in sorted((ROOT / "torchae").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(("torchae/engine/", "torchae/cli/")) or relative == "torchae/__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{relative}: {name}" for name in names if name.startswith("torchae.engine")]
    assert offenders == []


def test_shared_modules_never_ask_a_models_kind():
    """A model declares what it takes and draws (``inputs_for``, ``export_parts``, ``figures``); only the bases that
    declare ``conditional`` read it, never a shared module (figures, export, predictions, data, the CLI)."""
    import ast

    offenders = []
    for path in sorted((ROOT / "torchae").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("torchae/part") or relative in ("torchae/series.py", "torchae/autoencoder.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            named = isinstance(node, ast.Attribute) and node.attr == "conditional"
            named |= isinstance(node, ast.Constant) and node.value == "conditional"
            if named:
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


def test_every_figure_a_model_draws_is_registered_by_a_part():
    """Each figure and animation that an experiment's model names is registered, by the figures module of a part."""
    from torchae.figures import ANIMATIONS, FIGURES

    for name, experiment in EXPERIMENTS.items():
        for figure in experiment.model.figures:
            assert figure in FIGURES, (name, figure)
            assert FIGURES[figure].__module__.startswith("torchae.part"), (figure, FIGURES[figure].__module__)
        assert all(animation in ANIMATIONS for animation in experiment.model.animations), name
