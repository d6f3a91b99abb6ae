"""torchae's packed matrix product (torchae.matmul) against torch's own (MKL on x86), side by side in one process.

    python benchmarks/matmul_bench.py                 # the deep model's products, then compiled steps
    python benchmarks/matmul_bench.py --threads 1     # one thread
    python benchmarks/matmul_bench.py --conv 64 32 16 8 4   # conv's eager step at these CPU micro-batch sizes

Two tables: GFLOP/s of each of the deep model's products at batch 256 (in interleaved rounds of torch's and the
packed kernel, median), and the milliseconds of a compiled training step (``CompiledSteps``: network, loss,
gradients, Keras's Adam) of each model at its batch size with aten::mm/addmm routed to the packed kernel and not,
in interleaved rounds; the ratio is packed over torch's. The first use on a CPU builds the kernel (seconds).
With ``--conv``, instead: the milliseconds of the conv model's eager training step on a batch of 256 (the engine's
``StepRunner`` with its CPU kernels, channels-last parts of each micro-batch size, Keras's Adam), torch's products
and packed, interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from torchae.engine import CompiledSteps, StepRunner
from torchae.engine.kernels import use_cpu_kernels
from torchae.matmul import route_matmul_to_packed
from torchae.registry import EXPERIMENTS

# M x K x N of the deep model's products at batch 256: the forward pass of its 784-147-98-49 encoder, and the
# weight gradients (M = a layer's width).
DEEP_PRODUCTS = [(256, 784, 147), (256, 147, 784), (147, 256, 784), (784, 256, 147), (256, 147, 98), (256, 98, 49)]


def timed(run, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def interleaved(runs: dict[str, object], rounds: int, repeats: int, routed: set[str]) -> dict[str, float]:
    """Median seconds per call of each of ``runs`` (those in ``routed`` with the packed kernel), interleaved."""
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(rounds):
        for key, run in runs.items():
            restore = route_matmul_to_packed() if key in routed else None
            try:
                times[key].append(timed(run, repeats))
            finally:
                if restore is not None:
                    restore()
    return {key: statistics.median(values) for key, values in times.items()}


def products(rounds: int) -> None:
    print("| M x K x N | torch GFLOP/s | packed GFLOP/s | packed / torch time |")
    print("|---|---|---|---|")
    for m, k, n in DEEP_PRODUCTS:
        a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)

        def product(a=a, b=b, out=out) -> None:
            torch.mm(a, b, out=out)

        interleaved({"torch": product, "packed": product}, 1, 20, {"packed"})  # warm-up
        seconds = interleaved({"torch": product, "packed": product}, rounds, 200, {"packed"})
        flops = 2 * m * k * n
        print(
            f"| {m} x {k} x {n} | {flops / seconds['torch'] / 1e9:.0f} | {flops / seconds['packed'] / 1e9:.0f} "
            f"| {seconds['packed'] / seconds['torch']:.2f} |"
        )


def steps(models: list[str], rounds: int) -> None:
    print("\n| model | batch | torch ms/step | packed ms/step | packed / torch |")
    print("|---|---|---|---|---|")
    for name in models:
        batch = EXPERIMENTS[name].batch_size
        x = torch.rand(batch, 1, 28, 28)
        runs = {}
        for key in ("torch", "packed"):
            torch.manual_seed(0)
            model = EXPERIMENTS[name].model()
            optimizer = model.configure_optimizers()
            compiled = CompiledSteps(model)

            def step(compiled=compiled, optimizer=optimizer, x=x) -> None:
                compiled.step(x, "train", optimizer)

            runs[key] = step
        interleaved(runs, 1, 5, {"packed"})  # compiles both
        seconds = interleaved(runs, rounds, 50, {"packed"})
        print(
            f"| {name} | {batch} | {seconds['torch'] * 1e3:.2f} | {seconds['packed'] * 1e3:.2f} "
            f"| {seconds['packed'] / seconds['torch']:.2f} |"
        )


def conv_micro_batches(sizes: list[int], rounds: int, repeats: int = 3) -> None:
    print("| micro-batch | torch ms/step | packed ms/step | packed / torch |")
    print("|---|---|---|---|")
    x = torch.rand(256, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    runs = {}
    for size in sizes:
        torch.manual_seed(0)
        model = EXPERIMENTS["conv"].model()
        use_cpu_kernels(model.net)
        optimizer = model.configure_optimizers()
        runner = StepRunner(model, cpu_micro_batch_size=size)
        runner.direct = True

        def step(runner=runner, optimizer=optimizer) -> None:
            optimizer.zero_grad()
            runner.loss_and_backward(x, "train")
            optimizer.step()

        runs[f"{size} torch"], runs[f"{size} packed"] = step, step
    packed = {key for key in runs if key.endswith("packed")}
    interleaved(runs, 1, 1, packed)  # warm-up
    seconds = interleaved(runs, rounds, repeats, packed)
    for size in sizes:
        torch_ms, packed_ms = seconds[f"{size} torch"] * 1e3, seconds[f"{size} packed"] * 1e3
        print(f"| {size} | {torch_ms:.0f} | {packed_ms:.0f} | {packed_ms / torch_ms:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=["deep", "dense", "sparse", "denoising"])
    parser.add_argument("--conv", nargs="+", type=int, metavar="SIZE", help="conv's step at these micro-batch sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), torch {torch.__version__}, median of {args.rounds} interleaved rounds\n")
    if args.conv:
        conv_micro_batches(args.conv, args.rounds)
        return
    products(args.rounds)
    steps(args.models, args.rounds)


if __name__ == "__main__":
    main()
