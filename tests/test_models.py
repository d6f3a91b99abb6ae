"""The Lightning modules on a plain Trainer (Lightning's public API alone): loss, one step, overfitting,
checkpoints, input checks, noise, the sparse penalty."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import AUTOENCODERS, batches_for, condition_for, inputs_for, quiet_trainer, step_inputs

import torchae
from torchae.autoencoder import AutoencoderModule
from torchae.data import TensorBatches
from torchae.registry import EXPERIMENTS

MODEL_NAMES = AUTOENCODERS  # part 5's GANs and the judge of digits: tests/test_gan.py, tests/test_judge.py
IMAGE_MODELS = [name for name in MODEL_NAMES if EXPERIMENTS[name].model.input_shape == (1, 28, 28)]


def make(name: str, **kwargs) -> AutoencoderModule:
    torch.manual_seed(0)
    return EXPERIMENTS[name].model(**kwargs)


def hand_bce(probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-mean(t log p + (1 - t) log(1 - p)), in float64, straight from the definition."""
    p, t = probabilities.double(), target.double()
    return -(t * p.log() + (1 - t) * (1 - p).log()).mean()


trainer = quiet_trainer


@pytest.mark.parametrize("name", ["dense", "deep", "conv"])
def test_loss_is_mean_binary_cross_entropy_over_pixels(name, test_images):
    model = make(name)
    x = test_images[:32]
    loss = model.loss_terms(x, "val")["loss"]
    torch.testing.assert_close(loss.double(), hand_bce(model(x), x), rtol=1e-5, atol=0)


def test_sparse_loss_adds_the_l1_penalty_divided_by_batch_size(test_images):
    model = make("sparse", l1=1e-3)
    x = test_images[:32]
    terms = model.loss_terms(x, "val")
    code = model.encode(x).double()
    penalty = 1e-3 * code.abs().sum() / 32
    torch.testing.assert_close(terms["l1_penalty"].double(), penalty, rtol=1e-5, atol=0)
    torch.testing.assert_close(terms["reconstruction_loss"].double(), hand_bce(model(x), x), rtol=1e-5, atol=0)
    torch.testing.assert_close(terms["loss"], terms["reconstruction_loss"] + terms["l1_penalty"])
    assert float(terms["l1_penalty"]) > 0


def test_denoising_loss_compares_the_denoised_noisy_input_with_the_clean_target(test_images):
    model = make("denoising")
    x = test_images[:32]
    model.draws.start("val", epoch=0)
    noisy = model.noisy(x, model.draws.normal("input_noise", x, "val"))
    model.draws.start("val", epoch=0)
    loss = model.loss_terms(x, "val")["loss"]
    torch.testing.assert_close(loss.double(), hand_bce(model(noisy), x), rtol=1e-5, atol=0)
    assert not torch.allclose(loss.double(), hand_bce(model(x), x), rtol=1e-3)


def test_noise_statistics_and_clipping():
    model = torchae.DenoisingAE(noise_mean=0.5, noise_std=0.5)
    zeros = torch.zeros(2000, 1, 28, 28)
    noisy = model.add_noise(zeros, torch.Generator().manual_seed(0))
    assert float(noisy.min()) == 0.0 and float(noisy.max()) == 1.0
    # clip(N(0.5, 0.5), 0, 1) of zeros: P(0) = P(1) = Phi(-1) = 0.1587, and the mean is 0.5 by symmetry
    assert abs(float((noisy == 0).float().mean()) - 0.1587) < 0.005
    assert abs(float((noisy == 1).float().mean()) - 0.1587) < 0.005
    assert abs(float(noisy.mean()) - 0.5) < 0.005
    unclipped = torchae.DenoisingAE(noise_mean=0.0, noise_std=0.1).add_noise(torch.full((2000, 1, 28, 28), 0.5))
    assert abs(float(unclipped.std()) - 0.1) < 0.002
    assert abs(float(unclipped.mean()) - 0.5) < 0.002


