"""Adam with Keras 3's placement of epsilon.

Keras updates ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``: epsilon is added to the square root
of the *uncorrected* second moment. PyTorch adds it to the corrected one. The two agree exactly when PyTorch's
epsilon at step ``t`` is ``eps / sqrt(1 - b2^t)``, which is all this class changes; the arithmetic is
``torch.optim.Adam``'s own (for-loop, foreach or fused kernels alike).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["KerasAdam"]


class KerasAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose epsilon follows Keras 3 (defaults are Keras's: lr 1e-3, eps 1e-7).

    The step count lives in each parameter group (``keras_step``), so it is saved and restored with the
    optimizer's ``state_dict`` and reading it never synchronises with the device.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: ``(beta_1, beta_2)``.
        eps: Keras's epsilon.
        foreach: passed to ``torch.optim.Adam``.
        fused: passed to ``torch.optim.Adam``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-7,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        super().__init__(params, lr=lr, betas=betas, eps=eps, foreach=foreach, fused=fused)
        for group in self.param_groups:
            group.setdefault("keras_eps", eps)
            group.setdefault("keras_step", 0)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam step with Keras's epsilon."""
        for group in self.param_groups:
            group["keras_step"] += 1
            beta_2 = group["betas"][1]
            group["eps"] = group["keras_eps"] / math.sqrt(1.0 - beta_2 ** group["keras_step"])
        return super().step(closure)
