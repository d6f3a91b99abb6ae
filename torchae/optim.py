"""The series' optimizers: Adam exactly as Keras 3 computes it (parts 1-4), with its per-step overhead cut to a
handful of tensor operations, and TensorFlow 1's RMSProp (:class:`TFRMSProp`, the GANs of parts 5 and 6).

Keras updates, at step ``t``::

    m = m + (g - m) * (1 - beta_1)
    v = v + (g * g - v) * (1 - beta_2)
    w = w - lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m / (sqrt(v) + epsilon)

Epsilon is added to the square root of the *uncorrected* second moment, where ``torch.optim.Adam`` adds it to the
corrected one (with ``eps = 1e-7`` that moves weights with tiny gradients by up to 7e-4 more than Keras in the
first step).

Speed: the article's models are small, so at batch 16 an optimizer step is mostly per-tensor overhead
(``torch.optim.Adam`` spends ~0.4 ms per step here, mostly in Python). ``KerasAdam`` keeps each parameter group's
weights, gradients and moments in one flat buffer each (the parameters become views into it, as in apex's and
DeepSpeed's flat optimizers), so a step is six operations on one tensor whatever the number of layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["KerasAdam", "TFRMSProp"]

FLUSH_DENORMALS_EVERY = 16
"""CPU steps between flushes of denormal moments to zero (see :func:`_flush_denormals_`)."""


def _flush_denormals_(buffer: torch.Tensor) -> None:
    """Set the denormal (subnormal) entries of ``buffer`` to zero, in place.

    The first moment of a weight whose gradient is rarely non-zero decays through the denormal range for ~150
    steps, and CPU arithmetic on denormals is 10-20x slower (Adam's step went from 0.03 to 0.7 ms here with 20% of
    them). TensorFlow's CPU kernels flush denormals to zero; ``torch.set_flush_denormal`` only reaches the calling
    thread, not the OpenMP workers that run these ops. The change to an update is below 1e-30.
    """
    if buffer.dtype == torch.float32:
        bits = buffer.view(torch.int32)
        bits.mul_(bits.bitwise_and(0x7F800000) != 0)  # exponent bits all zero: zero or denormal
    else:
        buffer.masked_fill_(buffer.abs() < torch.finfo(buffer.dtype).tiny, 0.0)


ALIGN_BYTES = 64
"""Each parameter's slice of a flat buffer starts at a multiple of this many bytes: compiled kernels (inductor)
assume 16-byte aligned parameters, and a slice that starts mid cache line is slower to read."""


def _loss_of(closure: Callable[[], float] | None) -> float | None:
    """The loss a ``step(closure)`` returns: the closure's, run with gradients on (PyTorch's optimizer protocol)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class _FlatGroup:
    """One parameter group's weights, gradients and moments, each in one contiguous buffer; each parameter is a view
    of its slice with the parameter's own layout (its strides, where they are dense).

    Each parameter's slice is padded to :data:`ALIGN_BYTES`; the padding holds zeros in every buffer, and a zero
    gradient leaves a zero weight unchanged, so it never affects an update.
    """

    def __init__(self, params: list[torch.Tensor], state: dict[torch.Tensor, dict[str, Any]]) -> None:
        first = params[0]
        if any(p.device != first.device or p.dtype != first.dtype for p in params):
            raise ValueError("KerasAdam needs every parameter of a group on one device with one dtype")
        step = max(1, ALIGN_BYTES // first.element_size())
        sizes = [p.numel() for p in params]
        offsets = [0]
        for size in sizes:
            offsets.append(offsets[-1] + -(-size // step) * step)
        self.params = params
        self.weights = torch.zeros(offsets[-1], dtype=first.dtype, device=first.device)
        self.grads = torch.zeros_like(self.weights)
        self.moments = torch.zeros_like(self.weights)
        self.squares = torch.zeros_like(self.weights)
        self.grad_views = []
        for p, start in zip(params, offsets):
            # Each slice keeps its parameter's memory layout (a channels-last convolution weight stays one).
            strides = torch.empty_like(p).stride()
            weight, grad, m, v = (buffer.as_strided(p.shape, strides, start) for buffer in self.buffers())
            weight.copy_(p.detach())
            if p.grad is not None:
                grad.copy_(p.grad)
            old = state.get(p, {})
            if "exp_avg" in old:
                m.copy_(old["exp_avg"])
                v.copy_(old["exp_avg_sq"])
            p.data = weight
            p.grad = grad
            state[p] = {"exp_avg": m, "exp_avg_sq": v}
            self.grad_views.append(grad)
        self.offsets = offsets[:-1]
        """Where each parameter's slice of the buffers starts."""
        self.pointers = [p.data_ptr() for p in params]

    def buffers(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.weights, self.grads, self.moments, self.squares

    def intact(self) -> bool:
        return all(p.data_ptr() == ptr for p, ptr in zip(self.params, self.pointers))

    def gather_grads(self) -> None:
        """Make the flat gradient hold every parameter's current gradient (``None`` counts as zero)."""
        for i, (p, view) in enumerate(zip(self.params, self.grad_views)):
            if p.grad is view:
                continue
            if p.grad is None:
                view.zero_()
            else:
                view.copy_(p.grad)
            p.grad = view
            self.grad_views[i] = view


class KerasAdam(torch.optim.Optimizer):
    """Adam with Keras 3's update rule and defaults (lr 1e-3, betas (0.9, 0.999), epsilon 1e-7).

    The step count is kept per parameter group (``step``), so it is saved and restored with ``state_dict()`` and
    reading it never synchronises with the device. Per parameter the state holds ``exp_avg`` (Keras's ``m``) and
    ``exp_avg_sq`` (``v``). Parameters become views into one flat buffer per group at the first step; move the
    model before creating the optimizer (Lightning does).

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: ``(beta_1, beta_2)``.
        eps: epsilon, added to ``sqrt(v)`` as Keras does.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-7,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "step": 0})
        self._flat: dict[int, _FlatGroup] = {}

    def _flat_group(self, index: int, group: dict[str, Any]) -> _FlatGroup:
        flat = self._flat.get(index)
        if flat is None:
            if any(p.grad is not None and p.grad.is_sparse for p in group["params"]):
                raise RuntimeError("KerasAdam does not support sparse gradients")
            flat = self._flat[index] = _FlatGroup(list(group["params"]), self.state)
        elif not flat.intact():
            raise RuntimeError(
                "a parameter was moved or replaced after KerasAdam flattened it: create the optimizer "
                "after moving the model to its device"
            )
        return flat

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Keras Adam step (parameters without a gradient count as having a zero gradient)."""
        loss = _loss_of(closure)
        for index, group in enumerate(self.param_groups):
            if not group["params"] or all(p.grad is None for p in group["params"]):
                continue
            flat = self._flat_group(index, group)
            flat.gather_grads()
            self._update(flat, group, -self.advance_step(group))
        return loss

    @staticmethod
    def advance_step(group: dict[str, Any]) -> float:
        """Count one more step of ``group`` and return its step size (the learning rate with Adam's bias
        corrections, as Keras folds them in)."""
        group["step"] += 1
        beta_1, beta_2 = group["betas"]
        return group["lr"] * math.sqrt(1.0 - beta_2 ** group["step"]) / (1.0 - beta_1 ** group["step"])

    @staticmethod
    def _update(flat: _FlatGroup, group: dict[str, Any], neg_alpha: float | torch.Tensor) -> None:
        KerasAdam.update_(flat.weights, flat.grads, flat.moments, flat.squares, group["betas"], group["eps"], neg_alpha)
        KerasAdam.flush_denormals(flat, group)

    @staticmethod
    def update_(
        weights: torch.Tensor,
        gradients: torch.Tensor,
        moments: torch.Tensor,
        squares: torch.Tensor,
        betas: tuple[float, float],
        eps: float,
        neg_alpha: float | torch.Tensor,
    ) -> None:
        """Keras's update of ``weights`` and their moments, in place, with step size ``-neg_alpha`` (see
        :meth:`advance_step`); a tensor ``neg_alpha`` is read when the kernels run (CUDA graphs, compiled steps)."""
        beta_1, beta_2 = betas
        moments.lerp_(gradients, 1.0 - beta_1)
        squares.mul_(beta_2).addcmul_(gradients, gradients, value=1.0 - beta_2)
        # sqrt(v) + eps. Zeros become the smallest normal float first: the CPU's vectorised sqrt of 0 is ~10x slower
        # than of any other number (measured here; weights that never had a gradient keep v = 0, 9% of the deep
        # model's). The update does not change: v = 0 means every gradient was 0, so m = 0 and the step is 0.
        denominator = squares.clamp_min(torch.finfo(squares.dtype).tiny).sqrt_().add_(eps)
        if isinstance(neg_alpha, torch.Tensor):
            weights.addcmul_(moments / denominator, neg_alpha)
        else:
            weights.addcdiv_(moments, denominator, value=neg_alpha)

    @staticmethod
    def flush_denormals(flat: _FlatGroup, group: dict[str, Any], steps: int = 1) -> None:
        """On a CPU, every :data:`FLUSH_DENORMALS_EVERY` steps, zero the moments' denormal entries (after an update
        that did not go through :meth:`step`, as a compiled one; ``steps``: how many steps that update took)."""
        step = group["step"]
        if (
            flat.weights.device.type == "cpu"
            and step // FLUSH_DENORMALS_EVERY != (step - steps) // FLUSH_DENORMALS_EVERY
        ):
            _flush_denormals_(flat.moments)
            _flush_denormals_(flat.squares)

    def flat_groups(self) -> list[tuple[dict[str, Any], _FlatGroup]]:
        """Every parameter group with its flat buffers, flattening them now if no step has yet."""
        return [(group, self._flat_group(index, group)) for index, group in enumerate(self.param_groups)]

    def update_from_device(self, neg_alphas: list[torch.Tensor]) -> None:
        """The update of :meth:`step`, with each group's step size read from a device scalar (``-alpha``, see
        :meth:`advance_step`) when the kernels run, not when they are launched: what a captured CUDA graph needs.
        Gradients are used as they are (they must be the flat buffers' views)."""
        for (group, flat), neg_alpha in zip(self.flat_groups(), neg_alphas):
            self._update(flat, group, neg_alpha)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients; flattened groups keep their gradient buffer (zeroed in one operation)."""
        for index, group in enumerate(self.param_groups):
            flat = self._flat.get(index)
            if flat is not None and flat.intact():
                flat.gather_grads()
                flat.grads.zero_()
            else:
                for p in group["params"]:
                    if p.grad is not None:
                        if set_to_none:
                            p.grad = None
                        else:
                            p.grad.detach_().zero_()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._flat.clear()  # rebuilt from the loaded moments at the next step


class TFRMSProp(torch.optim.Optimizer):
    """RMSProp as TensorFlow 1's ``tf.train.RMSPropOptimizer`` computes it (the author's optimizer in parts 5 and 6),
    which differs from ``torch.optim.RMSprop`` in two places::

        ms = ms + (g * g - ms) * (1 - decay)               # ms starts at ones (torch's square average at zeros)
        mom = momentum * mom + lr * g / sqrt(ms + epsilon)  # epsilon under the root (torch's outside it)
        w = w - mom

    Its defaults are TensorFlow's: ``decay=0.9``, ``momentum=0.0``, ``epsilon=1e-10``. The accumulator starting at
    ones makes the first steps about ``lr * g`` (torch's start at ``lr * g / sqrt(0.1 g^2)``, three times ``lr``).

    Args:
        params: the parameters or parameter groups.
        lr: the learning rate.
        decay: the discount of the mean square.
        momentum: the momentum of the update.
        epsilon: added to the mean square under the square root.
    """

    def __init__(
        self, params: Iterable[Any], lr: float, decay: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-10
    ) -> None:
        if not lr > 0 or not 0 <= decay < 1 or not momentum >= 0 or not epsilon >= 0:
            raise ValueError(
                f"TFRMSProp needs lr > 0, 0 <= decay < 1, momentum >= 0, epsilon >= 0: got {lr}, "
                f"{decay}, {momentum}, {epsilon}"
            )
        super().__init__(params, {"lr": lr, "decay": decay, "momentum": momentum, "epsilon": epsilon})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One RMSProp step of every parameter that has a gradient."""
        loss = _loss_of(closure)
        for group in self.param_groups:
            lr, decay, momentum, epsilon = group["lr"], group["decay"], group["momentum"], group["epsilon"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["mean_square"] = torch.ones_like(p)  # TensorFlow 1's rms slot starts at ones
                    state["momentum"] = torch.zeros_like(p)
                mean_square, moment = state["mean_square"], state["momentum"]
                # TensorFlow's ApplyRMSProp kernel, in its order of operations
                mean_square.add_((p.grad * p.grad - mean_square) * (1 - decay))
                moment.mul_(momentum).add_(p.grad * lr / (mean_square + epsilon).sqrt())
                p.sub_(moment)
        return loss
