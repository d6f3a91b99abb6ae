"""Whole-step CUDA graphs: each training step (forward, loss, backward, Adam) replayed as one captured graph.

The article's models are tiny, so on a GPU a step is bound by launching ~40 small kernels and by the Python that
launches them, not by arithmetic: eager steps cost about 1 ms each, whatever the GPU. A captured step is replayed
with one call. This follows PyTorch's "whole network capture" recipe (CUDA semantics notes): a few eager warm-up
steps per batch shape on a side stream, then capture, then replay with inputs copied into static buffers.

What stays eager: the random draws (the denoising model's noise, the VAE's dropout masks and latent samples: drawn
from the model's seeded streams, then copied in, so a run with graphs draws the same numbers as one without), logging
and everything Lightning does between steps. Per-step hooks (``on_before_backward``, ``on_after_backward``,
``on_before_optimizer_step``, ``on_before_zero_grad``) cannot run inside a replay, so
:class:`~torchae.engine.Engine` refuses ``cuda_graphs`` when a callback or the model overrides one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from torchae.autoencoder import AutoencoderModule
from torchae.engine.lightning_compat import counted_step
from torchae.engine.probes import step_plan
from torchae.errors import ConfigError
from torchae.optim import KerasAdam

__all__ = ["StepGraphs", "capture"]

EagerStep = Callable[[torch.Tensor, str, Any], dict[str, torch.Tensor]]


def capture(step: Callable[[AutoencoderModule], None], module: AutoencoderModule) -> torch.cuda.CUDAGraph:
    """Capture ``step(module)`` into a CUDA graph (which runs nothing until it is replayed)."""
    graph = torch.cuda.CUDAGraph()
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        step(module)
    return graph


def _parameter_pointers(module: AutoencoderModule) -> list[int]:
    return [p.data_ptr() for p in module.parameters()]


def _flatten_optimizers(module: AutoencoderModule) -> None:
    """Give every KerasAdam of the module's trainer its flat buffers now: flattening moves the parameters, and a
    graph captured before that (a validation step of the sanity check, say) would read their old memory."""
    for optimizer in module.trainer.optimizers:
        if isinstance(optimizer, KerasAdam):
            optimizer.flat_groups()


class _Captured:
    """One captured step for one (stage, batch shape): its graph and static buffers."""

    def __init__(self, module: AutoencoderModule, x: torch.Tensor, stage: str, optimizer: Any) -> None:
        inputs = module.corrupt(x, stage)
        self.shared = inputs is x  # no corruption: one buffer is both input and target
        self.target = x.clone()
        self.inputs = self.target if self.shared else inputs.clone()
        self.adam: KerasAdam | None = None
        self.groups: list[tuple[dict[str, Any], Any]] = []
        self.neg_alphas: list[torch.Tensor] = []
        if optimizer is not None:
            self.adam = optimizer.optimizer
            if not isinstance(self.adam, KerasAdam):
                raise ConfigError(f"cuda_graphs needs torchae's KerasAdam, the model uses {type(self.adam).__name__}")
            self.groups = self.adam.flat_groups()
            self.adam.zero_grad()  # makes the gradients the flat buffer's views: backward must accumulate there
            self.neg_alphas = [torch.zeros((), dtype=flat.weights.dtype, device=x.device) for _, flat in self.groups]
        # The step's draws (dropout masks, samples): drawn eagerly, as the plain step would draw them, and copied in.
        self.plan = step_plan(module, inputs, self.target)
        first_draws = self._draw(module)
        self.draws = {name: value.clone() for name, value in first_draws.items()}
        self.outputs: dict[str, torch.Tensor] = {}
        self.pointers = _parameter_pointers(module)
        self.graph = capture(self._step, module)
        # capturing runs nothing: the caller replays this step now
        self._first_inputs = None if self.shared else inputs
        self._first_draws: dict[str, torch.Tensor] | None = first_draws

    def _draw(self, module: AutoencoderModule) -> dict[str, torch.Tensor]:
        return module.draws.draw(self.plan, module.draws.stage_of(module.training), self.target.device)

    def _step(self, module: AutoencoderModule) -> None:
        """The captured work: zero the gradients, forward, loss, backward and the Adam update (training)."""
        with module.draws.giving(self.draws):
            if self.adam is not None:
                self.adam.zero_grad()
                terms = module.reconstruction_terms(self.inputs, self.target)
                terms["loss"].backward()
                self.adam.update_from_device(self.neg_alphas)
            else:
                terms = module.reconstruction_terms(self.inputs, self.target)
        self.outputs = {name: value.detach() for name, value in terms.items()}

    def replay(self, module: AutoencoderModule, x: torch.Tensor, stage: str, optimizer: Any) -> dict[str, Any]:
        if self._first_inputs is not None:
            inputs, self._first_inputs = self._first_inputs, None
        else:
            inputs = module.corrupt(x, stage)
        draws, self._first_draws = self._first_draws if self._first_draws is not None else self._draw(module), None
        if (inputs is x) != self.shared:
            raise RuntimeError(f"{type(module).__name__}.corrupt changed between calls; CUDA graphs need it fixed")
        self.target.copy_(x)
        if not self.shared:
            self.inputs.copy_(inputs)
        for name, value in draws.items():
            self.draws[name].copy_(value)
        if self.adam is not None:
            for _, flat in self.groups:  # the gradients must be the flat buffer's views (Lightning may reset them)
                flat.gather_grads()
            for (group, _), neg_alpha in zip(self.groups, self.neg_alphas):
                neg_alpha.fill_(-KerasAdam.advance_step(group))
            with counted_step(optimizer):
                self.graph.replay()
        else:
            self.graph.replay()
        return self.outputs


class StepGraphs:
    """The captured steps of one model, one per (stage, batch shape), made after ``warmup_steps`` eager ones.

    Args:
        warmup_steps: eager steps per (stage, batch shape) before it is captured.
    """

    def __init__(self, warmup_steps: int = 3) -> None:
        self.warmup_steps = warmup_steps
        self._seen: dict[tuple, int] = {}
        self._captured: dict[tuple, _Captured] = {}
        self._side_stream: torch.cuda.Stream | None = None
        self.captures = 0
        """How many captures were made (a step is captured again if the parameters move)."""

    def run(
        self, module: AutoencoderModule, x: torch.Tensor, stage: str, optimizer: Any, eager: EagerStep
    ) -> dict[str, torch.Tensor]:
        """One step on batch ``x``: ``eager(x, stage, optimizer)`` while warming up, else the captured graph.

        Returns:
            The detached loss terms; a replay overwrites them, so use them before the next step.
        """
        key = (stage, tuple(x.shape), torch.is_grad_enabled(), torch.is_inference_mode_enabled())
        captured = self._captured.get(key)
        if captured is None or captured.pointers != _parameter_pointers(module):
            # not captured yet, or the parameters have moved since (the optimizer's state was loaded, say)
            seen = self._seen.get(key, 0)
            if captured is None and seen < self.warmup_steps:
                self._seen[key] = seen + 1
                return self._on_side_stream(eager, x, stage, optimizer)
            _flatten_optimizers(module)
            captured = self._captured[key] = _Captured(module, x, stage, optimizer)
            self.captures += 1
        return captured.replay(module, x, stage, optimizer)

    def _on_side_stream(self, eager: EagerStep, x: torch.Tensor, stage: str, optimizer: Any) -> dict[str, Any]:
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream(device=x.device)
        main = torch.cuda.current_stream(x.device)
        self._side_stream.wait_stream(main)
        with torch.cuda.stream(self._side_stream):
            terms = eager(x, stage, optimizer)
        main.wait_stream(self._side_stream)
        return terms

    @property
    def captured(self) -> int:
        """How many (stage, batch shape) steps are captured."""
        return len(self._captured)

    def stale(self, module: AutoencoderModule) -> int:
        """How many captured steps read parameters where ``module``'s no longer are (0 after any step)."""
        pointers = _parameter_pointers(module)
        return sum(captured.pointers != pointers for captured in self._captured.values())
