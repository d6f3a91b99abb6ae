"""One-thread (or N) GEMM timings: torch.mm (MKL) against torchae::gemm of gemm.cpp.  python gemm_bench.py THREADS"""

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.cpp_extension import load

SHAPES = [(256, 784, 147), (256, 147, 784), (147, 256, 784), (784, 256, 147), (256, 147, 98), (256, 98, 49)]


def median_microseconds(function: Callable[[], object], calls: int = 100) -> float:
    for _ in range(5):
        function()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls)
    return sorted(times)[2] * 1e6


def main() -> None:
    start = time.time()
    source = str(Path(__file__).with_name("gemm.cpp"))
    load("tae_gemm_exp", [source], extra_cflags=["-O3", "-march=native", "-fopenmp"], is_python_module=False)
    print("build s", round(time.time() - start, 1))
    torch.set_num_threads(int(sys.argv[1]))
    for m, k, n in SHAPES:
        for a_transposed in (False, True):
            a = torch.randn(k, m).t() if a_transposed else torch.randn(m, k)
            b = torch.randn(n, k).t()
            error = (a @ b - torch.ops.torchae.gemm(a, b)).abs().max().item()
            mkl = median_microseconds(lambda a=a, b=b: a @ b)
            ours = median_microseconds(lambda a=a, b=b: torch.ops.torchae.gemm(a, b))
            flops = 2 * m * n * k
            print(
                f"{m}x{k}x{n} ta={a_transposed}: mm {mkl:6.0f}us {flops / mkl / 1e3:4.0f} GF/s  "
                f"ours {ours:6.0f}us {flops / ours / 1e3:4.0f} GF/s  err {error:.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
