"""The performance paths: data resident on the model's device, DDP sharding, the GPU script on the CPU.

Speed itself is measured by benchmarks/bench.py (ratios side by side), not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import torchae
from torchae.data import BatchGroup, MNISTDataModule, TensorBatches

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
