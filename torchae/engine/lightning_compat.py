"""The one place torchae relies on Lightning's private API, because no public way exists: counting optimizer
steps and logged steps that Lightning's loop does not see.

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

__all__ = ["count_logged_batches", "counted_step", "counted_steps"]


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


def count_logged_batches(trainer: Any, extra: int) -> None:
    """Count ``extra`` more batches in the step that Lightning's loggers write (``metrics.csv``'s ``step``, the
    x-axis of TensorBoard): a step group of ``n`` image batches is ``n`` optimizer steps, which ``global_step``
    counts, and should be ``n`` logged steps too, not one. Lightning keeps that count in its epoch loop's
    ``_batches_that_stepped`` (saved in checkpoints), with no public setter."""
    loop = trainer.fit_loop.epoch_loop
    if not isinstance(getattr(loop, "_batches_that_stepped", None), int):
        raise RuntimeError(
            "this Lightning release's training epoch loop has no _batches_that_stepped, which torchae's engine uses "
            "to count step groups in the logged step: install a pytorch-lightning release that torchae supports"
        )
    loop._batches_that_stepped += extra
