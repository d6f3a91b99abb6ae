"""Part 2: the points around a sine curve, the autoencoders of points beside PCA, the overfitted manifold, the
homotopy of the conv model and the deep sparse autoencoder's joint code distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from helpers import ROOT, quiet_trainer

import torchae
from torchae.cli import main
from torchae.errors import ConfigError, InputError
from torchae.figures import TestSet, draw_figures
from torchae.part1.figures import interpolation_rows
from torchae.part2.dots import DotsDataModule, evenly_spaced, sine_dots
from torchae.part2.figures import homotopy_pair, pca_reconstruction

PART_2_CONFIGS = ("dots_linear", "dots_deep", "dots_overfit", "deep_sparse", "deep_sparse_l1")


def test_the_points_are_the_articles_sine_curve_with_seeded_noise():
    data = DotsDataModule(seed=3)
    data.setup("fit")
    dots, curve = data.val_images, data.curve
    assert dots.shape == (1000, 2) and dots.dtype == torch.float32
    torch.testing.assert_close(curve[:, 0], torch.linspace(-2.2, 2.2, 1000))
    torch.testing.assert_close(curve[:, 1], torch.sin(curve[:, 0]))
    noise = dots - curve
    assert abs(float(noise.std()) - 0.06) < 0.005 and abs(float(noise.mean())) < 0.006
    torch.testing.assert_close(data.train_images, dots)  # trained and validated on the same 1000 points
    again, other = DotsDataModule(seed=3), DotsDataModule(seed=4)
    again.setup("fit")
    other.setup("fit")
    assert torch.equal(again.val_images, dots) and not torch.equal(other.val_images, dots)


def test_the_overfitting_set_is_25_evenly_spaced_points_repeated_4000_times():
    data = DotsDataModule(batch_size=15, subset=25, repeats=4000, seed=0)
    data.setup("fit")
    marked = list(range(0, 1000, 1000 // 25))  # the article's idxs
    assert evenly_spaced(1000, 25).tolist() == marked
    assert data.train_images.shape == (100_000, 2)
    torch.testing.assert_close(data.train_images.view(4000, 25, 2), data.val_images[marked].expand(4000, 25, 2))
    assert data.val_images.shape == (1000, 2)  # validated on all the points


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"subset": 2000}, "data.subset 2000 is more than data.points 1000"),
        ({"noise": -0.1}, "data.noise must be zero or a positive number"),
        ({"noise": float("nan")}, "data.noise must be zero or a positive number"),
        ({"points": 0}, "data.points must be a positive integer"),
        ({"repeats": 10**9}, "more than 10,000,000"),
    ],
)
def test_bad_points_settings_are_one_clear_error(settings, message):
    with pytest.raises(ConfigError, match=message):
        DotsDataModule(**settings)


def test_a_points_model_refuses_images_and_mnist(tmp_path, capsys):
    model = torchae.DotsDeepAE()
    with pytest.raises(InputError, match=r"shape \(3, 1, 28, 28\) .* expected a float tensor of shape \(N, 2\)"):
        model.encode(torch.rand(3, 1, 28, 28))
    assert model(torch.zeros(3, 2)).shape == (3, 2)
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "fit",
                "--model",
                "torchae.DotsDeepAE",
                "--data",
                "torchae.MNISTDataModule",
                "--trainer.default_root_dir",
                str(tmp_path),
            ]
        )
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "torchae: error: DotsDeepAE trains on DotsDataModule's data, not MNISTDataModule's: add --data "
        "torchae.DotsDataModule (its config in configs/ has the article's settings)"
    ]


def test_a_bad_points_setting_on_the_command_line_is_one_line(tmp_path, capsys):
    config = str(ROOT / "configs" / "dots_deep.yaml")
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", config, "--data.noise", "-1", "--trainer.default_root_dir", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.noise must be zero or a positive number" in err[0]
    assert not any(tmp_path.iterdir())  # refused before a run folder was claimed


def test_pca_is_computed_in_torch_as_numpys_svd_gives_it():
    points = sine_dots(500, 0.06, torch.Generator().manual_seed(0)).dots
    centred = points.double().numpy() - points.double().numpy().mean(0)
    _, _, vh = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vh[:1].T @ vh[:1] + points.double().numpy().mean(0)
    np.testing.assert_allclose(pca_reconstruction(points).numpy(), expected, atol=1e-5)


def _fit(name: str, tmp_path, epochs: int, **data_settings) -> tuple[torchae.AutoencoderModule, DotsDataModule]:
    config = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    torch.manual_seed(0)
    model = torchae.EXPERIMENTS[name].model()
    data = DotsDataModule(**{**config["data"]["init_args"], "seed": 0, **data_settings})
    quiet_trainer(tmp_path, max_epochs=epochs).fit(model, datamodule=data)
    return model.eval(), data


def test_the_linear_autoencoder_finds_pcas_line(tmp_path):
    """The article's point: a linear autoencoder with a 1-D code finds the line PCA finds."""
    model, data = _fit("dots_linear", tmp_path, epochs=15)
    dots = data.val_images
    with torch.no_grad():
        reconstructed = model(dots)
    direction = model.net.decoder[0].weight[:, 0].detach()  # the decoder maps the code onto this line
    _, _, vh = torch.linalg.svd(dots - dots.mean(0), full_matrices=False)
    cosine = float(torch.nn.functional.cosine_similarity(direction, vh[0], dim=0).abs())
    assert cosine > 0.999, math.degrees(math.acos(min(cosine, 1.0)))
    assert float((reconstructed - pca_reconstruction(dots)).abs().max()) < 0.05


