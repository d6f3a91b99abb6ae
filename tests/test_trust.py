"""The README's promises about untrusted files, concurrent runs and settings: crafted files are refused within bounded
memory, runs never share or overwrite a folder, and every setting and input is checked before training, each bad one
as one line."""

from __future__ import annotations

import copy
import inspect
import io
import shutil
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import EAGER, QUIET, ROOT, one_line_error, run_main, small_data

import torchae
from torchae.cli import CALLBACK_SECTIONS, describe_os_error, main
from torchae.data import MAX_ITEMS, MNIST_FILES, embedded_mnist_dir, load_mnist
from torchae.runs import claim_folder, claim_version, quiet_trainer

DENSE = str(ROOT / "configs" / "dense.yaml")
TINY = [
    *QUIET,
    "--data.train_size=256",
    "--data.val_size=256",
    "--data.steps_per_execution=1",
    "--trainer.max_epochs=1",
    *EAGER,
]


def fit(root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", DENSE, "--trainer.default_root_dir", str(root), *TINY, *extra]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A one-epoch DenseAE run's last.ckpt."""
    root = tmp_path_factory.mktemp("run")
    main(fit(root, "--figures.enabled=false"))
    return root / "version_0" / "checkpoints" / "last.ckpt"


def crafted(checkpoint: Path, target: Path, change) -> Path:
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")
    change(state)
    torch.save(state, target)
    return target


# ---------------------------------------------------------------------------------------------- bounded reading
def idx_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in MNIST_FILES:
        shutil.copy(embedded_mnist_dir() / f"{name}.gz", folder / f"{name}.gz")
    return folder


def test_a_small_file_that_expands_to_a_gib_is_refused_within_2_gb_of_memory(tmp_path):
    folder = idx_folder(tmp_path)
    # MNIST's header, then 1 GiB of zeros: 1 MB on disk.
    packer = zlib.compressobj(9, zlib.DEFLATED, 31, 9, zlib.Z_RLE)  # runs of zeros: as small, twice as fast
    with (folder / "train-images-idx3-ubyte.gz").open("wb") as file:
        file.write(packer.compress(struct.pack(">IIII", 2051, 60_000, 28, 28)))
        zeros = bytes(1 << 20)
        for _ in range(1024):
            file.write(packer.compress(zeros))
        file.write(packer.flush())
    assert (folder / "train-images-idx3-ubyte.gz").stat().st_size < 2 << 20
    # The peak resident memory of this process alone (VmHWM; ru_maxrss would keep the forking parent's across exec).
    probe = (
        "import re, sys\nfrom torchae.data import load_mnist\n"
        "def peak():\n    return re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
        "print(peak())\ntry:\n    load_mnist(sys.argv[1])\nexcept Exception as err:\n"
        "    print(type(err).__name__, err)\nprint(peak())"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(folder)], capture_output=True, text=True, timeout=300)
    imported_kib, message, peak_kib = done.stdout.strip().split("\n")
    assert message.startswith("DataError") and "holds more than the 47040000 bytes" in message, done.stdout
    assert int(peak_kib) < 2 * 1024 * 1024, f"peak {int(peak_kib) / 1024:.0f} MiB"
    # Reading took about MNIST's 47 MB, not the gigabyte the file expands to.
    assert int(peak_kib) - int(imported_kib) < 256 * 1024, f"{(int(peak_kib) - int(imported_kib)) / 1024:.0f} MiB"


def _write_idx(path: Path, magic: int, dims: tuple[int, ...], data: bytes) -> None:
    path.write_bytes(struct.pack(f">I{len(dims)}I", magic, *dims) + data)


