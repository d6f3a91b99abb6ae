"""One-thread (or N) GEMM timings: torch.mm (MKL) against torchae::gemm of gemm.cpp.  python gemm_bench.py THREADS"""
import torch, time, sys
from pathlib import Path
from torch.utils.cpp_extension import load
t=time.time()
load("tae_gemm_exp", [str(Path(__file__).with_name("gemm.cpp"))], extra_cflags=["-O3", "-march=native", "-fopenmp"], is_python_module=False)
print("build s", round(time.time()-t,1))
torch.set_num_threads(int(sys.argv[1]))
def bench(fn, n=100):
    for _ in range(5): fn()
    ts=[]
    for r in range(5):
        t=time.perf_counter()
        for _ in range(n): fn()
        ts.append((time.perf_counter()-t)/n)
    return sorted(ts)[2]*1e6
for M,K,N in [(256,784,147),(256,147,784),(147,256,784),(784,256,147),(256,147,98),(256,98,49)]:
    for ta in (False, True):
        a = torch.randn(K,M).t() if ta else torch.randn(M,K)
        b = torch.randn(N,K).t()
        ref = a @ b; out = torch.ops.torchae.gemm(a, b)
        err = (ref-out).abs().max().item()
        tm = bench(lambda: a @ b); tg = bench(lambda: torch.ops.torchae.gemm(a, b))
        fl = 2*M*N*K
        print(f"{M}x{K}x{N} ta={ta}: mm {tm:6.0f}us {fl/tm/1e3:4.0f} GF/s  ours {tg:6.0f}us {fl/tg/1e3:4.0f} GF/s  err {err:.1e}", flush=True)
