"""torchae on one accelerator: CUDA correctness, seconds per epoch for all five, and the whole article's time.

    python benchmarks/gpu.py                     # every model, 3 epochs per measurement (the first is warm-up)
    python benchmarks/gpu.py --device cpu --epochs 2 --train-size 2048 --val-size 512    # the same path on a CPU

1. Correctness: from the same weights and batch, one training step on the device gives the CPU's loss and gradients
   (TF32 off for this check: strict float32 on both sides).
2. Host synchronisations: counted over training steps with ``torch.cuda.set_sync_debug_mode('warn')``; the hot
   loop should make none (the data is resident on the device; metrics are reduced on the device).
3. Timing: seconds per epoch (training plus validation on the 10,000 test images), median after a warm-up epoch,
   for the bare loop and for the real user path (``torchae fit --config configs/NAME.yaml``), and the projected
   time of the whole article (every model at its article epochs).
4. Variants (``--variants``): the engine's whole-step CUDA graphs (``Engine(cuda_graphs=True)``, checked against
   eager training on a subset) and the compiled whole steps (``Engine(compiled_steps=True)``, the config's steps
   per call; with ``reduce-overhead``, i.e. inductor's CUDA graphs, too), each timed against the eager loop.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

from torchae.autoencoder import AutoencoderModule
from torchae.cli.configs import engine_of, fit_quietly
from torchae.data import load_mnist, to_image_tensor
from torchae.registry import EXPERIMENTS

ENGINE_EXPERIMENTS = tuple(name for name, e in EXPERIMENTS.items() if issubclass(e.model, AutoencoderModule))
"""The experiments whose steps the engine runs (the autoencoders'; the GANs' and the judge's are their own)."""

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import worker_cli  # noqa: E402

CPU_ONLY_OFF = {"cpu_micro_batch_size": None, "cpu_channels_last": False}
VARIANTS = {
    "eager": {"compiled_steps": False},
    "graphs": {"cuda_graphs": True, "compiled_steps": False},
    "compiled-steps": {"compiled_steps": True, **CPU_ONLY_OFF},
    # The compiled whole step (with the experiment's steps per call: 8 for denoising) under inductor's CUDA graphs:
    # several optimizer steps per replayed graph, if inductor captures a step that updates its inputs in place.
    "compiled-steps-graphs": {"compiled_steps": True, "compile_mode": "reduce-overhead", **CPU_ONLY_OFF},
}
"""Engine settings of each variant, on top of the config's (whose ``compiled_steps``, on for the CPU in some
configs, each variant sets: the engine runs one whole-step technique at a time). Micro-batches and channels-last
weights run on a CPU only, and a compiled step excludes them."""


def check_step_on_device(name: str, device: torch.device, perturb: float = 0.0) -> tuple[float, float, float]:
    """One training step on ``device`` against the same step on the CPU, from the same weights and batch
    (``perturb`` is added to every weight on the device side: a self-test that the check can fail).

    Returns:
        The loss's relative difference, the gradients' largest difference relative to the largest gradient, and
        the weights' largest absolute difference after one Adam step. (A weight whose gradient is ~0 moves by
        +-lr in Adam's first step whatever its size, so summation order alone can move it by up to 2e-3: the
        gradients are the test, the weights are reported.)
    """
    batch = to_image_tensor(load_mnist().x_train[: EXPERIMENTS[name].batch_size])
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    results = []
    try:
        for where in (torch.device("cpu"), device):
            torch.manual_seed(0)
            model = EXPERIMENTS[name].model()
            # what the encoder sees, drawn on the CPU from one seed (the denoising noise): both devices see it
            torch.manual_seed(1)
            inputs = model.corrupt(batch, "test").to(where)
            model = model.to(where)
            if where is device and perturb:
                with torch.no_grad():
                    for parameter in model.parameters():
                        parameter.add_(perturb)
            optimizer = model.configure_optimizers()
            x = batch.to(where)
            loss = model.reconstruction_terms(inputs, x)["loss"]
            loss.backward()
            grads = torch.cat([p.grad.detach().cpu().reshape(-1) for p in model.parameters()])
            optimizer.step()
            results.append((loss.detach().cpu(), grads, [p.detach().cpu() for p in model.parameters()]))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    (cpu_loss, cpu_grads, cpu_weights), (dev_loss, dev_grads, dev_weights) = results
    loss_rel = float((dev_loss - cpu_loss).abs() / cpu_loss.abs())
    grad_rel = float((dev_grads - cpu_grads).abs().max() / cpu_grads.abs().max())
    weight_abs = max(float((a - b).abs().max()) for a, b in zip(cpu_weights, dev_weights))
    return loss_rel, grad_rel, weight_abs


def compare_graphs(name: str, device: torch.device, train_size: int = 4096, val_size: int = 1024) -> str:
    """Train 3 epochs on a subset eagerly and with CUDA graphs, from the same seed; the largest differences."""
    runs = []
    for graphs in (False, True):
        pl.seed_everything(0, verbose=False)
        model = EXPERIMENTS[name].model()
        engine = engine_of(name, cuda_graphs=graphs, compiled_steps=False)
        history, _ = fit_quietly(model, name, 3, train_size, val_size, accelerator=device.type, engine=engine)
        runs.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu(), history))
    (eager_w, eager_h), (graph_w, graph_h) = runs
    loss_rel = max(abs(g["val_loss"] - e["val_loss"]) / e["val_loss"] for e, g in zip(eager_h, graph_h))
    return f"weights {float((graph_w - eager_w).abs().max()):.1e} abs, val_loss {loss_rel:.1e} rel"