@pytest.mark.parametrize(
    ("dims", "payload", "verify", "fragment"),
    [
        ((2**32 - 1, 28, 28), b"", False, f"more than the {MAX_ITEMS} torchae reads"),  # no allocation, no overflow
        ((5, 28, 28), bytes(5 * 784), True, "holds 5 items, MNIST's train file 60000"),
        ((5, 40, 40), bytes(5 * 1600), False, "images of 40x40 pixels"),
        ((5, 28, 28), bytes(5 * 784 + 1), False, "holds more than the 3920 bytes"),  # too long, not "truncated"
        ((5, 28, 28), bytes(100), False, "the file is truncated"),
        ((2**31, 2**31, 2**31), b"", False, "images of 2147483648x2147483648 pixels"),
    ],
)
def test_idx_headers_are_checked_before_any_data_is_read(tmp_path, dims, payload, verify, fragment):
    folder = idx_folder(tmp_path)
    (folder / "train-images-idx3-ubyte.gz").unlink()
    _write_idx(folder / "train-images-idx3-ubyte", 2051, dims, payload)
    with pytest.raises(torchae.DataError, match="train-images") as info:
        load_mnist(folder, verify_checksums=verify)
    assert fragment in str(info.value)


def _npz(path: Path, arrays: dict[str, np.ndarray], claimed: dict[str, tuple[int, ...]] | None = None) -> Path:
    """An .npz of ``arrays``; ``claimed`` gives arrays whose header states a shape their data do not have."""
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            if claimed and key in claimed:
                header = {"descr": "|u1", "fortran_order": False, "shape": claimed[key]}
                np.lib.format.write_array_header_1_0(buffer, header)
                buffer.write(array.tobytes())
            else:
                np.lib.format.write_array(buffer, array)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


def _mnist_like(train: int = 8, test: int = 8, labels: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, labels, train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, labels, test).astype(np.uint8),
    }


@pytest.mark.parametrize(
    ("arrays", "claimed", "fragment"),
    [
        (_mnist_like(), {"x_train": (10**9, 28, 28)}, "more than the"),  # refused before numpy allocates 784 GB
        (_mnist_like(labels=200), None, "labels are"),
        (_mnist_like(test=0), None, "the test split holds no images"),
    ],
)
def test_npz_sizes_labels_and_splits_are_checked_when_read(tmp_path, arrays, claimed, fragment):
    with pytest.raises(torchae.DataError) as info:
        load_mnist(_npz(tmp_path / "mnist.npz", arrays, claimed), verify_checksums=False)
    assert fragment in str(info.value)


def test_an_empty_test_split_ends_a_fit_before_training_in_one_line(tmp_path, capsys):
    data = _npz(tmp_path / "mnist.npz", _mnist_like(train=256, test=0))
    code, err = run_main(fit(tmp_path / "runs", f"--data.data_dir={data}"), capsys)
    one_line_error(code, err, "the test split holds no images")
    assert not list(tmp_path.rglob("*.ckpt")) and not list((tmp_path / "runs").glob("version_*"))


# ---------------------------------------------------------------------------------------------- concurrent runs
def test_claims_give_every_caller_its_own_folder(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(lambda _: claim_version(tmp_path), range(16)))
        folders = list(pool.map(lambda _: claim_folder(tmp_path / "validate" / "T"), range(8)))
    assert sorted(versions) == list(range(16))
    assert len(set(folders)) == 8 and all(folder.is_dir() for folder in folders)


