"""The ``torchae`` command end to end: fit on a tiny budget, figures, help, resume, and user errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CONFIGS, EAGER, QUIET, ROOT

import torchae
import torchae.engine
from torchae.cli import main
from torchae.registry import EXPERIMENTS

TINY = [
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "3",
    "--trainer.limit_val_batches",
    "2",
    *QUIET,
    *EAGER,
]


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchae", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


@pytest.mark.slow
def test_fit_end_to_end_writes_checkpoints_logs_and_figures(tmp_path):
    result = run_cli(
        "fit",
        "--config",
        str(CONFIGS / "denoising.yaml"),
        *TINY,
        "--trainer.default_root_dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "version_0"
    drawn = {"reconstructions.png", "denoising.png", "codes_2d.png", "interpolation.png", "loss_curves.png"}
    for name in drawn:
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "val_loss" in (run / "metrics.csv").read_text()
    assert list(run.glob("events.out.tfevents.*"))  # TensorBoard too (the dev extra installs it)
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and "train_loss" in history[0] and len(history) == 2
    header, row = (line.split(",") for line in history)
    assert float(row[header.index("epoch_seconds")]) > 0  # the README promises each epoch's time
    # and the figures can be drawn again from the checkpoint alone
    main(["figures", str(run / "checkpoints" / "last.ckpt"), "--out_dir", str(tmp_path / "fig")])
    assert {p.name for p in (tmp_path / "fig").iterdir()} == drawn


def test_fit_in_process_for_sparse_draws_the_code_experiment(tmp_path):
    main(["fit", "--config", str(CONFIGS / "sparse.yaml"), *TINY, "--trainer.default_root_dir", str(tmp_path)])
    run = tmp_path / "version_0"
    assert {"reconstructions.png", "sparse_code_dimensions.png", "loss_curves.png"} <= {p.name for p in run.iterdir()}
    model = torchae.load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert isinstance(model, torchae.SparseAE)


def test_overrides_reach_the_model(tmp_path):
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "dense.yaml"),
            *TINY,
            "--trainer.default_root_dir",
            str(tmp_path),
            "--model.code_dim",
            "32",
            "--model.learning_rate",
            "0.002",
            "--figures.enabled",
            "false",
        ]
    )
    model = torchae.load_checkpoint(tmp_path / "version_0" / "checkpoints" / "last.ckpt")
    assert model.code_shape == (32,) and model.hparams.learning_rate == 0.002
    assert not (tmp_path / "version_0" / "reconstructions.png").exists()


def test_help_lists_the_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("DenseAE", "DeepDenseAE", "ConvAE", "DenoisingAE", "SparseAE"):
        assert name in out


@pytest.mark.slow
def test_python_dash_m_and_user_errors_exit_without_traceback(tmp_path):
    args = [
        "fit",
        "--config",
        str(CONFIGS / "dense.yaml"),
        "--data.data_dir",
        str(tmp_path / "nowhere"),
        *TINY,
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "does not exist: give a folder with the MNIST IDX files" in result.stderr
    # TORCHAE_DEBUG's traceback: tests/test_trust.py::test_debug_variable_turns_tracebacks_on_and_off, in process


def test_the_progress_bar_counts_image_batches_as_keras_does(tmp_path, capsys):
    """1,024 images at batch 256 are 4 batches, run as one Lightning step of steps_per_execution 32: the bar
    says 4/4 (Keras's count), not 1/1."""
    args = ["fit", "--config", str(CONFIGS / "dense.yaml"), "--trainer.max_epochs", "1"]
    args += ["--data.train_size", "1024", "--data.val_size", "512", "--figures.enabled", "false"]
    main([*args, "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path)])
    captured = capsys.readouterr()
    shown = captured.out + captured.err  # Lightning's bars write to stdout
    assert "4/4" in shown and "2/2" in shown, shown[-2000:]  # training, and validation: 512 images, 2 batches
    assert " 1/1 " not in shown


OUTSIDE_MODEL = '''
import torchae


class MyAE(torchae.AutoencoderModule):
    """A model of the user's own package: registered nowhere."""

    figures = ("reconstructions", "interpolation")

    def __init__(self, code_dim: int = 8, learning_rate: float = 1e-3) -> None:
        super().__init__(torchae.DenseAutoencoder(code_dim), learning_rate=learning_rate)
'''


def test_a_model_from_outside_the_package_trains_draws_predicts_and_exports(tmp_path, monkeypatch, capsys):
    """``torchae fit --model mypkg.MyAE``: the model trains with the engine, draws the figures its class names,
    predicts, and exports; its checkpoint's class is taken from the command line, never from the file."""
    (tmp_path / "mypkg.py").write_text(OUTSIDE_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    small = ["--data.train_size", "256", "--data.val_size", "128", "--data.steps_per_execution", "4"]
    quiet = QUIET
    main(["fit", "--model", "mypkg.MyAE", "--model.code_dim", "4", "--trainer.max_epochs", "1", *small, *quiet])
    run = tmp_path / "runs" / "version_0"
    assert {"reconstructions.png", "interpolation.png", "loss_curves.png"} <= {p.name for p in run.iterdir()}
    assert not (run / "codes_2d.png").exists()
    checkpoint = str(run / "checkpoints" / "last.ckpt")
    main(["predict", "--model", "mypkg.MyAE", "--ckpt_path", checkpoint, *small, *quiet])
    (predictions,) = (tmp_path / "runs" / "version_0" / "predict").glob("*/predictions.npz")  # into the run
    with np.load(predictions) as arrays:
        assert arrays["codes"].shape == (128, 4) and arrays["reconstructions"].shape == (128, 1, 28, 28)
    main(["export", checkpoint, "--model", "mypkg.MyAE", "--format", "pt2", "--output", str(tmp_path / "my.pt2")])
    assert (tmp_path / "my.pt2").is_file()
    main(["figures", checkpoint, "--model", "mypkg.MyAE", "--out_dir", str(tmp_path / "again")])
    assert {p.name for p in (tmp_path / "again").iterdir()} == {
        "reconstructions.png",
        "interpolation.png",
        "loss_curves.png",
    }
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["export", checkpoint, "--output", str(tmp_path / "x.onnx")])
    assert refused.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"torchae: error: checkpoint {checkpoint!r} holds a MyAE, which is not one of torchae's models "
        f"({', '.join(e.model.__name__ for e in EXPERIMENTS.values())}): name its class with --model mypkg.MyAE "
        "(as the run's config.yaml records it)"
    ]
    with pytest.raises(SystemExit):
        main(["export", checkpoint, "--model", "torchae.DenseAE", "--output", str(tmp_path / "x.onnx")])
    assert "holds a MyAE, not a DenseAE" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_a_short_fit_and_predict_print_none_of_the_known_noise_and_keep_tensorflow_out(tmp_path, capfd):
    """Lightning's logger tip, the pytree deprecation, inductor's CUDA_HOME line (the dense config compiles its
    steps), the dirpath warning and the batch-indices warning of predict: none of them reaches the console.
    TensorBoard imports TensorFlow when it is installed (the [parity] extra), which cost 6 s per `torchae fit`: the
    CLI makes it write with its own stub, and the event file is still written. The fit runs in a process of its own
    (TensorFlow is already loaded in this one); predict in this process, its warnings recorded as well as printed."""
    import warnings

    from torchae.console import KNOWN_NOISE

    small = ["--data.train_size", "512", "--data.val_size", "256", "--trainer.default_root_dir", str(tmp_path)]
    script = "import sys; from torchae.cli import main; main(sys.argv[1:]); print('tensorflow' in sys.modules)"
    fit_args = ["fit", "--config", str(CONFIGS / "dense.yaml"), "--trainer.max_epochs", "1", *small]
    fit = subprocess.run(
        [sys.executable, "-c", script, *fit_args], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert fit.stdout.strip().splitlines()[-1] == "False"  # TensorFlow never imported (the [parity] extra has it)
    assert list((tmp_path / "version_0").glob("events.out.tfevents.*"))
    assert "log_every_n_steps" not in fit.stderr  # no warning about the logging interval
    checkpoint = str(tmp_path / "version_0" / "checkpoints" / "last.ckpt")
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # what the CLI does not silence is recorded here
        main(["predict", "--config", str(CONFIGS / "dense.yaml"), "--ckpt_path", checkpoint, *small])
    predict = capfd.readouterr()
    for printed in (fit.stdout + fit.stderr, predict.out + predict.err + "\n".join(str(w.message) for w in caught)):
        assert [pattern.pattern for pattern in KNOWN_NOISE if pattern.search(printed)] == []
    # the compiler's wait is said, once; the predictions' line is a line of its own, not glued to the bar
    assert fit.stderr.count("torchae: engine.compiled_steps compiles the training step in the first batches") == 1
    assert any(line.startswith("predictions: ") for line in predict.out.splitlines()), predict.out[-500:]


def test_a_pretrained_evaluation_prints_no_warning_about_its_completed_command_line(tmp_path, capsys, monkeypatch):
    """``--pretrained NAME`` completes the command line with the model's settings; LightningCLI's warning about
    getting both (that of a mistake) is not shown."""
    import warnings

    monkeypatch.chdir(tmp_path)
    command = ["validate", "--pretrained", "dense", "--trainer.limit_val_batches", "1", *QUIET]
    monkeypatch.setattr(sys, "argv", ["torchae", *command])
    with warnings.catch_warnings(record=True) as caught:
        main(command)
    assert [str(w.message) for w in caught if "args parameter" in str(w.message)] == []


def test_torchae_help_names_every_subcommand(capsys):
    from torchae.cli import SUBCOMMANDS

    main(["--help"])
    shown = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "figures", "export"):
        assert f"\n  {name} " in shown and name in SUBCOMMANDS
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "choose a subcommand: fit, validate" in capsys.readouterr().err


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict", "figures", "export"])
def test_every_subcommand_has_complete_help_and_one_line_parse_errors(subcommand, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    assert "--pretrained" in shown or subcommand == "fit"
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--no_such_setting", "3"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchae: error: ") and "--no_such_setting" in lines[0]
    assert f"torchae {subcommand} --help" in lines[0]


def test_evaluating_a_run_writes_into_that_run(tmp_path, capsys):
    """validate and test with a run's checkpoint write their config and metrics into ``version_N/SUBCOMMAND/TIME``;
    fit and its resume keep numbering versions."""
    args = ["--config", str(CONFIGS / "dense.yaml"), "--data.train_size", "512", "--data.val_size", "256"]
    args += ["--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"]
    args += ["--trainer.enable_model_summary", "false", "--figures.enabled", "false"]
    main(["fit", *args, "--trainer.max_epochs", "1", "--engine.compiled_steps", "false"])
    checkpoint = str(tmp_path / "version_0" / "checkpoints" / "last.ckpt")
    for subcommand in ("validate", "test", "validate"):
        main([subcommand, *args, "--ckpt_path", checkpoint])
    assert sorted(path.name for path in tmp_path.glob("version_*")) == ["version_0"]
    runs = sorted((tmp_path / "version_0" / "validate").iterdir()) + list((tmp_path / "version_0" / "test").iterdir())
    assert len(runs) == 3 and all((run / "metrics.csv").is_file() and (run / "config.yaml").is_file() for run in runs)
    main(["fit", *args, "--trainer.max_epochs", "2", "--engine.compiled_steps", "false", "--ckpt_path", "last"])
    assert sorted(path.name for path in tmp_path.glob("version_*")) == ["version_0", "version_1"]


def test_any_lightning_module_trains_through_the_cli_as_written(tmp_path, monkeypatch):
    """A plain LightningModule GAN (two optimizers, manual optimization, no torchae base) fits as LightningCLI fits
    it: its own step runs, the run gets torchae's folder, checkpoints, history and loss curves, and the engine says in
    one line that it left the step as written; it resumes from its own checkpoint."""
    said: list[str] = []
    monkeypatch.setattr(torchae.engine, "rank_zero_info", said.append)
    quiet = QUIET
    small = ["--data.train_size", "256", "--data.val_size", "128", "--trainer.default_root_dir", str(tmp_path)]
    main(["fit", "--model", "helpers.TinyGAN", "--trainer.max_epochs", "1", *small, *quiet])
    run = tmp_path / "version_0"
    assert {"loss_curves.png", "history.csv", "config.yaml"} <= {p.name for p in run.iterdir()}
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 * 1 and len(checkpoint["optimizer_states"]) == 2  # one batch, two steps
    assert said == [
        "torchae: TinyGAN is not a torchae AutoencoderModule: its steps are its own, so it runs as written, without "
        "engine.direct_steps (the engine speeds up only the base's own step)"
    ]
    main(["fit", "--model", "helpers.TinyGAN", "--trainer.max_epochs", "2", "--ckpt_path", "last", *small, *quiet])
    resumed = torch.load(tmp_path / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 4


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "nopkg.MyGAN",
            "--model nopkg.MyGAN: cannot import 'nopkg' (No module named 'nopkg'): check the spelling, or "
            "add the folder that holds it to PYTHONPATH (PYTHONPATH=. torchae fit --model nopkg.MyGAN ...)",
        ),
        ("helpers.NoSuchGAN", "--model helpers.NoSuchGAN: module 'helpers' has no 'NoSuchGAN'"),
        (
            "helpers.KillAt",
            "--model helpers.KillAt is a KillAt, not a LightningModule: --model takes a subclass of "
            "pytorch_lightning.LightningModule",
        ),
        ("DenseAEE", "unknown model 'DenseAEE': give one of DenseAE,"),
        ("brokenmodel.MyGAN", "--model brokenmodel.MyGAN: importing 'brokenmodel' failed: '(' was never closed at "),
    ],
)
def test_a_model_the_cli_cannot_take_is_refused_with_its_real_cause(model, expected, tmp_path, monkeypatch, capsys):
    (tmp_path / "brokenmodel.py").write_text("x = (\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as refused:
        main(["fit", "--model", model, "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert refused.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"torchae: error: {expected}"), lines
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


PLUGIN = """
import torchae


@torchae.register_experiment("tiny_plugin", epochs=2, batch_size=128, parameters=(0, 0, 0))
class PluginAE(torchae.DenseAE):
    pass
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A plugin module that registers experiment ``tiny_plugin``, importable from ``tmp_path``; unregistered after."""
    (tmp_path / "myplugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield "myplugin.PluginAE"
    EXPERIMENTS.pop("tiny_plugin", None)
    sys.modules.pop("myplugin", None)


def test_a_plugins_registered_recipe_applies_and_its_runs_take_its_name(plugin, tmp_path):
    """``torchae fit --model`` of a registered plugin: the experiment's epochs and batch size, runs under
    ``runs/NAME``; settings given on the command line still win."""
    quiet = QUIET
    small = ["--data.train_size", "512", "--data.val_size", "128", "--figures.enabled", "false", *quiet]
    main(["fit", "--model", plugin, *small])
    run = tmp_path / "runs" / "tiny_plugin" / "version_0"
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2  # the registered 2 epochs
    config = (run / "config.yaml").read_text()
    assert "batch_size: 128" in config and "max_epochs: 2" in config
    main(["fit", "--model", plugin, "--trainer.max_epochs", "1", "--data.batch_size", "64", *small])
    config = (tmp_path / "runs" / "tiny_plugin" / "version_1" / "config.yaml").read_text()
    assert "batch_size: 64" in config and "max_epochs: 1" in config


def test_the_configs_ship_inside_the_package_and_an_installed_wheel_finds_them(tmp_path):
    """The experiments' configs are package data: a wheel built from this checkout holds them, and its torchae, run
    from outside the checkout, finds every experiment's config. ``configs/`` in the checkout is the same folder."""
    import zipfile

    from torchae.cli.configs import CONFIGS

    assert (ROOT / "configs").resolve() == CONFIGS.resolve()
    source = tmp_path / "source"  # a copy, so that the build writes nothing into the checkout
    # without the 19 MB of weights and MNIST, which the configs do not need and the wheel would compress
    shutil.copytree(ROOT / "torchae", source / "torchae", ignore=shutil.ignore_patterns("__pycache__", "*.pt", "*.gz"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w"]
    subprocess.run([*build, str(tmp_path / "wheel")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "wheel").glob("torchae-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    script = (
        "import torchae; from torchae.cli.configs import config_of; from torchae.registry import EXPERIMENTS;"
        "print(torchae.__file__); print(sorted(n for n in EXPERIMENTS if config_of(n)['model']['class_path']))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    where, found = done.stdout.strip().splitlines()[-2:]
    assert where.startswith(str(tmp_path / "site")) and found == str(sorted(EXPERIMENTS))


def test_help_opens_with_the_chosen_models_settings(capsys):
    """LightningCLI's help lists some 800 lines; the chosen model's settings come first, with their defaults and
    descriptions."""
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "vae.yaml"), "--help"])
    shown = capsys.readouterr().out
    first = shown.split("usage:", 1)[0]
    assert first.startswith("VAE's settings")
    assert "--model.latent_dim int (default: 2): size of the latent space." in first
    assert "--model.dropout float (default: 0.3)" in first and "--trainer.max_epochs" not in first
    with pytest.raises(SystemExit):
        main(["fit", "--model", "DenseAE", "--help"])
    assert capsys.readouterr().out.startswith("DenseAE's settings")