class SyncCounter(pl.Callback):
    """Counts host synchronisations inside training steps after the warm-up epoch (CUDA only)."""

    def __init__(self) -> None:
        self.syncs = 0
        self.steps = 0
        self._catcher: warnings.catch_warnings | None = None
        self._caught: list | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:
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


def time_loop(
    name: str, device: torch.device, epochs: int, train_size: int, val_size: int, variant: str = "eager"
) -> tuple[float, float, str]:
    """Seconds per epoch of the bare loop, host syncs per training step (as text) and the last val_loss."""
    torch._dynamo.reset()
    pl.seed_everything(0, verbose=False)  # the same initial weights for every variant
    model = EXPERIMENTS[name].model()
    engine = engine_of(name, **VARIANTS[variant])
    callbacks: list[pl.Callback] = []
    syncs = SyncCounter()
    if device.type == "cuda":
        callbacks.append(syncs)
    history, seconds = fit_quietly(
        model, name, epochs, train_size, val_size, accelerator=device.type, callbacks=callbacks, engine=engine
    )
    per_step = f"{syncs.syncs / syncs.steps:.2f}" if syncs.steps else "n/a"
    return statistics.median(seconds[1:]), history[-1]["val_loss"], per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=list(ENGINE_EXPERIMENTS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--val-size", type=int, default=10_000)
    parser.add_argument("--no-cli", action="store_true", help="skip the `torchae fit` measurement")
    parser.add_argument(
        "--perturb", type=float, default=0.0, help="add this to the device model's weights: proves the check fails"
    )
    parser.add_argument(
        "--variants", nargs="*", default=[], metavar="MODEL:VARIANT", help=f"e.g. denoising:compile; {VARIANTS}"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is warm-up)")
    for spec in args.variants:
        model_name, _, variant = spec.partition(":")
        if model_name not in EXPERIMENTS or variant not in VARIANTS:
            parser.error(
                f"--variants takes MODEL:VARIANT with a model of {list(EXPERIMENTS)} and a variant of "
                f"{list(VARIANTS)}, got {spec!r}"
            )
    name_of_device = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name_of_device}; torch {torch.__version__}; pytorch-lightning {pl.__version__}", flush=True)
    scale = 60_000 / args.train_size
    total = 0.0
    failures = 0
    best: dict[str, float] = {}
    print(
        "| model | step vs CPU: loss rel / grads rel / weights abs | loop s/epoch | syncs per step "
        "| `torchae fit` s/epoch | fit / loop | val_loss | article epochs | projected s |"
    )
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        started = time.perf_counter()
        try:
            loss_rel, grad_rel, weight_abs = check_step_on_device(name, device, args.perturb)
            ok = loss_rel <= 1e-5 and grad_rel <= 1e-5
            seconds, val_loss, per_step = time_loop(name, device, args.epochs, args.train_size, args.val_size)
            fit_seconds = float("nan")
            if not args.no_cli:
                fit_seconds = statistics.median(
                    worker_cli(name, args.epochs, args.train_size, args.val_size)["seconds"][1:]
                )
        except Exception:  # report and go on with the next model: one failure must not hide the others' figures
            traceback.print_exc()
            print(f"| {name} | FAILED (traceback above) |", flush=True)
            failures += 1
            continue
        failures += not ok
        best[name] = seconds
        projected = seconds * scale * EXPERIMENTS[name].epochs
        total += projected
        print(
            f"| {name} | {loss_rel:.1e} / {grad_rel:.1e} / {weight_abs:.1e} {'ok' if ok else 'MISMATCH'} "
            f"| {seconds:.3f} | {per_step} "
            f"| {fit_seconds:.3f} | {fit_seconds / seconds:.2f} | {val_loss:.4f} | {EXPERIMENTS[name].epochs} "
            f"| {projected:.0f} |  ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    print(
        f"projected time of the whole article, eager loop (all five at full epochs): {total / 60:.1f} min", flush=True
    )
    if args.variants:
        print(
            "\n| model | variant | s/epoch | vs eager | syncs per step | val_loss "
            "| same as eager (3 epochs, 4096 images) |\n|---|---|---|---|---|---|---|"
        )
    for spec in args.variants:
        name, _, variant = spec.partition(":")
        started = time.perf_counter()
        try:
            seconds, val_loss, per_step = time_loop(name, device, args.epochs, args.train_size, args.val_size, variant)
            same = compare_graphs(name, device) if variant == "graphs" else ""
        except Exception:
            traceback.print_exc()
            print(f"| {name} | {variant} | FAILED (traceback above) |", flush=True)
            continue
        eager = best.get(name, float("nan"))
        print(
            f"| {name} | {variant} | {seconds:.3f} | {seconds / eager:.2f} | {per_step} | {val_loss:.4f} | {same} |"
            f"  ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        best[name] = min(eager, seconds) if name in best else seconds
    if args.variants and len(best) == len(args.models):
        total_best = sum(best[n] * scale * EXPERIMENTS[n].epochs for n in args.models)
        print(f"projected time of the whole article, fastest variant per model: {total_best / 60:.1f} min", flush=True)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
