"""The one place torchae relies on Lightning's private API, because no public way exists.

A training step that calls ``optimizer.step()`` on the raw optimizer (the engine's direct step and its CUDA-graph
replay) bypasses ``LightningOptimizer.step``, which is what counts the step in Lightning's progress
(``trainer.global_step``, and through it checkpoint names, ``max_steps`` and step-based logging). Lightning offers
no public call for that count; :func:`counted_step` makes the two private calls ``LightningOptimizer.step`` makes
around an optimizer step. ``tests/test_engine.py::test_lightning_compat_still_counts_steps`` fails loudly when a
Lightning release changes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["counted_step", "counted_steps"]


@contextmanager
def counted_step(optimizer: Any) -> Iterator[None]:
    """Around an optimizer step that bypasses ``LightningOptimizer.step`` (``optimizer`` is that wrapper): count it
    in Lightning's step progress (``global_step``), with the calls that ``LightningOptimizer.step`` makes."""
    before, after = getattr(optimizer, "_on_before_step", None), getattr(optimizer, "_on_after_step", None)
    if not (callable(before) and callable(after)):
        raise RuntimeError(
            f"this Lightning release's {type(optimizer).__name__} has no _on_before_step/_on_after_step, which "
            "torchae's engine uses to count direct steps: set --engine.direct_steps false, or install a "
            "pytorch-lightning release that torchae supports (see pyproject.toml)"
        )
    before()
    yield
    after()


@contextmanager
def counted_steps(optimizer: Any, count: int) -> Iterator[None]:
    """Around ``count`` optimizer steps taken in one call (compiled steps): each counted as :func:`counted_step`
    counts one."""
    for _ in range(count - 1):
        with counted_step(optimizer):
            pass
    with counted_step(optimizer):
        yield
