"""Part 6's CVAE-GAN: the article's networks, losses, three optimizers and loop, trained and used through the CLI."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from helpers import ROOT, fit_resume_and_predict

import torchae
from torchae.export import export_model
from torchae.part3.vae import LatentDistribution
from torchae.part5.gan import AlternatingSchedule
from torchae.part6.cvae_gan import cvae_gan_terms

CONFIG = str(ROOT / "configs" / "cvae_gan.yaml")


def article_loop(losses: list[float], iterations: int, nb_step: int = 3) -> list[tuple[str, int]]:
    """Part 6's training loop, transcribed: which side each step trains and the index of the batch it takes
    (``losses`` are the ``L_GAN`` the steps report, in order)."""
    reported, steps, batches = iter(losses), [], itertools.count()
    for _ in range(iterations):
        for _ in range(nb_step):
            batch = next(batches)
            steps.append(("discriminator", batch))
            if next(reported) < 1.0:
                break
        for _ in range(nb_step):
            steps.append(("generator", batch))
            if next(reported) > 0.4:
                break
            batch = next(batches)
    return steps


def scheduled(losses: list[float], batches: int) -> tuple[list[tuple[str, int]], int]:
    """The steps :class:`CVAEGAN`'s schedule makes over ``batches`` batches (as its ``training_step`` asks it)."""
    schedule, reported, steps = AlternatingSchedule(inner_steps=3, hands_on_batch=True), iter(losses), []
    for index in range(batches):
        network = schedule.next_network()
        if network is None:
            continue
        steps.append((network, index))
        schedule.record(next(reported))
        if network == "discriminator" and schedule.hands_on():
            steps.append(("generator", index))
            schedule.record(next(reported))
    return steps, schedule.iterations


def test_the_schedule_is_part_6s_loop_batch_for_batch():
    """Part 6's loop: the first encoder-and-decoder step takes the discriminator's last batch; 3 steps a side;
    after 3 encoder-and-decoder steps without a stop the article fetches a batch that it does not use."""
    pattern = [1.5, 1.2, 0.9, 0.3, 0.2, 0.5]  # 3 and 3 (stopped at the third)
    pattern += [1.1] * 3 + [0.1] * 3  # 3 and 3 without a stop: one batch left unused
    pattern += [0.8, 0.45]  # 1 and 1
    losses = pattern * 3
    expected = article_loop(losses, iterations=9)
    got, iterations = scheduled(losses, expected[-1][1] + 1)
    assert got == expected and iterations == 9
    shared = [i for i in range(1, len(expected)) if expected[i][1] == expected[i - 1][1]]
    assert len(shared) == 9  # one batch shared by both sides in every iteration


def test_the_losses_are_the_articles():
    """Each term against the article's formulas, by hand in numpy: sums over the batch divided by 28 * 28."""
    rng = np.random.default_rng(0)
    mean, log_var = rng.normal(size=(4, 8)), rng.normal(scale=3, size=(4, 8))
    real, reconstructed, generated = (rng.uniform(0.01, 0.99, size=(4, 1)) for _ in range(3))
    real_l, reconstructed_l = rng.normal(size=(4, 16, 4, 4)), rng.normal(size=(4, 16, 4, 4))
    t = {k: torch.from_numpy(v) for k, v in locals().items() if isinstance(v, np.ndarray)}
    terms = cvae_gan_terms(
        LatentDistribution(t["mean"], t["log_var"]),
        (t["real"], t["real_l"]),
        (t["reconstructed"], t["reconstructed_l"]),
        t["generated"],
        gamma=2.0,
    )
    clipped = np.clip(log_var, -2, 2)
    prior = -0.5 * np.sum(1 + clipped - mean**2 - np.exp(clipped)) / 784
    gan = -np.sum(np.log(real + 1e-10) + 2 * np.log(1 - generated + 1e-10) + np.log(1 - reconstructed + 1e-10))
    gan = gan / 4 / 784
    labels = 1 / (1 + np.exp(-real_l))
    llike = np.sum(np.maximum(reconstructed_l, 0) - reconstructed_l * labels + np.log1p(np.exp(-abs(reconstructed_l))))
    llike = llike / 784
    expected = {"loss": gan, "prior_loss": prior, "llike_loss": llike}
    expected |= {"encoder_loss": prior + llike, "decoder_loss": 2.0 * llike - gan}
    for name, value in expected.items():
        assert float(terms[name]) == pytest.approx(value, rel=1e-9), name


