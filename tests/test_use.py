"""Using a trained model outside training: export (ONNX, torch.export, TorchScript), predictions on disk, and the
code-space figures."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from helpers import CONFIGS, ROOT, quiet_trainer, small_data

import torchae
from torchae.cli import main
from torchae.export import FORMATS, export_model, load_exported
from torchae.figures.plots import pca_2d
from torchae.part1.figures import interpolation_pair, interpolation_rows
from torchae.registry import EXPERIMENTS

INPUT_KINDS = ["dense", "dots_deep", "cvae", "cgan", "judge"]
"""One model of each kind of input: images, points, images and labels, codes and labels, the judge's images."""


def perturbed(name: str) -> torchae.series.SeriesModule:
    """Experiment ``name``'s model with every weight and BatchNorm statistic moved off its initial value by seeded
    noise (zero biases and unit variances would hide a part the export leaves behind), in eval mode."""
    torch.manual_seed(0)
    model = EXPERIMENTS[name].model()
    with torch.no_grad():
        for name_of, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if name_of.endswith("running_var"):
                tensor.mul_(1.0 + 0.1 * torch.rand_like(tensor))  # a variance stays positive
            elif tensor.is_floating_point():
                tensor.add_(0.01 * torch.randn_like(tensor))
    return model.eval()


def trained(name: str, tmp_path: Path) -> torchae.AutoencoderModule:
    """Experiment ``name``'s model after two training steps (weights away from their initial values)."""
    torch.manual_seed(0)
    model = EXPERIMENTS[name].model()
    data = small_data(type(model))
    quiet_trainer(tmp_path, limit_val_batches=0).fit(model, datamodule=data)
    return model.eval()


# ---------------------------------------------------------------- export
def examples(model: torchae.series.SeriesModule, part: str, *batches: int) -> list[tuple[torch.Tensor, ...]]:
    """Inputs of ``part`` at each of ``batches``, as the model declares them (images, codes, labels...)."""
    generator = torch.Generator().manual_seed(0)
    return [model.export_example(part, batch, generator) for batch in batches]


@pytest.mark.parametrize("name", INPUT_KINDS)
def test_lightning_export_methods_work_with_a_dynamic_batch(name, tmp_path):
    """model.to_onnx at batch 4 runs in onnxruntime at batch 7, from one file copied alone to another folder, with
    the inputs named as the model declares them; torch.export.export gives torch's outputs; all to 1e-5. One model
    of each kind of input (images, points, images and labels, codes and labels, the judge's images); every model's
    every part: the next test."""
    model = perturbed(name)
    part = next(iter(model.export_parts()))  # the model's forward
    x4, x7 = examples(model, part, 4, 7)
    with torch.no_grad():
        expected = model(*x7).numpy()
    model.to_onnx(tmp_path / "model.onnx", x4)
    assert [path.name for path in tmp_path.glob("model.onnx*")] == ["model.onnx"]  # no .onnx.data beside it
    alone = tmp_path / "elsewhere" / "copy.onnx"
    alone.parent.mkdir()
    alone.write_bytes((tmp_path / "model.onnx").read_bytes())
    session = onnxruntime.InferenceSession(str(alone), providers=["CPUExecutionProvider"])
    feeds = dict(zip(model.export_names(part)[0], (tensor.numpy() for tensor in x7), strict=True))
    assert [given.name for given in session.get_inputs()] == list(feeds)
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, atol=1e-5, rtol=0)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, x4, dynamic_shapes=tuple({0: batch} for _ in x4))
    np.testing.assert_allclose(program.module()(*x7).detach().numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("name", "format"),
    [(name, "onnx") for name in EXPERIMENTS]
    + [(name, fmt) for fmt in FORMATS if fmt != "onnx" for name in INPUT_KINDS],
)
def test_every_format_of_every_model_is_one_file_that_gives_torchs_outputs(name, format, tmp_path):
    """``export_model`` writes one self-contained file: copied alone to another folder, it gives torch's outputs.
    The exporter says nothing about the batch axis that a conditional model's two inputs share. Every model to
    ONNX, whose exporter starts from ``torch.export``'s program; ``torch.export``'s own file (``.pt2``) for one model
    of each kind of input."""
    model = perturbed(name)
    written = tmp_path / "out" / f"model.{format}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        difference = export_model(model, written, format)
    assert [str(w.message) for w in caught if "axis name" in str(w.message)] == []
    assert difference <= 1e-5
    assert [path.name for path in written.parent.iterdir()] == [written.name]
    alone = tmp_path / "elsewhere" / written.name
    alone.parent.mkdir()
    alone.write_bytes(written.read_bytes())
    part = next(iter(model.export_parts()))
    (inputs,) = examples(model, part, 3)
    with torch.no_grad():
        expected = model.export_parts()[part](*inputs).numpy()
    found = load_exported(alone, format)(*(tensor.numpy() for tensor in inputs))
    np.testing.assert_allclose(found, expected, atol=1e-5)


