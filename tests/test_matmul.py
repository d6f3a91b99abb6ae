"""The packed matrix product (torchae.matmul) against torch's own: values, routing of aten::mm/addmm, gradients, a
compiled step, the engine's choice, and the error where it cannot be built.

Builds the kernel for this machine's CPU on first use (seconds; torch's extension cache keeps it)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from helpers import quiet_trainer

from torchae import matmul
from torchae.data import MNISTDataModule
from torchae.engine import CompiledSteps, Engine
from torchae.errors import ConfigError
from torchae.registry import EXPERIMENTS

ZEN5 = "vendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
ZEN4 = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
ZEN3 = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nflags\t\t: fpu sse2 avx2\n"
INTEL = "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nflags\t\t: fpu sse2 avx2 avx512f\n"


@pytest.mark.parametrize(("text", "helps"), [(ZEN5, True), (ZEN4, False), (ZEN3, False), (INTEL, False), ("", False)])
def test_the_packed_product_is_chosen_only_for_cpus_where_it_was_measured_faster(text, helps):
    cpu = matmul.cpu_info(text + "\nprocessor\t: 1\nvendor_id\t: Other\n")
    assert matmul.packed_matmul_helps(cpu) is helps
    if text:
        assert cpu.vendor in ("AuthenticAMD", "GenuineIntel") and cpu.family > 0 and "avx2" in cpu.flags


def float64_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double() @ b.double()).float()


# Sizes around the register tile (12 x 32), the K chunk (256) and the deep model's products; strides of transposes
# (autograd's backward products) and of slices.
SHAPES = [(1, 1, 1), (5, 3, 7), (12, 32, 32), (13, 257, 33), (256, 784, 147), (784, 256, 147), (256, 49, 98)]


@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_the_packed_product_computes_torch_mm(m, k, n, layout):
    torch.manual_seed(0)
    if layout == "contiguous":
        a, b = torch.randn(m, k), torch.randn(k, n)
    elif layout == "transposed":
        a, b = torch.randn(k, m).t(), torch.randn(n, k).t()
    else:
        a, b = torch.randn(m, 2 * k)[:, ::2], torch.randn(k + 3, n + 5)[3:, 5:]
    expected = float64_product(a, b)
    torch.testing.assert_close(matmul.packed_gemm(a, b), expected, rtol=1e-5, atol=1e-5 * k**0.5)
    torch.testing.assert_close(torch.mm(a, b), expected, rtol=1e-5, atol=1e-5 * k**0.5)


def test_the_packed_product_handles_empty_matrices_and_refuses_other_dtypes():
    assert matmul.packed_gemm(torch.ones(0, 3), torch.ones(3, 4)).shape == (0, 4)
    assert torch.equal(matmul.packed_gemm(torch.ones(2, 0), torch.ones(0, 4)), torch.zeros(2, 4))
    with pytest.raises(RuntimeError, match="float32 CPU tensors"):
        matmul.packed_gemm(torch.ones(2, 3, dtype=torch.float64), torch.ones(3, 4, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"\(M, K\) @ \(K, N\)"):
        matmul.packed_gemm(torch.ones(2, 3), torch.ones(4, 4))


@pytest.fixture
def routed():
    restore = matmul.route_matmul_to_packed()
    yield
    restore()


def routed_during(compute):
    """What ``compute()`` gives, and how many products took the packed kernel meanwhile."""
    before = matmul.routed_calls()
    result = compute()
    return result, matmul.routed_calls() - before


def test_routing_sends_large_float32_products_to_the_packed_kernel_and_the_rest_to_torch():
    torch.manual_seed(0)
    a, b, bias = torch.randn(256, 784), torch.randn(784, 147), torch.randn(147)
    small, wide = (torch.randn(16, 64), torch.randn(64, 32)), (torch.randn(2048, 64), torch.randn(64, 1024))
    calls = {
        "mm": lambda: a @ b,
        "addmm": lambda: torch.addmm(bias, a, b),
        "linear": lambda: F.linear(a, b.t(), bias),
        "mm out": lambda: torch.mm(a, b, out=torch.empty(256, 147)),
        "addmm out": lambda: torch.addmm(bias, a, b, out=torch.empty(256, 147)),
        "scaled addmm": lambda: torch.addmm(bias, a, b, beta=0.5, alpha=2.0),
        "small": lambda: small[0] @ small[1],
        "wide result": lambda: wide[0] @ wide[1],
        "float64": lambda: a.double() @ b.double(),
    }
    expected = {name: compute() for name, compute in calls.items()}
    restore = matmul.route_matmul_to_packed()
    try:
        for name, compute in calls.items():
            result, packed = routed_during(compute)
            assert packed == (name in ("mm", "addmm", "linear", "mm out", "addmm out")), name
            torch.testing.assert_close(result, expected[name], rtol=1e-5, atol=1e-4, msg=name)
        inner = matmul.route_matmul_to_packed()  # nested: stays routed until the outer routing is undone
        inner()
        assert routed_during(calls["mm"])[1] == 1
    finally:
        restore()
    assert routed_during(calls["mm"])[1] == 0


def test_gradients_through_routed_products_are_torchs(routed):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 147), torch.nn.ReLU(), torch.nn.Linear(147, 784))
    x = torch.rand(256, 784)

    def gradients():
        net.zero_grad()
        F.binary_cross_entropy_with_logits(net(x), x).backward()
        return [p.grad.clone() for p in net.parameters()]

    packed, calls = routed_during(gradients)
    assert calls == 5  # two forward products; two weight gradients and one input gradient in the backward pass
    torch.ops.torchae_gemm.set_routing(False)
    stock, calls = routed_during(gradients)
    torch.ops.torchae_gemm.set_routing(True)
    assert calls == 0
    for p, q in zip(packed, stock, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_a_compiled_step_calls_the_packed_kernel_and_takes_torchs_step(routed):
    """Inductor's generated code calls aten::mm for the products of the whole compiled step (forward, torch.func
    gradients): routed, they give the losses and weights of the step with torch's products."""
    torch.manual_seed(0)
    x = torch.rand(256, 1, 28, 28)
    runs = {}
    for packed in (True, False):
        torch.ops.torchae_gemm.set_routing(packed)
        torch.manual_seed(0)
        model = EXPERIMENTS["deep"].model()
        optimizer = model.configure_optimizers()
        steps = CompiledSteps(model)
        before = matmul.routed_calls()
        losses = torch.stack([steps.step(x, "train", optimizer)["loss"] for _ in range(3)])
        runs[packed] = (losses, matmul.routed_calls() - before, model)
    torch.ops.torchae_gemm.set_routing(True)
    assert runs[True][1] == 3 * 17 and runs[False][1] == 0  # 6 products forward, 11 backward
    torch.testing.assert_close(runs[True][0], runs[False][0], rtol=1e-5, atol=0)
    for p, q in zip(runs[True][2].parameters(), runs[False][2].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def fit_deep(tmp_path, engine: Engine) -> int:
    torch.manual_seed(0)
    data = MNISTDataModule(batch_size=256, train_size=512, val_size=256, seed=0)
    trainer = quiet_trainer(tmp_path, max_epochs=1, callbacks=[engine])
    return routed_during(lambda: trainer.fit(EXPERIMENTS["deep"].model(), datamodule=data))[1]


@pytest.mark.parametrize(
    ("setting", "helps", "packed"),
    [("packed", False, True), ("torch", True, False), ("auto", True, True), ("auto", False, False)],
)
def test_the_engine_routes_products_while_fitting_as_cpu_matmul_says(setting, helps, packed, tmp_path, monkeypatch):
    monkeypatch.setattr("torchae.engine.packed_matmul_helps", lambda: helps)
    said = []
    monkeypatch.setattr("torchae.engine.rank_zero_info", said.append)
    engine = Engine(cpu_matmul=setting)
    assert engine.packed_matmul is packed
    assert (fit_deep(tmp_path, engine) > 0) is packed
    assert any(f"packed kernel for this CPU (engine.cpu_matmul {setting};" in line for line in said) is packed
    assert routed_during(lambda: torch.randn(256, 784) @ torch.randn(784, 147))[1] == 0  # given back after fit


def test_a_bad_cpu_matmul_and_a_kernel_that_cannot_be_built_are_refused_with_the_fix(monkeypatch):
    with pytest.raises(ConfigError, match="engine.cpu_matmul must be auto, packed or torch, got 'mkl'"):
        Engine(cpu_matmul="mkl")
    from torch.utils import cpp_extension

    def no_compiler(**kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    matmul.load_packed_matmul.cache_clear()
    try:
        with pytest.raises(
            ConfigError, match=r"could not be built here \(Ninja is required.*--engine.cpu_matmul torch"
        ):
            matmul.load_packed_matmul()
    finally:
        matmul.load_packed_matmul.cache_clear()
