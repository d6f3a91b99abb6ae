"""Compiled step time: stock Linear vs GemmLinear, same process, interleaved."""
import sys, time, statistics, torch
from torchae.registry import EXPERIMENTS
from torchae.engine.compiled import CompiledSteps
from torchae.engine.kernels import use_cpu_kernels
name = sys.argv[1]; batch = int(sys.argv[2]); torch.set_num_threads(int(sys.argv[3]))
def make(kernels):
    torch.manual_seed(0)
    model = EXPERIMENTS[name].model(); opt = model.configure_optimizers()
    if kernels: use_cpu_kernels(model.net)
    steps = CompiledSteps(model)
    return lambda x: steps.step(x, "train", opt)["loss"]
x = torch.rand(batch, 1, 28, 28)
runs = {"stock": make(False)}
if len(sys.argv) < 5: runs["gemm"] = make(True)
losses = {k: [f(x).item() for _ in range(3)] for k, f in runs.items()}
print("losses", losses)
times = {k: [] for k in runs}
for r in range(7):
    for k, f in runs.items():
        t = time.perf_counter()
        for _ in range(50): f(x)
        times[k].append((time.perf_counter() - t) / 50 * 1e3)
for k, v in times.items(): print(k, "ms/step median", round(statistics.median(v), 3), [round(t, 2) for t in v])
