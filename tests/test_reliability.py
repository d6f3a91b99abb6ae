"""Reliability: every bad input gets one clear line and a non-zero exit; a killed run resumes to the same result;
a NaN loss stops training and keeps the last good checkpoint; nothing unpickles a user's file; seeds reproduce."""

from __future__ import annotations

import contextlib
import csv
import gzip
import inspect
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers import CONFIGS, EAGER, ROOT, one_line_error, quick_data, run_main

import torchae
from torchae.cli import find_last_checkpoint, main
from torchae.data import MNIST_FILES, MNISTDataModule, embedded_mnist_dir
from torchae.engine import Engine
from torchae.part2.dots import DotsDataModule, TwoCurvesDataModule
from torchae.registry import EXPERIMENTS
from torchae.safety import AtomicCheckpointIO, write_text_atomically

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit_args(tmp_path: Path, *extra: str, config: str = "dense", epochs: int = 1) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIGS / f"{config}.yaml"),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.max_epochs",
        str(epochs),
        *QUIET,
        *quick_data(config, 1024, 256),
        "--data.steps_per_execution",
        "1",
        *extra,
    ]


# ---------------------------------------------------------------------------------------------- bad input, CLI
@pytest.fixture
def idx_copy(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in MNIST_FILES:
        shutil.copy(embedded_mnist_dir() / f"{name}.gz", folder / f"{name}.gz")
    return folder


def test_missing_data_folder(tmp_path, capsys):
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(tmp_path / "nowhere")), capsys)
    one_line_error(code, err, "does not exist", "leave data_dir unset for the embedded copy")


def test_folder_with_some_idx_files_missing(tmp_path, idx_copy, capsys):
    (idx_copy / "train-images-idx3-ubyte.gz").unlink()
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(idx_copy)), capsys)
    one_line_error(code, err, "lacks train-images-idx3-ubyte", "put all four MNIST IDX files there")


def test_truncated_gzip(tmp_path, idx_copy, capsys):
    path = idx_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(idx_copy)), capsys)
    one_line_error(code, err, "not a complete gzip file", "copy it again")


def test_wrong_checksum(tmp_path, idx_copy, capsys):
    path = idx_copy / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[-1] = (data[-1] + 1) % 10
    path.write_bytes(gzip.compress(bytes(data)))
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(idx_copy)), capsys)
    one_line_error(code, err, "does not match MNIST's sha256 checksum", "verify_checksums=False")


def test_wrong_magic_number(tmp_path, idx_copy, capsys):
    shutil.copy(idx_copy / "train-labels-idx1-ubyte.gz", idx_copy / "train-images-idx3-ubyte.gz")
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(idx_copy)), capsys)
    one_line_error(code, err, "magic number 2049, expected 2051")


def test_npz_without_expected_arrays(tmp_path, capsys):
    np.savez(tmp_path / "mnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(tmp_path / "mnist.npz")), capsys)
    one_line_error(code, err, "lacks the arrays x_train, y_train, x_test, y_test")


def test_images_of_the_wrong_size(tmp_path, capsys):
    images = np.zeros((8, 32, 32), np.uint8)
    np.savez(tmp_path / "big.npz", x_train=images, y_train=np.zeros(8), x_test=images, y_test=np.zeros(8))
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(tmp_path / "big.npz")), capsys)
    one_line_error(code, err, "expected (N, 28, 28)", "28x28")


def test_unknown_model_name(tmp_path, capsys):
    code, err = run_main(fit_args(tmp_path, "--model", "DenseAEE"), capsys)
    one_line_error(code, err, "unknown model 'DenseAEE'", "DenseAE, DeepDenseAE")


def test_misspelt_config_key(tmp_path, capsys):
    code, err = run_main(fit_args(tmp_path, "--data.batch_sise", "3"), capsys)
    one_line_error(
        code, err, "data.batch_sise is not a setting of torchae.MNISTDataModule", "check its spelling", "--data.help"
    )