def test_noise_is_fresh_per_batch_seeded_per_epoch_and_stage(test_images):
    model = torchae.DenoisingAE(seed=3)
    x = test_images[:8]
    state = torch.get_rng_state()
    model.draws.start("train", epoch=0)
    first, second = model.corrupt(x, "train"), model.corrupt(x, "train")
    assert not torch.equal(first, second)
    model.draws.start("train", epoch=0)
    assert torch.equal(model.corrupt(x, "train"), first)
    model.draws.start("train", epoch=1)
    assert not torch.equal(model.corrupt(x, "train"), first)
    model.draws.start("val", epoch=0)
    assert not torch.equal(model.corrupt(x, "val"), first)
    assert torch.equal(torch.get_rng_state(), state)  # torch's global generator never moved
    assert torch.equal(torchae.DenseAE().corrupt(x, "train"), x)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_training_step_changes_weights_and_validation_does_not(name, test_images, tmp_path):
    model = make(name)
    test_images = inputs_for(type(model), test_images)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = batches_for(type(model), test_images, 16, False)
    trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(model, batches)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)  # every weight and bias moved
    after_fit = {k: v.clone() for k, v in model.state_dict().items()}
    trainer(tmp_path).validate(model, batches, verbose=False)
    assert all(torch.equal(v, after_fit[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_overfitting_one_batch_drives_the_loss_down(name, test_images):
    model = make(name, learning_rate=3e-3)
    x = step_inputs(type(model), inputs_for(type(model), test_images)[:16])
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = model.loss_terms(x, "train")["loss"]
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.6 * losses[0], losses[::10]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_checkpoint_round_trip_gives_identical_outputs(name, test_images, tmp_path):
    model = make(name)
    test_images = inputs_for(type(model), test_images)
    fit = trainer(tmp_path, limit_train_batches=2, limit_val_batches=1)
    kind = type(model)
    fit.fit(model, batches_for(kind, test_images, 16, True, seed=1), batches_for(kind, test_images, 64, False))
    path = tmp_path / "model.ckpt"
    fit.save_checkpoint(path)
    test_images = test_images[:32]  # enough to tell two models apart (conv's forward of 256 took 0.7 s)
    condition = condition_for(kind, len(test_images))
    for loaded in (type(model).load_from_checkpoint(path, weights_only=True), torchae.load_checkpoint(path)):
        assert type(loaded) is type(model)
        assert loaded.hparams == model.hparams
        model.eval(), loaded.eval()
        with torch.no_grad():
            assert torch.equal(loaded(test_images, *condition), model(test_images, *condition))
            assert torch.equal(loaded.encode(test_images, *condition), model.encode(test_images, *condition))


def test_checkpoint_of_another_model_is_refused_with_a_clear_error(test_images, tmp_path):
    model = make("conv")
    fit = trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)
    fit.fit(model, TensorBatches(test_images, 16, False))
    fit.save_checkpoint(tmp_path / "conv.ckpt")
    with pytest.raises(torchae.CheckpointError, match="holds a ConvAE, not a DenseAE"):
        torchae.DenseAE.load_from_checkpoint(tmp_path / "conv.ckpt", weights_only=True)


def test_hyperparameters_reach_the_optimizer_and_are_saved():
    model = torchae.SparseAE(l1=2e-5, learning_rate=5e-4, epsilon=1e-6)
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torchae.KerasAdam)
    assert optimizer.param_groups[0]["lr"] == 5e-4 and optimizer.param_groups[0]["eps"] == 1e-6
    assert dict(model.hparams) == {"code_dim": 16, "l1": 2e-5, "learning_rate": 5e-4, "epsilon": 1e-6}


@pytest.mark.parametrize("bad_value", [0.0, -1e-3, float("nan")])
def test_bad_hyperparameters_are_refused(bad_value):
    with pytest.raises(ValueError, match="model.learning_rate must be a positive number"):
        torchae.DenseAE(learning_rate=bad_value)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(4, 28, 28), r"shape \(4, 28, 28\) \(rank 3\), expected .*\(N, 1, 28, 28\)"),
        (torch.rand(4, 28, 28, 1), r"NHWC, use x.permute\(0, 3, 1, 2\)"),
        (torch.rand(4, 1, 32, 32), r"shape \(4, 1, 32, 32\)"),
        ((torch.rand(4, 1, 28, 28) * 255).to(torch.uint8), r"dtype torch.uint8.*x.float\(\) / 255"),
        (torch.full((2, 1, 28, 28), float("nan")), r"NaN or infinite"),
        (torch.full((2, 1, 28, 28), float("inf")), r"NaN or infinite"),
        ([[0.0]], r"model input is a list"),
    ],
)
@pytest.mark.parametrize("name", IMAGE_MODELS)  # the points models': test_manifolds.py
def test_bad_model_input_names_the_expected_shape(name, x, message):
    model = make(name)
    value_check = message == "NaN or infinite"  # encode/decode read the values; a traceable forward does not
    condition = condition_for(type(model), len(x))  # good labels beside the bad images (the CVAE)
    for call in (model.encode,) if value_check else (model, model.encode):
        with pytest.raises(ValueError, match=message):
            call(x, *condition)


