"""Compiled whole steps: the loss, its gradients and Keras's Adam update as one ``torch.compile``\\ d function.

At the article's batch 16 an eager step is mostly per-operation overhead: a dozen small kernels for the network and
its backward pass, six for Adam, each a dispatch through PyTorch. Compiled, the forward and backward pass become
a few generated loops around the matrix products, and Adam one fused loop over the flat buffers of
:class:`~torchae.optim.KerasAdam`. What is computed does not change: the model's ``reconstruction_terms`` (traced
with :func:`torch.func.grad` for the gradients) and Keras's update, with the same step count and step size; the
input noise is still drawn eagerly, by the model's ``corrupt``, from the same generator.

Several steps per call (``steps_per_call``) unroll that many consecutive steps into one compiled function, as
Keras's ``steps_per_execution`` runs several steps in one XLA call: what a call costs besides its kernels (Dynamo's
guards, the wrappers around the generated code, the Python around them) is paid once for all of them. The steps and
their order are the same; only the flush of denormal moments (:func:`~torchae.optim.KerasAdam.flush_denormals`,
a change below 1e-30 to an update) may come up to ``steps_per_call - 1`` steps later.
"""

from __future__ import annotations

import itertools
import math
from types import FunctionType, MethodType
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad

from torchae.autoencoder import AutoencoderModule, Stage
from torchae.draws import DrawPlan
from torchae.engine.probes import step_plan
from torchae.optim import KerasAdam

__all__ = ["CompiledSteps"]


_COPIES = itertools.count()


def _own_code(method: MethodType) -> MethodType:
    """``method`` with a code object of its own. Dynamo keeps its compiled graphs per code object, at most
    ``recompile_limit`` (8) of them: every model (and batch shape) trained in one process would add one to the
    same method's list, and the ninth would fail. A copy of the code per instance gives each its own list."""
    function = method.__func__
    code = function.__code__.replace(co_name=f"{function.__name__}_{next(_COPIES)}")
    copy = FunctionType(code, function.__globals__, code.co_name, function.__defaults__, function.__closure__)
    return MethodType(copy, method.__self__)


class _ReconstructionTerms(nn.Module):
    """The model's ``reconstruction_terms`` as a module's ``forward``, so that ``functional_call`` can run it with
    the parameters given as slices of the optimizer's flat weight buffer."""

    def __init__(self, model: AutoencoderModule) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.reconstruction_terms(inputs, target)


