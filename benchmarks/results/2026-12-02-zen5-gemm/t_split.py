"""A split compiled step against the whole compiled step (main's CompiledSteps), interleaved in one process.

    python t_split.py deep THREADS [gemm]

The split step: a compiled forward (AOT autograd builds its backward, with ``torchae::mm``'s gradient registered by
``torch.library.register_autograd``), an eager ``torch.autograd.grad`` that runs that backward, and a compiled Adam
update: the way around pytorch/pytorch#193279 with no private Dynamo setting. With ``gemm`` the split step's linear
layers also run ``torchae::mm`` (``gemm.cpp``).
"""

import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.cpp_extension import load

from torchae.engine.compiled import CompiledSteps
from torchae.optim import KerasAdam
from torchae.registry import EXPERIMENTS


def register_gemm() -> None:
    source = str(Path(__file__).with_name("gemm.cpp"))
    load("torchae_gemm_exp", [source], extra_cflags=["-O3", "-march=native", "-fopenmp"], is_python_module=False)
    torch.library.register_fake("torchae::mm", lambda a, b: a.new_empty(a.shape[0], b.shape[1]))

    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(*inputs)

    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        grad_a = torch.ops.torchae.mm(grad, b.t()) if ctx.needs_input_grad[0] else None
        grad_b = None
        if ctx.needs_input_grad[1]:
            grad_b = torch.ops.torchae.mm(grad.t(), a).t() if b.stride(0) == 1 else torch.ops.torchae.mm(a.t(), grad)
        return grad_a, grad_b

    torch.library.register_autograd("torchae::mm", backward, setup_context=setup_context)


class GemmLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.torchae.mm(x.reshape(-1, self.in_features), self.weight.t()) + self.bias


def swap_linears(net: nn.Module) -> None:
    for name, child in net.named_children():
        if type(child) is nn.Linear:
            fast = GemmLinear(child.in_features, child.out_features)
            fast.weight, fast.bias = child.weight, child.bias
            setattr(net, name, fast)
        else:
            swap_linears(child)


class SplitSteps(CompiledSteps):
    """``CompiledSteps``' step split in three: its layout, flat gradient and Adam update, with the gradients taken
    by an eager ``torch.autograd.grad`` between a compiled forward and a compiled update."""

    def __init__(self, model: nn.Module, gemm: bool) -> None:
        super().__init__(model)
        if gemm:
            swap_linears(model.net)
        self.forward = torch.compile(self._forward, fullgraph=True, dynamic=False)
        self.update = torch.compile(self._update, fullgraph=True, dynamic=False)

    def _forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        return functional_call(self.terms, params, (x, x))

    def _update(self, weights, gradients, moments, squares, neg_alpha, beta_1, beta_2, epsilon) -> None:  # noqa: ANN001
        flat_gradient = self._flat_gradient(weights, gradients)
        KerasAdam.update_(weights, flat_gradient, moments, squares, (beta_1, beta_2), epsilon, neg_alpha)

    def split_step(self, x: torch.Tensor, optimizer: KerasAdam) -> dict[str, torch.Tensor]:
        group, flat = self._flat_group(optimizer)
        params = {
            name: flat.weights[offset : offset + math.prod(shape)].view(shape).detach().requires_grad_()
            for name, offset, shape in self.layout
        }
        terms = self.forward(params, x)
        gradients = dict(zip(params, torch.autograd.grad(terms["loss"], list(params.values())), strict=True))
        neg_alpha = torch.tensor(-KerasAdam.advance_step(group))
        beta_1, beta_2 = group["betas"]
        self.update(flat.weights, gradients, flat.moments, flat.squares, neg_alpha, beta_1, beta_2, group["eps"])
        KerasAdam.flush_denormals(flat, group)
        return {key: value.detach() for key, value in terms.items()}


def make(name: str, kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    model = EXPERIMENTS[name].model()
    optimizer = model.configure_optimizers()
    if kind == "main":
        steps = CompiledSteps(model)
        return lambda x: steps.step(x, "train", optimizer)["loss"]
    split = SplitSteps(model, gemm=kind == "gemm")
    return lambda x: split.split_step(x, optimizer)["loss"]


def main() -> None:
    name = sys.argv[1]
    torch.set_num_threads(int(sys.argv[2]))
    kinds = ["main", "split"]
    if sys.argv[3:] == ["gemm"]:
        register_gemm()
        kinds.append("gemm")
    batches = torch.rand(8, 256, 1, 28, 28)
    runs = {kind: make(name, kind) for kind in kinds}
    print("losses", {kind: [run(batches[i]).item() for i in range(4)] for kind, run in runs.items()}, flush=True)
    times: dict[str, list[float]] = {kind: [] for kind in runs}
    for _ in range(7):
        for kind, run in runs.items():
            start = time.perf_counter()
            for i in range(40):
                run(batches[i % 8])
            times[kind].append((time.perf_counter() - start) / 40 * 1e3)
    for kind, values in times.items():
        print(kind, "ms/step median", round(statistics.median(values), 3), [round(t, 2) for t in values])


if __name__ == "__main__":
    main()