def test_forward_checks_values_as_encode_does_and_shapes_only_under_a_tracer():
    """forward refuses what encode refuses; under a tracer (torch.export, ONNX), which cannot read values, it checks
    shapes only: NaN goes through the exported graph."""
    model, nan = make("dense"), torch.full((2, 1, 28, 28), float("nan"))
    with pytest.raises(torchae.InputError, match="NaN"):
        model(nan)
    exported = torch.export.export(model.eval(), (torch.rand(2, 1, 28, 28),))
    assert torch.isnan(exported.module()(nan)).all()


def test_bad_code_is_refused_with_the_expected_shape():
    with pytest.raises(ValueError, match=r"shape \(3, 16\), expected a float tensor of shape \(N, 49\)"):
        make("dense").decode(torch.rand(3, 16))
    with pytest.raises(ValueError, match=r"expected a float tensor of shape \(N, 1, 7, 7\)"):
        make("conv").decode(torch.rand(3, 49))


def test_keras_adam_follows_keras_update_rule():
    """Reference: Keras 3's Adam, written out (epsilon on the uncorrected sqrt(v))."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 1e-4, 0.0], dtype=torch.float64))
    optimizer = torchae.KerasAdam([w], lr=1e-2, eps=1e-3)
    ref, m, v = w.detach().clone(), torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    for t in range(1, 6):
        grad = torch.tensor([0.3, -1.0, 1e-6, 0.0], dtype=torch.float64) * t
        w.grad = grad.clone()
        optimizer.step()
        m = m + (grad - m) * 0.1
        v = v + (grad * grad - v) * 0.001
        alpha = 1e-2 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        ref = ref - alpha * m / (v.sqrt() + 1e-3)
        torch.testing.assert_close(w.detach(), ref, rtol=1e-12, atol=1e-15)
    plain = torch.nn.Parameter(torch.tensor([1e-4], dtype=torch.float64))
    torch_adam = torch.optim.Adam([plain], lr=1e-2, eps=1e-3)
    plain.grad = torch.tensor([1e-6], dtype=torch.float64)
    torch_adam.step()
    # PyTorch's own placement differs: the check above would fail for plain torch.optim.Adam
    assert abs(float(plain) - (1e-4 - 1e-2 * 1e-6 / (1e-6 + 1e-3 / math.sqrt(1e-3)))) > 1e-9


def test_keras_adam_keeps_a_channels_last_weight_channels_last_and_updates_it_as_a_contiguous_one():
    """The flat buffers hold each parameter with its own layout: a convolution weight stored channels-last stays so
    (the engine's cpu_channels_last), and its update is the contiguous weight's, element for element."""
    torch.manual_seed(0)
    start, gradient = torch.randn(8, 3, 5, 5), torch.randn(8, 3, 5, 5)
    weights = []
    for layout in (torch.contiguous_format, torch.channels_last):
        w = torch.nn.Parameter(start.clone().contiguous(memory_format=layout))
        optimizer = torchae.KerasAdam([w, torch.nn.Parameter(torch.ones(7))], lr=1e-2)
        for _ in range(2):
            w.grad = gradient.clone()
            optimizer.step()
        assert w.is_contiguous(memory_format=layout) and w.grad.is_contiguous(memory_format=layout)
        weights.append(w.detach().clone())
    assert not weights[1].is_contiguous()  # the channels-last one really is laid out otherwise
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], start)


def test_keras_adam_step_count_survives_state_dict_round_trip():
    w = torch.nn.Parameter(torch.ones(3))
    optimizer = torchae.KerasAdam([w])
    for _ in range(3):
        w.grad = torch.ones(3)
        optimizer.step()
    restored = torchae.KerasAdam([w])
    restored.load_state_dict(optimizer.state_dict())
    assert restored.param_groups[0]["step"] == 3


def test_denoising_starts_from_a_trained_checkpoint(test_images, tmp_path):
    dense = make("dense")
    fit = trainer(tmp_path, limit_train_batches=2, limit_val_batches=0)
    fit.fit(dense, TensorBatches(test_images, 16, False))
    fit.save_checkpoint(tmp_path / "dense.ckpt")
    denoising = torchae.DenoisingAE(init_from=str(tmp_path / "dense.ckpt"))
    assert not torch.equal(denoising.encoder[1].weight, dense.encoder[1].weight)
    denoising.setup("fit")
    for (key, value), (_, expected) in zip(denoising.net.state_dict().items(), dense.net.state_dict().items()):
        assert torch.equal(value, expected), key
    mismatched = torchae.DenoisingAE(architecture="deep", init_from=str(tmp_path / "dense.ckpt"))
    with pytest.raises(torchae.CheckpointError, match="holds another network"):
        mismatched.setup("fit")


def test_keras_adam_flushes_denormal_moments_on_the_cpu():
    from torchae.optim import FLUSH_DENORMALS_EVERY

    tiny = torch.finfo(torch.float32).tiny
    w = torch.nn.Parameter(torch.ones(3))
    optimizer = torchae.KerasAdam([w])
    w.grad = torch.tensor([1.2e-37, 1.0, 1e-20])
    optimizer.step()  # m = 0.1 * grad: 1.2e-38 is just above the smallest normal float
    m = optimizer.state[w]["exp_avg"]
    assert float(m[0]) >= tiny
    w.grad = torch.tensor([0.0, 1.0, 0.0])
    optimizer.step()
    assert 0 < float(m[0]) < tiny  # decayed into the denormal range...
    for _ in range(FLUSH_DENORMALS_EVERY - 3):
        optimizer.step()
    assert optimizer.param_groups[0]["step"] == FLUSH_DENORMALS_EVERY - 1
    assert 0 < float(m[0]) < tiny  # ...and still there without a flush (0.9**14 of it)
    optimizer.step()  # step 16: flushed
    assert float(m[0]) == 0.0
    assert float(m[2]) > 0 and float(m[1]) > 0  # normal values are kept


@pytest.mark.parametrize(("step", "steps", "flushed"), [(16, 1, True), (17, 1, False), (19, 4, True), (20, 4, False)])
def test_keras_adam_flushes_after_an_update_of_several_steps_that_passed_a_flush_step(step, steps, flushed):
    """Compiled steps update outside ``step`` and then flush; an update of several steps flushes when one of them
    was a flush step (16 within 16..19, none within 17..20)."""
    from torchae.optim import FLUSH_DENORMALS_EVERY

    assert FLUSH_DENORMALS_EVERY == 16
    w = torch.nn.Parameter(torch.ones(2))
    optimizer = torchae.KerasAdam([w])
    ((group, flat),) = optimizer.flat_groups()
    flat.moments[:2] = torch.tensor([1e-39, 1.0])  # the buffer is padded past the parameter
    group["step"] = step
    torchae.KerasAdam.flush_denormals(flat, group, steps=steps)
    assert (float(flat.moments[0]) == 0.0) == flushed and float(flat.moments[1]) == 1.0