def test_runs_started_together_get_separate_folders(tmp_path):
    seeds = [11, 22]  # two processes racing for the next version folder
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "torchae", *fit(tmp_path, "--figures.enabled=false", f"--seed_everything={seed}")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in seeds
    ]
    errors = [run.communicate(timeout=600)[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * len(seeds), errors
    folders = sorted(tmp_path.glob("version_*"))
    assert len(folders) == len(seeds)
    found = []
    for folder in folders:
        config = yaml.safe_load((folder / "config.yaml").read_text())
        state = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
        assert state["MNISTDataModule"]["seed"] == config["seed_everything"]  # its own config beside its checkpoint
        assert (folder / "history.csv").read_text().count("\n") == 2
        found.append(config["seed_everything"])
    assert sorted(found) == seeds


def test_no_logger_into_an_earlier_run_folder_is_refused_and_the_run_is_untouched(tmp_path, capsys, checkpoint):
    run = checkpoint.parent.parent
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, err = run_main(fit(run, "--trainer.logger=false"), capsys)
    one_line_error(code, err, "holds another run's files", "--trainer.logger false")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_outputs_that_are_a_run_or_its_files_are_refused(tmp_path, capsys, checkpoint):
    run = checkpoint.parent.parent
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    cases = [
        (["figures", str(checkpoint), "--out_dir", str(run)], "is a run's folder"),
        (["figures", str(checkpoint), "--out_dir", str(checkpoint)], "is a file, not a folder"),
        (["export", str(checkpoint), "--output", str(run / "config.yaml")], "does not end in .onnx"),
        (["export", str(checkpoint), "--output", str(checkpoint)], "is the checkpoint being exported"),
        (["export", str(checkpoint), "--format", "pt2", "--output", str(run / "model.onnx")], "does not end in .pt2"),
    ]
    for args, fragment in cases:
        one_line_error(*run_main(args, capsys), fragment)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------------------------------- crafted checkpoints
def _set_in_callbacks(name: str, value):
    def change(state):
        for key, callback in state["callbacks"].items():
            if "ArticleFigures" in key:
                callback[name] = value

    return change


CRAFTED = {
    "missing": (lambda s: s["state_dict"].pop("net.encoder.1.weight"), "net.encoder.1.weight missing"),
    "extra": (lambda s: s["state_dict"].__setitem__("net.spy", torch.zeros(1)), "net.spy unexpected"),
    "misshapen": (
        lambda s: s["state_dict"].__setitem__("net.encoder.1.weight", torch.zeros(3, 3)),
        "of shape (3, 3), expected (49, 784)",
    ),
    "nan": (
        lambda s: s["state_dict"].__setitem__("net.encoder.1.bias", torch.full((49,), float("nan"))),
        "NaN or infinite values (net.encoder.1.bias)",
    ),
    "settings": (lambda s: s["hyper_parameters"].__setitem__("code_dim", "many"), "code_dim='many'"),
}


@pytest.mark.parametrize("subcommand", ["fit", "validate", "predict", "figures", "export"])
@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_checkpoint_is_one_line_for_every_command_that_reads_one(
    tmp_path, capsys, checkpoint, case, subcommand
):
    change, fragment = CRAFTED[case]
    path = crafted(checkpoint, tmp_path / f"{case}.ckpt", change)
    if subcommand in ("figures", "export"):
        args = [subcommand, str(path), *(["--out_dir", str(tmp_path / "f")] if subcommand == "figures" else [])]
    else:
        args = [subcommand, "--config", DENSE, "--ckpt_path", str(path), "--trainer.default_root_dir", str(tmp_path)]
        args += TINY[:2] + (["--trainer.max_epochs=3"] if subcommand == "fit" else [])
    if case == "settings" and subcommand in ("figures", "export"):
        fragment = "code_dim"  # read by Lightning's load_from_checkpoint: the model refuses the setting
    line = one_line_error(*run_main(args, capsys), fragment)
    assert "learning rate" not in line  # a diverged checkpoint is not a training that diverges now
    assert not list(tmp_path.rglob("*.png")) and not list(tmp_path.rglob("*.onnx"))


EDITED = {  # the edits of a hostile or careless user, each with the phrase that names it
    "code_dim 10**20": (lambda s: s["hyper_parameters"].__setitem__("code_dim", 10**20), "code_dim"),
    "hyper_parameters list": (lambda s: s.__setitem__("hyper_parameters", [1, 2]), "hyper_parameters of type list"),
    "model class list": (lambda s: s.__setitem__("torchae_model", ["DenseAE"]), "names its model class with a list"),
    "seed string": (lambda s: s.__setitem__("MNISTDataModule", {"seed": "0"}), "MNISTDataModule state without a seed"),
    "seed missing": (lambda s: s.__setitem__("MNISTDataModule", {}), "MNISTDataModule state without a seed"),
    "history 5": (_set_in_callbacks("history", 5), "loss history"),
    "history mixed": (_set_in_callbacks("history", ["x", 3]), "loss history"),
    "no parameter groups": (
        lambda s: s["optimizer_states"][0].__setitem__("param_groups", []),
        "optimizer states without their parameter groups",
    ),
    "loops string": (lambda s: s.__setitem__("loops", "fit"), "holds loops of type str"),
    "old Lightning": (lambda s: s.__setitem__("pytorch-lightning_version", "0.0.1"), "Lightning '0.0.1'"),
}
COMMANDS = ("fit", "validate", "predict", "figures", "export")


@pytest.mark.parametrize("case", list(EDITED))
def test_an_edited_checkpoint_is_one_line_before_anything_is_built(tmp_path, capsys, checkpoint, case):
    """One check of a checkpoint's entries, in ``read_checkpoint``, which every command reads through (each case
    goes through another command; the check itself is one function)."""
    change, fragment = EDITED[case]
    path = crafted(checkpoint, tmp_path / "edited.ckpt", change)
    subcommand = COMMANDS[list(EDITED).index(case) % len(COMMANDS)]
    if subcommand in ("figures", "export"):
        args = [subcommand, str(path), *(["--out_dir", str(tmp_path / "f")] if subcommand == "figures" else [])]
    else:
        args = [subcommand, "--config", DENSE, "--ckpt_path", str(path), "--trainer.default_root_dir", str(tmp_path)]
        args += TINY[:2] + (["--trainer.max_epochs=3"] if subcommand == "fit" else [])
    one_line_error(*run_main(args, capsys), fragment)
    assert [p.name for p in tmp_path.iterdir()] == ["edited.ckpt"]  # nothing written


def test_every_command_reads_a_checkpoint_through_the_one_check(tmp_path, capsys, checkpoint, monkeypatch):
    import torchae.checkpoints

    calls = []
    monkeypatch.setattr(torchae.checkpoints, "content_problem", lambda state: calls.append(1) or "is refused here")
    for subcommand in COMMANDS:
        args = [subcommand, str(checkpoint)]
        if subcommand not in ("figures", "export"):
            args = [subcommand, "--config", DENSE, "--ckpt_path", str(checkpoint), "--trainer.default_root_dir"]
            args += [str(tmp_path), *TINY[:2]]
        one_line_error(*run_main(args, capsys), f"checkpoint {str(checkpoint)!r} is refused here")
    assert len(calls) >= len(COMMANDS)


def test_a_checkpoint_with_a_damaged_history_is_one_line(tmp_path, capsys, checkpoint):
    path = crafted(checkpoint, tmp_path / "history.ckpt", _set_in_callbacks("history", "not a history"))
    one_line_error(*run_main(["figures", str(path), "--out_dir", str(tmp_path / "f")], capsys), "loss history")


def test_a_folder_given_as_a_checkpoint_is_called_a_folder(tmp_path, capsys):
    (tmp_path / "run.ckpt").mkdir()
    args = ["validate", "--config", DENSE, "--ckpt_path", str(tmp_path / "run.ckpt")]
    one_line_error(*run_main(args, capsys), "is a folder, not a file")


# ---------------------------------------------------------------------------------------------- settings
def _callback_settings() -> list[tuple[str, str]]:
    """(setting, a value of the wrong type) for every argument of the callbacks the CLI adds."""
    cases = []
    for section, cls in CALLBACK_SECTIONS.items():
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                continue
            text = str(parameter.annotation)
            if "str" in text and "Literal" not in text and "timedelta" not in text:
                continue  # any text is a string: out-of-range strings are listed below
            cases.append((f"{section}.{name}", "{not-a-value"))
    return cases


OUT_OF_RANGE = [
    ("figures.n", "0", "figures.n must be an integer from 1"),
    ("figures.n", "1000", "figures.n must be an integer from 1"),
    ("nan_guard.check_every_n_steps", "0", "nan_guard.check_every_n_steps must be a positive integer"),
    ("checkpoint.monitor", "val_los", "'val_los' is not a metric this run logs"),
    ("checkpoint.mode", "sideways", "checkpoint"),
    ("checkpoint.save_top_k", "-5", "checkpoint"),
    ("checkpoint.every_n_epochs", "-1", "checkpoint"),
    ("seed_everything", "-1", "seed_everything must be an integer from 0 to 4294967295"),
    ("seed_everything", str(2**40), "seed_everything must be an integer from 0 to 4294967295"),
    ("model.code_dim", str(10**20), "model.code_dim must be an integer from 1 to 65,536"),
    ("model.dropout", "null", "model.dropout"),
]


@pytest.mark.parametrize(("setting", "value"), _callback_settings())
def test_every_callback_setting_of_the_wrong_type_is_one_line(tmp_path, capsys, setting, value):
    one_line_error(*run_main(fit(tmp_path, f"--{setting}={value}"), capsys), setting.split(".")[-1])
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(("setting", "value", "fragment"), OUT_OF_RANGE)
def test_settings_out_of_range_end_before_training_in_one_line(tmp_path, capsys, setting, value, fragment):
    config = "vae" if setting == "model.dropout" else "dense"
    args = fit(tmp_path, f"--{setting}={value}")
    args[2] = str(ROOT / "configs" / f"{config}.yaml")
    one_line_error(*run_main(args, capsys), fragment)
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.glob("version_*"))  # nothing trained, no run


def test_a_model_too_large_for_the_machine_is_one_line(tmp_path, capsys):
    """65,536 code units are a width the deep model takes, times its multiples (3, 2): about 100 GB of weights."""
    args = ["fit", "--config", str(ROOT / "configs" / "deep.yaml"), "--trainer.default_root_dir", str(tmp_path)]
    one_line_error(*run_main([*args, "--model.code_dim=65536"], capsys), "need more memory than this machine can give")


def test_a_user_model_whose_init_fails_is_one_line_naming_its_file_and_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "brokenpkg.py").write_text(
        "import torchae\n\n\nclass Broken(torchae.DenseAE):\n    calls = 0\n\n    def __init__(self):\n"
        "        Broken.calls += 1\n        super().__init__()\n        1 / 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["fit", "--model", "brokenpkg.Broken", "--trainer.default_root_dir", str(tmp_path), *TINY]
    line = one_line_error(*run_main(args, capsys), "brokenpkg.Broken could not be built: ZeroDivisionError")
    assert f"{tmp_path / 'brokenpkg.py'}:10" in line
    import brokenpkg

    assert brokenpkg.Broken.calls == 1  # built once: the error is not found by building it again


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("trainer: [1, 2]\n", "section 'trainer' holds [1, 2]"),
        ("data: 5\n", "section 'data' holds 5"),
        ("model: 3\n", "section 'model' holds 3"),
        ("checkpoint: on\n", "section 'checkpoint' holds True"),
        ("seed_everything: -3\n", "seed_everything must be an integer from 0"),
    ],
)
def test_config_sections_of_the_wrong_type_are_one_line(tmp_path, capsys, content, fragment):
    (tmp_path / "bad.yaml").write_text(content)
    code, err = run_main(["fit", "--config", DENSE, "--config", str(tmp_path / "bad.yaml")], capsys)
    one_line_error(code, err, fragment, "configs/dense.yaml" if "section" in fragment else "set --seed_everything 0")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["figures", "--pretrained", "dense", "--n", "0"], "n must be an integer from 1 to 100"),
        (["export", "--pretrained", "dense", "--output", "dense.ckpt"], "is named as a checkpoint"),
    ],
)
def test_the_own_subcommands_check_their_settings(tmp_path, capsys, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    one_line_error(*run_main(args, capsys), fragment)
    assert not list(tmp_path.rglob("*.*"))


# ---------------------------------------------------------------------------------------------- file system
@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_a_file_where_a_folder_should_be_is_one_line(tmp_path, capsys, where):
    (tmp_path / "taken").write_text("mine")
    root = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "runs"
    one_line_error(*run_main(fit(root), capsys), "taken")
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (PermissionError(13, "Permission denied", "/srv/runs"), "'/srv/runs': Permission denied; this user may not"),
        (OSError(28, "No space left on device"), "no space left on the disk that holds '/runs/dense'"),
        (IsADirectoryError(21, "Is a directory", "/x"), "a folder stands where a file is needed"),
        (NotADirectoryError(20, "Not a directory", "/f/x"), "a part of the path is a file"),
    ],
)
def test_file_system_errors_name_the_path_the_cause_and_the_fix(error, fragment):
    assert fragment in describe_os_error(error, "/runs/dense")


