"""The engine: every speed technique gives the steps Lightning runs by itself, and leaves the model as it was.

Speed itself is measured by benchmarks/bench.py (ratios side by side), not asserted here."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from helpers import quiet_trainer

import torchae
from torchae.data import MNISTDataModule, TensorBatches
from torchae.engine import CompiledSteps, Engine, StepRunner
from torchae.engine import graphs as graphs_module
from torchae.engine.kernels import use_cpu_kernels
from torchae.engine.lightning_compat import counted_step
from torchae.errors import ConfigError
from torchae.layers import ConvReLUPool2x2, MatmulConv2d, Upsample2x, UpsampleConv2d
from torchae.registry import EXPERIMENTS

PLAIN = {"steps_per_execution": 1, "cpu_micro_batch_size": None, "cpu_kernels": False, "direct_steps": False}
"""Engine settings with every technique off."""


def train(name: str, tmp_path, engine: Engine | None, epochs: int = 2, sizes=(160, 64), batch_size=16, **trainer):
    """Train experiment ``name`` from seed 0 on a subset; returns the model and its trainer."""
    torch.manual_seed(0)
    model = EXPERIMENTS[name].model()
    data = MNISTDataModule(batch_size=batch_size, train_size=sizes[0], val_size=sizes[1], seed=0)
    callbacks = [engine] if engine is not None else []
    fit = quiet_trainer(tmp_path, max_epochs=epochs, callbacks=callbacks + trainer.pop("callbacks", []), **trainer)
    fit.fit(model, datamodule=data)
    return model, fit


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (key, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), key


# ---------------------------------------------------------------- the plain path and the contract
@pytest.mark.parametrize("name", ["dense", "denoising", "sparse"])
def test_engine_steps_are_bitwise_the_steps_lightning_runs(name, tmp_path):
    """No engine: the model's own steps, Lightning's public API alone. The engine's grouped, direct steps give
    the same weights, metrics and step count, bit for bit."""
    plain, plain_fit = train(name, tmp_path, None)
    fast, fast_fit = train(name, tmp_path, Engine(steps_per_execution=4))
    assert_same_weights(fast, plain)
    assert fast_fit.global_step == plain_fit.global_step == 2 * 10
    for key in ("train_loss", "val_loss"):
        torch.testing.assert_close(fast_fit.callback_metrics[key], plain_fit.callback_metrics[key], rtol=1e-6, atol=0)


def test_an_engine_with_every_option_off_leaves_the_steps_to_lightning(tmp_path):
    engine = Engine(**PLAIN)
    assert not engine.runs_steps
    model, _ = train("dense", tmp_path, engine)
    plain, _ = train("dense", tmp_path, None)
    assert engine.runner is None and "training_step" not in vars(model)
    assert_same_weights(model, plain)


def test_the_engine_puts_the_model_back_after_fitting(tmp_path):
    """While fitting, the runner drives the steps and the CPU kernels stand in; afterwards the model is the stock
    model again (what export and inference see), with the trained weights."""
    seen = {}

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["runner"] = "training_step" in vars(pl_module)
            seen["kernels"] = {type(m) for m in pl_module.net.modules()}

    engine = EXPERIMENTS["conv"].build_engine()
    model, fit = train("conv", tmp_path, engine, epochs=1, sizes=(64, 32), callbacks=[Spy()])
    kernels = {ConvReLUPool2x2, MatmulConv2d, Upsample2x, UpsampleConv2d}
    assert seen["runner"] and kernels <= seen["kernels"]
    kinds = {type(m) for m in model.net.modules()}
    assert not kinds & (kernels | {torch.nn.Identity})
    assert "training_step" not in vars(model)
    assert fit.datamodule.steps_per_execution == 1


def test_grouped_batches_are_the_plain_batches():
    images = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1)
    plain = TensorBatches(images, 4, shuffle=True, seed=2)
    grouped = TensorBatches(images, 4, shuffle=True, seed=2, steps_per_execution=5)
    flattened = [batch for group in grouped for batch in group]
    assert len(flattened) == 13 and all(torch.equal(a, b) for a, b in zip(flattened, plain))


def test_a_group_without_the_engine_is_refused(tmp_path):
    model = torchae.DenseAE()
    grouped = TensorBatches(torch.rand(64, 1, 28, 28), 16, False, steps_per_execution=4)
    with pytest.raises(ConfigError, match="only torchae's Engine runs"):
        quiet_trainer(tmp_path).fit(model, grouped)


def test_settings_the_engine_cannot_honour_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="engine.steps_per_execution must be a positive integer"):
        Engine(steps_per_execution=0)
    with pytest.raises(ConfigError, match="compile_mode must be one of"):
        Engine(compile_mode="fast")
    with pytest.raises(ConfigError, match="engine.compiled_steps_per_call must be a positive integer"):
        Engine(compiled_steps=True, compiled_steps_per_call=0)
    with pytest.raises(ConfigError, match="needs torchae's MNISTDataModule"):
        quiet_trainer(tmp_path, callbacks=[Engine(steps_per_execution=4)]).fit(
            torchae.DenseAE(), TensorBatches(torch.rand(64, 1, 28, 28), 16, False)
        )


def test_grouped_steps_are_refused_under_ddp():
    engine = Engine(steps_per_execution=4)
    trainer = SimpleNamespace(world_size=2, datamodule=MNISTDataModule())
    with pytest.raises(ConfigError, match="set --engine.steps_per_execution 1 on several devices"):
        engine._group_batches(trainer)


# ---------------------------------------------------------------- direct steps and Lightning's private API
def test_direct_steps_when_no_hook_listens_give_the_lightning_steps(tmp_path):
    """With no per-step hook in use, a training step calls backward and Adam directly (less Python per step);
    with one (here a callback counting backward passes) Lightning's wrappers run it. Same weights, same step
    count, and the hook sees every backward pass."""

    class CountBackward(pl.Callback):
        def __init__(self) -> None:
            self.calls = 0

        def on_after_backward(self, trainer, pl_module):
            self.calls += 1

    engines = [Engine(steps_per_execution=4), Engine(steps_per_execution=4)]
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
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

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


# ---------------------------------------------------------------- CUDA graphs and torch.compile (logic, on the CPU)
@pytest.fixture
def stand_in_capture(monkeypatch):
    """A capture that records the step and reruns it on replay (what a CUDA graph does, without a GPU), and an
    engine that accepts a CPU for its graphs."""
    monkeypatch.setattr(graphs_module, "capture", lambda step, module: SimpleNamespace(replay=lambda: step(module)))
    monkeypatch.setattr(graphs_module.StepGraphs, "_on_side_stream", lambda self, eager, *args: eager(*args))
    monkeypatch.setattr(Engine, "_check_graphs", lambda self, trainer, module: self.cuda_graphs)


@pytest.mark.parametrize("name", ["dense", "denoising", "sparse"])
def test_step_graphs_train_as_eager_steps(name, tmp_path, stand_in_capture):
    """Replayed steps (static buffers, Adam's step size read from a tensor, noise drawn outside the graph) give
    the eager run's weights, losses and step count."""
    sizes = (640, 328) if name != "denoising" else (168, 328)
    batch = EXPERIMENTS[name].batch_size
    eager, eager_fit = train(name, tmp_path, Engine(steps_per_execution=4), sizes=sizes, batch_size=batch)
    engine = Engine(steps_per_execution=4, cuda_graphs=True, graph_warmup_steps=1)
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
    model, _ = train("dense", tmp_path, engine, epochs=1, sizes=(128, 128), batch_size=32, num_sanity_val_steps=2)
    graphs = engine.runner.graphs
    assert graphs.captured == 2  # the validation step (in the sanity check) and the training step
    assert graphs.captures == 2 and graphs.stale(model) == 0


def test_cuda_graphs_refuse_what_they_cannot_run(tmp_path):
    class GradientWatcher(pl.Callback):
        def on_after_backward(self, trainer, pl_module):
            pass

    with pytest.raises(ConfigError, match="GradientWatcher.on_after_backward cannot run inside a CUDA graph"):
        train("dense", tmp_path, Engine(cuda_graphs=True), callbacks=[GradientWatcher()])
    with pytest.raises(ConfigError, match="needs one CUDA device"):
        train("dense", tmp_path, Engine(cuda_graphs=True))
    with pytest.raises(ConfigError, match="graph_warmup_steps must be a positive integer"):
        Engine(graph_warmup_steps=0)


def test_compile_trains_the_same_model(tmp_path):
    """``compile`` swaps in a compiled ``reconstruction_terms`` while fitting (traced with ``aot_eager``: no C++
    compiler is needed); training gives the eager losses, and the model is put back afterwards."""

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.compiled = "reconstruction_terms" in vars(pl_module)

    losses = []
    for compiled in (False, True):
        engine, spy = Engine(compile=compiled, compile_backend="aot_eager"), Spy()
        model, fit = train("sparse", tmp_path, engine, epochs=1, sizes=(256, 128), batch_size=64, callbacks=[spy])
        assert spy.compiled == compiled and "reconstruction_terms" not in vars(model)
        losses.append(fit.callback_metrics["val_loss"])
    torch.testing.assert_close(losses[1], losses[0], atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- compiled whole steps
def assert_close_models(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Equal weights up to the float rounding that summing in another order leaves after a few dozen steps."""
    for (key, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.parametrize(
    ("name", "steps_per_call"),
    [("dense", 1), ("deep", 1), ("denoising", 1), ("sparse", 1), ("dense", 4), ("denoising", 4)],
)
def test_compiled_steps_train_as_eager_steps(name, steps_per_call, tmp_path):
    """Whole steps (gradients by torch.func, Keras's Adam on the flat buffers) traced with ``aot_eager``, the graph
    inductor is given, without a C++ compiler: the eager run's weights, Adam state, losses and step count, over
    two batch shapes (168 = 10 x 16 + 8). With 4 steps per call, groups of 4 equal batches run as one call and the
    last group (16, 16, 8) as single steps; the denoising model's noise is drawn in the same order."""
    eager, eager_fit = train(name, tmp_path, Engine(steps_per_execution=4), sizes=(168, 72))
    engine = Engine(
        steps_per_execution=4, compiled_steps=True, compiled_steps_per_call=steps_per_call, compile_backend="aot_eager"
    )
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
    """Conv, with the CPU kernels swapped in: one compiled step gives the eager step's loss and weights. (Over
    dozens of steps the two drift apart by more than rounding: Adam divides by the root of tiny second moments,
    which magnifies the rounding of the convolutions' sums.)"""
    torch.manual_seed(0)
    eager = EXPERIMENTS["conv"].model()
    compiled = EXPERIMENTS["conv"].model()
    compiled.load_state_dict(eager.state_dict())
    undo = use_cpu_kernels(compiled.net)
    x = torch.rand(16, 1, 28, 28)
    optimizer = eager.configure_optimizers()
    loss = eager.loss_terms(x)["loss"]
    loss.backward()
    optimizer.step()
    terms = CompiledSteps(compiled, backend="aot_eager").step(x, "train", compiled.configure_optimizers())
    undo()
    torch.testing.assert_close(terms["loss"], loss.detach(), rtol=1e-6, atol=0)
    for p, q in zip(compiled.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, atol=1e-7, rtol=1e-5)


def test_the_denoising_config_compiles_its_steps_with_inductor(tmp_path):
    """The engine the denoising config runs (inductor: C++ loops on the CPU) trains as plain steps do."""
    engine = EXPERIMENTS["denoising"].build_engine()
    assert engine.compiled_steps and engine.compile_backend == "inductor"
    eager, eager_fit = train("denoising", tmp_path, EXPERIMENTS["denoising"].build_engine(compiled_steps=False))
    compiled, compiled_fit = train("denoising", tmp_path, engine)
    assert compiled_fit.global_step == eager_fit.global_step
    for key in ("train_loss", "val_loss"):
        torch.testing.assert_close(
            compiled_fit.callback_metrics[key], eager_fit.callback_metrics[key], rtol=5e-5, atol=0
        )
    assert_close_models(compiled, eager)


def test_a_compiled_run_resumes_where_it_stopped(tmp_path):
    """Adam's moments live in the flat buffers the compiled step updates: a checkpoint holds them, and a run
    resumed from it ends where the uninterrupted run ends."""

    def engine():
        return Engine(steps_per_execution=4, compiled_steps=True, compile_backend="aot_eager")

    whole, _ = train("dense", tmp_path / "whole", engine(), epochs=3)
    _, first = train("dense", tmp_path / "first", engine(), epochs=2)
    checkpoint = tmp_path / "two.ckpt"
    first.save_checkpoint(checkpoint)
    torch.manual_seed(0)
    resumed = EXPERIMENTS["dense"].model()
    data = MNISTDataModule(batch_size=16, train_size=160, val_size=64, seed=0)
    quiet_trainer(tmp_path / "resumed", max_epochs=3, callbacks=[engine()]).fit(
        resumed, datamodule=data, ckpt_path=checkpoint, weights_only=True
    )
    assert_close_models(resumed, whole)


def test_compiled_steps_refuse_what_they_cannot_run(tmp_path):
    class GradientWatcher(pl.Callback):
        def on_after_backward(self, trainer, pl_module):
            pass

    class OwnLoss(torchae.DenseAE):
        def loss_terms(self, x, stage="train"):
            return super().loss_terms(x, stage)

    with pytest.raises(ConfigError, match="GradientWatcher.on_after_backward cannot run inside a compiled step"):
        train("dense", tmp_path, Engine(compiled_steps=True), callbacks=[GradientWatcher()])
    with pytest.raises(ConfigError, match="runs without engine.cuda_graphs, engine.compile and engine.cpu_micro"):
        train("dense", tmp_path, Engine(compiled_steps=True, cpu_micro_batch_size=8))
    data = MNISTDataModule(batch_size=16, train_size=32, val_size=16)
    with pytest.raises(ConfigError, match="OwnLoss overrides loss_terms, which engine.compiled_steps does not run"):
        quiet_trainer(tmp_path, callbacks=[Engine(compiled_steps=True)]).fit(OwnLoss(), datamodule=data)


def test_a_failed_run_leaves_the_model_as_it_was(tmp_path):
    """A refusal at setup changes nothing; an error in the middle of fitting is undone too."""

    class Boom(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            raise RuntimeError("boom")

    stock = {type(m) for m in EXPERIMENTS["conv"].model().net.modules()}
    with pytest.raises(ConfigError, match="needs one CUDA device"):
        train("conv", tmp_path, EXPERIMENTS["conv"].build_engine(cuda_graphs=True), sizes=(64, 32))
    engine = EXPERIMENTS["conv"].build_engine()
    torch.manual_seed(0)
    model = EXPERIMENTS["conv"].model()
    data = MNISTDataModule(batch_size=16, train_size=64, val_size=32, seed=0)
    with pytest.raises(RuntimeError, match="boom"):
        quiet_trainer(tmp_path, callbacks=[engine, Boom()]).fit(model, datamodule=data)
    assert {type(m) for m in model.net.modules()} == stock and "training_step" not in vars(model)
    assert data.steps_per_execution == 1
