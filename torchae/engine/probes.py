"""What the engine asks of a model before it trains: whether its step draws random numbers, and from where."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from torchae.autoencoder import AutoencoderModule
from torchae.draws import DrawPlan

__all__ = ["buffers_kept", "draws_from_streams", "draws_random_numbers", "step_plan"]


@contextmanager
def buffers_kept(module: AutoencoderModule) -> Iterator[None]:
    """Within: a probe's passes; after: every buffer of ``module`` (BatchNorm's statistics) as it was."""
    buffers = {name: buffer.clone() for name, buffer in module.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, buffer in module.named_buffers():
                buffer.copy_(buffers[name])


def step_plan(module: AutoencoderModule, inputs: Any, target: Any) -> DrawPlan:
    """The draws (:mod:`torchae.draws`) that ``module``'s ``reconstruction_terms`` makes on ``inputs`` and
    ``target`` in its current mode, in order. The probe runs the step once without gradients on zeros for draws;
    every buffer (BatchNorm's statistics) is put back, and no stream moves."""
    with buffers_kept(module), torch.no_grad(), module.draws.recording() as plan:
        module.reconstruction_terms(inputs, target)
    return plan


def _generator_states(device: torch.device) -> list[torch.Tensor]:
    states = [torch.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def _example_on_device(module: AutoencoderModule) -> tuple[Any, torch.device] | None:
    """The model's ``example_input_array`` on its device, or ``None`` where it has none made of tensors."""
    example = getattr(module, "example_input_array", None)
    parts = example if isinstance(example, tuple) else (example,)
    if not parts or not all(isinstance(part, torch.Tensor) for part in parts):
        return None
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    x = type(example)(*(part.to(device) for part in parts)) if isinstance(example, tuple) else example.to(device)
    return x, device


def draws_random_numbers(module: AutoencoderModule) -> bool:
    """Whether ``module``'s ``reconstruction_terms`` draws from torch's global generators (a layer that is not bound
    to the model's streams, such as ``nn.Dropout``), in training or in evaluation mode.

    It runs once in each mode on the model's ``example_input_array`` and compares the generators' states; the
    generators, the mode and every buffer (BatchNorm's statistics) are put back as they were, so the probe changes
    nothing a run will draw or compute. A model without an example input counts as drawing (it cannot be checked).
    """
    found = _example_on_device(module)
    if found is None:
        return True
    x, device = found
    was_training = module.training
    devices = [device] if device.type == "cuda" else []
    fork = torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda")
    try:
        with buffers_kept(module), fork, torch.no_grad():
            for training in (True, False):
                module.train(training)
                before = _generator_states(device)
                module.reconstruction_terms(x, x)
                if any(not torch.equal(a, b) for a, b in zip(before, _generator_states(device))):
                    return True
        return False
    finally:
        module.train(was_training)


def draws_from_streams(module: AutoencoderModule) -> bool:
    """Whether ``module``'s step draws from the model's own streams (:mod:`torchae.draws`: its dropout masks, a
    latent sample), in training mode, on its ``example_input_array``; the probe changes nothing."""
    found = _example_on_device(module)
    if found is None:
        return False
    was_training = module.training
    try:
        module.train(True)
        return bool(step_plan(module, found[0], found[0]))
    finally:
        module.train(was_training)
