"""Part 4's conditional VAE: the article's network with the label beside the image and the code, part 3's loss, the
API (encode, decode, sample, style transfer with labels), labelled batches, its figures, predictions and exports, and
one clear error for a bad label in Python and on the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import yaml
from helpers import EAGER, QUIET, ROOT
from torch import nn

import torchae
from torchae.cli import main
from torchae.export import export_model
from torchae.inputs import LabelledBatch
from torchae.part2.dots import two_curves

CONFIG = str(ROOT / "configs" / "cvae.yaml")
TINY = [
    *QUIET,
    *EAGER,  # the compiled step's equality: tests/test_engine.py
    "--data.init_args.train_size=500",
    "--data.init_args.val_size=500",
]


def test_the_network_is_the_articles_with_part_3s_keras_semantics():
    model = torchae.CVAE()
    encoder = [type(m).__name__ for m in model.net.encoder.body] + ["z_mean", "z_log_var"]
    assert encoder == ["Linear", "ReLU", "KerasBatchNorm1d", "SeededDropout", "z_mean", "z_log_var"]
    decoder = [type(m).__name__ for m in model.net.decoder.body]
    assert decoder == ["Linear", "LeakyReLU", "KerasBatchNorm1d", "SeededDropout", "Linear", "Unflatten"]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # 784 pixels and a one-hot label in; 8-D code and a one-hot label into the decoder
    assert [(m.in_features, m.out_features) for m in linears] == [(794, 256), (256, 8), (256, 8), (18, 256), (256, 784)]
    for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm1d)):
        assert norm.eps == 1e-3 and norm.momentum == pytest.approx(0.01)
    assert all(m.negative_slope == 0.3 for m in model.modules() if isinstance(m, nn.LeakyReLU))
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, nn.Dropout))
    assert model.hparams.learning_rate == 1e-3 and model.latent_dim == 8 and model.conditional


def test_the_label_goes_into_the_encoder_and_the_decoder_as_keras_to_categorical():
    torch.manual_seed(0)
    model = torchae.CVAE().eval()
    x, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        categorical = torch.from_numpy(np.eye(10, dtype=np.float32)[labels.numpy()])  # Keras's to_categorical
        hidden = model.net.encoder.body(torch.cat([x.flatten(1), categorical], 1))
        torch.testing.assert_close(model.encode(x, labels), model.net.encoder.z_mean(hidden), rtol=0, atol=0)
        code = torch.randn(4, 8)
        logits = model.net.decoder.body(torch.cat([code, categorical], 1))
        torch.testing.assert_close(model.decode(code, labels), torch.sigmoid(logits), rtol=0, atol=0)
        assert not torch.allclose(model.encode(x, 3), model.encode(x, 4))  # the label changes the code...
        assert not torch.allclose(model.decode(code, 3), model.decode(code, 4))  # ...and the digit written
        torch.testing.assert_close(model.encode(x, 3), model.encode(x, torch.full((4,), 3)), rtol=0, atol=0)


def test_the_loss_is_part_3s_vae_loss_with_the_labels():
    torch.manual_seed(0)
    model = torchae.CVAE(dropout=0.0).eval()
    x, labels = torch.rand(6, 1, 28, 28), torch.arange(6)
    eps = torch.randn(6, 8)
    model.latent_noise = lambda z_mean: eps
    batch = LabelledBatch(x, labels)
    terms = model.loss_terms(batch, "val")
    with torch.no_grad():
        mean, log_var = model.distribution(x, labels)
        decoded = model.decode(mean + torch.exp(log_var / 2) * eps, labels).double().flatten(1)
        bce = F.binary_cross_entropy(decoded, x.double().flatten(1), reduction="none").mean(1)
        kl = -0.5 * (1 + log_var - mean**2 - log_var.exp()).double().sum(1)
        expected = ((784 * bce + kl) / 2 / 784).mean()
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms["reconstruction_loss"] + terms["kl_loss"]) == pytest.approx(float(terms["loss"]), rel=1e-6)


def test_style_transfer_decodes_the_mean_code_with_the_target_label():
    torch.manual_seed(1)
    model = torchae.CVAE().eval()
    sevens = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        ones = model.style_transfer(sevens, 7, 1)
        torch.testing.assert_close(ones, model.decode(model.encode(sevens, 7), 1), rtol=0, atol=0)
        torch.testing.assert_close(model.style_transfer(sevens, 7, 7), model(sevens, torch.full((5,), 7)))
        mixed = model.style_transfer(sevens, 7, torch.tensor([0, 1, 2, 3, 4]))  # one target per image
        torch.testing.assert_close(mixed[1], ones[1], rtol=0, atol=0)
    assert ones.shape == (5, 1, 28, 28)


def test_sample_writes_the_chosen_digit_from_draws_of_the_prior():
    model = torchae.CVAE().eval()
    with torch.no_grad():
        digits = model.sample(5, 3, generator=torch.Generator().manual_seed(3))
        codes = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(digits, model.decode(codes, 3), rtol=0, atol=0)
        # NumPy's and torch's integers are digits as Python's are
        again = model.sample(np.int64(5), np.int64(3), torch.Generator().manual_seed(3))
        assert torch.equal(again, digits) and torch.equal(model.decode(codes, torch.tensor(3)), digits)
    assert digits.shape == (5, 1, 28, 28)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x: m.encode(x, torch.tensor([0, 1, 2, 10])), r"labels hold 0\.\.10, expected an integer tensor"),
        (lambda m, x: m.encode(x, torch.tensor([0, -1, 2, 3])), r"labels hold -1\.\.3"),
        (lambda m, x: m.encode(x, torch.tensor([0, 1])), r"labels have shape \(2,\), expected .* shape \(4,\)"),
        (lambda m, x: m.encode(x, F.one_hot(torch.arange(4), 10)), r"use labels.argmax\(1\)"),
        (lambda m, x: m.encode(x, torch.zeros(4)), r"labels have dtype torch.float32.*labels.long\(\)"),
        (lambda m, x: m.encode(x, [0, 1, 2, 3]), r"labels are a list.*torch.tensor\(labels\)"),
        (lambda m, x: m.decode(torch.zeros(4, 8), 10), r"labels is 10, expected one digit"),
        (lambda m, x: m.sample(2, 12), r"label is 12, expected one digit, an integer from 0 to 9"),
        (lambda m, x: m.style_transfer(x, 7, 11), r"labels is 11, expected one digit"),
        (lambda m, x: m.encode(x, 2.5), r"labels have dtype|labels are a float"),
        (lambda m, x: m.decode(torch.zeros(4, 8), True), r"labels is True, expected one digit"),
        (lambda m, x: m.sample(2, torch.tensor(True)), r"label is tensor\(True\), expected one digit"),
        (lambda m, x: m(x, torch.tensor([0, 1, 2, 10])), r"labels hold 0\.\.10"),  # forward checks as encode does
        (lambda m, x: m.sample(0, 3), r"n is 0, expected an integer from 1 to 100,000"),
    ],
)
def test_a_bad_label_is_one_clear_error(call, message):
    model = torchae.CVAE().eval()
    with pytest.raises(torchae.InputError, match=message):
        call(model, torch.rand(4, 1, 28, 28))


def test_the_labelled_datamodule_serves_images_with_their_digits(mnist):
    data = torchae.LabelledMNISTDataModule(batch_size=32, train_size=64, val_size=40, seed=0)
    data.setup("fit")
    images, labels = next(iter(data.train_dataloader()))
    rows = [
        int(np.flatnonzero((mnist.x_train[:64] == (image[0] * 255).round().numpy()).all((1, 2)))[0]) for image in images
    ]
    assert labels.tolist() == mnist.y_train[rows].tolist()  # each image with its own digit, in the shuffled order
    val_images, val_labels = next(iter(data.val_dataloader()))
    assert val_labels.tolist() == mnist.y_test[:32].tolist()
    plain = torchae.MNISTDataModule(batch_size=32, train_size=64, seed=0)
    plain.setup("fit")
    assert isinstance(next(iter(plain.train_dataloader())), torch.Tensor)  # the other models' batches: images only


def test_a_cvae_given_batches_without_labels_is_one_clear_error(tmp_path, capsys):
    model = torchae.CVAE()
    with pytest.raises(torchae.InputError, match=r"takes batches of \(inputs, labels\).*LabelledMNISTDataModule"):
        model.validation_step(torch.rand(4, 1, 28, 28), 0)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--model",
                "torchae.CVAE",
                "--data",
                "torchae.MNISTDataModule",
                "--trainer.default_root_dir",
                str(tmp_path),
            ]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "add --data torchae.LabelledMNISTDataModule" in error
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_a_model_alone_takes_its_experiments_recipe_and_its_own_data(capsys):
    """``torchae fit --model torchae.CVAE`` without a config: the registered recipe (1000 epochs at batch 500, runs
    under runs/cvae) and the CVAE's own labelled MNIST."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "torchae.CVAE", "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["class_path"].endswith("LabelledMNISTDataModule")
    assert config["data"]["init_args"]["batch_size"] == 500
    assert config["trainer"]["max_epochs"] == 1000 and config["trainer"]["default_root_dir"] == "runs/cvae"


