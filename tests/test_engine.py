"""The engine: every technique gives the steps plain Lightning runs, random draws included, and leaves the model as
it was. Speed itself is measured by benchmarks/bench.py (ratios side by side), not asserted here."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from helpers import AUTOENCODERS, CONFIGS, CountingAE, NoisyLatentAE, TinyGAN, TwoOptimizerAE, quick_data, quiet_trainer
from torch import nn

import torchae
import torchae.engine
from torchae.cli import AutoencoderCLI
from torchae.data import MNISTDataModule, TensorBatches
from torchae.engine import CompiledSteps, Engine, StepRunner, draws_from_streams, draws_random_numbers
from torchae.engine import graphs as graphs_module
from torchae.engine.lightning_compat import counted_step
from torchae.engine.threads import CpuThreads
from torchae.errors import ConfigError
from torchae.registry import EXPERIMENTS


def train(
    name: str | type,
    tmp_path,
    engine: Engine | None,
    epochs: int = 2,
    sizes=(160, 64),
    batch_size=16,
    steps_per_execution=4,
    **trainer,
):
    """Train experiment ``name`` (or model class) from seed 0 on a subset; returns the model and its trainer."""
    pl.seed_everything(0, verbose=False)
    model = EXPERIMENTS[name].model() if isinstance(name, str) else name()
    data = data_for(model)(
        batch_size=batch_size, train_size=sizes[0], val_size=sizes[1], seed=0, steps_per_execution=steps_per_execution
    )
    callbacks = [engine] if engine is not None else []
    fit = quiet_trainer(tmp_path, max_epochs=epochs, callbacks=callbacks + trainer.pop("callbacks", []), **trainer)
    fit.fit(model, datamodule=data)
    return model, fit


def data_for(model: pl.LightningModule) -> type[MNISTDataModule]:
    """The MNIST datamodule ``model`` trains on (the CVAE's serves labels too)."""
    declared = getattr(model, "datamodule", None)
    return declared if isinstance(declared, type) and issubclass(declared, MNISTDataModule) else MNISTDataModule


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (key, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), key


def assert_close_models(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Equal weights up to the float rounding that summing in another order leaves after a few dozen steps."""
    for (key, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=key)


@pytest.fixture
def said(monkeypatch) -> list[str]:
    """The engine's info lines."""
    lines: list[str] = []
    monkeypatch.setattr(torchae.engine, "rank_zero_info", lines.append)
    return lines


# ---------------------------------------------------------------- the plain path and the contract
@pytest.mark.parametrize("name", ["dense", "denoising", "sparse"])
def test_step_groups_and_the_engine_give_lightnings_plain_steps_bitwise(name, tmp_path):
    """Plain batches with the model's own steps (Lightning's public API alone), step groups served by the data with
    the model's own steps, and step groups run by the engine's direct steps: the same weights, metrics and optimizer
    step count, bit for bit."""
    plain, plain_fit = train(name, tmp_path, None, steps_per_execution=1)
    grouped, grouped_fit = train(name, tmp_path, None)
    fast, fast_fit = train(name, tmp_path, Engine())
    assert fast_fit.global_step == grouped_fit.global_step == plain_fit.global_step == 2 * 10
    for model, fit in ((grouped, grouped_fit), (fast, fast_fit)):
        assert_same_weights(model, plain)
        for key in ("train_loss", "val_loss"):
            torch.testing.assert_close(fit.callback_metrics[key], plain_fit.callback_metrics[key], rtol=1e-6, atol=0)


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_config_ends_at_the_val_loss_of_a_plain_trainer(config, tmp_path):
    """``torchae fit --config X`` (its engine: compiled steps, or micro-batches) and a plain ``pl.Trainer`` over the
    same model, data and seed, without the engine, end at the same val_loss. The compiled steps are traced without
    inductor's code generation here (seconds per config less); inductor's step is held to Keras's, one step of
    each compiled config, by the parity suite (tests/test_parity.py::test_step_parity)."""
    # Two epochs where the engine runs the base's step (an epoch's end, then a new one); one where it runs nothing.
    epochs = 2 if issubclass(EXPERIMENTS[config.stem].model, torchae.AutoencoderModule) else 1
    args = ["--config", str(config), "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(tmp_path)]
    args += ["--engine.compile_backend", "aot_eager"]
    # A config that trains on full batches only (the GANs') gets one; the others 128 images.
    train = EXPERIMENTS[config.stem].batch_size if "drop_last: true" in config.read_text() else 128
    args += [*quick_data(config.stem, train, 64), "--trainer.enable_progress_bar", "false"]
    args += ["--figures.enabled", "false", "--trainer.logger", "false", "--checkpoint.save_last", "false"]
    cli = AutoencoderCLI(args=args, run=False)
    engine = next(callback for callback in cli.trainer.callbacks if isinstance(callback, Engine))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert not engine.turned_off
    if isinstance(cli.model, torchae.AutoencoderModule):
        assert engine.runner is not None and (engine.runner.compiled is not None) == engine.compiled_steps
    else:  # a step of its own (the GANs', the judge's): run as written
        assert engine.runner is None

    # The same model and data, built from the same config and seed; torch's generator is where the CLI's was when
    # its fit began (after the model's initialisation), so a model that draws in its step draws the same numbers.
    plain = AutoencoderCLI(args=args, run=False)
    trainer = quiet_trainer(tmp_path / "plain", max_epochs=epochs)
    trainer.fit(plain.model, datamodule=plain.datamodule)
    fast, slow = cli.trainer.callback_metrics["val_loss"], trainer.callback_metrics["val_loss"]
    assert cli.trainer.global_step == trainer.global_step > 0
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=0)


def test_the_engine_puts_the_model_back_after_fitting(tmp_path):
    seen = {}

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["runner"] = "training_step" in vars(pl_module)

    engine = Engine(cpu_micro_batch_size=8)
    model, _ = train("conv", tmp_path, engine, epochs=1, sizes=(64, 32), callbacks=[Spy()])
    assert seen["runner"] and engine.runner.cpu_micro_batch_size == 8
    assert "training_step" not in vars(model) and "validation_step" not in vars(model)


def test_grouped_batches_are_the_plain_batches():
    images = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1)
    plain = TensorBatches(images, 4, shuffle=True, seed=2)
    grouped = TensorBatches(images, 4, shuffle=True, seed=2, steps_per_execution=5)
    flattened = [batch for group in grouped for batch in group]
    assert len(flattened) == 13 and all(torch.equal(a, b) for a, b in zip(flattened, plain))


def test_on_several_devices_the_data_serves_plain_batches_and_says_so(monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(torchae.data.batches, "rank_zero_info", lines.append)
    data = MNISTDataModule(batch_size=16, train_size=64, val_size=32, steps_per_execution=4)
    data.setup("fit")
    for rank in (0, 1):
        trainer = SimpleNamespace(global_rank=rank, world_size=2, strategy=SimpleNamespace(root_device="cpu"))
        data.trainer = trainer
        loader = data.train_dataloader()
        assert loader.steps_per_execution == 1 and len(loader) == 2
    assert len(lines) == 1 and "data.steps_per_execution 4 is off on 2 devices" in lines[0]


def test_settings_the_engine_cannot_honour_are_refused():
    with pytest.raises(ConfigError, match="compile_mode must be one of"):
        Engine(compile_mode="fast")
    with pytest.raises(ConfigError, match="engine.compiled_steps_per_call must be a positive integer"):
        Engine(compiled_steps=True, compiled_steps_per_call=0)
    with pytest.raises(ConfigError, match="graph_warmup_steps must be a positive integer"):
        Engine(graph_warmup_steps=0)
    for other in ({"cpu_micro_batch_size": 8}, {"cuda_graphs": True}, {"cpu_channels_last": "auto"}):
        with pytest.raises(ConfigError, match="engine.cpu_micro_batch_size and engine.cpu_channels_last: turn those"):
            Engine(compiled_steps=True, **other)  # a compiled step reads the weights as contiguous slices
    with pytest.raises(ConfigError, match="data.steps_per_execution must be a positive integer"):
        MNISTDataModule(steps_per_execution=0)


def test_an_engine_from_a_config_has_its_settings(tmp_path):
    engine = Engine.from_config(CONFIGS / "denoising.yaml", compile_backend="aot_eager")
    assert (engine.compiled_steps, engine.compiled_steps_per_call, engine.compile_backend) == (True, 8, "aot_eager")


# ---------------------------------------------------------------- the randomness contract
def test_the_probe_finds_draws_inside_a_step_and_changes_nothing():
    """Of the experiments, the VAE and the CVAE draw inside their step (dropout, a latent sample), from their own
    streams, and none from torch's global generator (the denoising noise is drawn by corrupt, outside the step). A
    model with ``nn.Dropout`` and ``torch.randn`` draws from the global one. The probe leaves the generator, the mode
    and BatchNorm's statistics as they were."""
    models = {name: EXPERIMENTS[name].model() for name in AUTOENCODERS}
    assert {name for name, model in models.items() if draws_random_numbers(model)} == set()
    assert {name for name, model in models.items() if draws_from_streams(model)} == {"vae", "cvae"}
    noisy = NoisyLatentAE()
    assert draws_random_numbers(noisy)
    noisy.net.encoder.append(nn.BatchNorm1d(8))
    noisy.train()
    state, buffers = torch.get_rng_state(), {k: v.clone() for k, v in noisy.named_buffers()}
    assert draws_random_numbers(noisy)
    assert torch.equal(torch.get_rng_state(), state) and noisy.training
    assert all(torch.equal(v, buffers[k]) for k, v in noisy.named_buffers())
    assert int(noisy.net.encoder[-1].num_batches_tracked) == 0


@pytest.mark.parametrize(
    "settings",
    [{"compiled_steps": True, "compile_backend": "aot_eager"}, {"cpu_micro_batch_size": 8}],
    ids=["compiled-steps", "micro-batches"],
)
def test_a_model_that_draws_inside_its_step_runs_as_written_with_one_line(settings, tmp_path, said):
    """A model with dropout and a latent sample: a compiled step or parts of a batch would draw other numbers than
    the plain step, so the engine turns that technique off, says so once, and the run gives plain Lightning's
    weights bit for bit."""
    plain, plain_fit = train(NoisyLatentAE, tmp_path, None)
    engine = Engine(**settings)
    fast, fast_fit = train(NoisyLatentAE, tmp_path, engine)
    option = next(iter(settings))
    assert list(engine.turned_off) == [option] and engine.runner.compiled is None
    assert engine.runner.cpu_micro_batch_size is None
    assert [line for line in said if option in line] == [
        f"torchae: engine.{option} is off for this run: {engine.turned_off[option]}"
    ]
    assert "NoisyLatentAE draws" in said[0] and ("global generator" in said[0]) == (option == "compiled_steps")
    assert_same_weights(fast, plain)
    assert fast_fit.callback_metrics["val_loss"] == plain_fit.callback_metrics["val_loss"]


@pytest.mark.parametrize("model_class", [CountingAE, TwoOptimizerAE, TinyGAN])
def test_the_engine_runs_a_step_the_user_wrote_as_written(model_class, tmp_path, said):
    """A subclass that writes its own training_step, one with two optimizers on the autoencoder base, and a plain
    LightningModule GAN: each step they wrote runs (counted), under every engine option, the weights are plain
    Lightning's, and one line names the options that did not apply."""
    settings = {"compiled_steps": True, "compile_backend": "aot_eager", "cpu_threads": 1}
    CountingAE.calls = 0
    plain, _ = train(model_class, tmp_path, None, epochs=1)
    plain_calls = CountingAE.calls
    engine = Engine(**settings)
    fast, fit = train(model_class, tmp_path / "engine", engine, epochs=1)
    assert engine.runner is None and fit.global_step > 0
    if model_class is CountingAE:
        assert CountingAE.calls == 2 * plain_calls > 0
    else:
        assert fast.steps == plain.steps > 0
    assert_same_weights(fast, plain)
    assert len(said) == 1 and "runs as written, without engine.direct_steps, engine.compiled_steps (the" in said[0]
    assert model_class.__name__ in said[0]


def test_a_model_on_the_base_step_with_default_options_says_nothing(tmp_path, said):
    """The base's own step runs through the engine, with no line: nothing was left out."""
    engine = Engine()
    train("dense", tmp_path, engine, epochs=1, sizes=(64, 32))
    assert engine.runner is not None and engine.runner.direct and said == []


def test_the_denoising_noise_is_the_plain_runs_under_compiled_steps(tmp_path, said):
    """The denoising model draws its noise in corrupt, eagerly, from its own stream: compiled steps (several per
    call) train as plain Lightning does, to float tolerance."""
    plain, plain_fit = train("denoising", tmp_path, None, sizes=(168, 72))
    engine = Engine(compiled_steps=True, compiled_steps_per_call=4, compile_backend="aot_eager")
    compiled, compiled_fit = train("denoising", tmp_path, engine, sizes=(168, 72))
    assert engine.runner.compiled is not None
    assert said == [  # the compiler's wait is said; nothing was left out
        "torchae: engine.compiled_steps compiles the training step in the first batches (about 10-30 s on a CPU, "
        "once per batch shape); --engine.compiled_steps false trains without it"
    ]
    for key in ("train_loss", "val_loss"):
        torch.testing.assert_close(
            compiled_fit.callback_metrics[key], plain_fit.callback_metrics[key], rtol=5e-5, atol=0
        )
    assert_close_models(compiled, plain)


# ---------------------------------------------------------------- direct steps and Lightning's private API
@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_a_model_that_draws_from_its_streams_compiles_with_the_plain_draws(name, tmp_path, said):
    """The VAE and the CVAE draw their dropout masks and latent samples by name from their own streams: a compiled
    step is handed the very numbers the plain step draws, so it trains as plain Lightning does, to float tolerance;
    micro-batches would draw other numbers and turn off with one line."""
    plain, plain_fit = train(name, tmp_path, None, sizes=(160, 64))
    engine = Engine(compiled_steps=True, compile_backend="aot_eager")
    compiled, compiled_fit = train(name, tmp_path, engine, sizes=(160, 64))
    assert engine.runner.compiled is not None and engine.turned_off == {}
    assert len(engine.runner.compiled.plans) == 1 and len(next(iter(engine.runner.compiled.plans.values()))) >= 3
    for key in ("train_loss", "val_loss"):
        torch.testing.assert_close(
            compiled_fit.callback_metrics[key], plain_fit.callback_metrics[key], rtol=5e-5, atol=0
        )
    assert_close_models(compiled, plain)
    micro = Engine(cpu_micro_batch_size=8)
    train(name, tmp_path, micro, epochs=1, sizes=(32, 32))
    assert list(micro.turned_off) == ["cpu_micro_batch_size"] and "draws random numbers in its step" in said[-1]


@pytest.mark.parametrize(
    "name",
    sorted(name for name in AUTOENCODERS if draws_from_streams(EXPERIMENTS[name].model()) or name == "denoising"),
)
def test_a_run_that_draws_resumes_exactly(name, tmp_path):
    """A model that draws (dropout, a latent sample, input noise), resumed from the checkpoint of its second epoch,
    ends at the uninterrupted run's weights and val_loss, bit for bit: each stream restarts from (seed, epoch,
    stage), and the seed travels in the checkpoint. A resumed run in another process seed draws the same."""
    whole, whole_fit = train(name, tmp_path / "whole", None, epochs=3)
    _, first = train(name, tmp_path / "first", None, epochs=2)
    checkpoint = tmp_path / "two.ckpt"
    first.save_checkpoint(checkpoint)
    pl.seed_everything(123, verbose=False)  # another process: only the checkpoint can carry the streams' seed
    resumed = EXPERIMENTS[name].model()
    data = data_for(resumed)(batch_size=16, train_size=160, val_size=64, seed=0, steps_per_execution=4)
    resumed_fit = quiet_trainer(tmp_path / "resumed", max_epochs=3)
    resumed_fit.fit(resumed, datamodule=data, ckpt_path=checkpoint, weights_only=True)
    assert_same_weights(resumed, whole)
    assert resumed_fit.callback_metrics["val_loss"] == whole_fit.callback_metrics["val_loss"]


def test_direct_steps_when_no_hook_listens_give_the_lightning_steps(tmp_path):
    """With no per-step hook in use, a training step calls backward and Adam directly (less Python per step);
    with one (here a callback counting backward passes) Lightning's wrappers run it. Same weights, same step
    count, and the hook sees every backward pass."""

    class CountBackward(pl.Callback):
        def __init__(self) -> None:
            self.calls = 0

        def on_after_backward(self, trainer, pl_module):
            self.calls += 1

    engines = [Engine(), Engine()]
    counter = CountBackward()
    direct, direct_fit = train("denoising", tmp_path, engines[0])
    wrapped, wrapped_fit = train("denoising", tmp_path, engines[1], callbacks=[counter])
    assert engines[0].runner.direct and not engines[1].runner.direct
    assert direct_fit.global_step == wrapped_fit.global_step == 20
    assert counter.calls == 20
    assert_same_weights(direct, wrapped)


def test_lightning_compat_still_counts_steps(tmp_path):
    """The engine's one use of Lightning's private API: a step made around LightningOptimizer.step must still
    count in global_step. This fails loudly when a Lightning release changes what counted_step relies on."""

    class RawSteps(torchae.DenseAE):
        def training_step(self, batch, batch_idx):
            optimizer = self.optimizers()
            optimizer.zero_grad()
            self.loss_terms(batch)["loss"].backward()
            with counted_step(optimizer):
                optimizer.optimizer.step()

    model = RawSteps()
    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(model, TensorBatches(torch.rand(80, 1, 28, 28), 16, False))
    assert trainer.global_step == 5
    with pytest.raises(RuntimeError, match="no _on_before_step/_on_after_step"):
        with counted_step(SimpleNamespace()):
            pass


# ---------------------------------------------------------------- CPU micro-batches
@pytest.mark.parametrize("name", ["conv", "sparse"])
def test_cpu_micro_batches_give_the_loss_and_gradients_of_one_pass(name, test_images):
    x = test_images[:200]
    results = []
    for chunk in (None, 64):
        torch.manual_seed(0)
        model = EXPERIMENTS[name].model()
        runner = StepRunner(model, cpu_micro_batch_size=chunk)
        runner.direct = True  # plain loss.backward(), no trainer needed
        terms = runner.loss_and_backward(x, "train")
        results.append((terms, [p.grad.clone() for p in model.parameters()]))
    (whole, whole_grads), (parts, part_grads) = results
    assert whole.keys() == parts.keys()
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], rtol=1e-6, atol=0)
    for a, b in zip(part_grads, whole_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)