def test_misspelt_key_in_a_config_file(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  class_path: torchae.DenseAE\n  init_args:\n    code_dimm: 3\n")
    code, err = run_main(["fit", "--config", str(config)], capsys)
    one_line_error(code, err, "code_dimm")


@pytest.mark.parametrize("value", ["0", "-16"])
def test_non_positive_batch_size(tmp_path, capsys, value):
    code, err = run_main(fit_args(tmp_path, "--data.batch_size", value), capsys)
    one_line_error(code, err, f"batch_size must be a positive integer, got {value}", "--data.batch_size")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_epoch_count(tmp_path, capsys, value):
    args = fit_args(tmp_path)
    args[args.index("--trainer.max_epochs") + 1] = value
    code, err = run_main(args, capsys)
    one_line_error(code, err, f"max_epochs must be a positive integer, got {value}")


def test_missing_checkpoint(tmp_path, capsys):
    code, err = run_main(fit_args(tmp_path, "--ckpt_path", str(tmp_path / "gone.ckpt")), capsys)
    one_line_error(code, err, "does not exist")


@pytest.fixture(scope="module")
def dense_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dense_run")
    main(fit_args(root, "--figures.enabled", "false"))
    return root / "version_0" / "checkpoints" / "last.ckpt"


def test_truncated_checkpoint(tmp_path, dense_checkpoint, capsys):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(dense_checkpoint.read_bytes()[:5000])
    code, err = run_main(fit_args(tmp_path, "--ckpt_path", str(broken)), capsys)
    one_line_error(code, err, "cannot be read", "truncated")
    with pytest.raises(torchae.CheckpointError, match="truncated"):
        torchae.load_checkpoint(broken)


def test_checkpoint_from_another_model_class(tmp_path, dense_checkpoint, capsys):
    code, err = run_main(fit_args(tmp_path, "--ckpt_path", str(dense_checkpoint), config="sparse"), capsys)
    one_line_error(code, err, "holds a DenseAE, but the model is a SparseAE", "--model DenseAE")
    with pytest.raises(torchae.CheckpointError, match="holds a DenseAE, not a SparseAE"):
        torchae.SparseAE.load_from_checkpoint(dense_checkpoint, weights_only=True)


# ---------------------------------------------------------------------------------------------- every setting
# Values out of range, for the settings that have a range; every setting also gets a value of the wrong type, and
# a path setting one that does not exist. The arguments themselves are read from the signatures, so a new one is
# covered without editing this test.
OUT_OF_RANGE = {
    "code_dim": "0",
    "learning_rate": "-1",
    "epsilon": "0",
    "l1": "-1e-5",
    "noise_std": "-0.5",
    "noise_mean": "inf",
    "batch_size": "0",
    "val_batch_size": "-2",
    "train_size": "0",
    "val_size": "-1",
    "steps_per_execution": "0",
    "cpu_micro_batch_size": "0",
    "graph_warmup_steps": "-3",
    "latent_dim": "0",
    "dropout": "1.5",
    "hidden": "[0]",
    "points": "0",
    "noise": "-1",
    "subset": "5000",
    "repeats": "0",
}


def _bad_values(name: str, annotation: object) -> list[str]:
    if "str" in str(annotation) and "Literal" not in str(annotation):
        return [f"/nowhere/{name}"]
    return ["not-a-value", *([OUT_OF_RANGE[name]] if name in OUT_OF_RANGE else [])]


def _bad_settings() -> list[tuple[str, str, str]]:
    """(config, setting, bad value) for each __init__ argument of every model, its datamodule and the engine. A value
    out of range is tried on every class that takes the argument (each class checks its own); a value of the wrong
    type once per section and type (the parser's check, the same for every setting of that type in every class)."""
    owners = [(name, "model", experiment.model) for name, experiment in EXPERIMENTS.items()]
    owners += [("dense", "data", MNISTDataModule), ("dots_overfit", "data", DotsDataModule), ("conv", "engine", Engine)]
    owners += [("dots_conditional", "data", TwoCurvesDataModule)]
    cases, typed, seen = [], set(), set()
    for config, section, cls in owners:
        if cls.__init__ in seen:  # inherited (the CGAN's is the GAN's): the same checks, tried once
            continue
        seen.add(cls.__init__)
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name == "self":
                continue
            for bad in _bad_values(name, parameter.annotation):
                if bad != OUT_OF_RANGE.get(name) and (section, bad, str(parameter.annotation)) in typed:
                    continue
                typed.add((section, bad, str(parameter.annotation)))
                cases.append((config, f"{section}.{name}", bad))
    return cases


@pytest.mark.parametrize(("config", "setting", "value"), _bad_settings())
def test_every_bad_setting_is_one_line_naming_it_its_value_and_the_fix(tmp_path, capsys, config, setting, value):
    code, err = run_main(fit_args(tmp_path, f"--{setting}={value}", config=config), capsys)
    one_line_error(code, err, setting.rsplit(".", 1)[-1])
    line = next(line for line in err.splitlines() if line.startswith("torchae: error:"))
    shown = {value, repr(value), str(float(value)) if value.lstrip("-").replace(".", "").isdigit() else value}
    assert any(text in line for text in shown) or "e-05" in line, line  # the value as given, or as parsed
    assert re.search(r": .*\b(set|give|leave|use|check|choose|put|pass)\b", line), line  # and what to do


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["--trainer.accelerator", "gpu"], ["trainer.accelerator='gpu'", "--trainer.accelerator cpu"]),
        (["--trainer.accelerator", "gpu", "--trainer.devices", "4"], ["trainer.devices='4'", "--trainer.devices"]),
        (["--trainer.strategy", "dpp"], ["trainer.strategy='dpp'", "--trainer.strategy auto or ddp"]),
        (["--trainer.precision", "33"], ["trainer.precision = '33'", "32-true"]),
        (["--trainer.devices", "0"], ["trainer.devices='0'", "--trainer.devices"]),
    ],
)
def test_common_trainer_mistakes_are_one_line(tmp_path, capsys, arguments, fragments):
    code, err = run_main(fit_args(tmp_path, *arguments), capsys)
    one_line_error(code, err, *fragments)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "is empty"),
        ("model: [unclosed\n", "is not valid YAML"),
        ("- dense\n- deep\n", "holds a list"),
        # a billion laughs: nine levels of ten aliases each
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(9)
            ),
            "uses a YAML alias (*a)",
        ),
        ("trainer: " + "[" * 100_000 + "]" * 100_000 + "\n", "nests deeper than 32 levels"),
        ("trainer: [" + "1, " * 600_000 + "1]\n", "bytes, more than the 1,048,576 a config may hold"),
    ],
)
def test_a_bad_config_file_says_what_a_config_looks_like(tmp_path, capsys, content, fragment):
    path = tmp_path / "config.yaml"
    path.write_text(content)
    code, err = run_main(["fit", "--config", str(path)], capsys)
    one_line_error(code, err, fragment, "a YAML mapping of sections", "configs/dense.yaml", "--print_config")


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_config_checkpoint_or_data_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path, capsys, kind):
    """A FIFO would hang a reader, and /dev/zero (here behind a link named .npz) never ends: refused before a
    byte is read, as what they are, not as missing."""
    special = tmp_path / f"special.{kind}"
    if kind == "fifo":
        os.mkfifo(special)
    elif kind == "device":
        special.symlink_to("/dev/zero")
    else:
        special.mkdir()
    what = {"fifo": "a FIFO", "device": "a device", "folder": "a folder"}[kind]
    named = tmp_path / "data.npz"
    named.symlink_to(special)
    cases = [
        (["fit", "--config", str(special)], f"config file {str(special)!r} is {what}, not a file"),
        (fit_args(tmp_path, "--ckpt_path", str(special)), f"checkpoint {str(special)!r} is {what}"),
        (fit_args(tmp_path, "--data.data_dir", str(named)), f"data_dir {str(named)!r} is {what}"),
    ]
    for args, fragment in cases[: 3 if kind != "folder" else 1]:
        started = time.monotonic()
        one_line_error(*run_main(args, capsys), fragment)
        assert time.monotonic() - started < 30