def test_fit_figures_predict_and_export_with_labels(tmp_path, capsys, mnist):
    """A short fit draws part 4's figures and animations; the figures command takes another style; predict writes
    the codes given the labels; the encoder and decoder export with the labels as a second input."""
    main(["fit", "--config", CONFIG, "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs=1", *TINY])
    run = tmp_path / "version_0"
    for name in ("reconstructions", "generated_digits", "label_manifolds", "label_distributions", "style_transfer"):
        assert (run / f"{name}.png").stat().st_size > 10_000, name
    from PIL import Image

    for name in ("label_manifolds", "label_distributions"):
        with Image.open(run / f"{name}.gif") as gif:
            assert gif.n_frames == 1, name
    checkpoint = run / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        main(["figures", str(checkpoint), "--options.style_digit", "10", "--out_dir", str(tmp_path / "bad")])
    assert exit_info.value.code == 2 and "--options.style_digit is 10, expected one digit" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything is drawn
    main(["figures", str(checkpoint), "--options.style_digit", "3", "--out_dir", str(tmp_path / "threes")])
    assert (tmp_path / "threes" / "style_transfer.png").stat().st_size > 10_000

    main(["predict", "--config", CONFIG, "--ckpt_path", str(checkpoint), *TINY])
    written = next(tmp_path.glob("version_0/predict/*/predictions.npz"))
    model = torchae.load_checkpoint(checkpoint).eval()
    with np.load(written) as arrays:
        assert np.array_equal(arrays["labels"], mnist.y_test[:500])
        images = torch.from_numpy(mnist.x_test[:500, None] / np.float32(255))
        with torch.no_grad():
            codes = model.encode(images, torch.from_numpy(arrays["labels"]))
        np.testing.assert_allclose(arrays["codes"], codes.numpy(), atol=1e-5)
        assert arrays["log_variances"].shape == (500, 8) and arrays["reconstructions"].shape == (500, 1, 28, 28)
    for part in ("encoder", "decoder"):
        assert export_model(model, tmp_path / f"{part}.onnx", "onnx", part) <= 1e-5