class CompiledSteps:
    """Training steps of ``module`` as compiled functions (one per batch shape): one step per call, and
    ``steps_per_call`` steps per call where that many batches of one shape follow each other.

    Args:
        module: the model; its ``configure_optimizers`` must give a :class:`~torchae.optim.KerasAdam` over all of
            its parameters in one group.
        steps_per_call: optimizer steps unrolled into one compiled call (see :meth:`steps`); 1 compiles only the
            single step.
        compile_options: further arguments of ``torch.compile`` (``backend``: inductor, which generates C++
            loops on a CPU, unless given; ``mode``; ``dynamic``, False unless given).
    """

    def __init__(self, module: AutoencoderModule, steps_per_call: int = 1, **compile_options: Any) -> None:
        if isinstance(steps_per_call, bool) or not isinstance(steps_per_call, int) or steps_per_call < 1:
            raise ValueError(f"steps_per_call must be a positive integer, got {steps_per_call!r}")
        self.module = module
        self.steps_per_call = steps_per_call
        self.terms = _ReconstructionTerms(module)
        options = {"fullgraph": True, "dynamic": False, **compile_options}
        self.compiled = torch.compile(_own_code(self._step), **options)
        self.compiled_several = torch.compile(_own_code(self._several_steps), **options) if steps_per_call > 1 else None
        self.layout: list[tuple[str, int, torch.Size]] | None = None
        self.plans: dict[tuple, DrawPlan] = {}
        """The draws of a step, per input shapes (:func:`~torchae.engine.probes.step_plan`)."""

    def _flat_group(self, optimizer: KerasAdam) -> tuple[dict[str, Any], Any]:
        ((group, flat),) = optimizer.flat_groups()
        if self.layout is None:
            names = {id(p): name for name, p in self.terms.named_parameters()}
            self.layout = [
                (names[id(p)], offset, p.shape) for p, offset in zip(group["params"], flat.offsets, strict=True)
            ]
        return group, flat

    def _step(
        self,
        weights: torch.Tensor,
        moments: torch.Tensor,
        squares: torch.Tensor,
        inputs: torch.Tensor,
        target: torch.Tensor,
        neg_alpha: torch.Tensor,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        draws: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        assert self.layout is not None
        params = {name: weights[offset : offset + math.prod(shape)].view(shape) for name, offset, shape in self.layout}

        def loss(
            params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            terms = functional_call(self.terms, (params, buffers), (inputs, target))
            return terms["loss"], {name: value.detach() for name, value in terms.items()}

        # BatchNorm updates its running statistics in place: the transform must be given them, as inputs.
        buffers = dict(self.terms.named_buffers())
        self.module.draws.give(draws)  # the step's dropout masks and samples, drawn eagerly beforehand
        gradients, terms = grad(loss, has_aux=True)(params, buffers)
        self.module.draws.give(None)
        flat_gradient = self._flat_gradient(weights, gradients)
        KerasAdam.update_(weights, flat_gradient, moments, squares, (beta_1, beta_2), epsilon, neg_alpha)
        return terms

    def _flat_gradient(self, weights: torch.Tensor, gradients: dict[str, torch.Tensor]) -> torch.Tensor:
        """The per-parameter ``gradients`` as one tensor in the layout of the flat buffer ``weights``, by
        concatenation, zeros in the padding. (The gradient with respect to the flat buffer itself is the same
        numbers, but inductor assembles it with a masked load per parameter for every element: the update took
        twice as long for the deep model.)"""
        assert self.layout is not None
        pieces, end = [], 0
        for name, offset, shape in self.layout:
            if offset > end:
                pieces.append(weights.new_zeros(offset - end))
            pieces.append(gradients[name].reshape(-1))
            end = offset + math.prod(shape)
        if weights.numel() > end:
            pieces.append(weights.new_zeros(weights.numel() - end))
        return torch.cat(pieces)

    def _several_steps(
        self,
        weights: torch.Tensor,
        moments: torch.Tensor,
        squares: torch.Tensor,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        neg_alphas: torch.Tensor,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        draws: list[dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """``_step`` on each of the stacked batches in turn; each term stacked over the steps."""
        steps = [
            self._step(
                weights, moments, squares, inputs[k], targets[k], neg_alphas[k], beta_1, beta_2, epsilon, draws[k]
            )
            for k in range(inputs.shape[0])
        ]
        return {name: torch.stack([terms[name] for terms in steps]) for name in steps[0]}

    def draws(self, inputs: Any, target: Any) -> dict[str, torch.Tensor]:
        """The draws of a training step on ``inputs`` and ``target``, drawn now from the model's training stream in
        the order the plain step draws them (its plan is found once per input shape)."""
        key = tuple(tuple(part.shape) for part in (inputs if isinstance(inputs, tuple) else (inputs,)))
        if key not in self.plans:
            self.plans[key] = step_plan(self.module, inputs, target)
        return self.module.draws.draw(self.plans[key], "train", self.module.device)

    def step(self, x: torch.Tensor, stage: Stage, optimizer: KerasAdam) -> dict[str, torch.Tensor]:
        """One training step on clean images ``x``: returns the loss terms (detached); the weights and Adam's
        moments are updated in place, as :meth:`KerasAdam.step` updates them."""
        return self.step_on(self.module.corrupt(x, stage), x, optimizer)

    def step_on(self, inputs: torch.Tensor, target: torch.Tensor, optimizer: KerasAdam) -> dict[str, torch.Tensor]:
        """One training step from encoder inputs ``inputs`` (already corrupted) towards ``target``."""
        group, flat = self._flat_group(optimizer)
        draws = self.draws(inputs, target)
        neg_alpha = torch.tensor(-KerasAdam.advance_step(group), dtype=flat.weights.dtype, device=flat.weights.device)
        beta_1, beta_2 = group["betas"]
        try:
            terms = self.compiled(
                flat.weights, flat.moments, flat.squares, inputs, target, neg_alpha, beta_1, beta_2, group["eps"], draws
            )
        finally:  # the compiled code hands its draws back; a failed call must not leave them to later steps
            self.module.draws.give(None)
        KerasAdam.flush_denormals(flat, group)
        return terms

    def steps(self, xs: list[torch.Tensor], stage: Stage, optimizer: KerasAdam) -> dict[str, torch.Tensor]:
        """``steps_per_call`` training steps in one call, on clean image batches ``xs`` of one shape (corrupted in
        order, one batch after the other, as single steps corrupt them): each loss term stacked over the steps."""
        if self.compiled_several is None or len(xs) != self.steps_per_call:
            raise ValueError(f"steps takes {self.steps_per_call} batches per call (steps_per_call), got {len(xs)}")
        group, flat = self._flat_group(optimizer)
        corrupted, draws = [], []
        for x in xs:  # in the plain steps' order: each batch's noise, then its step's draws
            corrupted.append(self.module.corrupt(x, stage))
            draws.append(self.draws(corrupted[-1], x))
        inputs = torch.stack(corrupted)
        neg_alphas = torch.tensor(
            [-KerasAdam.advance_step(group) for _ in xs], dtype=flat.weights.dtype, device=flat.weights.device
        )
        beta_1, beta_2 = group["betas"]
        try:
            terms = self.compiled_several(
                flat.weights,
                flat.moments,
                flat.squares,
                inputs,
                torch.stack(xs),
                neg_alphas,
                beta_1,
                beta_2,
                group["eps"],
                draws,
            )
        finally:
            self.module.draws.give(None)
        KerasAdam.flush_denormals(flat, group, steps=len(xs))
        return terms
