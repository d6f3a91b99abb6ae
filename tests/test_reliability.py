"""Reliability: every bad input gets one clear line and a non-zero exit; a killed run resumes to the same result;
a NaN loss stops training and keeps the last good checkpoint; nothing unpickles a user's file; seeds reproduce."""

from __future__ import annotations

import csv
import gzip
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import torchae
from torchae.cli import main
from torchae.data import MNIST_FILES, embedded_mnist_dir
from torchae.safety import AtomicCheckpointIO

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL = ["--data.train_size", "1024", "--data.val_size", "256", "--engine.steps_per_execution", "1"]


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
        *SMALL,
        *extra,
    ]


def run_main(args: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in this process; returns (exit code, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("torchae: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


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
    assert_one_line_error(code, err, "does not exist", "leave data_dir unset for the embedded copy")


def test_folder_with_some_idx_files_missing(tmp_path, idx_copy, capsys):
    (idx_copy / "train-images-idx3-ubyte.gz").unlink()
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(idx_copy)), capsys)
    assert_one_line_error(code, err, "lacks train-images-idx3-ubyte", "put all four MNIST IDX files there")


def test_truncated_gzip(tmp_path, idx_copy, capsys):
    path = idx_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(idx_copy)), capsys)
    assert_one_line_error(code, err, "not a complete gzip file", "copy it again")


def test_wrong_checksum(tmp_path, idx_copy, capsys):
    path = idx_copy / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[-1] = (data[-1] + 1) % 10
    path.write_bytes(gzip.compress(bytes(data)))
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(idx_copy)), capsys)
    assert_one_line_error(code, err, "does not match MNIST's sha256 checksum", "verify_checksums=False")


def test_wrong_magic_number(tmp_path, idx_copy, capsys):
    shutil.copy(idx_copy / "train-labels-idx1-ubyte.gz", idx_copy / "train-images-idx3-ubyte.gz")
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(idx_copy)), capsys)
    assert_one_line_error(code, err, "magic number 2049, expected 2051")


def test_npz_without_expected_arrays(tmp_path, capsys):
    np.savez(tmp_path / "mnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(tmp_path / "mnist.npz")), capsys)
    assert_one_line_error(code, err, "lacks the arrays x_train, y_train, x_test, y_test")


def test_images_of_the_wrong_size(tmp_path, capsys):
    images = np.zeros((8, 32, 32), np.uint8)
    np.savez(tmp_path / "big.npz", x_train=images, y_train=np.zeros(8), x_test=images, y_test=np.zeros(8))
    code, err = run_main(fit_args(tmp_path, "--data.data_dir", str(tmp_path / "big.npz")), capsys)
    assert_one_line_error(code, err, "expected (N, 28, 28)", "28x28")


def test_unknown_model_name(tmp_path, capsys):
    code, err = run_main(fit_args(tmp_path, "--model", "DenseAEE"), capsys)
    assert_one_line_error(code, err, "unknown model 'DenseAEE'", "DenseAE, DeepDenseAE")


def test_misspelt_config_key(tmp_path, capsys):
    code, err = run_main(fit_args(tmp_path, "--data.batch_sise", "3"), capsys)
    assert_one_line_error(code, err, "unrecognized arguments: --data.batch_sise", "check the spelling")


def test_misspelt_key_in_a_config_file(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  class_path: torchae.DenseAE\n  init_args:\n    code_dimm: 3\n")
    code, err = run_main(["fit", "--config", str(config)], capsys)
    assert_one_line_error(code, err, "code_dimm")


@pytest.mark.parametrize("value", ["0", "-16"])
def test_non_positive_batch_size(tmp_path, capsys, value):
    code, err = run_main(fit_args(tmp_path, "--data.batch_size", value), capsys)
    assert_one_line_error(code, err, f"batch_size must be a positive integer, got {value}", "--data.batch_size")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_epoch_count(tmp_path, capsys, value):
    args = fit_args(tmp_path)
    args[args.index("--trainer.max_epochs") + 1] = value
    code, err = run_main(args, capsys)
    assert_one_line_error(code, err, f"max_epochs must be a positive integer, got {value}")


def test_missing_checkpoint(tmp_path, capsys):
    code, err = run_main(fit_args(tmp_path, "--ckpt_path", str(tmp_path / "gone.ckpt")), capsys)
    assert_one_line_error(code, err, "does not exist")


@pytest.fixture(scope="module")
def dense_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dense_run")
    main(fit_args(root, "--figures.enabled", "false"))
    return root / "version_0" / "checkpoints" / "last.ckpt"


def test_truncated_checkpoint(tmp_path, dense_checkpoint, capsys):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(dense_checkpoint.read_bytes()[:5000])
    code, err = run_main(fit_args(tmp_path, "--ckpt_path", str(broken)), capsys)
    assert_one_line_error(code, err, "cannot be read", "truncated")
    with pytest.raises(torchae.CheckpointError, match="truncated"):
        torchae.load_checkpoint(broken)


def test_checkpoint_from_another_model_class(tmp_path, dense_checkpoint, capsys):
    code, err = run_main(fit_args(tmp_path, "--ckpt_path", str(dense_checkpoint), config="sparse"), capsys)
    assert_one_line_error(code, err, "holds a DenseAE, but the model is a SparseAE", "--model DenseAE")
    with pytest.raises(torchae.CheckpointError, match="holds a DenseAE, not a SparseAE"):
        torchae.SparseAE.load_from_checkpoint(dense_checkpoint, weights_only=True)


def test_debug_variable_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHAE_DEBUG", "1")
    with pytest.raises(torchae.DataError):
        main(fit_args(tmp_path, "--data.data_dir", str(tmp_path / "nowhere")))


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
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def final_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["state_dict"]


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "torchae", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize("config", ["dense", "denoising"])
def test_killed_run_resumes_to_the_same_weights_and_metrics(tmp_path, config):
    extra = ["--data.batch_size", "64", "--figures.enabled", "false"]
    whole = cli(fit_args(tmp_path / "whole", *extra, config=config, epochs=3), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    crash_root = tmp_path / "crash"
    killed = cli(
        fit_args(
            crash_root,
            *extra,
            "--trainer.callbacks+=helpers.KillAt",
            "--trainer.callbacks.epoch=1",
            "--trainer.callbacks.batch=7",
            config=config,
            epochs=3,
        ),
        tmp_path,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (crash_root / "version_0" / "checkpoints" / "last.ckpt").is_file()  # written at the end of epoch 0
    resumed = cli(fit_args(crash_root, *extra, "--ckpt_path", "last", config=config, epochs=3), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    reference, after_crash = final_state(tmp_path / "whole" / "version_0"), final_state(crash_root / "version_1")
    assert reference.keys() == after_crash.keys()
    for key in reference:
        assert torch.equal(reference[key], after_crash[key]), key  # bitwise
    assert read_history(tmp_path / "whole" / "version_0") == read_history(crash_root / "version_1")
    assert len(read_history(crash_root / "version_1")) == 3


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