def test_the_deep_autoencoder_follows_the_curve_where_pca_cannot(tmp_path):
    model, data = _fit("dots_deep", tmp_path, epochs=40)
    with torch.no_grad():
        reconstructed = model(data.val_images)
    to_curve = float((reconstructed - data.curve).square().mean())
    pca_to_curve = float((pca_reconstruction(data.val_images) - data.curve).square().mean())
    assert to_curve < 0.5 * pca_to_curve, (to_curve, pca_to_curve)  # measured: 0.30 after 40 epochs


def test_the_homotopy_joins_the_articles_two_eights_in_pixel_and_code_space(test_images, mnist):
    labels = torch.from_numpy(mnist.y_test[: len(test_images)].astype("int64"))
    first, second = homotopy_pair(labels)
    eights = torch.nonzero(labels == 8).flatten()
    assert (first, second) == (int(eights[1]), int(eights[2]))  # x_test[y_test == 8][1:3]
    model = torchae.pretrained("conv")
    with torch.no_grad():
        (pixel_label, pixels), (code_label, decoded) = interpolation_rows(
            model, test_images[first], test_images[second]
        )
        ends = model(test_images[[first, second]])
    assert (pixel_label, code_label) == ("pixel space", "code space")
    torch.testing.assert_close(pixels[[0, -1]], test_images[[first, second]])
    torch.testing.assert_close(decoded[[0, -1]], ends, atol=1e-6, rtol=0)
    assert pixels.shape == decoded.shape == (10, 1, 28, 28)


def test_the_l1_penalty_centres_the_deep_sparse_codes_on_zero(test_images):
    """The article's observation from its joint plots: without the penalty the codes lie far from 0; with it, around
    0 (the shipped models, trained as the article trains them)."""
    with torch.no_grad():
        plain = torchae.pretrained("deep_sparse").encode(test_images)
        penalised = torchae.pretrained("deep_sparse_l1").encode(test_images)
    assert plain.shape == penalised.shape == (len(test_images), 16)
    assert float(penalised.abs().mean()) < 0.5 * float(plain.abs().mean())


def test_the_deep_sparse_figures_are_drawn(tmp_path, test_images, mnist):
    model = torchae.pretrained("deep_sparse")
    labels = torch.from_numpy(mnist.y_test[: len(test_images)].astype("int64"))
    paths = draw_figures(model, test_images, tmp_path, labels=labels)
    assert sorted(path.name for path in paths) == sorted(f"{name}.png" for name in model.figures)
    assert {"joint_codes.png", "code_pairs.png"} <= {path.name for path in paths}
    assert all(path.stat().st_size > 10_000 for path in paths)


