"""Seconds per training batch of the article's GAN loops, torchae against the Keras 3 references, side by side.

    python benchmarks/gans.py                        # gan, cgan, cvae_gan: writes benchmarks/GAN_RESULTS.md
    python benchmarks/gans.py cgan --batches 20      # some models, prints the table only

Each measurement runs in its own process, one after the other, in interleaved rounds: Keras 3 running the article's
loop as parity trains it (``parity.gan_models.KerasGanLoop``: ``GradientTape`` and TensorFlow 1's RMSProp, as the
author wrote it against TensorFlow, which makes TensorFlow its only backend), and the real user path ``torchae fit
--config configs/NAME.yaml`` (progress bar, loggers and checkpoints on, figures off). An epoch is ``--batches``
batches of the loop (each a step of one side, both sides' steps on the batch where part 6's loop hands it on, or none
on the batch the article leaves unused) and the losses on ``--val-size`` test images, on both sides; the figure is the
median epoch after the first (warm-up), divided by its batches.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import machine  # beside this script, which runs as one

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "GAN_RESULTS.md"
MODELS = ("gan", "cgan", "cvae_gan")
TARGET = 0.5
"""``torchae fit`` per batch over Keras's."""


def worker_keras(name: str, batches: int, epochs: int, val_size: int) -> dict:
    """Keras 3 on TensorFlow: the article's loop over ``batches`` batches an epoch, then the losses on the test
    images."""
    import parity  # noqa: F401  (torch before TensorFlow)
    from parity.cvae_gan_models import KerasCVAEGANLoop
    from parity.gan_models import KerasGanLoop
    from torchae.data import load_mnist
    from torchae.registry import EXPERIMENTS

    loop = KerasCVAEGANLoop() if name == "cvae_gan" else KerasGanLoop(name)
    batch_size, mnist = EXPERIMENTS[name].batch_size, load_mnist()
    images = (mnist.x_train[: batches * batch_size, :, :, None] / 255.0).astype("float32")
    one_hot = loop.one_hot(mnist.y_train[: batches * batch_size])
    val_images = (mnist.x_test[:val_size, :, :, None] / 255.0).astype("float32")
    val_one_hot = loop.one_hot(mnist.y_test[:val_size])
    seconds, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        for index in range(batches):
            chosen = slice(index * batch_size, (index + 1) * batch_size)
            losses += loop.train_on(images[chosen], one_hot[chosen])
        val_loss = loop.validate(val_images, val_one_hot)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "steps": len(losses), "val_loss": val_loss}


def worker_cli(name: str, batches: int, epochs: int, val_size: int) -> dict:
    """``torchae fit --config configs/NAME.yaml`` in a process of its own, on ``batches`` full batches an epoch."""
    from torchae.registry import EXPERIMENTS

    batch_size = EXPERIMENTS[name].batch_size
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "torchae", "fit", "--config", str(ROOT / "configs" / f"{name}.yaml")]
        command += ["--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", tmp]
        command += ["--data.train_size", str(batches * batch_size)]
        command += ["--data.val_size", str(val_size), "--figures.enabled", "false"]
        command += ["--model.iterations", "1000000"]  # Lightning's epochs end the fit, not the article's iterations
        done = subprocess.run(command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"torchae fit failed ({done.returncode}):\n{done.stderr[-3000:]}")
        with open(Path(tmp) / "version_0" / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    seconds = [float(row["epoch_seconds"]) for row in rows if row.get("epoch_seconds")]
    val_loss = [float(row["val_loss"]) for row in rows if row.get("val_loss")][-1]
    return {"seconds": seconds, "val_loss": val_loss}


WORKERS = {"keras-tensorflow": worker_keras, "cli": worker_cli}


def run_worker(kind: str, name: str, batches: int, epochs: int, val_size: int) -> dict:
    """One measurement; Keras's in a process of its own (``torchae fit`` starts its own)."""
    if kind == "cli":
        return worker_cli(name, batches, epochs, val_size)
    command = [sys.executable, __file__, "--worker", kind, name, "--batches", str(batches), "--epochs", str(epochs)]
    command += ["--val-size", str(val_size)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def per_batch(result: dict, batches: int) -> float:
    """The median epoch after the first, per batch."""
    return statistics.median(result["seconds"][1:]) / batches


def row(name: str, batches: int, keras: list[float], torchae: list[float]) -> str:
    from torchae.registry import EXPERIMENTS

    ratios = [t / k for t, k in zip(torchae, keras, strict=True)]
    ratio = statistics.median(ratios)
    verdict = "met" if ratio <= TARGET else "MISSED"
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    keras_s, torchae_s = statistics.median(keras), statistics.median(torchae)
    return (
        f"| {name} | {EXPERIMENTS[name].batch_size} | {batches} | {keras_s:.3f} | {torchae_s:.3f} | "
        f"**{ratio:.2f}** ({verdict}) | {rounds} |"
    )


HEADER = (
    "| model | batch | batches an epoch | Keras on tensorflow s/batch | `torchae fit` s/batch | "
    f"`torchae fit` / Keras (target {TARGET}) | per round |\n|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", metavar="MODEL", help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--batches", type=int, default=12, help="training batches an epoch (default 12)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs a measurement, the first a warm-up")
    parser.add_argument("--val-size", type=int, default=256, help="test images validated on each epoch")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of both frameworks")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = [name for name in args.models if name not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}: choose from {', '.join(MODELS)}")
    args.models = args.models or list(MODELS)
    if args.worker:
        (name,) = args.models
        print(json.dumps(WORKERS[args.worker](name, args.batches, args.epochs, args.val_size)))
        return
    rows = []
    for name in args.models:
        measured: dict[str, list[float]] = {"keras-tensorflow": [], "cli": []}
        for round_index in range(args.rounds):
            kinds = list(measured) if round_index % 2 == 0 else list(measured)[::-1]
            for kind in kinds:
                result = run_worker(kind, name, args.batches, args.epochs, args.val_size)
                measured[kind].append(per_batch(result, args.batches))
        rows.append(row(name, args.batches, measured["keras-tensorflow"], measured["cli"]))
        print(rows[-1], flush=True)
    table = "\n".join([HEADER, *rows])
    print(table)
    if args.models == list(MODELS):
        RESULTS_MD.write_text(
            f"# The GANs' loops, torchae against Keras 3\n\n{machine()}; `python benchmarks/gans.py` "
            f"({args.batches} batches an epoch, {args.epochs} epochs, {args.rounds} rounds).\n\n{table}\n"
        )


if __name__ == "__main__":
    main()
