import torch, time, torch.nn.functional as F
from torch.func import grad
torch.set_num_threads(1)
x = torch.randn(256, 784); y = torch.rand(256, 784)
def a(x, y):
    q = x.detach().requires_grad_()
    with torch.enable_grad():
        l = F.binary_cross_entropy_with_logits(q, y)
        (g,) = torch.autograd.grad(l, [q])
    return l.detach(), g
def b(x, y):
    return grad(lambda q: F.binary_cross_entropy_with_logits(q, y))(x)
with torch._dynamo.config.patch(trace_autograd_ops=True):
    ca = torch.compile(a, fullgraph=True); ca(x, y)
cb = torch.compile(b, fullgraph=True); cb(x, y)
def tm(f):
    for _ in range(10): f()
    t = time.perf_counter()
    for _ in range(200): f()
    return (time.perf_counter() - t) / 200 * 1e6
with torch._dynamo.config.patch(trace_autograd_ops=True):
    print("autograd.grad us", tm(lambda: ca(x, y)))
print("func.grad us", tm(lambda: cb(x, y)))