# ---------------------------------------------------------------------------------------------- bad input, Python
@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (torch.rand(2, 1, 28), "rank 3"),
        (torch.rand(2, 3, 28, 28), "shape (2, 3, 28, 28)"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.int64), "dtype torch.int64"),
        (torch.tensor([float("nan")]).expand(2, 1, 28, 28), "NaN or infinite"),
        (torch.full((2, 1, 28, 28), -float("inf")), "NaN or infinite"),
    ],
)
def test_model_input_errors_name_the_expected_shape(x, fragment):
    with pytest.raises(torchae.InputError, match="expected a float tensor of shape \\(N, 1, 28, 28\\)") as info:
        torchae.ConvAE().encode(x)
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------------------------- faults
def read_history(run: Path) -> list[dict[str, str]]:
    """A run's ``history.csv`` without ``epoch_seconds`` (a time, which no two runs share)."""
    with (run / "history.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(f)]


def final_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["state_dict"]


def cli_env() -> dict[str, str]:
    """This environment, with the tests' helpers importable by the CLI's processes."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchae", *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=600
    )


def start_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """The CLI started in the background, in a process group of its own (so a test can stop every process of it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "torchae", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_last_checkpoint_is_the_newest_runs_whatever_the_file_times(tmp_path):
    """``--ckpt_path last`` resumes the run with the highest ``version_N``: a clone or copy of the runs folder
    (``long_runs/``) gives the files new times in any order."""
    for version, mtime in ((2, 3_000), (9, 1_000), (10, 2_000)):
        checkpoint = tmp_path / f"version_{version}" / "checkpoints" / "last.ckpt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"")
        os.utime(checkpoint, (mtime, mtime))
    assert find_last_checkpoint(tmp_path) == tmp_path / "version_10" / "checkpoints" / "last.ckpt"
    assert find_last_checkpoint(tmp_path / "version_2") == tmp_path / "version_2" / "checkpoints" / "last.ckpt"
    assert find_last_checkpoint(tmp_path / "nothing here") is None


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights_and_metrics(tmp_path, capsys):
    """The denoising config (the dense model's path, plus noise drawn in every step), with its own
    steps_per_execution (128: the kill lands in the second group of an epoch) and a seed other than the default: the
    seed travels in the checkpoint, the resumed run ends bitwise where an uninterrupted one does, and the killed
    run's folder is left as it was."""
    config = "denoising"
    extra = [
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--data.train_size",
        "4096",
        "--data.val_size",
        "256",
        "--data.batch_size",
        "16",
        "--seed_everything",
        "7",
        "--figures.enabled",
        "false",
        *EAGER,  # a compiled run's resume: tests/test_engine.py::test_a_compiled_run_resumes_where_it_stopped
    ]
    base = ["fit", "--config", str(CONFIGS / f"{config}.yaml"), "--trainer.max_epochs", "3", *extra]
    main([*base, "--trainer.default_root_dir", str(tmp_path / "whole")])  # in this process: only the kill needs one
    crash_root = tmp_path / "crash"
    kill = ["--trainer.callbacks+=helpers.KillAt", "--trainer.callbacks.epoch=1", "--trainer.callbacks.batch=1"]
    killed = cli([*base, "--trainer.default_root_dir", str(crash_root), *kill], tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    first = crash_root / "version_0"
    checkpoint = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)  # written at the end of epoch 0
    assert checkpoint["epoch"] == 0 and checkpoint["MNISTDataModule"] == {"seed": 7}
    assert checkpoint["torchae_draws"]["seed"] == 7
    before = snapshot(first)
    capsys.readouterr()
    main([*base, "--trainer.default_root_dir", str(crash_root), "--ckpt_path", "last"])
    resumed = capsys.readouterr().err
    assert f"resuming from {first / 'checkpoints' / 'last.ckpt'} into {crash_root / 'version_1'}" in resumed
    assert "The dirpath has changed" not in resumed  # Lightning's warning, said above in torchae's words
    assert snapshot(first) == before  # the killed run's folder: not a byte changed
    reference, after_crash = final_state(tmp_path / "whole" / "version_0"), final_state(crash_root / "version_1")
    assert reference.keys() == after_crash.keys()
    for key in reference:
        assert torch.equal(reference[key], after_crash[key]), key  # bitwise
    assert read_history(tmp_path / "whole" / "version_0") == read_history(crash_root / "version_1")
    assert len(read_history(crash_root / "version_1")) == 3


@pytest.mark.slow
def test_fit_under_ddp_through_the_cli_writes_everything_and_keeps_the_ranks_equal(tmp_path):
    """The dense config on two CPU processes (gloo), with no engine flags and every callback the CLI installs: what
    DDP cannot take (step groups, compiled steps) turns off with one line each, printed once. Each rank trains on
    its own shard of every epoch, reshuffled every epoch, and both log the same (reduced) val_loss."""
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    ddp += ["--data.steps_per_execution", "32"]  # the config's groups (fit_args turns them off for speed elsewhere)
    weights = tmp_path / "weights"
    save = ["--trainer.callbacks+=helpers.SaveWeights", f"--trainer.callbacks.folder={weights}"]
    record = ["--trainer.callbacks+=helpers.RecordSamples", f"--trainer.callbacks.folder={weights}"]
    first = cli(fit_args(tmp_path, *ddp, *save, *record, epochs=2), tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    ranks = [json.loads((weights / f"rank{r}-samples.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):
        seen = [rank["epochs"][epoch] for rank in ranks]
        assert len(seen[0]) == len(set(seen[0])) and len(seen[1]) == len(set(seen[1]))  # no sample twice
        assert not set(seen[0]) & set(seen[1])  # each rank its own shard
        assert sorted(seen[0] + seen[1]) == list(range(1024))  # together: the whole epoch
    assert ranks[0]["epochs"]["0"] != ranks[0]["epochs"]["1"]  # reshuffled every epoch
    assert ranks[0]["val_loss"] == ranks[1]["val_loss"]  # reduced over both ranks
    assert first.stderr.count("torchae: data.steps_per_execution 32 is off on 2 devices") == 1, first.stderr[-3000:]
    assert first.stderr.count("torchae: engine.compiled_steps is off for this run: a compiled step needs one") == 1
    run = tmp_path / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file() and len(read_history(run)) == 2
    assert (run / "reconstructions.png").is_file() and (run / "loss_curves.png").is_file()
    assert "epoch_seconds" not in first.stderr  # reduced across ranks: Lightning has nothing to warn about
    rank0, rank1 = (torch.load(weights / f"rank{r}-epoch2.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(rank0[key], rank1[key]) for key in rank0)  # the ranks end equal
    assert all(torch.equal(rank0[key], value) for key, value in final_state(run).items())  # and last.ckpt holds them


@pytest.mark.slow
def test_a_launch_on_two_devices_that_fails_before_training_says_so_once_and_leaves_no_run(tmp_path):
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    failed = cli(fit_args(tmp_path, *ddp, "--data.data_dir", str(tmp_path / "nowhere")), tmp_path)
    assert failed.returncode == 2
    errors = [line for line in failed.stderr.splitlines() if line.startswith("torchae: error:")]
    assert len(errors) == 1 and "does not exist" in errors[0], failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    assert not list(tmp_path.glob("version_*"))


def test_a_run_that_fails_before_its_first_step_leaves_no_folder_but_keeps_anything_else(tmp_path, capsys):
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(tmp_path / "nowhere")), capsys)
    assert code == 2 and not list(tmp_path.glob("version_*"))
    kept = tmp_path / "version_0"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    from types import SimpleNamespace

    from torchae.safety import RemoveFailedLaunch

    logger = SimpleNamespace(log_dir=str(kept))
    RemoveFailedLaunch().on_exception(SimpleNamespace(global_step=0, global_rank=0, loggers=[logger]), None, None)
    assert (kept / "notes.txt").read_text() == "mine"


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)

    def exploding_save(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left behind


def test_a_crash_while_writing_a_results_file_keeps_the_previous_one(tmp_path, monkeypatch):
    """Records and metadata (``weights.json``, seed-spread records) are written whole or not at all."""
    path = tmp_path / "record.json"
    write_text_atomically(path, '{"seeds": [0]}')
    real_write_text = Path.write_text

    def exploding_write_text(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", exploding_write_text)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomically(path, '{"seeds": [0, 1]}')
    monkeypatch.undo()
    assert path.read_text() == '{"seeds": [0]}'
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no partial file left behind


@pytest.mark.slow
def test_nan_loss_stops_training_keeps_the_last_good_checkpoint_and_exits_non_zero(tmp_path):
    args = fit_args(
        tmp_path,
        "--model",
        "helpers.NaNAfter",
        "--model.epoch",
        "1",
        "--model.step",
        "3",
        "--nan_guard.check_every_n_steps",
        "1",
        "--figures.enabled",
        "false",
        "--engine.compiled_steps",
        "false",  # NaNAfter overrides loss_terms, which a compiled step does not run
        epochs=3,
    )
    result = cli(args, tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("torchae: error:")]
    assert len(error) == 1 and "NaN or infinite at epoch 1, step 3" in error[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    checkpoint = torch.load(tmp_path / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


@pytest.mark.parametrize(("epoch", "kept"), [(1, "the last good checkpoint was kept"), (0, "no checkpoint had")])
def test_a_nan_validation_loss_stops_the_fit_and_says_what_was_kept(tmp_path, capsys, monkeypatch, epoch, kept):
    """The training loss stays finite; the validation loss turns NaN at ``epoch``. The fit stops before that
    epoch's checkpoint and figures, says truly whether a checkpoint was kept, and a run with none leaves no folder."""
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    args = fit_args(tmp_path, "--model", "helpers.NaNValidationFrom", f"--model.epoch={epoch}", *EAGER, epochs=3)
    code, err = run_main(args, capsys)
    assert code == 1 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("torchae: error:")]
    assert "validation loss became NaN or infinite" in line and kept in line, line
    if epoch == 0:
        assert "in the sanity check" in line and not list(tmp_path.glob("version_*"))
    else:
        state = torch.load(tmp_path / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
        assert state["epoch"] == 0 and str(tmp_path / "version_0" / "checkpoints" / "last.ckpt") in line
        assert not list((tmp_path / "version_0").glob("*.png"))  # no figures drawn from the broken model


# ---------------------------------------------------------------------------------------------- safety
class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_no_code_path_unpickles_a_user_file(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    with evil.open("wb") as f:
        pickle.dump({"state_dict": {}, "torchae_model": "DenseAE", "x": _Exploit(marker)}, f)
    with pytest.raises(torchae.CheckpointError):
        torchae.load_checkpoint(evil)
    code, err = run_main(fit_args(tmp_path, "--ckpt_path", str(evil)), capsys)
    assert code == 2
    code, err = run_main(["figures", str(evil)], capsys)
    assert code == 2
    npz = tmp_path / "evil.npz"
    np.savez(
        npz,
        x_train=np.array([_Exploit(marker)], dtype=object),
        y_train=np.zeros(1),
        x_test=np.zeros(1),
        y_test=np.zeros(1),
    )
    with pytest.raises(torchae.DataError):
        torchae.load_mnist(npz)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- seeds
def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        main(fit_args(tmp_path / name, "--seed_everything", str(seed), "--figures.enabled", "false", epochs=2))
    a, b, c = (read_history(tmp_path / name / "version_0") for name in "abc")
    assert a == b
    assert a != c


def test_a_nan_on_another_rank_stops_this_one_too():
    """Under DDP the ranks decide together (a rank that stopped alone would leave the others waiting)."""
    from types import SimpleNamespace

    from torchae.safety import StopOnNonFiniteLoss

    guard = StopOnNonFiniteLoss()
    guard._first_bad = torch.tensor(-1)  # this rank saw only finite losses
    other_rank_bad = SimpleNamespace(reduce_boolean_decision=lambda decision, all: True)
    trainer = SimpleNamespace(strategy=other_rank_bad, current_epoch=2, global_step=40, checkpoint_callbacks=[])
    with pytest.raises(torchae.errors.NonFiniteLossError, match="epoch 2, on another rank"):
        guard._raise_if_bad(trainer)
    trainer.strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all: decision)
    guard._raise_if_bad(trainer)  # no rank bad: goes on


@pytest.mark.slow
@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_a_checkpoint_naming_a_module_never_makes_torchae_import_it(tmp_path, subcommand, monkeypatch, capsys):
    """A checkpoint whose hyperparameters name ``_class_path: evilmod.Evil``, with evilmod.py in the working folder
    (on the import path of ``python -m torchae``): refused in one line before anything is imported."""
    (tmp_path / "evilmod.py").write_text(
        "import pathlib\npathlib.Path('imported').write_text('code ran')\nclass Evil: pass\n"
    )
    model = torchae.DenseAE()
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(model)
    crafted = tmp_path / "crafted.ckpt"
    trainer.save_checkpoint(crafted)
    checkpoint = torch.load(crafted, weights_only=True)
    checkpoint["hyper_parameters"] = {**checkpoint.get("hyper_parameters", {}), "_class_path": "evilmod.Evil"}
    torch.save(checkpoint, crafted)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # evilmod is importable, as from python -m torchae in this folder
    args = [subcommand, "--model", "DenseAE", "--ckpt_path", str(crafted), "--trainer.default_root_dir", "runs"]
    code, err = run_main([*args, "--trainer.max_epochs", "1"] if subcommand == "fit" else args, capsys)
    one_line_error(code, err, "names the class 'evilmod.Evil' in its hyperparameters")
    assert not (tmp_path / "imported").exists() and "evilmod" not in sys.modules


@pytest.mark.slow
def test_sigterm_stops_a_fit_with_143_one_line_an_up_to_date_history_and_a_run_that_resumes(tmp_path):
    process = start_cli(fit_args(tmp_path, "--engine.compiled_steps", "false", epochs=200), tmp_path)
    last = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("torchae:")]
    assert lines[-1].startswith("torchae: stopped by SIGTERM in epoch ") and str(last) in lines[-1]
    assert "--ckpt_path last" in lines[-1] and "Traceback" not in err
    history = read_history(tmp_path / "version_0")
    saved = torch.load(last, weights_only=True)["epoch"]
    assert len(history) >= saved + 1  # every finished epoch is in history.csv
    main(fit_args(tmp_path, "--engine.compiled_steps", "false", "--ckpt_path", "last", epochs=saved + 2))
    assert [int(row["epoch"]) for row in read_history(tmp_path / "version_1")] == list(range(saved + 2))


@pytest.mark.slow
def test_sigterm_stops_every_rank_of_a_ddp_fit(tmp_path):
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    process = start_cli(fit_args(tmp_path, *ddp, epochs=200), tmp_path)
    try:
        last = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 300
        while not last.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        ranks = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
        assert len(ranks) >= 2, "rank 1 is a process of its own"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        time.sleep(1)
        left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.count("torchae: stopped by SIGTERM") == 1
    assert not left, "every rank has stopped"
