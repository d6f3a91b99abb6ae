"""Freed memory kept in the process (engine.cpu_keep_memory): the conv step stops faulting in fresh pages.

Each check runs in its own process: glibc's thresholds, once fixed, stay fixed for the process."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import quiet_trainer

from torchae.data import MNISTDataModule
from torchae.engine import Engine
from torchae.registry import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[1]

FAULTS_PER_STEP = """
import json, resource, torch
from torchae.engine.kernels import use_cpu_kernels
from torchae.engine.memory import keep_freed_memory
from torchae.engine.steps import StepRunner
from torchae.registry import EXPERIMENTS

torch.manual_seed(0)
model = EXPERIMENTS["conv"].model()
use_cpu_kernels(model.net)
optimizer = model.configure_optimizers()
runner = StepRunner(model, cpu_micro_batch_size=8)
runner.direct = True
x = torch.rand(32, 1, 28, 28)

def faults_per_step():
    for steps in (5, 5):  # warm-up, then measured
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(steps):
            optimizer.zero_grad()
            runner.loss_and_backward(x, "train")
            optimizer.step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / steps

system = faults_per_step()
kept = keep_freed_memory()
print(json.dumps({"system": system, "kept": kept, "kept_faults": faults_per_step(), "again": keep_freed_memory()}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only; elsewhere the option says so")
def test_kept_memory_ends_the_page_faults_of_the_conv_step():
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_STEP], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["kept"] and result["again"]
    # thousands of faults per step with glibc's own thresholds; a few, or none, with the memory kept
    assert result["kept_faults"] * 10 <= result["system"], result


@pytest.mark.parametrize(("keep", "glibc"), [(True, True), (True, False), (False, True)])
def test_the_engine_keeps_memory_on_a_cpu_run_as_cpu_keep_memory_says(keep, glibc, tmp_path, monkeypatch):
    calls, said = [], []
    monkeypatch.setattr("torchae.engine.keep_freed_memory", lambda: calls.append(1) or glibc)
    monkeypatch.setattr("torchae.engine.rank_zero_info", said.append)
    data = MNISTDataModule(batch_size=16, train_size=32, val_size=16, seed=0)
    quiet_trainer(tmp_path, callbacks=[Engine(cpu_keep_memory=keep)]).fit(EXPERIMENTS["dense"].model(), datamodule=data)
    assert len(calls) == keep
    assert any("freed memory stays in this process" in line for line in said) is (keep and glibc)
    assert any("engine.cpu_keep_memory has no effect here" in line for line in said) is (keep and not glibc)
