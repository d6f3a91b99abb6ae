"""The performance paths: data resident on the model's device, DDP sharding, the GPU script on the CPU.

Speed itself is measured by benchmarks/bench.py (ratios side by side), not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from helpers import quiet_trainer

import torchae
from torchae.data import BatchGroup, MNISTDataModule, TensorBatches
from torchae.errors import ConfigError
from torchae.optim import KerasAdam

ROOT = Path(__file__).resolve().parents[1]


def fake_trainer(device: str, rank: int = 0, world_size: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)), global_rank=rank, world_size=world_size
    )


def test_batches_live_on_the_model_device():
    """The whole split moves to the trainer's device once, and every batch is cut there (``meta`` stands in for
    a GPU: no data is copied per batch)."""
    data = MNISTDataModule(batch_size=32, train_size=96, val_size=64, seed=0)
    data.setup("fit")
    data.trainer = fake_trainer("meta")
    for loader in (data.train_dataloader(), data.val_dataloader()):
        assert loader.images.device.type == "meta"
        batches = list(loader)
        assert all(b.device.type == "meta" for b in batches) and [b.shape[0] for b in batches][0] == 32


def test_steps_per_execution_groups_batches_without_changing_them():
    images = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1)
    plain = TensorBatches(images, 4, shuffle=True, seed=2)
    grouped = TensorBatches(images, 4, shuffle=True, seed=2, steps_per_execution=5)
    groups = list(grouped)
    assert len(grouped) == len(groups) == 3 and all(isinstance(g, BatchGroup) for g in groups)
    flattened = [batch for group in groups for batch in group]
    expected = list(plain)
    assert len(flattened) == len(expected) == 13
    assert all(torch.equal(a, b) for a, b in zip(flattened, expected))


def test_steps_per_execution_gives_the_same_training(tmp_path, test_images):
    from helpers import quiet_trainer

    results = []
    for k in (1, 4):
        torch.manual_seed(0)
        model = torchae.DenseAE()
        trainer = quiet_trainer(tmp_path, max_epochs=2)
        train = TensorBatches(test_images, 16, shuffle=True, seed=1, steps_per_execution=k)
        trainer.fit(model, train, TensorBatches(test_images, 64, False, steps_per_execution=k))
        results.append((model.state_dict(), float(trainer.callback_metrics["val_loss"]), trainer.global_step))
    (a, val_a, steps_a), (b, val_b, steps_b) = results
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert val_a == val_b
    assert steps_a == steps_b == 2 * 16  # one optimizer step per batch either way


def test_steps_per_execution_is_refused_under_ddp():
    data = MNISTDataModule(batch_size=8, train_size=64, val_size=64, steps_per_execution=4)
    data.setup("fit")
    data.trainer = fake_trainer("cpu", rank=0, world_size=2)
    with pytest.raises(ValueError, match="set --data.steps_per_execution 1 on several devices"):
        data.train_dataloader()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_shards_every_epoch(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):
        seen = [rank["epochs"][epoch] for rank in ranks]
        assert len(seen[0]) == len(set(seen[0])) and len(seen[1]) == len(set(seen[1]))  # no sample twice
        assert not set(seen[0]) & set(seen[1])  # each rank its own shard
        assert sorted(seen[0] + seen[1]) == list(range(100))  # together: the whole epoch
    assert ranks[0]["epochs"]["0"] != ranks[0]["epochs"]["1"]  # reshuffled every epoch
    assert ranks[0]["val_loss"] == ranks[1]["val_loss"]  # reduced over both ranks


@pytest.mark.slow
def test_gpu_script_runs_on_the_cpu():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu.py"),
            "dense",
            "denoising",
            "--device",
            "cpu",
            "--epochs",
            "2",
            "--train-size",
            "1024",
            "--val-size",
            "256",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.count(" ok |") == 2
    assert "projected time of the whole article" in result.stdout


# ---------------------------------------------------------------- CUDA graphs and torch.compile (logic, on the CPU)
def _train(name: str, tmp_path: Path, graphs: bool, monkeypatch: pytest.MonkeyPatch):
    """Two epochs of article model ``name`` on 640 images; with ``graphs``, through StepGraphs with a stand-in
    capture that records the step and reruns it on replay (what a CUDA graph does, without a GPU)."""
    from torchae import graphs as graphs_module
    from torchae.article import article_data

    monkeypatch.setattr(graphs_module, "capture", lambda step, module: SimpleNamespace(replay=lambda: step(module)))
    monkeypatch.setattr(graphs_module.StepGraphs, "_on_side_stream", lambda self, eager, *args: eager(*args))
    torch.manual_seed(0)
    model = torchae.MODELS[name]()
    if graphs:
        model.step_graphs = graphs_module.StepGraphs(warmup_steps=1)
    data = article_data(name, train_size=640 if name != "denoising" else 168, val_size=328, seed=0)
    trainer = quiet_trainer(tmp_path, max_epochs=2)
    trainer.fit(model, datamodule=data)
    return model, trainer


@pytest.mark.parametrize("name", ["dense", "denoising", "sparse"])
def test_step_graphs_train_as_eager_steps(name, tmp_path, monkeypatch):
    """Replayed steps (static buffers, Adam's step size read from a tensor, noise drawn outside the graph) give
    the eager run's weights, losses and step count."""
    eager, eager_trainer = _train(name, tmp_path, False, monkeypatch)
    graphed, graphed_trainer = _train(name, tmp_path, True, monkeypatch)
    assert graphed.step_graphs.captured == 4  # train and val, full and last (smaller) batch
    assert graphed_trainer.global_step == eager_trainer.global_step > 0
    for key in ("train_loss", "val_loss"):
        torch.testing.assert_close(graphed_trainer.callback_metrics[key], eager_trainer.callback_metrics[key])
    for p, q in zip(graphed.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_step_graphs_are_captured_after_the_parameters_settle(tmp_path, monkeypatch):
    """The sanity check's validation steps come before the first optimizer step, which would move the parameters
    into Adam's flat buffers: a graph captured then would read freed memory. Capturing flattens first."""
    from torchae import graphs as graphs_module

    monkeypatch.setattr(graphs_module, "capture", lambda step, module: SimpleNamespace(replay=lambda: step(module)))
    monkeypatch.setattr(graphs_module.StepGraphs, "_on_side_stream", lambda self, eager, *args: eager(*args))
    model = torchae.DenseAE()
    model.step_graphs = graphs_module.StepGraphs(warmup_steps=1)
    data = MNISTDataModule(batch_size=32, train_size=128, val_size=128, seed=0)
    trainer = quiet_trainer(tmp_path, max_epochs=1, num_sanity_val_steps=2)
    trainer.fit(model, datamodule=data)
    assert model.step_graphs.captured == 2  # the validation step (in the sanity check) and the training step
    assert model.step_graphs.captures == 2 and model.step_graphs.stale(model) == 0


def test_cuda_graphs_refuses_what_it_cannot_run(tmp_path):
    from torchae.graphs import CUDAGraphs

    class GradientWatcher(pl.Callback):
        def on_after_backward(self, trainer, pl_module):
            pass

    data = MNISTDataModule(batch_size=32, train_size=64, val_size=32)
    with pytest.raises(ConfigError, match="GradientWatcher.on_after_backward cannot run inside a CUDA graph"):
        quiet_trainer(tmp_path, callbacks=[CUDAGraphs(), GradientWatcher()]).fit(torchae.DenseAE(), datamodule=data)
    with pytest.raises(ConfigError, match="needs one CUDA device"):
        quiet_trainer(tmp_path, callbacks=[CUDAGraphs()]).fit(torchae.DenseAE(), datamodule=data)
    with pytest.raises(ConfigError, match="warmup_steps must be at least 1"):
        CUDAGraphs(warmup_steps=0)


def test_flat_adam_buffers_are_aligned_and_device_step_sizes_match():
    """Each parameter starts on a 64-byte boundary of the flat buffers (compiled kernels assume alignment), and
    the update with the step size read from a tensor (CUDA graphs) is the eager update."""
    torch.manual_seed(0)
    eager, graphed = torchae.SparseAE(), torchae.SparseAE()
    graphed.load_state_dict(eager.state_dict())
    opt_eager, opt_graphed = eager.configure_optimizers(), graphed.configure_optimizers()
    x = torch.rand(32, 1, 28, 28)
    for _ in range(3):
        for model, opt in ((eager, opt_eager), (graphed, opt_graphed)):
            opt.zero_grad()
            model.loss_terms(x)["loss"].backward()
        opt_eager.step()
        groups = opt_graphed.flat_groups()
        opt_graphed.update_from_device([torch.tensor(-KerasAdam.advance_step(group)) for group, _ in groups])
    assert all(p.data_ptr() % 64 == 0 for p in graphed.parameters())
    assert opt_graphed.state_dict()["param_groups"][0]["step"] == 3
    for p, q in zip(graphed.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, atol=1e-7, rtol=1e-6)


def test_compile_loss_trains_the_same_model(tmp_path):
    """CompileLoss swaps in a compiled ``reconstruction_terms`` (traced with ``aot_eager``: no C++ compiler is
    needed) and training gives the eager losses."""
    from torchae.compile import CompileLoss

    losses = []
    for callbacks in ([], [CompileLoss(backend="aot_eager")]):
        torch.manual_seed(0)
        model = torchae.SparseAE()
        data = MNISTDataModule(batch_size=64, train_size=256, val_size=128, seed=0)
        quiet_trainer(tmp_path, max_epochs=1, callbacks=callbacks).fit(model, datamodule=data)
        assert ("reconstruction_terms" in vars(model)) == bool(callbacks)
        losses.append(model.trainer.callback_metrics["val_loss"])
    torch.testing.assert_close(losses[1], losses[0], atol=1e-6, rtol=1e-5)
    with pytest.raises(ConfigError, match="mode must be one of"):
        CompileLoss(mode="fast")


def test_the_quiet_run_writes_no_file(tmp_path, monkeypatch):
    """The benchmarks' and parity suite's training run keeps its history in memory and leaves the folder alone."""
    from torchae.article import fit_quietly

    monkeypatch.chdir(tmp_path)
    history, seconds = fit_quietly(torchae.DenseAE(), "dense", 2, train_size=256, val_size=128)
    assert [row["epoch"] for row in history] == [0, 1] and len(seconds) == 2
    assert list(tmp_path.iterdir()) == []


def test_direct_steps_when_no_hook_listens_give_the_lightning_steps(tmp_path):
    """With no per-step hook in use, a training step calls backward and Adam directly (less Python per step);
    with one (here a callback counting backward passes) Lightning's wrappers run it. Same weights, same step
    count, and the hook sees every backward pass."""

    class CountBackward(pl.Callback):
        def __init__(self) -> None:
            self.calls = 0

        def on_after_backward(self, trainer, pl_module):
            self.calls += 1

    runs = []
    for callbacks in ([], [CountBackward()]):
        torch.manual_seed(0)
        model = torchae.DenoisingAE(seed=3)
        data = MNISTDataModule(batch_size=16, train_size=160, val_size=64, seed=0, steps_per_execution=4)
        trainer = quiet_trainer(tmp_path, max_epochs=2, callbacks=callbacks)
        trainer.fit(model, datamodule=data)
        runs.append((model, trainer))
    (direct, direct_trainer), (wrapped, wrapped_trainer) = runs
    assert direct._direct_steps and not wrapped._direct_steps
    assert direct_trainer.global_step == wrapped_trainer.global_step == 20
    assert wrapped_trainer.callbacks[0].calls == 20
    for p, q in zip(direct.parameters(), wrapped.parameters()):
        assert torch.equal(p, q)
