"""The README's Python runs as written: every ``python`` block, in order, in one namespace, as a new user pastes
them (with the README's quickstart command, ``torchae fit --config configs/dense.yaml`` on a tiny budget, before the
block that reads its run). Plain Lightning's fit gets a tiny budget through Lightning's own limits; nothing else is
changed. The plain-Python path prints none of the noise the CLI silences."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import CONFIGS, ROOT

from torchae.console import KNOWN_NOISE

RUNNER = """
import functools, os, sys
import pytorch_lightning as pl

plain = pl.Trainer.__init__
# The README's plain Lightning budget (5 epochs of MNIST) cut to two batches an epoch, by Lightning's own limits.
tiny_trainer = functools.partialmethod(plain, limit_train_batches=2, limit_val_batches=1)
namespace = {}
for number, block in enumerate(sys.argv[2:]):
    if "runs/dense/version_0" in block and not os.path.exists("runs/dense/version_0"):
        from torchae.cli import main  # the README's quickstart command, before the block that reads its run

        pl.Trainer.__init__ = plain  # LightningCLI reads the Trainer's own signature
        tiny = ["--trainer.max_epochs", "1", "--data.train_size", "256", "--data.val_size", "256"]
        tiny += ["--engine.compiled_steps", "false"]  # the run the next block reads: its compiling proves nothing
        main(["fit", "--config", sys.argv[1], *tiny, "--figures.enabled", "false"])
    pl.Trainer.__init__ = tiny_trainer
    exec(compile(block, f"README python block {number}", "exec"), namespace)
print("every block ran")
"""


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_every_python_block_of_the_readme_runs_as_written(tmp_path):
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 5
    command = [sys.executable, "-c", RUNNER, str(CONFIGS / "dense.yaml"), *blocks]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "every block ran"
    printed = done.stdout + done.stderr
    assert [pattern.pattern for pattern in KNOWN_NOISE if pattern.search(printed)] == []  # as quiet as the CLI
