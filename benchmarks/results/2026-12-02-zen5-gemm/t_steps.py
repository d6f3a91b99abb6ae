"""Compiled step time: stock Linear vs GemmLinear, same process, interleaved.

python t_steps.py MODEL BATCH THREADS [base]    # with "base": the stock step alone (a checkout without GemmLinear)
"""

import statistics
import sys
import time
from collections.abc import Callable

import torch

from torchae.engine.compiled import CompiledSteps
from torchae.engine.kernels import use_cpu_kernels
from torchae.registry import EXPERIMENTS


def make(name: str, kernels: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    model = EXPERIMENTS[name].model()
    optimizer = model.configure_optimizers()
    if kernels:
        use_cpu_kernels(model.net)
    steps = CompiledSteps(model)
    return lambda x: steps.step(x, "train", optimizer)["loss"]


def main() -> None:
    name, batch = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(int(sys.argv[3]))
    x = torch.rand(batch, 1, 28, 28)
    runs = {"stock": make(name, False)}
    if len(sys.argv) < 5:
        runs["gemm"] = make(name, True)
    print("losses", {key: [run(x).item() for _ in range(3)] for key, run in runs.items()})
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(7):
        for key, run in runs.items():
            start = time.perf_counter()
            for _ in range(50):
                run(x)
            times[key].append((time.perf_counter() - start) / 50 * 1e3)
    for key, values in times.items():
        print(key, "ms/step median", round(statistics.median(values), 3), [round(t, 2) for t in values])


if __name__ == "__main__":
    main()
