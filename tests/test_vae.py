"""Part 3's variational autoencoder: the article's network and loss, Keras's semantics, sampling, its figures and
animations, predictions and the API a user of part 3 expects."""

from __future__ import annotations

import math
import re
from statistics import NormalDist

import numpy as np
import pytest
import torch
from helpers import EAGER, QUIET, ROOT
from torch import nn

import torchae
from torchae.cli import main
from torchae.figures import ANIMATION_EPOCHS
from torchae.part3.figures import latent_grid

TINY = [
    *QUIET,
    *EAGER,  # the compiled step's equality: tests/test_engine.py
    "--data.train_size=1000",
    "--data.val_size=500",
]


def test_the_network_is_the_articles_with_keras_semantics():
    model = torchae.VAE()
    kinds = [type(m).__name__ for m in model.net.encoder.body] + ["z_mean", "z_log_var"]
    assert kinds == ["Flatten", "Linear", "ReLU", "KerasBatchNorm1d", "SeededDropout"] * 1 + [
        "Linear",
        "ReLU",
        "KerasBatchNorm1d",
        "SeededDropout",
        "z_mean",
        "z_log_var",
    ]
    decoder = [type(m).__name__ for m in model.net.decoder.body]
    assert decoder == ["Linear", "LeakyReLU", "KerasBatchNorm1d", "SeededDropout"] * 2 + ["Linear", "Unflatten"]
    widths = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [256, 128, 2, 2, 128, 256, 784]
    for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm1d)):
        assert norm.eps == 1e-3 and norm.momentum == pytest.approx(0.01)  # Keras's momentum 0.99
    assert all(m.negative_slope == 0.3 for m in model.modules() if isinstance(m, nn.LeakyReLU))
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, nn.Dropout))
    assert model.hparams.learning_rate == 1e-4 and model.latent_dim == 2


def test_the_loss_is_the_articles_vae_loss():
    torch.manual_seed(0)
    model = torchae.VAE(dropout=0.0).eval()
    x = torch.rand(6, 1, 28, 28)
    eps = torch.randn(6, 2)
    model.latent_noise = lambda z_mean: eps
    terms = model.reconstruction_terms(x, x)
    with torch.no_grad():
        mean, log_var = model.distribution(x)
        decoded = model.decode(mean + torch.exp(log_var / 2) * eps).double().flatten(1).clamp(1e-12, 1 - 1e-12)
        target = x.double().flatten(1)
        bce = -(target * decoded.log() + (1 - target) * (1 - decoded).log()).mean(1)
        kl = -0.5 * (1 + log_var - mean**2 - log_var.exp()).double().sum(1)
        expected = ((784 * bce + kl) / 2 / 784).mean()
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms["reconstruction_loss"] + terms["kl_loss"]) == pytest.approx(float(terms["loss"]), rel=1e-6)
    assert float(terms["kl_loss"]) == pytest.approx(float((kl / 2 / 784).mean()), rel=1e-5)


def test_the_code_is_sampled_in_evaluation_too_but_encode_is_the_mean():
    model = torchae.VAE().eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        first, second = (float(model.reconstruction_terms(x, x)["loss"]) for _ in range(2))
        assert first != second  # a fresh eps each time, as the article's Lambda layer draws one
        assert torch.equal(model.encode(x), model.encode(x))
        assert torch.equal(model.encode(x), model.distribution(x).z_mean)
        torch.testing.assert_close(model(x), model.decode(model.encode(x)), rtol=0, atol=0)


def test_sample_decodes_draws_from_the_prior():
    model = torchae.VAE().eval()
    with torch.no_grad():
        images = model.sample(5, generator=torch.Generator().manual_seed(3))
        again = model.sample(5, generator=torch.Generator().manual_seed(3))
        codes = torch.randn(5, 2, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(images, model.decode(codes), rtol=0, atol=0)
    assert images.shape == (5, 1, 28, 28) and torch.equal(images, again)
    assert torch.equal(model.sample(np.int64(5), torch.Generator().manual_seed(3)), images)  # NumPy's integers too
    for bad, fragment in [
        ((0,), "n is 0, expected an integer from 1 to 100,000: for example n=16"),
        ((10**9,), "n is 1000000000, expected an integer from 1 to 100,000"),
        ((True,), "n is True"),
        ((4, 3), "generator is 3, expected a torch.Generator or None"),
    ]:
        with pytest.raises(torchae.InputError, match=re.escape(fragment)):  # Python's words, not the CLI's
            model.sample(*bad)


def test_the_latent_grid_is_the_normal_quantiles_of_the_article():
    quantiles = [NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 15)]
    grid = latent_grid(2).reshape(15, 15, 2)
    assert grid[0, 0].tolist() == pytest.approx([quantiles[0], quantiles[0]], abs=1e-6)
    assert grid[3, 7].tolist() == pytest.approx([quantiles[7], quantiles[3]], abs=1e-6)  # row i at y = q[i]
    assert float(grid[7, 7].abs().max()) < 1e-6
    assert latent_grid(3)[:, 2].abs().max() == 0  # further dimensions 0, as the article pads them


def test_the_animation_epochs_are_the_articles():
    assert set(range(10)) <= ANIMATION_EPOCHS and max(ANIMATION_EPOCHS) == 999 and len(ANIMATION_EPOCHS) == 65
    gaps = np.diff(sorted(ANIMATION_EPOCHS))
    assert gaps[9] == 1 and gaps[10] == 5 and gaps[-1] == 30  # 9, 10, 15, ..., 969, 999: ever sparser


