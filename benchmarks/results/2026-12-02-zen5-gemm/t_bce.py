"""BCE-with-logits and its gradient, compiled two ways: torch.autograd.grad traced into the graph, torch.func.grad."""

import time
from collections.abc import Callable

import torch
from torch.func import grad
from torch.nn import functional as F  # noqa: N812


def with_autograd_grad(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.detach().requires_grad_()
    with torch.enable_grad():
        loss = F.binary_cross_entropy_with_logits(leaf, y)
        (gradient,) = torch.autograd.grad(loss, [leaf])
    return loss.detach(), gradient


def with_func_grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return grad(lambda logits: F.binary_cross_entropy_with_logits(logits, y))(x)


def microseconds(function: Callable[[], object], calls: int = 200) -> float:
    for _ in range(10):
        function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    torch.set_num_threads(1)
    x, y = torch.randn(256, 784), torch.rand(256, 784)
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        compiled_autograd_grad = torch.compile(with_autograd_grad, fullgraph=True)
        compiled_autograd_grad(x, y)
        print("autograd.grad us", microseconds(lambda: compiled_autograd_grad(x, y)))
    compiled_func_grad = torch.compile(with_func_grad, fullgraph=True)
    compiled_func_grad(x, y)
    print("func.grad us", microseconds(lambda: compiled_func_grad(x, y)))


if __name__ == "__main__":
    main()
