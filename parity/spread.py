"""Seed spread: the same experiment trained from several seeds in each framework, from each one's own
initialisation, to tell a difference between Keras 3 and torchae from the spread between seeds.

    python -m parity spread denoising --seeds 0 1 2 --epochs 200

Seeds can run in several processes (one core each): ``python -m parity spread-merge OTHER.json`` adds the seeds of
another process's record of the same run to this checkout's (:func:`merge_records`).

For each seed and framework it records the last epoch's ``loss`` / ``val_loss`` and, for a ReLU code (dense,
denoising), how many code units are dead: zero for every test image (a unit that dies stops learning, and the
article's 49-unit code loses capacity with each).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from parity.keras_models import build_keras
from parity.train import _train_keras, keras_inputs, machine_description, parity_data, versions
from torchae.cli.configs import fit_quietly
from torchae.registry import EXPERIMENTS
from torchae.runs import source_commit

__all__ = ["dead_units", "merge_records", "record_name", "seed_spread", "seeds_done", "summarise", "val_loss_spread"]


def dead_units(codes: Any) -> int | None:
    """How many code units are zero for every image of ``codes`` (``(N, units)``); ``None`` when some are negative
    (a linear code, where "dead" means nothing)."""
    codes = np.asarray(codes).reshape(len(codes), -1)
    if (codes < 0).any():
        return None
    return int((codes.max(axis=0) == 0).sum())


def seed_spread(
    name: str,
    seeds: list[int],
    epochs: int,
    train_size: int,
    val_size: int,
    resume: dict[str, Any] | None = None,
    save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``name`` from each seed in Keras 3 and in torchae; returns the per-seed results of both.

    Args:
        resume: an unfinished record of the same run (model, epochs, sizes): the seeds it holds are kept, not
            trained again.
        save: called with the record after each seed of each framework, so that a stopped run loses one seed's
            training at most.
    """
    record = resume or {
        "model": name,
        "epochs": epochs,
        "train_size": train_size,
        "val_size": val_size,
        "results": {"keras": [], "torchae": []},
        "machine": machine_description(),
        "versions": versions(),
        "commit": source_commit(),
    }
    wanted = {"model": name, "epochs": epochs, "train_size": train_size, "val_size": val_size}
    found = {key: record[key] for key in wanted}
    if found != wanted:
        raise ValueError(f"cannot resume the spread run {found} as the run {wanted}: start a new record")
    batch_size = EXPERIMENTS[name].batch_size
    for seed in seeds:
        data = parity_data(name, train_size, val_size, seed)  # the points differ by seed
        done = seeds_done(record)
        if seed not in done["keras"]:
            keras_models = build_keras(name, seed=seed)
            x_train = keras_inputs(name, data.train_images, data.train_labels)
            x_val = keras_inputs(name, data.val_images, data.val_labels)
            curves = _train_keras(keras_models, x_train, x_val, epochs, batch_size)
            # A VAE's code is its mean (the article's z_meaner); the others' encoder draws nothing.
            encoder = (keras_models.extras or {}).get("z_mean", keras_models.encoder)
            codes = encoder.predict(x_val[:2] if isinstance(x_val, list) else x_val, verbose=0)
            _add(record, "keras", _row(seed, curves["loss"][-1], curves["val_loss"][-1], codes), save)
        if seed not in done["torchae"]:
            torch.manual_seed(seed)
            model = EXPERIMENTS[name].model()
            history, _ = fit_quietly(model, name, epochs, train_size, val_size, seed)
            labels = (data.val_labels,) if model.conditional else ()
            with torch.no_grad():
                codes = model.eval().encode(data.val_images, *labels)
            _add(record, "torchae", _row(seed, history[-1]["train_loss"], history[-1]["val_loss"], codes), save)
    return record


def seeds_done(record: dict[str, Any]) -> dict[str, list[int]]:
    """The seeds a spread record holds results for, per framework (``keras``, ``torchae``)."""
    return {framework: [row["seed"] for row in rows] for framework, rows in record["results"].items()}


def record_name(model: str, epochs: int, train_size: int, val_size: int) -> str:
    """The file name of a spread run's record: one per model, epochs and data sizes, whatever its seeds."""
    return f"{model}-e{epochs}-n{train_size}-v{val_size}.json"


def merge_records(record: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``record`` with the seeds of ``other`` added: records of the same run (model, epochs, sizes, commit and
    library versions), for example from two processes that each trained some of the seeds. ``record`` is not
    changed.

    Raises:
        ValueError: the records are of different runs, or hold different results for the same seed.
    """
    keys = ("model", "epochs", "train_size", "val_size", "commit")
    if any(record.get(key) != other.get(key) for key in keys):
        mine, theirs = ({key: r.get(key) for key in keys} for r in (record, other))
        raise ValueError(f"cannot merge the spread run {theirs} into {mine}: they are different runs")
    if other.get("versions") != record.get("versions"):
        raise ValueError("cannot merge spread runs made with different library versions: they are different runs")
    merged = {**record, "results": {}}
    for framework in ("keras", "torchae"):
        rows = {row["seed"]: row for row in record["results"][framework]}
        for row in other["results"][framework]:
            if rows.setdefault(row["seed"], row) != row:
                raise ValueError(f"seed {row['seed']} of {framework} has different results in the two records")
        merged["results"][framework] = sorted(rows.values(), key=lambda r: r["seed"])
    return merged


def _row(seed: int, loss: float, val_loss: float, codes: Any) -> dict[str, Any]:
    return {"seed": seed, "loss": float(loss), "val_loss": float(val_loss), "dead": dead_units(codes)}


def _add(record: dict[str, Any], framework: str, row: dict[str, Any], save: Callable | None) -> None:
    record["results"][framework] = sorted([*record["results"][framework], row], key=lambda r: r["seed"])
    if save is not None:
        save(record)


def val_loss_spread(rows: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """Mean, standard deviation (0 for a single seed), lowest and highest ``val_loss`` of one framework's seeds."""
    values = [row["val_loss"] for row in rows]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread, min(values), max(values)


def summarise(record: dict[str, Any]) -> str:
    """One line per framework: mean, standard deviation and range of val_loss over seeds, and the dead units."""
    lines = [f"{record['model']}: {record['epochs']} epochs, {record['train_size']:,} / {record['val_size']:,} images"]
    for framework, rows in record["results"].items():
        mean, spread, lowest, highest = val_loss_spread(rows)
        dead = [row["dead"] for row in rows]
        lines.append(
            f"{framework:>8}: val_loss mean {mean:.5f}, sd {spread:.5f} ({spread / mean:.2%}), range "
            f"{lowest:.5f}-{highest:.5f}; dead code units per seed: {dead}"
        )
    return "\n".join(lines)