# ---------------------------------------------------------------- part 4's points: one model, two curves
def test_part_4s_points_lie_around_the_sine_and_the_circle_each_labelled_with_its_curve():
    drawn = two_curves(1000, 0.06, torch.Generator().manual_seed(0))
    sine, circle = drawn.curves[:1000], drawn.curves[1000:]
    torch.testing.assert_close(sine[:, 1], torch.sin(sine[:, 0]))
    assert float(sine[0, 0]) == pytest.approx(-2.2) and float(sine[-1, 0]) == pytest.approx(2.2)
    radius = (circle - torch.tensor([1.5, -0.5])).norm(dim=1)
    torch.testing.assert_close(radius, torch.full((1000,), 0.5), rtol=0, atol=1e-6)
    assert drawn.labels.tolist() == [0] * 1000 + [1] * 1000
    assert float((drawn.dots - drawn.curves).std()) == pytest.approx(0.06, abs=0.003)
    data = torchae.TwoCurvesDataModule(seed=0)
    data.setup("fit")
    points, labels = next(iter(data.train_dataloader()))
    rows = [int(torch.nonzero((data.train_images == point).all(1))[0]) for point in points]
    assert labels.tolist() == [int(row >= 1000) for row in rows]  # each point with its own curve, shuffled
    with pytest.raises(torchae.ConfigError, match="data.points must be a positive integer"):
        torchae.TwoCurvesDataModule(points=0)


