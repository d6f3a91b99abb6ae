"""``python -m parity gan-run NAME``: a GAN's Keras reference (``gan``, ``cgan`` or ``cvae_gan``) trained as the
article trains it, at its length (5000 or 48000 outer iterations) or ``--iterations``, saved every ``--save-every``
outer iterations into its state folder and resumed from there when the command is run again, then judged as
torchae's runs are (``python -m parity judge``).

The state holds the networks' weights, each RMSProp's accumulators, the loop's place, the article's batch order and
the codes' generator, and every step's loss. Keras's dropout masks (and part 6's sample noise) restart from their
seeds on a resume: a resumed run is a run of the same loop, not the uninterrupted run's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from parity.cvae_gan_models import KerasCVAEGANLoop
from parity.gan_models import ArticleBatches, KerasGanLoop
from parity.judging import shipped_judge
from torchae.data import load_mnist
from torchae.judge import judge_samples
from torchae.registry import EXPERIMENTS
from torchae.runs import source_commit
from torchae.safety import atomic_write, write_text_atomically

__all__ = ["run_keras_gan"]

STATE, WEIGHTS = "state.json", "weights.npz"


def _slots(loop: Any) -> list[Any]:
    """Every RMSProp accumulator of the loop's optimizers, in the networks' variable order."""
    slots = []
    for network, optimizer in loop.optimizers.items():
        for variable in getattr(loop.models, network).trainable_variables:
            slots += [optimizer.get_slot(variable.value, name) for name in ("rms", "momentum")]
    return slots


def _create_slots(loop: Any) -> None:
    """Make each optimizer create its accumulators with a step of zero gradients (no weight moves)."""
    import tensorflow as tf

    for network, optimizer in loop.optimizers.items():
        variables = [v.value for v in getattr(loop.models, network).trainable_variables]
        optimizer.apply_gradients([(tf.zeros_like(v), v) for v in variables])


def save_state(folder: Path, loop: Any, batches: ArticleBatches, losses: list[float]) -> None:
    """Write the run's state, each file whole or not at all (written beside, then renamed)."""
    arrays = {
        f"{network}/{i}": w
        for network, model in loop.models._asdict().items()
        for i, w in enumerate(model.get_weights())
    }
    arrays |= {f"slot/{i}": slot.numpy() for i, slot in enumerate(_slots(loop))}
    with atomic_write(folder / WEIGHTS) as partial:
        np.savez(partial, **arrays)
    state = {
        "schedule": loop.schedule.state_dict(),
        "codes": loop.rng.bit_generator.state,
        "batches": batches.state(),
        "losses": losses,
    }
    write_text_atomically(folder / STATE, json.dumps(state))


def load_state(folder: Path, loop: Any, batches: ArticleBatches) -> list[float]:
    """Restore the run saved in ``folder`` into ``loop`` and ``batches``; its losses so far."""
    state = json.loads((folder / STATE).read_text())
    _create_slots(loop)
    with np.load(folder / WEIGHTS) as arrays:
        for network, model in loop.models._asdict().items():
            model.set_weights([arrays[f"{network}/{i}"] for i in range(len(model.get_weights()))])
        for i, slot in enumerate(_slots(loop)):
            slot.assign(arrays[f"slot/{i}"])
    loop.schedule.load_state_dict(state["schedule"])
    loop.rng.bit_generator.state = state["codes"]
    batches.load_state(state["batches"])
    return [float(loss) for loss in state["losses"]]


def run_keras_gan(
    name: str,
    folder: Path,
    seed: int = 0,
    iterations: int | None = None,
    save_every: int = 100,
    samples: int = 10_000,
) -> dict[str, Any]:
    """Train (or resume) experiment ``name``'s Keras reference to ``iterations`` outer iterations (the article's by
    default) on MNIST's training images, saving into ``folder``; then judge ``samples`` of its digits against the
    test digits. Returns the record (also written to ``folder/record.json``)."""
    experiment = EXPERIMENTS[name]
    iterations = iterations or experiment.iterations
    loop = KerasCVAEGANLoop(seed) if name == "cvae_gan" else KerasGanLoop(name, seed)
    mnist = load_mnist()
    images = (mnist.x_train[..., None] / np.float32(255)).astype(np.float32)
    one_hot = loop.one_hot(mnist.y_train.astype(np.int64))
    batches = ArticleBatches(images.shape[0], experiment.batch_size, seed)
    losses = load_state(folder, loop, batches) if (folder / STATE).is_file() else []
    if losses:
        print(f"resuming the Keras {name} run in {folder} after outer iteration {loop.schedule.iterations}", flush=True)
    while loop.schedule.iterations < iterations:
        done = loop.schedule.iterations
        chosen = batches.next_indices()
        losses += loop.train_on(images[chosen], one_hot[chosen])
        if loop.schedule.iterations > done and loop.schedule.iterations % save_every == 0:
            save_state(folder, loop, batches, losses)
            print(f"outer iteration {loop.schedule.iterations}/{iterations}: loss {losses[-1]:.4f}", flush=True)
    save_state(folder, loop, batches, losses)
    record = {"model": name, "framework": "keras", "seed": seed, "iterations": iterations, "steps": len(losses)}
    record["commit"] = source_commit()
    record |= {"last_losses": losses[-5:], "verdict": judge_generator(loop, samples, seed)}
    write_text_atomically(folder / "record.json", json.dumps(record, indent=1) + "\n")
    return record


def judge_generator(loop: Any, samples: int, seed: int) -> dict[str, Any]:
    """The shipped judge's verdict on ``samples`` digits of the loop's trained generator (part 6's decoder), drawn
    with ``seed``, against MNIST's test digits."""
    judge, test_features = shipped_judge()
    generated, labels = loop.samples(samples, seed)
    return judge_samples(judge, generated, test_features, labels)
