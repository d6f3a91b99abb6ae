"""The engine's training and validation steps: several image batches per Lightning step, each with its own
optimizer step (Keras's ``steps_per_execution``), CPU micro-batches, and a direct ``backward``/``step`` when no
per-step hook listens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities.model_helpers import is_overridden

from torchae.autoencoder import AutoencoderModule, Stage
from torchae.data import batches_of
from torchae.engine.lightning_compat import count_logged_batches, counted_step, counted_steps
from torchae.inputs import batch_size_of

if TYPE_CHECKING:
    from torchae.engine.compiled import CompiledSteps
    from torchae.engine.graphs import StepGraphs

__all__ = ["PER_STEP_HOOKS", "StepRunner", "plain_single_device", "step_hooks_in_use"]

PER_STEP_HOOKS = (
    "backward",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
)
"""The hooks Lightning runs around each backward pass and optimizer step of a manual-optimization training step."""


def step_hooks_in_use(trainer: pl.Trainer, module: pl.LightningModule) -> list[str]:
    """``"Owner.hook"`` for each per-step hook that a callback of ``trainer`` or ``module`` overrides."""
    in_use = [
        f"{type(callback).__name__}.{hook}"
        for hook in PER_STEP_HOOKS
        for callback in trainer.callbacks
        if hook != "backward" and is_overridden(hook, callback, pl.Callback)
    ]
    in_use += [
        f"{type(module).__name__}.{hook}" for hook in PER_STEP_HOOKS if is_overridden(hook, module, pl.LightningModule)
    ]
    return in_use


def plain_single_device(trainer: pl.Trainer) -> bool:
    """Whether ``trainer`` runs on one device at 32-bit precision with no precision plugin of its own."""
    return (
        isinstance(trainer.strategy, SingleDeviceStrategy)
        and type(trainer.strategy.precision_plugin) is Precision
        and trainer.precision == "32-true"
    )


class StepRunner:
    """Runs a torchae model's training and validation steps for the engine.

    A step receives one image batch or a :class:`~torchae.data.BatchGroup` of several; each batch gets its own
    optimizer step, and the loss terms are logged once per Lightning step, as the group's mean over its images
    (so Lightning's batch-size-weighted epoch mean is still Keras's epoch ``loss``).

    Args:
        module: the model; the runner uses its ``loss_terms``, ``log_terms`` and optimizer.
        cpu_micro_batch_size: on a CPU, run batches in parts of this size (see :meth:`loss_and_backward`).
        graphs: replay each step as a captured CUDA graph (:class:`~torchae.engine.graphs.StepGraphs`).
    """

    def __init__(
        self, module: AutoencoderModule, cpu_micro_batch_size: int | None = None, graphs: StepGraphs | None = None
    ) -> None:
        self.module = module
        self.cpu_micro_batch_size = cpu_micro_batch_size
        self.graphs = graphs
        self.direct = False
        """Call ``backward`` and the optimizer directly (set by the engine when no per-step hook listens)."""
        self.compiled: CompiledSteps | None = None
        """Run each training step as one compiled function (set by the engine)."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.run(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.run(batch, "val")

    def run(self, batch: Any, stage: Stage) -> torch.Tensor:
        """Every image batch of ``batch`` (one optimizer step each when training); returns the mean loss."""
        optimizer = self.module.optimizers() if stage == "train" else None
        # The finiteness test would synchronise with the device every step; the datamodule checks its data once.
        inputs_of, check = self.module.inputs_of, self.module.check_inputs
        xs = [check(inputs_of(part), check_finite=False) for part in batches_of(batch)]
        sums: dict[str, torch.Tensor] = {}
        count = start = 0
        while start < len(xs):
            together = self.steps_in_one_call(xs, start, optimizer)
            if together > 1:
                assert self.compiled is not None
                with counted_steps(optimizer, together):
                    stacked = self.compiled.steps(xs[start : start + together], stage, optimizer.optimizer)
                n = xs[start].shape[0]
                weighted = {name: values.sum() * n for name, values in stacked.items()}  # already detached
            else:
                x = xs[start]
                if self.graphs is not None:
                    terms = self.graphs.run(self.module, x, stage, optimizer, self.step)
                else:
                    terms = self.step(x, stage, optimizer)
                weighted = {name: value * batch_size_of(x) for name, value in terms.items()}  # already detached
            for name, value in weighted.items():
                sums[name] = value if name not in sums else sums[name] + value
            count += sum(batch_size_of(x) for x in xs[start : start + together])
            start += together
        self.module.log_terms({name: total / count for name, total in sums.items()}, stage, batch_size=count)
        if optimizer is not None and len(xs) > 1:
            count_logged_batches(self.module.trainer, len(xs) - 1)
        return sums["loss"] / count

    def steps_in_one_call(self, xs: list[torch.Tensor], start: int, optimizer: Any) -> int:
        """How many training steps from ``xs[start]`` on run as one compiled call: the compiled steps'
        ``steps_per_call`` where that many batches of one shape are left, else 1."""
        several = self.compiled.steps_per_call if self.compiled is not None else 1
        if several == 1 or optimizer is None or not torch.is_grad_enabled() or len(xs) - start < several:
            return 1
        shape = xs[start].shape
        return several if all(x.shape == shape for x in xs[start + 1 : start + several]) else 1

    def step(self, x: torch.Tensor, stage: Stage, optimizer: Any) -> dict[str, torch.Tensor]:
        """One step on batch ``x``: the loss terms (detached), and an optimizer step when ``optimizer`` is given."""
        if optimizer is None:
            return self.loss_and_backward(x, stage)
        if self.compiled is not None and torch.is_grad_enabled():
            with counted_step(optimizer):
                return self.compiled.step(x, stage, optimizer.optimizer)
        optimizer.zero_grad()
        terms = self.loss_and_backward(x, stage)
        if self.direct:
            # LightningOptimizer.step runs hooks, precision plugins and strategies around the step; with none in
            # play the raw step is the same step for ~0.1 ms less Python (14% of a batch-16 epoch on a 2-core CPU).
            with counted_step(optimizer):
                optimizer.optimizer.step()
        else:
            optimizer.step()
        return terms

    def backward(self, loss: torch.Tensor) -> None:
        if self.direct:
            loss.backward()
        else:
            self.module.manual_backward(loss)

    def loss_and_backward(self, x: torch.Tensor, stage: Stage) -> dict[str, torch.Tensor]:
        """The loss terms of batch ``x`` (detached), back-propagated when training.

        On a CPU, with ``cpu_micro_batch_size``, the batch runs in parts of that size whose gradients add up, each
        part's loss weighted by its share of the batch: the same loss and gradients as one pass, up to float
        rounding, with activations small enough to stay in cache (the conv model's first layer makes 400 KB per
        image; at 64 images a step was 1.8x faster than at 256 on a 2-core CPU).
        """
        chunk = self.cpu_micro_batch_size
        training = stage == "train" and torch.is_grad_enabled()
        if chunk is None or x.device.type != "cpu" or x.shape[0] <= chunk:
            terms = self.module.loss_terms(x, stage)
            if training:
                self.backward(terms["loss"])
            return {name: value.detach() for name, value in terms.items()}
        totals: dict[str, torch.Tensor] = {}
        for part in x.split(chunk):
            share = part.shape[0] / x.shape[0]
            terms = self.module.loss_terms(part, stage)
            if training:
                self.backward(terms["loss"] * share)
            for name, value in terms.items():
                totals[name] = value.detach() * share + (totals[name] if name in totals else 0.0)
        return totals