def test_given_each_points_curve_one_model_learns_both_pieces():
    """The shipped conditional model (the article's 300 epochs) maps the sine's points onto the sine and the circle's
    onto the circle; the same codes decoded as the other curve land on the other piece."""
    model = torchae.pretrained("dots_conditional")
    data = torchae.TwoCurvesDataModule(seed=0)
    data.setup("fit")
    points, labels = data.val_images, data.val_labels
    with torch.no_grad():
        reconstructed = model(points, labels)
        codes = model.encode(points, labels)
        swapped = model.decode(codes, 1 - labels)
    sine, circle = reconstructed[:1000], reconstructed[1000:]
    off_sine = (sine[:, 1] - torch.sin(sine[:, 0])).abs()
    off_circle = ((circle - torch.tensor([1.5, -0.5])).norm(dim=1) - 0.5).abs()
    assert float(off_sine.median()) < 0.03 and float(off_circle.median()) < 0.05, (
        off_sine.median(),
        off_circle.median(),
    )
    as_circle = ((swapped[:1000] - torch.tensor([1.5, -0.5])).norm(dim=1) - 0.5).abs()
    assert float(as_circle.median()) < 0.1  # the sine's codes, decoded as the circle, draw the circle
    with pytest.raises(torchae.InputError, match="labels hold 0..2, expected an integer tensor .* labels 0-1"):
        model.encode(points[:3], torch.tensor([0, 1, 2]))


def test_a_style_for_a_model_without_style_transfer_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["figures", "--pretrained", "dense", "--options.style_digit", "3", "--out_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert (
        "options.style_digit is not an option of DenseAE's figures (they take: none): leave --options.style_digit out"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_the_shipped_cvae_writes_each_digit_and_transfers_the_style_of_sevens(mnist):
    """The shipped model (the article's 1000 epochs): digits sampled for each label, and the first ten sevens of the
    training set rewritten as each digit, are nearest to that digit's mean test image (a nearest-centroid reading
    in pixel space); the style survives: the ten rewritten digits differ as the ten sevens do."""
    model = torchae.pretrained("cvae")
    test = torch.from_numpy(mnist.x_test / np.float32(255)).flatten(1)
    centroids = torch.stack([test[torch.from_numpy(mnist.y_test == digit)].mean(0) for digit in range(10)])
    sevens = torch.from_numpy(mnist.x_train[mnist.y_train == 7][:10, None] / np.float32(255))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sampled = torch.cat([model.sample(20, digit, generator=generator) for digit in range(10)]).flatten(1)
        written = torch.cat([model.style_transfer(sevens, 7, digit) for digit in range(10)]).flatten(1)
    read = {
        name: torch.cdist(found, centroids).argmin(1) for name, found in (("sampled", sampled), ("written", written))
    }
    assert float((read["sampled"] == torch.arange(10).repeat_interleave(20)).float().mean()) > 0.8
    assert float((read["written"] == torch.arange(10).repeat_interleave(10)).float().mean()) > 0.8
    ones = written[10:20]
    assert float(ones.std(0).mean()) > 0.3 * float(sevens.flatten(1).std(0).mean())  # ten styles, not one mean one


def test_a_full_length_label_manifolds_animation_stays_under_2_mb(tmp_path):
    """The article's 65 frames (its save epochs up to 1000) of ten manifolds, each frame different: under 2 MB,
    every frame kept (the figure's 15 x 15 grids, drawn by matplotlib, made 17.6 MB)."""
    from PIL import Image

    from torchae.figures import ANIMATION_EPOCHS
    from torchae.figures.animation import MAX_ANIMATION_BYTES, animate_manifold
    from torchae.part4.figures import ANIMATED_SIDE, label_manifolds_image

    model = torchae.pretrained("cvae")  # its digits, as a run's frames hold them
    epochs = sorted(ANIMATION_EPOCHS)
    assert len(epochs) == 65
    frames = []
    with torch.no_grad():
        for _ in epochs:  # weights that move every frame, as training moves them
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.002)
            frames.append({"manifold": (label_manifolds_image(model, ANIMATED_SIDE) * 255).round().byte().numpy()})
    path = animate_manifold(frames, epochs, None, tmp_path / "label_manifolds.gif", "CVAE")
    assert path.stat().st_size <= MAX_ANIMATION_BYTES
    with Image.open(path) as gif:
        assert gif.n_frames == 65 and gif.size == (5 * 8 * 28, 2 * 8 * 28 + 16)  # 28 pixels a digit, a caption line


def test_the_style_transfer_is_white_on_black_as_every_digit_figure(tmp_path):
    from PIL import Image

    from torchae.figures import draw_figures

    images, labels = torchae.mnist_images()
    model = torchae.pretrained("cvae")
    model.figures = ("style_transfer",)  # this instance draws only the figure under test
    (path,) = draw_figures(model, images[:100], tmp_path, labels=labels[:100], train_images=images, train_labels=labels)
    with Image.open(path) as picture:
        pixels = np.asarray(picture.convert("L"), dtype=np.float32) / 255
    assert pixels.mean() < 0.5  # black digits' backgrounds, not the article's black on white
