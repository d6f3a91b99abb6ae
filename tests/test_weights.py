"""The trained models shipped in the package: each loads offline, is verified by its sha256, and reproduces the
loss its metadata records; the rebuild command writes files that load the same way."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import socket
import tomllib

import numpy as np
import pytest
import torch
import yaml
from helpers import ROOT, load_script

import torchae
from torchae.cli import main
from torchae.errors import CheckpointError, ConfigError
from torchae.registry import EXPERIMENTS
from torchae.weights import METADATA_FILE, WEIGHTS_DIR, available, get_weights, loss_on_test_images

SHIPPED = available()
build = load_script("tools/build_weights.py")
docs_tables = load_script("tools/docs_tables.py")
keras_row, model_arguments, read_metadata = build.keras_row, build.model_arguments, build.read_metadata
write_metadata, write_weights, pretrained_table = (
    build.write_metadata,
    build.write_weights,
    docs_tables.pretrained_table,
)


def test_the_shipped_files_are_exactly_those_listed():
    listed = {get_weights(name).path.name for name in SHIPPED}
    assert listed == {path.name for path in WEIGHTS_DIR.glob("*.pt")}
    declared = tuple(name for name, experiment in EXPERIMENTS.items() if experiment.shipped)
    assert SHIPPED == declared, f"the experiments that declare shipped weights ship them, in order: {SHIPPED}"


def test_the_files_are_small_tensor_only_and_packaged():
    files = [get_weights(name).path for name in SHIPPED]
    # twelve files, 8.0 MB: the VAE's 1.9 MB is the largest, then the CVAE's and the judge's 1.3 MB
    assert sum(path.stat().st_size for path in files) <= 9_000_000
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["torchae"]
    for path in [*files, WEIGHTS_DIR / METADATA_FILE]:
        relative = path.relative_to(WEIGHTS_DIR.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), f"{relative} is not package data"
    for name, path in zip(SHIPPED, files):
        assert path.name.startswith(f"{name}-")
        state = torch.load(path, weights_only=True)  # plain tensors: no pickled code
        assert all(isinstance(value, torch.Tensor) for value in state.values())


@pytest.mark.parametrize("name", SHIPPED)
def test_pretrained_model_reproduces_the_loss_of_its_metadata(name):
    """On the first batches of the test set (the full loss, recorded beside it, takes conv 30 s to recompute)."""
    model = torchae.pretrained(name)
    assert isinstance(model, EXPERIMENTS[name].model)
    assert not model.training
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    check = get_weights(name).meta["check"]
    assert check["val_batches"] == build.CHECK_BATCHES
    assert loss_on_test_images(model, batches=check["val_batches"]) == pytest.approx(check["val_loss"], abs=1e-6)


@pytest.mark.parametrize("name", SHIPPED)
def test_metadata_states_the_recipe(name):
    weights, experiment = get_weights(name), EXPERIMENTS[name]
    meta = weights.meta
    assert meta["num_params"] == experiment.parameters[-1]
    assert (meta["epochs"], meta["batch_size"], meta["seed"]) == (experiment.epochs, experiment.batch_size, 0)
    # The recipe is the config it was trained with. The engine section and the step groups are speed only (how
    # steps run, not what they compute) and have changed since: compiled steps for deep and sparse came after their
    # training, and the step groups moved from engine.steps_per_execution to data.steps_per_execution.
    config = (ROOT / "configs" / f"{name}.yaml").read_text()
    trained, current = yaml.safe_load(meta["config"]), yaml.safe_load(config)
    current_data = current["data"].get("init_args", current["data"])  # a datamodule other than MNIST: class_path
    trained_data = trained["data"].get("init_args", trained["data"])
    groups = current_data.pop("steps_per_execution", 1)  # the judge's config runs plain batches
    trained_groups = trained_data.pop("steps_per_execution", None) or trained["engine"].get("steps_per_execution", 1)
    assert {k: v for k, v in trained.items() if k != "engine"} == {k: v for k, v in current.items() if k != "engine"}
    assert trained_groups == groups
    assert meta["retrains"] == experiment.retrains
    assert len(meta["commit"]) == 40 and int(meta["commit"], 16) >= 0
    assert [row["epoch"] for row in weights.history] == list(range(experiment.epochs))
    assert weights.history[-1]["train_loss"] == meta["train_loss"]
    if experiment.article_losses:
        assert (meta["article"]["loss"], meta["article"]["val_loss"]) == experiment.article_losses
    if meta["keras"] is not None:
        assert meta["keras"]["epochs"] == experiment.epochs


def test_a_tampered_copy_is_refused(tmp_path):
    name = SHIPPED[0]
    shutil.copy(WEIGHTS_DIR / METADATA_FILE, tmp_path)
    original = get_weights(name).path
    copy = tmp_path / original.name
    data = bytearray(original.read_bytes())
    data[-100] ^= 0x01  # one bit of one weight
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{copy.name}.*checksum.*reinstall torchae"):
        get_weights(name, tmp_path).load()
    copy.unlink()
    with pytest.raises(CheckpointError, match=rf"{copy.name}.*missing.*reinstall torchae"):
        get_weights(name, tmp_path).load()


def test_loading_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("networking is disabled in this test")

    for attribute in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, attribute, refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    model = torchae.pretrained(SHIPPED[0])
    with torch.no_grad():
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_an_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match=f"no pretrained model 'lenet': choose one of {SHIPPED[0]}"):
        torchae.pretrained("lenet")


def test_an_article_model_that_is_not_shipped_says_how_to_train_it(tmp_path):
    """An article model without shipped weights (a weights folder that lacks it) is named as such, with the fix."""
    entry = read_metadata(WEIGHTS_DIR)[SHIPPED[0]]
    write_metadata(tmp_path, SHIPPED[0], entry)
    missing = next(name for name in EXPERIMENTS if name != SHIPPED[0])
    message = (
        f"the pretrained {missing} model is not shipped in this version: train it with torchae fit --config "
        f"configs/{missing}.yaml, or choose one of {SHIPPED[0]}"
    )
    with pytest.raises(ConfigError, match=message):
        get_weights(missing, tmp_path)


def test_cli_draws_the_figures_of_a_pretrained_model(tmp_path, capsys):
    name = SHIPPED[0]
    main(["figures", "--pretrained", name, "--out_dir", str(tmp_path)])
    expected = {f"{figure}.png" for figure in EXPERIMENTS[name].model.figures} | {"loss_curves.png"}
    assert {path.name for path in tmp_path.iterdir()} == expected
    assert all(str(tmp_path / file) in capsys.readouterr().out for file in [sorted(expected)[0]])


def test_cli_refuses_an_unknown_pretrained_model_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["figures", "--pretrained", "lenet"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"torchae: error: no pretrained model 'lenet': choose one of {', '.join(SHIPPED)}"
    ]


def test_the_rebuild_writes_weights_that_load_and_verify(tmp_path):
    torch.manual_seed(3)
    model = torchae.DenoisingAE(init_from=None, seed=5)
    history = [{"epoch": e, "train_loss": 0.3 - e / 100, "val_loss": 0.2 - e / 100} for e in range(3)]
    entry = write_weights("denoising", model, history, tmp_path)
    assert model_arguments(model)["seed"] == 5 and model_arguments(model)["init_from"] is None
    write_metadata(tmp_path, "denoising", entry)
    weights = get_weights("denoising", tmp_path)
    assert weights.path.name == f"denoising-{entry['sha256'][:8]}.pt"
    loaded = weights.load()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    assert loaded.seed == 5
    assert weights.meta["val_loss"] == pytest.approx(loss_on_test_images(loaded), abs=1e-6)
    check = weights.meta["check"]
    assert check["val_loss"] == pytest.approx(loss_on_test_images(loaded, batches=check["val_batches"]), abs=1e-6)
    assert check["val_loss"] != weights.meta["val_loss"]  # a loss on part of the test set
    assert weights.history == history
    assert entry["keras"] == keras_row("denoising")


def test_one_command_regenerates_the_readme_tables(tmp_path):
    """``tools/docs_tables.py``: each table between its markers is made again from its results (the shipped
    metadata, the parity records, the benchmark's results file); ``--check`` only reports, then nothing is stale."""
    stale = "\n".join(f"{start} -->\n| old |\n{end}" for start, end in map(docs_tables.markers, docs_tables.TABLES))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{stale}\nafter\n")
    assert docs_tables.main(["--check", "--readme", str(readme)]) == 1
    assert "| old |" in readme.read_text()
    assert docs_tables.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| old |" not in text and text.startswith("intro\n") and text.endswith("after\n")
    pretrained = docs_tables.read_block(text, "pretrained")
    assert pretrained == pretrained_table(read_metadata(WEIGHTS_DIR)) and pretrained.count("\n| ") == len(SHIPPED)
    bench = docs_tables.read_block(text, "bench")
    assert bench.startswith("| model |") and bench in (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert docs_tables.read_block(text, "parity").count("\n| ") == len(list((ROOT / "parity/results").glob("*.json")))
    assert docs_tables.regenerate(readme, check=True) == []
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="has no <!-- parity-table"):
        docs_tables.regenerate(readme, ["parity"])


def test_the_keras_row_names_the_backend_keras_ran_on(tmp_path, monkeypatch):
    """A full-length parity record's last epoch becomes the metadata's Keras row, with the record's backend (a
    record from before the backend was recorded ran on TensorFlow); a shorter run gives no row."""
    monkeypatch.setattr(build, "PARITY_RESULTS", tmp_path)
    epochs = EXPERIMENTS["conv"].epochs
    record = {"epochs": epochs, "train_size": 60_000, "keras": {"loss": [0.2, 0.1], "val_loss": [0.19, 0.09]}}
    (tmp_path / "conv.json").write_text(json.dumps({**record, "versions": {"keras_backend": "torch"}}))
    assert keras_row("conv") == {"loss": 0.1, "val_loss": 0.09, "epochs": epochs, "backend": "torch"}
    (tmp_path / "conv.json").write_text(json.dumps({**record, "versions": {"tensorflow": "2.21.0"}}))
    assert keras_row("conv")["backend"] == "tensorflow"
    (tmp_path / "conv.json").write_text(json.dumps({**record, "epochs": 3}))
    assert keras_row("conv") is None
    table = pretrained_table({"conv": {**read_metadata(WEIGHTS_DIR)[SHIPPED[0]], "keras": keras_row("sparse")}})
    assert "| not yet at full length |" in table


def test_the_shipped_models_work_wherever_a_checkpoint_does(tmp_path, monkeypatch, capsys):
    """``--pretrained NAME`` with predict, validate, export and figures; a shipped file given as a checkpoint is
    refused in one line that names ``--pretrained``."""
    monkeypatch.chdir(tmp_path)
    quiet = ["--trainer.enable_progress_bar", "false", "--data.val_size", "300"]
    main(["predict", "--pretrained", "dense", *quiet])
    (predictions,) = tmp_path.glob("runs/predict/*/predictions.npz")
    model = torchae.pretrained("dense")
    with np.load(predictions) as arrays:
        images = torch.from_numpy(arrays["reconstructions"][:4])
        codes = torch.from_numpy(arrays["codes"][:4])
    torch.testing.assert_close(model.decode(codes), images, atol=1e-6, rtol=0)
    main(["validate", "--pretrained", "denoising", *quiet])
    assert len(list(tmp_path.glob("runs/validate/*/metrics.csv"))) == 1
    capsys.readouterr()
    # A model of other data validates on its own datamodule (part 4's points), to the val_loss it shipped with.
    main(["validate", "--pretrained", "dots_conditional", "--trainer.enable_progress_bar", "false"])
    shown = float(re.search(r"val_loss\s*│\s*([0-9.]+)", capsys.readouterr().out).group(1))
    assert shown == pytest.approx(get_weights("dots_conditional").meta["val_loss"], rel=1e-6)
    main(["export", "--pretrained", "conv", "--part", "decoder", "--output", str(tmp_path / "decoder.onnx")])
    assert (tmp_path / "decoder.onnx").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(
            ["predict", "--config", str(ROOT / "configs" / "dense.yaml"), "--ckpt_path", str(get_weights("dense").path)]
        )
    assert refused.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("torchae: error: ") and "holds weights only" in line and "--pretrained NAME" in line
    with pytest.raises(SystemExit):
        main(["fit", "--pretrained", "dense"])
    assert "--pretrained is for validate, test and predict, not fit" in capsys.readouterr().err