def test_the_networks_their_outputs_and_what_a_user_calls():
    model = torchae.CVAEGAN().eval()
    counts = [sum(p.numel() for p in net.parameters()) for net in (model.encoder, model.decoder, model.discriminator)]
    assert (*counts, sum(counts)) == torchae.EXPERIMENTS["cvae_gan"].parameters
    samples = model.sample(5, 3)
    assert samples.shape == (5, 1, 28, 28) and 0 <= float(samples.min()) and float(samples.max()) <= 1
    verdict, features = model.discriminator(samples, torch.arange(5))
    assert verdict.shape == (5, 1) and features.shape == (5, 16, 4, 4)
    codes = model.encode(samples, 3)
    assert codes.shape == (5, 8)
    torch.testing.assert_close(model.decode(codes, 3), model(samples, torch.full((5,), 3)))
    written = model.style_transfer(samples, 3, 8)
    torch.testing.assert_close(written, model.decode(codes, 8))
    assert not torch.allclose(written, model.decode(codes, 3))  # the label changes the digit


def test_the_sample_is_clipped_as_written():
    """``z_mean + exp(clip(z_log_var / 2, -2, 2)) * eps``: a log variance of 10 gives a deviation of e^2."""
    model = torchae.CVAEGAN().train()
    captured = {}
    decoder = model.decoder.forward

    def capture(codes, labels):
        captured.setdefault("codes", codes)
        return decoder(codes, labels)

    model.decoder.forward = capture
    images, labels = torch.rand(3, 1, 28, 28), torch.arange(3)
    mean, log_var = torch.zeros(3, 8), torch.full((3, 8), 10.0)
    model.encoder.distribution = lambda *_: LatentDistribution(mean, log_var)
    noise = torch.randn(3, 8)
    model.latent_noise = lambda like, stage: noise
    model.step_terms((images, labels), torch.zeros(3, 8), "train")
    torch.testing.assert_close(captured["codes"], noise * math.exp(2.0))


def test_frames_come_at_the_articles_periods():
    """Every 3 outer iterations up to 300 (periods 0-99), then every 30 up to 2970; none after (its last period
    is 990): 190 frames."""
    model = torchae.CVAEGAN()
    numbers = []
    for done in range(1, 48001):
        model.schedule.iterations, model._ended_iteration = done, True
        frame = model.frame_after_batch()
        if frame is not None:
            numbers.append(frame)
    assert numbers[:3] == [0, 3, 6] and 297 in numbers and 300 in numbers and 303 not in numbers
    assert len(numbers) == 190 and numbers[-1] == 2970


def test_a_short_fit_draws_predicts_and_exports(tmp_path):
    """Through the CLI on a subset: the figures, predictions of codes, reconstructions and samples, the decoder
    exported."""
    # Resuming is part 5's (ArticleLoop and the draws, tests/test_gan.py): a batch never ends between the two steps
    # part 6's loop makes on one batch, so the schedule's state is the same kind.
    run, uninterrupted, arrays = fit_resume_and_predict(CONFIG, tmp_path, train_size=128, val_size=64, resume=False)
    drawn = {p.name for p in run.iterdir()}
    assert {"generated_digits.png", "label_manifolds.png", "style_transfer.png", "beside_cvae.png"} <= drawn
    assert (run / "label_manifolds.gif").stat().st_size > 10_000
    assert uninterrupted.schedule.iterations > 0
    assert arrays["samples"].shape == (64, 1, 28, 28) and arrays["codes"].shape == (64, 8)
    assert arrays["reconstructions"].shape == (64, 1, 28, 28) and arrays["labels"].shape == (64,)
    assert export_model(uninterrupted, tmp_path / "decoder.onnx", "onnx", "decoder") <= 1e-5  # every part: test_use
