"""The floor of a model's epoch on this machine: the time of its steps' own matrix products and convolutions, at
their shapes, through torch on the threads it has, and nothing else (no elementwise work, no optimizer, no Python).

    python benchmarks/floor.py vae                  # seconds per epoch of the article's data, and per step

A step's products are found by running one training step (forward and backward) and one validation step of the
model under ``torch.profiler`` with the shapes recorded: every ``aten::mm``, ``addmm``, ``bmm``, ``convolution`` and
``convolution_backward``, with its arguments. Each is then run again on random tensors of its shapes (convolutions
in the faster of the contiguous and the channels-last layout), and an epoch's floor is the sum over its batches (the
last, smaller batch at its own shape). ``benchmarks/bench.py`` prints
``torchae fit``'s ratio to it beside the ratio to Keras: how far an epoch is from what its arithmetic costs here; it
runs the products on the threads ``torchae fit`` would take (as many as other processes leave cores free).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.profiler import ProfilerActivity, profile

from torchae.inputs import LabelledBatch
from torchae.registry import EXPERIMENTS

CONFIGS = Path(__file__).resolve().parents[1] / "torchae" / "configs"
PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::convolution", "aten::convolution_backward")
Product = tuple[str, list[list[int]], list[Any]]


def recorded_products(name: str, batch: int, training: bool) -> list[Product]:
    """The matrix products and convolutions of one step of experiment ``name`` at ``batch`` images: a training step
    (forward and backward) or a validation step; each as (op, input shapes, concrete arguments)."""
    model = EXPERIMENTS[name].model().train(training)
    images = torch.rand(batch, *model.input_shape)
    x = LabelledBatch(images, torch.randint(0, 10, (batch,))) if model.conditional else images
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as recorded:
        with torch.set_grad_enabled(training):
            loss = model.loss_terms(x, "train" if training else "val")["loss"]
            if training:
                loss.backward()
    return [(e.name, e.input_shapes, list(e.concrete_inputs)) for e in recorded.events() if e.name in PRODUCTS]


def replay(product: Product, channels_last: bool = False) -> Callable[[], Any]:
    """A call of ``product`` on random tensors of its shapes, with its other arguments; its 4-D tensors stored
    channels-last if asked (the layout ``engine.cpu_channels_last`` may give a model's convolutions)."""
    op, shapes, concrete = product
    layout = torch.channels_last if channels_last else torch.contiguous_format
    tensors = [torch.randn(shape) if shape else None for shape in shapes]
    tensors = [t.contiguous(memory_format=layout) if t is not None and t.dim() == 4 else t for t in tensors]
    if op == "aten::mm":
        return lambda: torch.mm(tensors[0], tensors[1])
    if op == "aten::bmm":
        return lambda: torch.bmm(tensors[0], tensors[1])
    if op == "aten::addmm":
        return lambda: torch.addmm(tensors[0], tensors[1], tensors[2])
    if op == "aten::convolution":
        stride, padding, dilation, transposed, output_padding, groups = concrete[3:9]
        arguments = (tensors[0], tensors[1], tensors[2], stride, padding, dilation, transposed, output_padding, groups)
        return lambda: torch.ops.aten.convolution(*arguments)
    bias_sizes, stride, padding, dilation, transposed, output_padding, groups, mask = concrete[3:11]
    grad_output, inputs, weight = tensors[:3]
    arguments = (grad_output, inputs, weight, bias_sizes, stride, padding, dilation, transposed, output_padding)
    return lambda: torch.ops.aten.convolution_backward(*arguments, groups, mask)


def step_seconds(products: list[Product], repeats: int = 7, channels_last: bool = False) -> float:
    """The median time of running every product once, after one warm-up run."""
    calls = [replay(product, channels_last) for product in products]
    times = []
    for index in range(repeats + 1):
        started = time.perf_counter()
        for call in calls:
            call()
        if index:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def batch_sizes(images: int, batch: int) -> dict[int, int]:
    """How many batches of each size an epoch of ``images`` has at ``batch``."""
    sizes = {batch: images // batch}
    if images % batch:
        sizes[images % batch] = 1
    return {size: count for size, count in sizes.items() if count}


def micro_batch_size(name: str) -> int | None:
    """The config's ``engine.cpu_micro_batch_size``: training batches run in parts of that size, and their products
    at those shapes (faster in cache than the whole batch's)."""
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text()) or {}
    return (config.get("engine") or {}).get("cpu_micro_batch_size")


def least_step_seconds(products: list[Product]) -> float:
    """:func:`step_seconds` of ``products``, with any convolutions in the faster of the two layouts (the least the
    arithmetic costs here, whichever layout the engine would choose)."""
    convolutions = any(op.startswith("aten::convolution") for op, _, _ in products)
    return min(step_seconds(products, channels_last=layout) for layout in ((False, True) if convolutions else (False,)))


def floor_of_epoch(name: str, train_size: int, val_size: int) -> dict[str, Any]:
    """Seconds of an epoch's matrix products: training steps on ``train_size`` images (in the config's micro-batches,
    if it sets them), validation on ``val_size``, at the experiment's batch size; with a full training step's."""
    batch, micro = EXPERIMENTS[name].batch_size, micro_batch_size(name)
    seconds, train_step = 0.0, math.nan
    for training, images in ((True, train_size), (False, val_size)):
        for size, count in batch_sizes(images, batch).items():
            parts = batch_sizes(size, micro) if training and micro else {size: 1}
            per_step = sum(least_step_seconds(recorded_products(name, part, training)) * n for part, n in parts.items())
            seconds += per_step * count
            if training and size == batch:
                train_step = per_step
    return {"seconds": seconds, "train_step_ms": train_step * 1e3, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(EXPERIMENTS))
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--val-size", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(floor_of_epoch(args.model, args.train_size, args.val_size)))


if __name__ == "__main__":
    main()
