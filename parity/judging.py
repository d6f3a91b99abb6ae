"""``python -m parity judge``: what the judge of generated digits (:mod:`torchae.judge`) says of each generative
model's samples, as a table (and a JSON record beside the other results)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch

import torchae
from torchae.data import load_mnist, to_image_tensor
from torchae.judge import judge_features, judge_model, judge_samples
from torchae.networks import IMAGE_SHAPE
from torchae.registry import EXPERIMENTS

__all__ = ["GENERATIVE", "format_judged", "judge_all", "shipped_judge", "verdict_cells"]

GENERATIVE = tuple(
    name
    for name, experiment in EXPERIMENTS.items()
    if callable(getattr(experiment.model, "sample", None)) and tuple(experiment.model.input_shape) == IMAGE_SHAPE
)
"""The series' models that generate digits from their prior (a ``sample`` method, MNIST's images): the ones the
judge measures, in the series' order."""


@functools.cache
def shipped_judge() -> tuple[Any, torch.Tensor]:
    """The shipped judge and its features of MNIST's test digits, computed once per process: both are fixed (the
    weights' checksum is verified on loading, the test digits are the package's own)."""
    judge = torchae.pretrained("judge")
    return judge, judge_features(judge, to_image_tensor(load_mnist().x_test))


def _load(name: str, checkpoints: dict[str, Path]) -> Any:
    return torchae.load_checkpoint(checkpoints[name]) if name in checkpoints else torchae.pretrained(name)


def judge_all(
    names: tuple[str, ...], samples: int = 10_000, seed: int = 0, checkpoints: dict[str, Path] | None = None
) -> dict[str, dict[str, Any]]:
    """Each model's verdict (its shipped weights, or the checkpoint ``checkpoints`` gives for it, ``judge`` too),
    after the verdict on as many real digits of the training set: what a perfect generator would score."""
    checkpoints = checkpoints or {}
    mnist = load_mnist()
    if "judge" in checkpoints:
        judge = _load("judge", checkpoints)
        real = judge_features(judge, to_image_tensor(mnist.x_test))  # once, for every verdict
    else:
        judge, real = shipped_judge()  # the shipped judge's, once per process
    # The reference row: as many real digits of the training set, judged as the samples are (the distance's floor).
    training = to_image_tensor(mnist.x_train[:samples])
    judged = {
        "mnist (real)": judge_samples(judge, training, real, torch.from_numpy(mnist.y_train[:samples].astype("int64")))
    }
    return judged | {name: judge_model(_load(name, checkpoints), judge, real, samples, seed) for name in names}


def format_judged(judged: dict[str, dict[str, Any]]) -> str:
    """The verdicts as a Markdown table: label accuracy (conditional models), confidence, Fréchet distance, and the
    share of the most and the least frequent digit."""
    lines = [
        "| model | samples | label accuracy | judge's confidence | Fréchet distance to the test digits "
        "| most / least frequent digit |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {' | '.join(verdict_cells(said))} |" for name, said in judged.items()]
    return "\n".join(lines)


def verdict_cells(said: dict[str, Any]) -> list[str]:
    """A verdict's table cells: samples, label accuracy (conditional models), confidence, Fréchet distance, and the
    share of the most and the least frequent digit."""
    shares = torch.tensor(said["shares"])
    spread = f"{int(shares.argmax())}: {float(shares.max()):.1%} / {int(shares.argmin())}: {float(shares.min()):.1%}"
    accuracy = f"{said['label_accuracy']:.2%}" if "label_accuracy" in said else "—"
    return [f"{said['samples']:,}", accuracy, f"{said['confidence']:.3f}", f"{said['frechet_distance']:.2f}", spread]


def write_judged(judged: dict[str, dict[str, Any]], path: Path) -> Path:
    path.write_text(json.dumps(judged, indent=1) + "\n")
    return path