def test_test_set_of_points_draws_the_manifold_figure(tmp_path):
    model = torchae.DotsLinearAE()
    dots = sine_dots(1000, 0.06, torch.Generator().manual_seed(0)).dots
    (path,) = draw_figures(model, dots, tmp_path)
    assert path.name == "dots_manifold.png" and path.stat().st_size > 10_000
    assert torch.equal(TestSet(dots, model).codes, model.encode(dots))


@pytest.mark.parametrize("name", PART_2_CONFIGS)
def test_each_part_two_config_trains_through_the_cli_and_draws_its_figures(name, tmp_path):
    quick = ["--data.points", "300", "--data.repeats", "2"] if name == "dots_overfit" else []
    quick += ["--data.train_size", "512", "--data.val_size", "256"] if name.startswith("deep_sparse") else []
    args = ["fit", "--config", str(ROOT / "configs" / f"{name}.yaml"), "--trainer.max_epochs", "1"]
    args += ["--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false", *quick]
    args += ["--engine.compiled_steps", "false"]
    main(args)
    run = tmp_path / "version_0"
    expected = {f"{figure}.png" for figure in torchae.EXPERIMENTS[name].model.figures} | {"loss_curves.png"}
    assert expected <= {path.name for path in run.iterdir()}
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_a_setting_of_the_other_datamodule_is_one_line(tmp_path, capsys):
    config = str(ROOT / "configs" / "dots_deep.yaml")
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", config, "--data.train_size", "10", "--trainer.default_root_dir", str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "torchae: error: data.train_size is not a setting of torchae.DotsDataModule: check its spelling, or leave "
        "--data.train_size out (torchae fit --data.help DotsDataModule lists them)"
    ]


def test_the_figures_of_a_points_checkpoint_are_drawn_from_the_points(tmp_path, capsys):
    args = ["fit", "--config", str(ROOT / "configs" / "dots_linear.yaml"), "--trainer.max_epochs", "1"]
    main([*args, "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])
    checkpoint = str(tmp_path / "version_0" / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    main(["figures", checkpoint, "--out_dir", str(tmp_path / "drawn")])
    assert (tmp_path / "drawn" / "dots_manifold.png").stat().st_size > 10_000
    with pytest.raises(SystemExit) as stop:
        main(["figures", checkpoint, "--data_dir", str(tmp_path), "--out_dir", str(tmp_path / "again")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "torchae: error: --data_dir is MNIST's; DotsLinearAE draws its figures from DotsDataModule's data: leave "
        "--data_dir out"
    ]


def test_the_shipped_overfitted_model_passes_through_its_25_points_and_not_the_others():
    """The article's overfitting figure, as numbers: after the article's 200 epochs the manifold runs through each of
    the 25 training points and wanders between them."""
    model = torchae.pretrained("dots_overfit")
    data = DotsDataModule(seed=0)  # the points it was trained on (configs/dots_overfit.yaml, seed 0)
    data.setup("fit")
    marked = evenly_spaced(1000, 25)
    others = torch.ones(1000, dtype=torch.bool)
    others[marked] = False
    with torch.no_grad():
        errors = (model(data.val_images) - data.val_images).square().sum(1)
    assert float(errors[marked].max()) < 1e-3 < float(errors[others].mean())
    assert float(errors[marked].mean()) < 0.01 * float(errors[others].mean())


def test_the_points_figure_says_what_its_circles_and_stars_are_and_how_many_points_it_shows(tmp_path, monkeypatch):
    import torchae.part2.figures as part2_figures
    from torchae.figures import FIGURES, TestSet
    from torchae.part2.dots import sine_dots

    drawn = {}
    monkeypatch.setattr(part2_figures, "save", lambda figure, path: drawn.setdefault("figure", figure) and path)
    model = torchae.DotsLinearAE().eval()
    dots = sine_dots(1000).dots
    with torch.no_grad():  # as draw_figures draws
        FIGURES["dots_manifold"](model, TestSet(dots, model, None, 10, 0, None, None, {}), tmp_path / "dots.png")
    (ax,) = drawn["figure"].axes
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("(circles" in entry for entry in legend) and any("(stars)" in entry for entry in legend), legend
    assert "over 1,000 test points" in ax.get_title() and "learned from" not in ax.get_title()
