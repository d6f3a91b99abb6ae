"""torchae's packed matrix product (torchae.matmul) against torch's own (MKL on x86), side by side in one process.

    python benchmarks/matmul_bench.py                 # the deep model's products, then compiled steps
    python benchmarks/matmul_bench.py --threads 1     # one thread

Two tables: GFLOP/s of each of the deep model's products at batch 256 (in interleaved rounds of torch's and the
packed kernel, median), and the milliseconds of a compiled training step (``CompiledSteps``: network, loss,
gradients, Keras's Adam) of each model at its batch size with aten::mm/addmm routed to the packed kernel and not,
in interleaved rounds; the ratio is packed over torch's. The first use on a CPU builds the kernel (seconds).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from torchae.engine import CompiledSteps
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

        for restore in (route_matmul_to_packed(), None):  # warm both up
            product()
            if restore:
                restore()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=["deep", "dense", "sparse", "denoising"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), torch {torch.__version__}, median of {args.rounds} interleaved rounds\n")
    products(args.rounds)
    steps(args.models, args.rounds)


if __name__ == "__main__":
    main()