# ---------------------------------------------------------------------------------------------- no silent work
def test_last_without_a_run_is_refused(tmp_path, capsys):
    args = ["predict", "--config", DENSE, "--ckpt_path", "last", "--trainer.default_root_dir", str(tmp_path / "none")]
    one_line_error(*run_main(args, capsys), "--ckpt_path last: no run under", "nothing to predict")


def test_a_setting_the_checkpoint_overrides_is_reported(tmp_path, capsys, checkpoint):
    args = ["validate", "--config", DENSE, "--ckpt_path", str(checkpoint), "--model.code_dim=10", *TINY]
    main([*args, "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert "the checkpoint's model settings replace those given: model.code_dim 10 -> 49" in err


def test_debug_variable_turns_tracebacks_on_and_off(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCHAE_DEBUG", "0")
    one_line_error(*run_main(fit(tmp_path, "--data.data_dir", str(tmp_path / "nowhere")), capsys), "does not exist")
    for on in ("1", "yes"):
        monkeypatch.setenv("TORCHAE_DEBUG", on)
        with pytest.raises(torchae.DataError):  # the exception itself, with its traceback
            main(fit(tmp_path, "--data.data_dir", str(tmp_path / "nowhere")))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_images_and_codes_of_another_float_dtype_are_an_input_error(dtype):
    model = torchae.DenseAE()
    with pytest.raises(torchae.InputError, match=f"dtype {dtype}, the model's weights are torch.float32"):
        model.encode(torch.rand(2, 1, 28, 28, dtype=dtype))
    with pytest.raises(torchae.InputError, match="x.float()"):
        model.decode(torch.rand(2, 49, dtype=dtype))
    assert model.double().encode(torch.rand(2, 1, 28, 28, dtype=torch.float64)).dtype == torch.float64


def test_pixels_outside_0_1_give_a_warning_not_an_error():
    model = torchae.DenseAE()
    images = torch.rand(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.encode(images)  # [0, 1]: silent
    with pytest.warns(UserWarning, match=r"outside \[0, 1\].*x / 255"):
        codes = model.encode(images * 255)
    assert codes.shape == (2, 49)


def test_the_metrics_a_model_declares_are_the_ones_it_logs(tmp_path):
    for name, experiment in torchae.EXPERIMENTS.items():
        model = experiment.model()
        trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
        data = small_data(experiment.model)
        trainer.fit(model, data)
        logged = {key for key in trainer.callback_metrics if key.startswith(("train_", "val_"))}
        assert logged == set(model.metric_names()), name


def test_a_copy_of_a_valid_state_passes_the_weight_check(checkpoint):
    from torchae.checkpoints import check_weights

    state = torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]
    check_weights(copy.deepcopy(state), torchae.DenseAE())
    state["net.decoder.body.0.bias"][0] = float("inf")
    with pytest.raises(torchae.CheckpointError, match="NaN or infinite"):
        check_weights(state, torchae.DenseAE())


def _own_subcommand_cases(tmp_path: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """A bad value, and a fragment of its line, for every argument of ``torchae figures`` and ``torchae export``."""
    (tmp_path / "a-file").write_text("not a folder")
    return {
        "figures": {
            "checkpoint": (str(tmp_path / "none.ckpt"), "does not exist"),
            "pretrained": ("nonesuch", "nonesuch"),
            "out_dir": (str(tmp_path / "a-file"), "is a file, not a folder"),
            "data_dir": (str(tmp_path / "nowhere"), "does not exist"),
            "n": ("not-a-value", "n"),
            "seed": ("not-a-value", "seed"),
            "model": ("torchae.DenseAE", "leave --model out"),
            "options": ("{style_digit: 3}", "is not an option of DenseAE's figures"),
            "overwrite": ("maybe", "overwrite"),
        },
        "export": {
            "checkpoint": (str(tmp_path / "none.ckpt"), "does not exist"),
            "pretrained": ("nonesuch", "nonesuch"),
            "output": (str(tmp_path), "is a folder"),
            "format": ("tflite", "format"),
            "part": ("middle", "part"),
            "model": ("no.such.Model", "leave --model out"),
            "overwrite": ("maybe", "overwrite"),
        },
    }


@pytest.mark.parametrize("subcommand", ["figures", "export"])
def test_every_argument_of_figures_and_export_refuses_a_bad_value_in_one_line(
    tmp_path, capsys, monkeypatch, subcommand
):
    from torchae.cli import OWN_COMMANDS

    monkeypatch.chdir(tmp_path)
    cases = _own_subcommand_cases(tmp_path)[subcommand]
    assert set(cases) == set(inspect.signature(OWN_COMMANDS[subcommand]).parameters)  # a new argument needs a case
    for name, (value, fragment) in cases.items():
        if name == "checkpoint":
            args = [subcommand, value]
        elif name == "pretrained":
            args = [subcommand, "--pretrained", value]
        else:
            args = [subcommand, "--pretrained", "dense", f"--{name}", value]
        one_line_error(*run_main(args, capsys), fragment)
    assert not list(tmp_path.rglob("*.png")) and not list(tmp_path.rglob("*.onnx"))


# ---------------------------------------------------------------------------------------------- outputs stay put
@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("--predictions.filename=../../keep.npz", "predictions.filename = '../../keep.npz' is not a file name"),
        ("--predictions.filename=codes.csv", "predictions.filename = 'codes.csv' does not end in .npz"),
        ("--predictions.filename=..", "is not a file name"),
    ],
)
def test_a_predictions_name_that_would_leave_its_folder_or_lose_its_suffix_is_refused(
    tmp_path, capsys, checkpoint, setting, fragment
):
    run = checkpoint.parent.parent
    before = {p: p.read_bytes() for p in run.parent.rglob("*") if p.is_file()}
    args = ["predict", "--config", DENSE, "--ckpt_path", str(checkpoint), *TINY, setting]
    one_line_error(*run_main(args, capsys), fragment)
    assert {p: p.read_bytes() for p in run.parent.rglob("*") if p.is_file()} == before
    assert not list(run.parent.rglob("*partial*"))


def test_a_checkpoint_name_with_a_folder_or_a_folder_of_other_files_is_refused(tmp_path, capsys, checkpoint):
    older = checkpoint.parent
    before = {p: p.read_bytes() for p in older.iterdir()}
    name = f"--checkpoint.filename=../../{older.parent.name}/checkpoints/last"
    one_line_error(*run_main(fit(tmp_path, name), capsys), "checkpoint.filename", "is not a file name")
    code, err = run_main(fit(tmp_path, f"--checkpoint.dirpath={older}"), capsys)
    one_line_error(code, err, "holds files already", "leave --checkpoint.dirpath out")
    assert {p: p.read_bytes() for p in older.iterdir()} == before
    main(fit(tmp_path, "--checkpoint.filename=epoch{epoch}", f"--checkpoint.dirpath={tmp_path / 'new'}"))
    assert (tmp_path / "new" / "epochepoch=0.ckpt").is_file()  # a plain name and an empty folder: as Lightning does


def test_figures_never_replace_a_file_they_did_not_write(tmp_path, capsys, checkpoint):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "reconstructions.png").write_text("the user's own figure")
    code, err = run_main(["figures", str(checkpoint), "--out_dir", str(out)], capsys)
    one_line_error(code, err, "reconstructions.png exists already", "--overwrite true")
    assert [p.name for p in out.iterdir()] == ["reconstructions.png"]
    assert (out / "reconstructions.png").read_text() == "the user's own figure"
    main(["figures", str(checkpoint), "--out_dir", str(out), "--overwrite", "true"])
    assert (out / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluating_without_trained_weights_is_refused(tmp_path, capsys, subcommand):
    args = [subcommand, "--config", DENSE, "--trainer.default_root_dir", str(tmp_path), *TINY]
    one_line_error(*run_main(args, capsys), "needs trained weights", "--ckpt_path CKPT", "--pretrained NAME")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["validate", "--pretrained", "nonexistent"], ["no pretrained model 'nonexistent': choose one of dense"]),
        (["frobnicate"], ["unknown subcommand 'frobnicate'", "figures, export"]),
        (
            ["fit", "--config", DENSE, "--trainer.limit_train_batches", "-2"],
            ["trainer.limit_train_batches=-2", "set --trainer.limit_train_batches to a value"],
        ),
    ],
)
def test_a_message_points_at_what_was_given(tmp_path, capsys, args, fragments):
    line = one_line_error(*run_main([*args, "--trainer.default_root_dir", str(tmp_path)], capsys), *fragments)
    assert "accelerator" not in line and "is required" not in line
