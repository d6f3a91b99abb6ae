"""Channels-last convolutions on a CPU: the model's 4-D weights stored as ``(out, h, w, in)`` so that oneDNN runs
its convolutions without reordering them every call. The same convolutions, up to float rounding.

Whether that is faster depends on the CPU (faster with AVX-512 on a Zen 4, slower with AVX2 on a Zen 3: the
readings are in ``docs/performance/``), so ``"auto"`` decides by timing the model's own pass on the run's batch shape
at start-up (:func:`time_layouts`), not by the CPU's name.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from torchae.autoencoder import AutoencoderModule
from torchae.engine.probes import buffers_kept

__all__ = ["channels_last_reason", "has_convolutions", "in_layout", "time_layouts"]

CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)


def has_convolutions(module: nn.Module) -> bool:
    """Whether ``module`` holds a 2-D convolution (the layers a memory layout changes)."""
    return any(isinstance(layer, CONVOLUTIONS) for layer in module.modules())


def channels_last_reason(module: AutoencoderModule, timed: bool) -> str | None:
    """Why ``module``'s convolutions cannot be laid out channels-last (``timed``: by :func:`time_layouts`), if not."""
    name = type(module).__name__
    if not has_convolutions(module):
        return f"{name} has no 2-D convolutions to lay out"
    if timed and not isinstance(getattr(module, "example_input_array", None), torch.Tensor):
        return f"{name} has no example_input_array of images to time a pass with: set it, or true or false"
    return None


def in_layout(module: nn.Module, channels_last: bool) -> None:
    """Store ``module``'s 4-D parameters and buffers channels-last, or contiguous again. The parameters stay the
    same objects (an optimizer keeps them); only their strides change."""
    module.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@contextmanager
def _untouched(module: AutoencoderModule) -> Iterator[None]:
    """Within: passes of a probe; after: the module's mode, buffers, layout and every generator as they were, and
    no stream of its draws moved (the draws give zeros while recording)."""
    was_training = module.training
    with buffers_kept(module), torch.random.fork_rng(devices=[]), module.draws.recording():  # a CPU option
        try:
            yield
        finally:
            in_layout(module, False)
            module.train(was_training)


def time_layouts(module: AutoencoderModule, batch: int, rounds: int = 3) -> dict[bool, float]:
    """Median seconds of one forward and backward pass of ``module``'s ``reconstruction_terms`` on ``batch``
    random images of its ``example_input_array``'s shape, contiguous (``False``) and channels-last (``True``),
    interleaved over ``rounds`` after a first pass of each. The gradients go nowhere (``torch.autograd.grad``), so
    the probe changes nothing a run computes."""
    example = module.example_input_array
    x = torch.rand(batch, *example.shape[1:], generator=torch.Generator().manual_seed(0)).to(example.device)
    parameters = [p for p in module.parameters() if p.requires_grad]
    seconds: dict[bool, list[float]] = {False: [], True: []}
    with _untouched(module):
        module.train(True)
        for round_ in range(rounds + 1):
            for channels_last in (False, True):
                in_layout(module, channels_last)
                start = time.perf_counter()
                loss = module.reconstruction_terms(x, x)["loss"]
                torch.autograd.grad(loss, parameters, allow_unused=True)
                if round_:  # the first round warms up each layout's kernels
                    seconds[channels_last].append(time.perf_counter() - start)
    return {layout: statistics.median(times) for layout, times in seconds.items()}
