"""The judge of generated digits: the Fréchet distance, the verdict on samples and on a model's prior, and
``python -m parity judge``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import quiet_trainer, small_data

import torchae
from torchae.data import to_image_tensor
from torchae.judge import frechet_distance, judge_features, judge_model, judge_samples


def test_the_frechet_distance_is_the_closed_form_of_two_gaussians():
    """Feature sets with known moments: the mean term and the covariance term of the formula, and 0 for a set against
    itself."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(20_000, 3, generator=generator, dtype=torch.float64)
    b = a * 2.0 + torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)  # covariance 4 I, mean (1, 0, -1)
    # |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) = 2 + (3 + 12 - 2 * 6) = 5, up to the sample's moments
    assert frechet_distance(a, b) == pytest.approx(5.0, rel=0.03)
    assert abs(frechet_distance(a, a)) < 1e-8
    assert frechet_distance(a, a + 0.5) == pytest.approx(3 * 0.25, rel=1e-6)  # a shift moves only the mean term


@pytest.fixture(scope="module")
def judge():
    return torchae.pretrained("judge")


def test_the_judge_reads_real_digits_and_tells_noise_from_them(judge, mnist):
    """On real test digits given their labels it is almost always right and sure, and their distance to more real
    digits is small; on noise it is far."""
    real, more = to_image_tensor(mnist.x_test[:500]), to_image_tensor(mnist.x_test[500:1000])
    said = judge_samples(judge, real, more, torch.from_numpy(mnist.y_test[:500].astype(np.int64)))
    assert said["label_accuracy"] >= 0.98 and said["confidence"] >= 0.95
    assert sum(said["shares"]) == pytest.approx(1.0) and len(said["shares"]) == 10
    labels = torch.from_numpy(mnist.y_test[:500].astype(np.int64))
    assert judge_samples(judge, real, judge_features(judge, more), labels) == said  # the real digits' features, once
    noise = judge_samples(judge, torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)), more)
    assert "label_accuracy" not in noise and noise["frechet_distance"] > 10 * said["frechet_distance"]


def test_a_conditional_model_is_judged_on_the_labels_it_generated_for(judge, mnist):
    """The shipped CVAE generates ``n / 10`` of each digit from its prior; the verdict scores them against those
    labels, and the same seed gives the same verdict."""
    real = to_image_tensor(mnist.x_test[:500])
    said = judge_model(torchae.pretrained("cvae"), judge, real, n=200, seed=0)
    assert said["samples"] == 200 and 0.5 < said["label_accuracy"] <= 1.0
    assert judge_model(torchae.pretrained("cvae"), judge, real, n=200, seed=0) == said


def test_the_judge_command_prints_every_generative_model_it_is_given(tmp_path, capsys):
    """``python -m parity judge`` judges a model from a checkpoint (here an untrained CVAE-GAN's), beside real digits,
    and writes the JSON; a model that generates nothing and a malformed checkpoint argument are refused."""
    from parity.cli import main as parity_main
    from parity.judging import GENERATIVE

    assert GENERATIVE == ("vae", "cvae", "gan", "cgan", "cvae_gan")  # the registry's models that sample digits
    checkpoint = tmp_path / "cvae_gan.ckpt"
    torch.manual_seed(0)
    model = torchae.CVAEGAN()
    trainer = quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(model, datamodule=small_data(torchae.CVAEGAN, size=64, batch_size=64))
    trainer.save_checkpoint(checkpoint)
    out = tmp_path / "judged.json"
    parity_main(["judge", "cvae_gan", "--samples", "100", "--checkpoint", f"cvae_gan={checkpoint}", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| mnist (real) | 100 |" in printed and "| cvae_gan | 100 |" in printed and out.is_file()
    # The same checkpoint as a torchae run's record for parity/RESULTS.md, beside a Keras run's at the article's length
    from parity.gan_records import gan_section, write_gan_record

    results = tmp_path / "gans"
    record_args = ["--checkpoint", str(checkpoint), "--seed", "3", "--samples", "100", "--results", str(results)]
    parity_main(["gan-record", "cvae_gan", *record_args])
    record = json.loads((results / "cvae_gan-torchae-seed3.json").read_text())
    iterations = torchae.load_checkpoint(checkpoint).schedule.iterations
    assert (record["framework"], record["seed"], record["iterations"]) == ("torchae", 3, iterations)
    assert record["verdict"]["samples"] == 100 and 0 <= record["verdict"]["label_accuracy"] <= 1
    write_gan_record({**record, "framework": "keras", "seed": 0, "iterations": 48_000, "commit": None}, results)
    keras_row, torchae_row = (line for line in gan_section(results) if line.startswith("| cvae_gan |"))
    assert keras_row.startswith("| cvae_gan | keras | 0 | 48,000 (full) | 100 |") and keras_row.endswith("| — |")
    assert torchae_row.startswith(f"| cvae_gan | torchae | 3 | {iterations:,} of 48,000 | 100 |")
    assert torchae_row.endswith(f"| {record['commit'][:7]} |")
    assert f"| {record['verdict']['frechet_distance']:.2f} |" in torchae_row
    assert gan_section(tmp_path / "none") == []  # no records: no section
    refused = {
        "'dense' generates no digits": ["judge", "dense"],
        "NAME=PATH": ["judge", "--checkpoint", "gan"],
        "holds a CVAEGAN, not experiment 'gan'": ["gan-record", "gan", *record_args],
        "is not a file": ["gan-record", "gan", "--checkpoint", str(tmp_path / "none.ckpt"), "--seed", "0"],
    }
    for said, bad in refused.items():
        with pytest.raises(SystemExit):
            parity_main(bad)
        assert said in capsys.readouterr().err
