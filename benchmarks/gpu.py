"""torchae on one accelerator: CUDA correctness, seconds per epoch for all five, and the whole article's time.

    python benchmarks/gpu.py                     # every model, 3 epochs each (the first is warm-up)
    python benchmarks/gpu.py --device cpu --epochs 2 --train-size 2048 --val-size 512    # the same path on a CPU

1. Correctness: from the same weights and batch, one training step on the device gives the CPU's loss and weights.
2. Host synchronisations: counted over training steps with ``torch.cuda.set_sync_debug_mode('warn')``; the hot
   loop should make none (the data is resident on the device; metrics are reduced on the device).
3. Timing: seconds per epoch (training plus validation on the 10,000 test images), median after a warm-up epoch,
   and the projected time of the whole article (every model at its article epochs).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch

import torchae
from torchae.article import ARTICLE_RUNS, fit_quietly
from torchae.data import load_mnist, to_image_tensor


def check_step_on_device(name: str, device: torch.device) -> tuple[float, float]:
    """Loss (relative) and weights (absolute) difference between one step on ``device`` and one on the CPU."""
    batch = to_image_tensor(load_mnist().x_train[: ARTICLE_RUNS[name].batch_size])
    results = []
    for where in (torch.device("cpu"), device):
        torch.manual_seed(0)
        model = torchae.MODELS[name]().to(where)
        optimizer = model.configure_optimizers()
        x = batch.to(where)
        # a fixed noise tensor for denoising: both devices see the same noisy inputs
        inputs = model.add_noise(batch, torch.Generator().manual_seed(1)).to(where) if name == "denoising" else x
        loss = model.reconstruction_terms(inputs, x)["loss"]
        loss.backward()
        optimizer.step()
        results.append((loss.detach().cpu(), [p.detach().cpu() for p in model.parameters()]))
    (cpu_loss, cpu_weights), (dev_loss, dev_weights) = results
    loss_rel = float((dev_loss - cpu_loss).abs() / cpu_loss.abs())
    weight_abs = max(float((a - b).abs().max()) for a, b in zip(cpu_weights, dev_weights))
    return loss_rel, weight_abs


class SyncCounter(pl.Callback):
    """Counts host synchronisations inside training steps (CUDA only)."""

    def __init__(self) -> None:
        self.syncs = 0
        self.steps = 0
        self._catcher: warnings.catch_warnings | None = None
        self._caught: list | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:  # the warm-up epoch
            return
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._catcher is None:
            return
        torch.cuda.set_sync_debug_mode("default")
        self._catcher.__exit__(None, None, None)
        self.syncs += sum("synchroniz" in str(w.message) for w in self._caught or [])
        self.steps += 1
        self._catcher = None


def time_model(
    name: str, device: torch.device, epochs: int, train_size: int, val_size: int, compile_model: bool
) -> tuple[float, int, int]:
    model = torchae.MODELS[name]()
    if compile_model:
        model.net = torch.compile(model.net)
    syncs = SyncCounter()
    callbacks = [syncs] if device.type == "cuda" else []
    _, seconds = fit_quietly(model, name, epochs, train_size, val_size, accelerator=device.type, callbacks=callbacks)
    return statistics.median(seconds[1:]), syncs.syncs, syncs.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=list(ARTICLE_RUNS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--val-size", type=int, default=10_000)
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is warm-up)")
    name_of_device = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name_of_device}; torch {torch.__version__}; compile={args.compile}", flush=True)
    scale = 60_000 / args.train_size
    total = 0.0
    failures = 0
    print("| model | step vs CPU: loss rel / weights abs | s/epoch | syncs per step | article epochs | projected s |")
    print("|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        loss_rel, weight_abs = check_step_on_device(name, device)
        ok = loss_rel <= 1e-5 and weight_abs <= 1e-5
        failures += not ok
        started = time.perf_counter()
        seconds, syncs, steps = time_model(name, device, args.epochs, args.train_size, args.val_size, args.compile)
        projected = seconds * scale * ARTICLE_RUNS[name].epochs
        total += projected
        per_step = f"{syncs / steps:.2f}" if steps else "n/a (CPU)"
        print(
            f"| {name} | {loss_rel:.1e} / {weight_abs:.1e} {'ok' if ok else 'MISMATCH'} | {seconds:.2f} | {per_step} "
            f"| {ARTICLE_RUNS[name].epochs} | {projected:.0f} |  ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    print(f"projected time of the whole article (all five at full epochs): {total / 60:.1f} min", flush=True)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