# ---------------------------------------------------------------- channels-last convolutions
def test_channels_last_convolutions_train_as_contiguous_ones_and_the_model_is_put_back(tmp_path):
    """cpu_channels_last stores the convolution weights channels-last while fitting (through KerasAdam's flat
    buffers, every step), ends at the plain run's val_loss, and leaves the model contiguous after the fit."""
    seen = []

    class Layout(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            convolutions = [m for m in pl_module.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
            weight = convolutions[0].weight  # one input channel: both layouts are the same strides
            seen.append(weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous())

    engine = Engine(cpu_channels_last=True, cpu_micro_batch_size=8)
    model, fit = train("conv", tmp_path, engine, epochs=1, sizes=(32, 32), callbacks=[Layout()])
    plain_model, plain = train("conv", tmp_path / "plain", None, epochs=1, sizes=(32, 32))
    assert engine.channels_last and seen and all(seen)
    assert all(p.is_contiguous() for p in model.parameters())
    torch.testing.assert_close(fit.callback_metrics["val_loss"], plain.callback_metrics["val_loss"], rtol=1e-5, atol=0)
    for a, b in zip(model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_channels_last_auto_times_both_layouts_and_says_which_it_keeps(tmp_path, said, monkeypatch):
    """``auto`` keeps the layout whose timed pass was faster, in one line with both times; it leaves a model
    without convolutions as it is, with one line for an explicit request."""
    import torchae.engine as engine_module

    for faster in (True, False):
        timed = {faster: 0.010, not faster: 0.020}
        monkeypatch.setattr(engine_module, "time_layouts", lambda module, batch, timed=timed: timed)
        engine = Engine(cpu_channels_last="auto")
        train("conv", tmp_path / str(faster), engine, epochs=1, sizes=(16, 16))
        assert engine.channels_last is faster
        layout = "channels-last" if faster else "contiguous"
        assert said[-1].endswith(f"so the convolutions run {layout}") and "10 ms" in said[-1] and "20 ms" in said[-1]
    dense = Engine(cpu_channels_last=True)
    train("dense", tmp_path / "dense", dense, epochs=1, sizes=(16, 16))
    assert not dense.channels_last
    assert "DenseAE has no 2-D convolutions to lay out" in dense.turned_off["cpu_channels_last"]
    unexampled = Engine(cpu_channels_last="auto")

    class NoExample(torchae.ConvAE):
        def __init__(self) -> None:
            super().__init__()
            self.example_input_array = None

    train(NoExample, tmp_path / "none", unexampled, epochs=1, sizes=(16, 16))
    assert not unexampled.channels_last and "no example_input_array" in unexampled.turned_off["cpu_channels_last"]
    with pytest.raises(ConfigError, match="engine.cpu_channels_last must be true, false or auto"):
        Engine(cpu_channels_last="yes")


def test_timing_the_layouts_changes_nothing_the_run_computes():
    """The start-up probe passes the model both ways, yet its weights, gradients, buffers, layout and draws' streams
    are as before (a model that draws: the VAE)."""
    from torchae.engine.layouts import time_layouts

    torch.manual_seed(0)
    model = EXPERIMENTS["vae"].model()
    model.draws.start("train", 0)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    stream = model.draws.stream("train", torch.device("cpu")).get_state()
    seconds = time_layouts(model, 8, rounds=1)
    assert set(seconds) == {False, True} and all(value > 0 for value in seconds.values())
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert all(p.grad is None and p.is_contiguous() for p in model.parameters())
    assert torch.equal(model.draws.stream("train", torch.device("cpu")).get_state(), stream)


# ---------------------------------------------------------------- CUDA graphs (their logic, on the CPU)
@pytest.fixture
def stand_in_capture(monkeypatch):
    """A capture that records the step and reruns it on replay (what a CUDA graph does, without a GPU), and an
    engine that accepts a CPU for its graphs."""
    monkeypatch.setattr(graphs_module, "capture", lambda step, module: SimpleNamespace(replay=lambda: step(module)))
    monkeypatch.setattr(graphs_module.StepGraphs, "_on_side_stream", lambda self, eager, *args: eager(*args))
    monkeypatch.setattr(Engine, "_graphs_device_reason", staticmethod(lambda trainer: None))


@pytest.mark.parametrize("name", ["dense", "denoising", "sparse", "vae"])
def test_step_graphs_train_as_eager_steps(name, tmp_path, stand_in_capture):
    """Replayed steps (static buffers, Adam's step size read from a tensor, noise, dropout masks and latent samples
    drawn outside the graph) give the eager run's weights, losses and step count."""
    sizes = {"denoising": (168, 328), "vae": (1200, 600)}.get(name, (640, 328))
    batch = EXPERIMENTS[name].batch_size
    eager, eager_fit = train(name, tmp_path, Engine(), sizes=sizes, batch_size=batch)
    engine = Engine(cuda_graphs=True, graph_warmup_steps=1)
    graphed, graphed_fit = train(name, tmp_path, engine, sizes=sizes, batch_size=batch)
    assert engine.runner.graphs.captured == 4  # train and val, full and last (smaller) batch
    assert graphed_fit.global_step == eager_fit.global_step > 0
    for key in ("train_loss", "val_loss"):
        torch.testing.assert_close(graphed_fit.callback_metrics[key], eager_fit.callback_metrics[key])
    for p, q in zip(graphed.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_step_graphs_are_captured_after_the_parameters_settle(tmp_path, stand_in_capture):
    """The sanity check's validation steps come before the first optimizer step, which would move the parameters
    into Adam's flat buffers: a graph captured then would read freed memory. Capturing flattens first."""
    engine = Engine(cuda_graphs=True, graph_warmup_steps=1)
    model, _ = train(
        "dense",
        tmp_path,
        engine,
        epochs=1,
        sizes=(128, 128),
        batch_size=32,
        steps_per_execution=1,
        num_sanity_val_steps=2,
    )
    graphs = engine.runner.graphs
    assert graphs.captured == 2  # the validation step (in the sanity check) and the training step
    assert graphs.captures == 2 and graphs.stale(model) == 0


def test_cuda_graphs_turn_off_with_one_line_for_what_they_cannot_replay(tmp_path, said, stand_in_capture):
    class GradientWatcher(pl.Callback):
        def on_after_backward(self, trainer, pl_module):
            pass

    engine = Engine(cuda_graphs=True)
    train("dense", tmp_path, engine, epochs=1, callbacks=[GradientWatcher()])
    assert engine.runner.graphs is None
    assert said == [
        "torchae: engine.cuda_graphs is off for this run: GradientWatcher.on_after_backward cannot run inside a "
        "CUDA graph; steps run as written"
    ]
    noisy = Engine(cuda_graphs=True)
    train(NoisyLatentAE, tmp_path, noisy, epochs=1)
    assert noisy.runner.graphs is None and "draws from torch's global generator" in noisy.turned_off["cuda_graphs"]


def test_cuda_graphs_on_a_cpu_turn_off_with_one_line(tmp_path, said):
    engine = Engine(cuda_graphs=True)
    train("dense", tmp_path, engine, epochs=1)
    assert engine.runner.graphs is None
    assert said == [
        "torchae: engine.cuda_graphs is off for this run: CUDA graphs need a CUDA device, this run is on cpu "
        "(--trainer.accelerator gpu)"
    ]


# ---------------------------------------------------------------- compiled whole steps
@pytest.mark.parametrize(
    ("name", "steps_per_call"),
    [("dense", 1), ("denoising", 1), ("sparse", 1), ("denoising", 4)],  # deep's path is dense's
)
def test_compiled_steps_train_as_eager_steps(name, steps_per_call, tmp_path):
    """Whole steps (gradients by torch.func, Keras's Adam on the flat buffers) traced with ``aot_eager``, the graph
    inductor is given, without a C++ compiler: the eager run's weights, Adam state, losses and step count, over
    two batch shapes (168 = 10 x 16 + 8). With 4 steps per call, groups of 4 equal batches run as one call and the
    last group (16, 16, 8) as single steps; the denoising model's noise is drawn in the same order."""
    eager, eager_fit = train(name, tmp_path, Engine(), sizes=(168, 72))
    engine = Engine(compiled_steps=True, compiled_steps_per_call=steps_per_call, compile_backend="aot_eager")
    compiled, compiled_fit = train(name, tmp_path, engine, sizes=(168, 72))
    assert engine.runner is not None and engine.runner.compiled is not None
    assert engine.runner.compiled.steps_per_call == steps_per_call
    assert compiled_fit.global_step == eager_fit.global_step == 2 * 11
    for key in ("train_loss", "val_loss"):
        torch.testing.assert_close(
            compiled_fit.callback_metrics[key], eager_fit.callback_metrics[key], rtol=5e-5, atol=0
        )
    assert_close_models(compiled, eager)
    (compiled_group,), (eager_group,) = (fit.optimizers[0].param_groups for fit in (compiled_fit, eager_fit))
    assert compiled_group["step"] == eager_group["step"] == 22
    compiled_state, eager_state = (fit.optimizers[0].state_dict()["state"] for fit in (compiled_fit, eager_fit))
    for index in eager_state:
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(compiled_state[index][moment], eager_state[index][moment], atol=1e-7, rtol=1e-4)
    assert "training_step" not in vars(compiled)


def test_several_compiled_steps_per_call_run_as_one_call_per_group_of_equal_batches():
    """The runner hands ``steps_per_call`` equal batches to one call and the rest to single steps, and a call of
    several steps leaves the weights, moments and step count that as many single steps leave."""
    torch.manual_seed(0)
    single, several = EXPERIMENTS["dense"].model(), EXPERIMENTS["dense"].model()
    several.load_state_dict(single.state_dict())
    xs = [torch.rand(16, 1, 28, 28) for _ in range(3)]
    one_by_one = CompiledSteps(single, backend="aot_eager")
    together = CompiledSteps(several, steps_per_call=3, backend="aot_eager")
    optimizers = single.configure_optimizers(), several.configure_optimizers()
    losses = torch.stack([one_by_one.step(x, "train", optimizers[0])["loss"] for x in xs])
    stacked = together.steps(xs, "train", optimizers[1])
    torch.testing.assert_close(stacked["loss"], losses, rtol=1e-6, atol=0)
    assert optimizers[0].param_groups[0]["step"] == optimizers[1].param_groups[0]["step"] == 3
    assert_close_models(several, single)
    with pytest.raises(ValueError, match="steps takes 3 batches per call"):
        together.steps(xs[:2], "train", optimizers[1])

    runner = StepRunner(several)
    runner.compiled = together
    shapes = [torch.Size([16, 1, 28, 28])] * 4 + [torch.Size([8, 1, 28, 28])]
    batches = [torch.empty(shape) for shape in shapes]
    with torch.enable_grad():
        calls = [runner.steps_in_one_call(batches, start, object()) for start in range(len(batches))]
    assert calls == [3, 3, 1, 1, 1]  # from batch 2 on, fewer than 3 equal batches are left
    with torch.no_grad():
        assert runner.steps_in_one_call(batches, 0, object()) == 1  # validation: no optimizer steps


def test_a_compiled_conv_step_is_the_eager_step():
    """Conv's stock layers: one compiled step gives the eager step's loss and weights. (Over dozens of steps the
    two drift apart by more than rounding: Adam divides by the root of tiny second moments, which magnifies the
    rounding of the convolutions' sums.)"""
    torch.manual_seed(0)
    eager = EXPERIMENTS["conv"].model()
    compiled = EXPERIMENTS["conv"].model()
    compiled.load_state_dict(eager.state_dict())
    x = torch.rand(16, 1, 28, 28)
    optimizer = eager.configure_optimizers()
    loss = eager.loss_terms(x)["loss"]
    loss.backward()
    optimizer.step()
    terms = CompiledSteps(compiled, backend="aot_eager").step(x, "train", compiled.configure_optimizers())
    torch.testing.assert_close(terms["loss"], loss.detach(), rtol=1e-6, atol=0)
    for p, q in zip(compiled.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, atol=1e-7, rtol=1e-5)


def test_a_compiled_run_resumes_where_it_stopped(tmp_path):
    """Adam's moments live in the flat buffers the compiled step updates: a checkpoint holds them, and a run
    resumed from it ends where the uninterrupted run ends."""

    def engine():
        return Engine(compiled_steps=True, compile_backend="aot_eager")

    whole, _ = train("dense", tmp_path / "whole", engine(), epochs=3)
    _, first = train("dense", tmp_path / "first", engine(), epochs=2)
    checkpoint = tmp_path / "two.ckpt"
    first.save_checkpoint(checkpoint)
    torch.manual_seed(0)
    resumed = EXPERIMENTS["dense"].model()
    data = MNISTDataModule(batch_size=16, train_size=160, val_size=64, seed=0, steps_per_execution=4)
    quiet_trainer(tmp_path / "resumed", max_epochs=3, callbacks=[engine()]).fit(
        resumed, datamodule=data, ckpt_path=checkpoint, weights_only=True
    )
    assert_close_models(resumed, whole)


def test_compiled_steps_turn_off_with_one_line_for_what_they_cannot_run(tmp_path, said):
    class GradientWatcher(pl.Callback):
        def on_after_backward(self, trainer, pl_module):
            pass

    class OwnLoss(torchae.DenseAE):
        def loss_terms(self, x, stage="train"):
            return super().loss_terms(x, stage)

    engine = Engine(compiled_steps=True, compile_backend="aot_eager")
    train("dense", tmp_path, engine, epochs=1, callbacks=[GradientWatcher()])
    assert engine.runner.compiled is None
    own = Engine(compiled_steps=True, compile_backend="aot_eager")
    train(OwnLoss, tmp_path, own, epochs=1)
    assert own.runner.compiled is None
    assert said == [
        "torchae: engine.compiled_steps is off for this run: GradientWatcher.on_after_backward cannot run inside a "
        "compiled step; steps run as written",
        "torchae: engine.compiled_steps is off for this run: OwnLoss overrides loss_terms, which a compiled step "
        "would skip; its steps run as written",
    ]


def test_a_failed_run_leaves_the_model_as_it_was(tmp_path):
    class Boom(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            raise RuntimeError("boom")

    torch.manual_seed(0)
    model = EXPERIMENTS["conv"].model()
    data = MNISTDataModule(batch_size=16, train_size=64, val_size=32, seed=0, steps_per_execution=4)
    with pytest.raises(RuntimeError, match="boom"):
        quiet_trainer(tmp_path, callbacks=[Engine(cpu_micro_batch_size=8), Boom()]).fit(model, datamodule=data)
    assert "training_step" not in vars(model) and "validation_step" not in vars(model)


# ---------------------------------------------------------------- CPU threads
def test_cpu_threads_follow_what_other_processes_leave_free(monkeypatch):
    """Two cores: another process busy on one of them leaves one thread; gone, both come back; never more than
    torch started with, never fewer than one."""
    from torchae.engine import threads as threads_module

    clock = {"busy": 0, "total": 0, "own": 0.0, "wall": 0.0}
    monkeypatch.setattr(threads_module, "_cpu_jiffies", lambda cpus: (clock["busy"], clock["total"]))
    monkeypatch.setattr(threads_module, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(threads_module.time, "monotonic", lambda: clock["wall"])

    def epoch(others: float, own: float, seconds: float = 1.0) -> None:  # cores' worth busy over ``seconds``
        clock["busy"] += int(1000 * (others + own) * seconds)
        clock["total"] += int(1000 * 2 * seconds)
        clock["own"] += own * seconds
        clock["wall"] += seconds

    # the pause before the first epoch, while another process keeps one core busy
    monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: epoch(others=1.0, own=0.0, seconds=seconds))

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = CpuThreads()
        threads.cpus = {0, 1}
        assert threads.start() == 1 and torch.get_num_threads() == 1  # a busy core before the first epoch
        epoch(others=1.0, own=1.0)
        assert threads.update() == 1
        epoch(others=0.0, own=1.0)
        assert threads.update() == 2 and torch.get_num_threads() == 2  # the other process ended
        epoch(others=0.3, own=1.9)
        assert threads.update() == 2  # a little work beside: still both cores
        epoch(others=2.0, own=0.0)
        assert threads.update() == 1  # never fewer than one
        threads.restore()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_fixed_thread_count_holds_while_fitting_and_is_put_back(tmp_path):
    seen = []

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    train("dense", tmp_path, Engine(cpu_threads=3), epochs=1, callbacks=[Spy()])
    assert set(seen) == {3} and torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="engine.cpu_threads must be a positive integer"):
        Engine(cpu_threads=0)
    with pytest.raises(ConfigError, match=f"100000, more than 4 per core of this machine's {os.cpu_count()} cores"):
        Engine(cpu_threads=100_000)  # libgomp aborted the process with no line
