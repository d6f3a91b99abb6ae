"""A packed float32 matrix product for CPUs on which torch's MKL runs narrower vector code than the CPU has.

The MKL that torch links picks its kernels by processor, and on AMD CPUs it runs its AVX2 code, also on the Zen 5
generation, whose AVX-512 units are full width: there a matrix product compiled for the CPU itself runs 1.4-2.1x
as fast (``benchmarks/results/2026-12-03-zen5-packed-matmul.md``). ``csrc/gemm.cpp`` is such a product (a packed
GEMM in the layout of Goto's, compiled with ``-march=native`` the first time it is used on a CPU, and cached by
``torch.utils.cpp_extension`` from then on).

:func:`route_matmul_to_packed` makes it torch's CPU kernel of ``aten::mm`` and ``aten::addmm`` for float32 until the
function it returns is called: the network's layers, autograd's backward products and the products that a
compiled step (``torch.compile``, inductor) calls all go through it, with no change to the models or to autograd.
Only products of at least 2^20 multiply-adds with results of at most 2^20 elements take it (smaller ones lose
to its packing and threading, larger ones are bound by memory, where MKL's stores are faster); the others, and
every other dtype, run torch's own CPU kernel. The engine routes while fitting where :func:`packed_matmul_helps`
(``engine.cpu_matmul``). The sums are the same products in another order: results differ from MKL's by float32
rounding (tested against ``torch.mm`` in ``tests/test_matmul.py``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from torchae.errors import ConfigError

__all__ = [
    "CpuInfo",
    "cpu_info",
    "load_packed_matmul",
    "packed_gemm",
    "packed_matmul_helps",
    "route_matmul_to_packed",
    "routed_calls",
]

SOURCE = Path(__file__).with_name("csrc") / "gemm.cpp"
"""The kernel's C++ source, shipped with the package."""

_FLAGS = ("-O3", "-march=native", "-fopenmp")


@dataclass(frozen=True)
class CpuInfo:
    """What ``/proc/cpuinfo`` says of the first processor (empty where there is no such file)."""

    vendor: str = ""
    family: int = -1
    model: int = -1
    flags: frozenset[str] = frozenset()


def cpu_info(text: str | None = None) -> CpuInfo:
    """The first processor of ``/proc/cpuinfo`` (or of ``text`` in its format)."""
    if text is None:
        path = Path("/proc/cpuinfo")
        if not path.is_file():
            return CpuInfo()
        text = path.read_text()
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    number = re.compile(r"\d+")
    return CpuInfo(
        vendor=fields.get("vendor_id", ""),
        family=int(fields["cpu family"]) if number.fullmatch(fields.get("cpu family", "")) else -1,
        model=int(fields["model"]) if number.fullmatch(fields.get("model", "")) else -1,
        flags=frozenset(fields.get("flags", "").split()),
    )


def packed_matmul_helps(cpu: CpuInfo | None = None) -> bool:
    """Whether the packed product is faster than torch's MKL on ``cpu`` (this machine's by default): an AMD CPU of
    family 26 (Zen 5) or later with AVX-512. Measured: 1.4-2.1x MKL on the deep model's products on Zen 5; level with
    it on Zen 4 (family 25), whose AVX-512 runs on 256-bit units like MKL's AVX2 code; slower than MKL on an Intel
    Xeon (family 6 model 167), where MKL runs its own AVX-512 code (``benchmarks/results/2026-12-04-xeon-bench.md``)."""
    cpu = cpu_info() if cpu is None else cpu
    return cpu.vendor == "AuthenticAMD" and cpu.family >= 26 and "avx512f" in cpu.flags


@functools.cache
def load_packed_matmul() -> None:
    """Build (once per CPU and source, then from torch's extension cache) and load the kernel: the operators
    ``torch.ops.torchae_gemm.*``.

    Raises:
        ConfigError: the kernel cannot be built here (no C++ compiler or ninja), with the fix.
    """
    # torch.utils.cpp_extension looks for CUDA when it is imported and logs a warning where there is none: not news
    # to anyone building a CPU kernel. Imported here, not at the top: that search takes time.
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension

        _build(cpp_extension)
    finally:
        logger.setLevel(level)


def _build(cpp_extension: ModuleType) -> None:
    cpu = cpu_info()
    key = hashlib.sha256(
        SOURCE.read_bytes()
        + " ".join(_FLAGS).encode()
        + f"{cpu.vendor} {cpu.family} {cpu.model}".encode()
        + " ".join(sorted(cpu.flags)).encode()
    ).hexdigest()[:12]
    try:
        cpp_extension.load(
            name=f"torchae_gemm_{key}",
            sources=[str(SOURCE)],
            extra_cflags=list(_FLAGS),
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
        )
    except (RuntimeError, OSError, ImportError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"torchae's packed matrix product could not be built here ({first}): install a C++ compiler and ninja, "
            "or set --engine.cpu_matmul torch"
        ) from error


def packed_gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` by the packed kernel, whatever the sizes (for float32 CPU matrices of any strides; no gradient)."""
    load_packed_matmul()
    return torch.ops.torchae_gemm.gemm(a, b)


def routed_calls() -> int:
    """How many products have taken the packed kernel through ``aten::mm``/``aten::addmm`` in this process."""
    load_packed_matmul()
    return torch.ops.torchae_gemm.routed_calls()


def route_matmul_to_packed() -> Callable[[], None]:
    """Make the packed kernel torch's CPU kernel of float32 ``aten::mm`` and ``aten::addmm`` (for the products
    described in the module's docstring) until the returned function is called; nested routing leaves it on until
    the outermost is undone.

    Returns:
        A function that gives ``aten::mm`` and ``aten::addmm`` back to torch's kernels (or leaves them routed, if
        they were already routed when this was called).
    """
    load_packed_matmul()
    was_routed = torch.ops.torchae_gemm.set_routing(True)

    def restore() -> None:
        torch.ops.torchae_gemm.set_routing(was_routed)

    return restore