def test_a_fit_draws_the_articles_figures_and_animations_and_a_resumed_run_keeps_its_frames(tmp_path, capsys):
    args = ["fit", "--config", str(ROOT / "configs" / "vae.yaml"), "--trainer.default_root_dir", str(tmp_path), *TINY]
    main([*args, "--trainer.max_epochs=2"])
    run = tmp_path / "version_0"
    for name in ("reconstructions", "manifold", "latent_distribution", "loss_curves"):
        assert (run / f"{name}.png").stat().st_size > 10_000, name
    assert sorted(p.name for p in (run / "animation").iterdir()) == ["epoch_0000.npz", "epoch_0001.npz"]
    from PIL import Image

    for name in ("manifold", "latent_distribution"):
        with Image.open(run / f"{name}.gif") as gif:
            assert gif.n_frames == 2, name
    main([*args, "--trainer.max_epochs=3", "--ckpt_path", "last"])
    resumed = tmp_path / "version_1"
    assert sorted(p.name for p in (resumed / "animation").iterdir()) == [f"epoch_000{i}.npz" for i in range(3)]
    with Image.open(resumed / "manifold.gif") as gif:
        assert gif.n_frames == 3
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"train_kl_loss", "val_kl_loss", "train_reconstruction_loss", "val_loss"} <= set(header)


def test_figures_and_predict_of_a_checkpoint_write_the_distribution_and_the_reconstructions(tmp_path, capsys):
    config = str(ROOT / "configs" / "vae.yaml")
    main(["fit", "--config", config, "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs=1", *TINY])
    checkpoint = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    main(["figures", str(checkpoint), "--out_dir", str(tmp_path / "again")])
    assert {"manifold.png", "latent_distribution.png", "reconstructions.png"} <= {
        p.name for p in (tmp_path / "again").iterdir()
    }
    said = "VAE's animations (manifold.gif, latent_distribution.gif) are drawn by torchae fit from frames"
    assert said in capsys.readouterr().err  # not drawn here, and said so
    main(["predict", "--config", config, "--ckpt_path", str(checkpoint), *TINY])
    written = next(tmp_path.glob("version_0/predict/*/predictions.npz"))
    with np.load(written) as arrays:
        assert arrays["codes"].shape == (500, 2) and arrays["log_variances"].shape == (500, 2)
        assert arrays["reconstructions"].shape == (500, 1, 28, 28) and arrays["labels"].shape == (500,)
        model = torchae.load_checkpoint(checkpoint)
        images = torch.from_numpy(np.load(written)["reconstructions"][:3])
    with torch.no_grad():
        first = torchae.MNISTDataModule(val_size=3)
        first.setup()
        expected = model.decode(model.encode(first.val_images))
    torch.testing.assert_close(images, expected, atol=1e-5, rtol=0)
    assert not math.isnan(float(images.sum()))


def test_the_shipped_vae_decodes_a_latent_grid_into_digits_and_separates_them_in_its_codes():
    model = torchae.pretrained("vae")
    with torch.no_grad():
        digits = model.decode(latent_grid(2)).reshape(225, 28, 28)
    edges = torch.cat(
        [digits[:, :3], digits[:, -3:], digits[:, :, :3].transpose(1, 2), digits[:, :, -3:].transpose(1, 2)], 1
    )
    assert float(edges.mean()) < 0.05  # dark background, as MNIST's
    assert float(digits[:, 8:20, 8:20].mean()) > 0.15  # ink in the middle
    assert float(digits.std(0).mean()) > 0.05  # other codes, other digits
    data = torchae.MNISTDataModule()
    data.setup()
    with torch.no_grad():
        codes = torch.cat([model.encode(chunk) for chunk in data.val_images.split(1000)])
    labels = data.val_labels
    nearest = torch.cdist(codes[5000:], codes[:5000]).argmin(1)  # 1-NN in the 2-D code plane
    accuracy = float((labels[:5000][nearest] == labels[5000:]).float().mean())
    assert accuracy > 0.5, accuracy  # chance is 0.1 (the shipped model: 0.585): digits lie apart in the plane


@pytest.mark.parametrize("config", ["vae", "cvae"])
def test_a_last_batch_of_one_image_trains_as_in_keras(tmp_path, config):
    """9 images at batch 4: the last batch holds one image, which BatchNorm takes as Keras's does."""
    args = ["fit", "--config", str(ROOT / "configs" / f"{config}.yaml"), *QUIET, *EAGER, "--trainer.max_epochs", "1"]
    args += ["--data.train_size", "9", "--data.val_size", "8", "--data.batch_size", "4", "--data.steps_per_execution"]
    main([*args, "1", "--figures.enabled", "false", "--trainer.default_root_dir", str(tmp_path)])
    history = (tmp_path / "version_0" / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "nan" not in history[1]


def test_dropout_is_kerass_and_draws_from_the_models_stream():
    """The VAE's dropout drops each unit with the rate and scales the rest by 1 / (1 - rate), as Keras's does; its
    masks come from the model's training stream (torch's global generator does not move), the same for the same
    seed and epoch, and other for the next epoch. In evaluation it passes its input through."""
    model = torchae.VAE(dropout=0.3).train()
    layer = model.net.encoder.body[4]
    x = torch.ones(400, 256)
    state = torch.get_rng_state()
    model.draws.seed = 5
    model.draws.start("train", epoch=0)
    y = layer(x)
    assert torch.equal(torch.get_rng_state(), state)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.01
    model.draws.start("train", epoch=0)
    assert torch.equal(layer(x), y)
    model.draws.start("train", epoch=1)
    assert not torch.equal(layer(x), y)
    assert torch.equal(layer.eval()(x), x)
    unbound = type(layer)(0.3).train()  # outside a model: nn.Dropout, from the global generator
    torch.manual_seed(0)
    expected = nn.Dropout(0.3).train()(x)
    torch.manual_seed(0)
    assert torch.equal(unbound(x), expected)