@pytest.mark.parametrize("part", ["autoencoder", "encoder", "decoder"])
def test_the_export_command_writes_either_half(part, tmp_path, capsys):
    model = trained("conv", tmp_path)
    checkpoint = tmp_path / "conv.ckpt"
    model.trainer.save_checkpoint(checkpoint)
    output = tmp_path / f"{part}.onnx"
    main(["export", str(checkpoint), "--format", "onnx", "--part", part, "--output", str(output)])
    assert "batch dimension dynamic" in capsys.readouterr().out
    run = load_exported(output, "onnx")
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        inputs = model.net.encode(x) if part == "decoder" else x
        expected = {"autoencoder": model.net, "encoder": model.net.encoder, "decoder": model.net.decoder}[part](inputs)
    np.testing.assert_allclose(run(inputs.numpy()), expected.numpy(), atol=1e-5)


def test_the_export_command_refuses_an_unknown_format(tmp_path, capsys):
    model = trained("dense", tmp_path)
    model.trainer.save_checkpoint(tmp_path / "dense.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "dense.ckpt"), "--format", "tflite"])
    assert exit_info.value.code == 2
    assert "tflite" in capsys.readouterr().err


# ---------------------------------------------------------------- predictions on disk
@pytest.mark.parametrize("name", ["dense", "conv", "denoising"])
def test_predict_writes_codes_reconstructions_and_labels_in_mnist_order(name, tmp_path, mnist):
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    small = ["--data.train_size", "64", "--data.val_size", "300", "--figures.enabled", "false"]
    root = ["--trainer.default_root_dir", str(tmp_path)]
    config = ["--config", str(CONFIGS / f"{name}.yaml")]
    main(["fit", *config, *root, *quiet, *small, "--trainer.max_epochs", "1"])
    checkpoint = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    main(["predict", *config, *root, *quiet, *small, "--ckpt_path", str(checkpoint)])
    assert sorted(path.name for path in tmp_path.glob("version_*")) == ["version_0"]  # into the run, no new version
    (written,) = (tmp_path / "version_0" / "predict").glob("*/predictions.npz")
    with np.load(written) as found:
        arrays = dict(found)
    model = torchae.load_checkpoint(checkpoint).eval()
    expected = {"codes", "reconstructions", "labels"} | ({"noisy"} if name == "denoising" else set())
    assert set(arrays) == expected
    assert arrays["codes"].shape == (300, *model.code_shape) and arrays["codes"].dtype == np.float32
    assert arrays["reconstructions"].shape == (300, 1, 28, 28) and arrays["reconstructions"].dtype == np.float32
    assert arrays["labels"].dtype == np.int64 and np.array_equal(arrays["labels"], mnist.y_test[:300])
    inputs = torch.from_numpy(arrays.get("noisy", mnist.x_test[:300, None] / np.float32(255)))
    with torch.no_grad():
        codes = model.net.encode(inputs)
    np.testing.assert_allclose(arrays["codes"], codes.numpy(), atol=1e-5)
    np.testing.assert_allclose(arrays["reconstructions"], model.net.decode(codes).detach().numpy(), atol=1e-5)
    if name == "denoising":
        clean = mnist.x_test[:300, None] / np.float32(255)
        assert not np.allclose(arrays["noisy"], clean) and arrays["noisy"].min() >= 0 and arrays["noisy"].max() <= 1


# ---------------------------------------------------------------- the code-space figures
def test_pca_projection_is_numpys_svd():
    torch.manual_seed(0)
    codes = torch.randn(500, 7) @ torch.randn(7, 7)
    projected = pca_2d(codes).double().numpy()
    centred = codes.double().numpy() - codes.double().numpy().mean(0)
    _, _, vh = np.linalg.svd(centred, full_matrices=False)
    reference = centred @ vh[:2].T
    for k in range(2):  # an SVD's signs are arbitrary: compare up to the sign of each component
        sign = np.sign(reference[:, k] @ projected[:, k])
        np.testing.assert_allclose(projected[:, k], sign * reference[:, k], rtol=1e-4, atol=1e-4)
    assert projected[:, 0].var() >= projected[:, 1].var()  # the first component carries the most variance


@pytest.mark.parametrize("name", ["dense", "conv"])
def test_interpolation_ends_at_the_two_digits_and_their_reconstructions(name, tmp_path, test_images, mnist):
    model = trained(name, tmp_path)
    labels = torch.from_numpy(mnist.y_test[:256].astype(np.int64))
    first, second = interpolation_pair(labels)
    assert labels[first] != labels[second]
    a, b = test_images[first], test_images[second]
    with torch.no_grad():
        (_, pixels), (_, decoded) = interpolation_rows(model, a, b)
        ends = model(torch.stack([a, b]))
    assert pixels.shape == decoded.shape == (10, 1, 28, 28)
    assert torch.equal(pixels[0], a) and torch.equal(pixels[-1], b)
    torch.testing.assert_close(decoded[[0, -1]], ends, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(decoded[4], pixels[4], atol=1e-2)  # the code row is not the pixel row


def test_figures_command_draws_the_code_space_for_every_model(tmp_path, capsys):
    model = trained("sparse", tmp_path)
    model.trainer.save_checkpoint(tmp_path / "sparse.ckpt")
    main(["figures", str(tmp_path / "sparse.ckpt"), "--out_dir", str(tmp_path / "figures")])
    drawn = {Path(line).name for line in capsys.readouterr().out.split()}
    assert {"codes_2d.png", "interpolation.png", "reconstructions.png", "sparse_code_dimensions.png"} <= drawn
    assert all((tmp_path / "figures" / name).stat().st_size > 10_000 for name in drawn)


def test_an_export_never_replaces_its_checkpoint_or_a_folder(tmp_path, capsys):
    model = trained("dense", tmp_path)
    checkpoint = tmp_path / "dense.ckpt"
    model.trainer.save_checkpoint(checkpoint)
    before = checkpoint.read_bytes()
    for output, fragment in (
        (checkpoint, "is the checkpoint being exported"),
        (tmp_path / "other.ckpt", "is named as a checkpoint"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["export", str(checkpoint), "--output", str(output)])
        assert exit_info.value.code == 2 and fragment in capsys.readouterr().err
    assert checkpoint.read_bytes() == before and not (tmp_path / "other.ckpt").exists()
    main(["export", str(checkpoint), "--output", str(tmp_path / "dense.onnx")])
    assert not list(tmp_path.glob(".*partial*"))  # written beside, then renamed into place
    mine = tmp_path / "mine.onnx"
    mine.write_text("a file of the user's")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(checkpoint), "--output", str(mine)])
    assert exit_info.value.code == 2 and mine.read_text() == "a file of the user's"
    assert "mine.onnx exists already: give another --output, or --overwrite true" in capsys.readouterr().err
    main(["export", str(checkpoint), "--output", str(mine), "--overwrite", "true"])
    assert mine.read_bytes() == (tmp_path / "dense.onnx").read_bytes()  # replaced, as asked


def test_the_docs_name_every_exported_graphs_inputs_and_output(capsys, tmp_path):
    """docs/models.md tables each model's exported parts with their inputs' and output's names, dtypes and shapes,
    as ``describe_export`` reads them off the graph; ``torchae export`` prints the same line."""
    from torchae.export import describe_export

    docs = (ROOT / "docs" / "models.md").read_text()
    for experiment in EXPERIMENTS.values():
        model = experiment.model().eval()
        for part in model.export_parts():
            row = f"| {type(model).__name__} | {part} | `{describe_export(model, part)}` |"
            assert row in docs, row
    dots = torchae.DotsConditionalAE().eval()  # its halves take the curve beside their input, as the network does
    assert export_model(dots, tmp_path / "encoder.onnx", "onnx", "encoder") <= 1e-5
    main(["export", "--pretrained", "cvae", "--output", str(tmp_path / "cvae.onnx")])
    assert (
        "graph: images float32 [batch, 1, 28, 28]; labels int64 [batch] -> reconstructions float32 [batch, 1, 28, 28]"
        in capsys.readouterr().out
    )
