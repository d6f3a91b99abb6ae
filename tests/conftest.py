"""Shared fixtures.

torch._dynamo is imported before anything can import TensorFlow: TensorFlow loaded first makes the process crash
when a torch optimizer is created. pytest imports this file before any test module, so every test order is safe;
``tests/test_parity.py::test_import_order_hazard_is_handled`` proves it.

The suite runs in pytest-xdist workers (the README's ``-n 2``); each worker gets its share of the cores for its
intra-op threads and for the processes its tests start (see :func:`pytest_configure`).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch._dynamo  # noqa: F401  (must precede any TensorFlow import; see the module docstring)

from torchae.data import load_mnist, to_image_tensor


def pytest_configure(config: pytest.Config) -> None:
    """Split the cores between pytest-xdist workers. Each process would otherwise start one OpenMP thread per core,
    and an OpenMP team whose cores are busy with another worker waits at every barrier: its kernels run several times
    slower. ``OMP_NUM_THREADS`` carries the share to the processes that
    tests start (the CLI, DDP ranks, benchmarks); TensorFlow's pools get the same."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
        for variable in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ.setdefault(variable, threads)
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``parity`` needs Keras 3 (the [parity] extra): without it, it is skipped with the reason and the
    install command. CI sets ``TORCHAE_REQUIRE_PARITY=1``, under which nothing is skipped (a missing Keras fails)."""
    import importlib.util

    if os.environ.get("TORCHAE_REQUIRE_PARITY") == "1" or importlib.util.find_spec("keras") is not None:
        return
    skip = pytest.mark.skip(reason="needs the [parity] extra (Keras 3): pip install -e '.[parity,dev]'")
    for item in items:
        if item.get_closest_marker("parity") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist():
    return load_mnist()


@pytest.fixture(scope="session")
def test_images(mnist) -> torch.Tensor:
    """The first 256 MNIST test images, ``(256, 1, 28, 28)`` float32 in [0, 1]."""
    return to_image_tensor(mnist.x_test[:256])
