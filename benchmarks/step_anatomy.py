"""Where a compiled training step of a dense model goes: its matrix products alone against the whole step.

    python benchmarks/step_anatomy.py deep [--pad 8] [--rounds 9] [--steps 30]
    python benchmarks/step_anatomy.py deep --layouts
    python benchmarks/step_anatomy.py deep --onednn --threads 1

For the dense-layer models (dense, deep, sparse) at the article's batch 256. Measured side by side, in one process,
round after round:

- ``step``: one compiled training step (:class:`~torchae.engine.CompiledSteps`: network, BCE, gradients and Keras's
  Adam), as ``torchae fit`` runs it with the configs;
- ``products``: the step's matrix products alone (each layer's forward product, its weight gradient, and its input
  gradient except the first layer's), with the operand layouts of the compiled step and fresh operands;
- with ``--pad N``: the same step with each hidden width padded with zero units to a multiple of N inside the
  compiled function (the loss and the gradients are the same numbers; the padding's gradients are dropped), and
  the products alone at the padded widths. Widths that are not a multiple of 8 make some products slower.

With ``--layouts`` it times instead each of the step's products alone in every layout that gives the same matrix:
each operand row-major (``N``) or transposed (``T``), and the result written as it is or transposed (``^T``). MKL's
speed for one shape moves with the layout; the step's own layouts are row ``step``.

With ``--onednn`` it times each of the step's products through torch's matrix product (MKL's sgemm in torch's
x86 builds) and through oneDNN's (``torch.ops.aten.mkldnn_linear`` on ``Tensor.to_mkldnn()`` operands), the
kernel alone (operands converted before the clock) and with the conversions to and from oneDNN's layout in each
call. MKL picks its kernels by processor: on AMD processors it may run AVX2 code where oneDNN runs AVX-512.

Prints the median microseconds of each and the products' share of the step. ``--threads`` sets torch's intra-op
threads (default: torch's own choice). Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from torchae.engine import CompiledSteps
from torchae.registry import EXPERIMENTS

BATCH = 256


def layer_widths(model: nn.Module) -> list[int]:
    """Input and output widths of the chain of ``nn.Linear`` layers: ``[784, 147, ..., 784]`` for deep."""
    linears = [m for m in model.net.modules() if isinstance(m, nn.Linear)]
    return [linears[0].in_features, *(m.out_features for m in linears)]


def padded_widths(widths: list[int], multiple: int, keep: set[int]) -> list[int]:
    """Hidden widths rounded up to ``multiple``; the input, the output and the layers in ``keep`` (the code, which
    the loss may see) stay."""
    last = len(widths) - 1
    return [w if i in (0, last) or i in keep else -(-w // multiple) * multiple for i, w in enumerate(widths)]


def product_shapes(widths: list[int]) -> list[tuple[str, int, int, int]]:
    """``(kind, m, k, n)`` of the products in one step: forward, input gradient (not for the first layer) and
    weight gradient of each layer."""
    shapes = []
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:], strict=False)):
        shapes.append(("forward", BATCH, fan_in, fan_out))
        if i > 0:
            shapes.append(("input_grad", BATCH, fan_out, fan_in))
        shapes.append(("weight_grad", fan_out, BATCH, fan_in))
    return shapes


def step_transposes(kind: str) -> tuple[bool, bool]:
    """Whether the compiled step reads the left and the right operand of a ``kind`` product transposed: the forward
    reads the weight transposed, the weight gradient reads the output gradient transposed."""
    return kind == "weight_grad", kind == "forward"


def interleaved_times(runs: dict[str, Callable[[int], object]], rounds: int, calls: int) -> dict[str, list[float]]:
    """Microseconds per call of each of ``runs`` (called with the call's index), one list entry per round: five
    warm-up calls each (compiling), then ``rounds`` rounds that time ``calls`` calls of each in turn."""
    for run in runs.values():
        for i in range(5):
            run(i)
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(rounds):
        for key, run in runs.items():
            start = time.perf_counter()
            for i in range(calls):
                run(i)
            times[key].append((time.perf_counter() - start) / calls * 1e6)
    return times


def products(widths: list[int]) -> Callable[[], None]:
    """The step's products, with the compiled step's layouts (:func:`step_transposes`)."""
    calls = []
    for kind, m, k, n in product_shapes(widths):
        left_transposed, right_transposed = step_transposes(kind)
        left = torch.rand(k, m).t() if left_transposed else torch.rand(m, k)
        right = torch.rand(n, k).t() if right_transposed else torch.rand(k, n)
        calls.append((left, right, torch.empty(m, n)))

    def run() -> None:
        for left, right, out in calls:
            torch.mm(left, right, out=out)

    return run


def layout_variants(kind: str, m: int, k: int, n: int) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Operands ``(left, right, out)`` of one ``m x k x n`` product in each layout: ``step`` as the compiled step
    lays them out (see :func:`products`), and every combination of row-major (``N``) or transposed (``T``) operands
    (``"NT"``: left row-major, right transposed) with the result row-major or, with ``^T``, transposed. The operands
    hold the same numbers in every variant, so every ``torch.mm(left, right, out=out)`` gives the same matrix."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(m, k, generator=generator), torch.rand(k, n, generator=generator)
    layouts = {
        "N": (a.contiguous(), b.contiguous()),
        "T": (a.t().contiguous().t(), b.t().contiguous().t()),
    }
    variants = {}
    left_transposed, right_transposed = step_transposes(kind)
    operands = {"step": (layouts["T" if left_transposed else "N"][0], layouts["T" if right_transposed else "N"][1])}
    operands.update({f"{x}{y}": (layouts[x][0], layouts[y][1]) for x in "NT" for y in "NT"})
    for name, (left, right) in operands.items():
        variants[name] = (left, right, torch.empty(m, n))
        variants[f"{name}^T"] = (left, right, torch.empty(n, m).t())
    return variants


def time_layouts(widths: list[int], rounds: int, calls: int) -> None:
    """Print, for each product of the step, its time in the step's layout and in the fastest one."""
    for kind, m, k, n in product_shapes(widths):
        runs = {
            name: lambda i, left=left, right=right, out=out: torch.mm(left, right, out=out)
            for name, (left, right, out) in layout_variants(kind, m, k, n).items()
        }
        times = interleaved_times(runs, rounds, calls)
        medians = {name: statistics.median(values) for name, values in times.items()}
        best = min(medians, key=medians.__getitem__)
        gflops = 2 * m * k * n / medians["step"] / 1e3
        print(
            f"{kind:>11} {m:4d}x{k:4d}x{n:4d}: step {medians['step']:6.0f} us ({gflops:5.1f} GFLOP/s), "
            f"fastest {best} {medians[best]:6.0f} us ({medians[best] / medians['step']:.2f})"
        )


def onednn_operands(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``left`` and ``right`` of ``left @ right`` in oneDNN's layout, as :func:`onednn_product` takes them."""
    return left.contiguous().to_mkldnn(), right.t().contiguous().to_mkldnn()


def onednn_product(left: torch.Tensor, right_transposed: torch.Tensor) -> torch.Tensor:
    """``left @ right`` through oneDNN, from :func:`onednn_operands` (a oneDNN tensor: ``.to_dense()`` reads it)."""
    return torch.ops.aten.mkldnn_linear(left, right_transposed)


def time_onednn(widths: list[int], rounds: int, calls: int) -> None:
    """Print, for each product of the step, its time through torch's ``mm`` in the step's layout and through
    oneDNN (the kernel alone, and with the conversions), and the totals over the step's products."""
    totals = {"mm": 0.0, "oneDNN kernel": 0.0, "oneDNN with conversions": 0.0}
    for kind, m, k, n in product_shapes(widths):
        left, right, out = layout_variants(kind, m, k, n)["step"]
        converted = onednn_operands(left, right)
        torch.testing.assert_close(onednn_product(*converted).to_dense(), left @ right, rtol=1e-4, atol=1e-4)
        runs = {
            "mm": lambda i, left=left, right=right, out=out: torch.mm(left, right, out=out),
            "oneDNN kernel": lambda i, converted=converted: onednn_product(*converted),
            "oneDNN with conversions": lambda i, left=left, right=right: onednn_product(
                *onednn_operands(left, right)
            ).to_dense(),
        }
        medians = {name: statistics.median(values) for name, values in interleaved_times(runs, rounds, calls).items()}
        for name, value in medians.items():
            totals[name] += value
        cells = ", ".join(
            f"{name} {value:6.0f} us ({2 * m * k * n / value / 1e3:5.1f} GFLOP/s)" for name, value in medians.items()
        )
        print(f"{kind:>11} {m:4d}x{k:4d}x{n:4d}: {cells}")
    print(
        "all products: "
        + ", ".join(f"{name} {value:6.0f} us ({value / totals['mm']:.2f})" for name, value in totals.items())
    )


class PaddedSteps(CompiledSteps):
    """Compiled steps whose linear layers run at padded widths: zero rows and columns appended to the weights and
    zeros to the biases inside the traced step. The padded units' outgoing weights are zero, so the loss and the
    real parameters' gradients are unchanged; the padding's gradients never reach the flat gradient, which is made
    of the real parameters' gradients only."""

    def __init__(self, module: nn.Module, widths: list[int], padded: list[int], **compile_options: object) -> None:
        super().__init__(module, **compile_options)
        linears = [name for name, m in self.terms.named_modules() if isinstance(m, nn.Linear)]
        self.plan = {
            name: (padded[i + 1], padded[i]) for i, name in enumerate(linears) if padded[i : i + 2] != widths[i : i + 2]
        }

    def _pad(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = dict(params)
        for name, (rows, cols) in self.plan.items():
            weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
            out[f"{name}.weight"] = F.pad(weight, (0, cols - weight.shape[1], 0, rows - weight.shape[0]))
            out[f"{name}.bias"] = F.pad(bias, (0, rows - bias.shape[0]))
        return out

    def _terms_with(
        self, params: dict[str, torch.Tensor], inputs: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return super()._terms_with(self._pad(params), inputs, target)


def stepper(name: str, padded: list[int] | None) -> Callable[[torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    model = EXPERIMENTS[name].model()
    optimizer = model.configure_optimizers()
    widths = layer_widths(model)
    steps = CompiledSteps(model) if padded is None else PaddedSteps(model, widths, padded)
    return lambda x: steps.step(x, "train", optimizer)["loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["dense", "deep", "sparse"])
    parser.add_argument("--pad", type=int, default=None, help="also time hidden widths padded to this multiple")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=30, help="steps (or product sets) timed per round")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--layouts", action="store_true", help="time each product alone in every layout instead")
    parser.add_argument("--onednn", action="store_true", help="time each product through torch's mm and oneDNN instead")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    widths = layer_widths(EXPERIMENTS[args.model].model())
    header = f"{args.model}: widths {widths}, batch {BATCH}, {torch.get_num_threads()} threads, median of {args.rounds}"
    if args.layouts or args.onednn:
        print(header)
        (time_layouts if args.layouts else time_onednn)(widths, args.rounds, args.steps)
        return
    batches = torch.rand(8, BATCH, 1, 28, 28)
    runs: dict[str, Callable[[int], object]] = {}
    step = stepper(args.model, None)
    runs["step"] = lambda i: step(batches[i % len(batches)])
    plain_products = products(widths)
    runs["products"] = lambda i: plain_products()
    if args.pad:
        code_layer = len(widths) // 2  # the code: the sparse model's penalty sees its width
        padded = padded_widths(widths, args.pad, keep={code_layer})
        padded_step = stepper(args.model, padded)
        for i in range(3):  # the same losses: the padding changes nothing the step computes
            torch.testing.assert_close(padded_step(batches[i]), step(batches[i]), rtol=1e-5, atol=0)
        runs[f"step, widths {padded}"] = lambda i: padded_step(batches[i % len(batches)])
        padded_products = products(padded)
        runs[f"products, widths {padded}"] = lambda i: padded_products()
    times = interleaved_times(runs, args.rounds, args.steps)
    print(header)
    medians = {key: statistics.median(values) for key, values in times.items()}
    for key, value in medians.items():
        print(f"{key:>40}: {value:8.0f} us")
    print(f"{'products / step':>40}: {medians['products'] / medians['step']:8.2f}")
    if args.pad:
        step_ratios = [p / s for s, p in zip(times["step"], times[f"step, widths {padded}"], strict=True)]
        product_ratios = [p / s for s, p in zip(times["products"], times[f"products, widths {padded}"], strict=True)]
        print(f"{'padded / plain, step':>40}: {statistics.median(step_ratios):8.3f}")
        print(f"{'padded / plain, products':>40}: {statistics.median(product_ratios):8.3f}")


if __name__ == "__main__":
    main()
