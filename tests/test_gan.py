"""Part 5's GAN and CGAN: the article's networks, losses, optimizer and loop, trained and used through the CLI."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from helpers import QUIET, ROOT, fit_resume_and_predict

import torchae
from torchae.cli import main
from torchae.export import export_model
from torchae.optim import TFRMSProp
from torchae.part5.gan import AlternatingSchedule, adversarial_terms

CONFIG = str(ROOT / "configs" / "cgan.yaml")


def article_loop(losses: list[float], iterations: int, k_step: int = 5) -> list[tuple[str, int]]:
    """The article's training loop, transcribed: which network each step trains and the index of the batch it takes
    (batches are fetched in order; ``losses`` are the discriminator losses the steps report, in order)."""
    reported, steps, batches = iter(losses), [], itertools.count()
    for _ in range(iterations):
        batch = next(batches)
        for _ in range(k_step):
            steps.append(("discriminator", batch))
            l_d = next(reported)
            batch = next(batches)
            if l_d < 1.0:
                break
        for _ in range(k_step):
            steps.append(("generator", batch))
            l_d = next(reported)
            if l_d > 0.4:
                break
            batch = next(batches)
    return steps


def scheduled(losses: list[float], batches: int) -> tuple[list[tuple[str, int]], int]:
    """The steps :class:`AlternatingSchedule` makes over ``batches`` batches, and its outer iterations."""
    schedule, reported, steps = AlternatingSchedule(), iter(losses), []
    for index in range(batches):
        network = schedule.next_network()
        if network is not None:
            steps.append((network, index))
            schedule.record(next(reported))
    return steps, schedule.iterations


def test_the_schedule_is_the_articles_loop_batch_for_batch():
    """Over losses that stop each inner loop early, late, and never (5 steps, after which the article fetches a
    batch it does not use), the schedule trains the same network on the same batch at every step."""
    pattern = [1.5, 1.2, 0.9, 0.3, 0.2, 0.5]  # 3 discriminator steps, then 3 generator steps
    pattern += [1.1] * 5 + [0.1] * 5  # 5 and 5: no stop, one batch left unused
    pattern += [0.8, 0.45]  # 1 and 1
    losses = pattern * 3
    expected = article_loop(losses, iterations=9)
    batches = expected[-1][1] + 1
    got, iterations = scheduled(losses, batches)
    assert got == expected and iterations == 9
    unused = set(range(batches)) - {batch for _, batch in expected}
    assert len(unused) == 3  # one per 5-and-5 iteration


def test_the_schedule_travels_in_a_checkpoint():
    schedule = AlternatingSchedule()
    for loss in (1.5, 0.5, 0.2):
        schedule.record(loss)
    restored = AlternatingSchedule()
    restored.load_state_dict(schedule.state_dict())
    assert (
        restored.state_dict()
        == schedule.state_dict()
        == {
            "network": "generator",
            "steps": 1,
            "iterations": 0,
            "skip": False,
        }
    )


def test_the_losses_are_the_articles_with_its_epsilon():
    real, fake = torch.tensor([[0.9], [1.0]]), torch.tensor([[0.2], [1.0]])
    terms = adversarial_terms(real, fake)
    log_dis_img = (-math.log(0.9 + 1e-10) - math.log(1.0 + 1e-10)) / 2
    log_dis_gen = (-math.log(0.8 + 1e-10) - math.log(1e-10)) / 2  # D(G(z)) = 1: the epsilon keeps it finite
    assert float(terms["loss"]) == pytest.approx(0.5 * (log_dis_gen + log_dis_img), rel=1e-6)
    assert float(terms["generator_loss"]) == pytest.approx(-log_dis_gen, rel=1e-6)


def test_rmsprop_is_tensorflow_1s():
    """The accumulator starts at ones and epsilon sits under the root: two steps by hand."""
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = TFRMSProp([weight], lr=0.01)
    mean_square, expected = torch.ones(2), torch.tensor([1.0, -2.0])
    for gradient in (torch.tensor([0.5, 0.1]), torch.tensor([-0.3, 0.2])):
        weight.grad = gradient.clone()
        optimizer.step()
        mean_square = mean_square + (gradient * gradient - mean_square) * 0.1
        expected = expected - 0.01 * gradient / torch.sqrt(mean_square + 1e-10)
        torch.testing.assert_close(weight.detach(), expected, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="lr > 0"):
        TFRMSProp([weight], lr=0.0)


@pytest.mark.parametrize("model_class", [torchae.GAN, torchae.CGAN])
def test_the_networks_and_their_outputs(model_class):
    model = model_class().eval()
    experiment = torchae.EXPERIMENTS["cgan" if model.conditional else "gan"]
    counts = [sum(p.numel() for p in net.parameters()) for net in (model.generator, model.discriminator)]
    assert (*counts, sum(counts)) == experiment.parameters
    samples = model.sample(5, 3) if model.conditional else model.sample(5)
    assert samples.shape == (5, 1, 28, 28) and 0 <= float(samples.min()) and float(samples.max()) <= 1
    labels = torch.arange(5) if model.conditional else None
    verdict = model.discriminator(samples, labels)
    assert verdict.shape == (5, 1) and bool(((verdict > 0) & (verdict < 1)).all())


def test_frames_come_at_the_articles_periods():
    """Every 20 outer iterations up to 2000 (its periods 0-99), then every 200: 115 frames in 5000 iterations."""
    model = torchae.CGAN()
    frames = []
    for done in range(1, 5001):
        model.schedule.iterations, model._ended_iteration = done, True
        frames.append(model.frame_after_batch())
    numbers = [n for n in frames if n is not None]
    assert numbers[:3] == [0, 20, 40] and 1980 in numbers and 2020 not in numbers and 2200 in numbers
    assert len(numbers) == 115 and numbers[-1] == 4800
    model._ended_iteration = False
    assert model.frame_after_batch() is None


def test_the_model_stops_the_fit_after_its_iterations(tmp_path):
    """A fit ends when the article's outer iterations are done, before Lightning's limits."""
    args = ["fit", "--config", CONFIG, *QUIET, "--model.iterations", "3", "--trainer.default_root_dir", str(tmp_path)]
    args += ["--data.init_args.train_size", "2048", "--data.init_args.val_size", "64", "--figures.enabled", "false"]
    args += ["--data.init_args.batch_size", "64"]  # the loop's steps, not their size, are what this counts
    main(args)
    checkpoint = torch.load(next((tmp_path / "version_0").rglob("last.ckpt")), weights_only=True)
    assert checkpoint["torchae_schedule"]["iterations"] == 3
    assert checkpoint["global_step"] <= 3 * 10 and checkpoint["epoch"] == 0


def test_a_short_cgan_fit_draws_predicts_exports_and_resumes_exactly(tmp_path):
    """Through the CLI on a subset: the figures of the CGAN (each digit's manifold, generated digits), predictions
    of codes and samples, the generator exported; a run resumed from its first epoch's checkpoint ends at the
    uninterrupted run's weights (its draws and its place in the loop travel in the checkpoint)."""
    run, uninterrupted, arrays = fit_resume_and_predict(CONFIG, tmp_path, train_size=256, val_size=128)
    assert {"label_manifolds.png", "generated_digits.png", "history.csv"} <= {p.name for p in run.iterdir()}
    # the article's frames: after outer iteration 0, and every 20th (none more in a run this short)
    assert [frame.name for frame in (run / "animation").iterdir()] == ["epoch_0000.npz"]
    assert (run / "label_manifolds.gif").stat().st_size > 10_000
    assert arrays["samples"].shape == (128, 1, 28, 28) and arrays["codes"].shape == (128, 2)
    assert arrays["labels"].shape == (128,) and 0 <= arrays["samples"].min() and arrays["samples"].max() <= 1
    assert export_model(uninterrupted, tmp_path / "generator.onnx", "onnx", "generator") <= 1e-5
