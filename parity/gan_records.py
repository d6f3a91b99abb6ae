"""The GANs' training claim in ``parity/RESULTS.md``: the judge's verdict on each run's digits, Keras's and
torchae's, seed by seed. A GAN's loss says little about its digits, so its runs are compared by what the judge
(:mod:`torchae.judge`) reads in them, not curve by curve.

Records live in ``parity/results/gans/NAME-FRAMEWORK-seedS.json``: ``python -m parity gan-run`` writes Keras's when a
run reaches the article's length, ``python -m parity gan-record NAME --checkpoint PATH --seed S`` torchae's from a
``torchae fit`` run's checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.judging import shipped_judge, verdict_cells
from torchae.judge import judge_model
from torchae.registry import EXPERIMENTS, load_checkpoint
from torchae.runs import source_commit
from torchae.safety import write_text_atomically

__all__ = ["GAN_RESULTS", "gan_section", "torchae_gan_record", "write_gan_record"]

GAN_RESULTS = Path(__file__).resolve().parent / "results" / "gans"


def torchae_gan_record(name: str, checkpoint: Path, seed: int, samples: int = 10_000) -> dict[str, Any]:
    """The record of a ``torchae fit`` run of GAN ``name`` (trained with ``seed``) from its ``checkpoint``: its
    outer iterations and the shipped judge's verdict on ``samples`` of its digits, drawn with ``seed``."""
    model = load_checkpoint(checkpoint)
    if type(model) is not EXPERIMENTS[name].model:
        raise ValueError(f"{checkpoint} holds a {type(model).__name__}, not experiment {name!r}'s model")
    judge, test_features = shipped_judge()
    verdict = judge_model(model, judge, test_features, samples, seed)
    return {
        "model": name,
        "framework": "torchae",
        "seed": seed,
        "iterations": model.schedule.iterations,
        "checkpoint": str(checkpoint),
        "verdict": verdict,
        "commit": source_commit(),
    }


def write_gan_record(record: dict[str, Any], results: Path = GAN_RESULTS) -> Path:
    """Write ``record`` as ``results/NAME-FRAMEWORK-seedS.json`` (whole, or not at all) and return its path."""
    path = results / f"{record['model']}-{record['framework']}-seed{record['seed']}.json"
    write_text_atomically(path, json.dumps(record, indent=1) + "\n")
    return path


def gan_section(results: Path = GAN_RESULTS) -> list[str]:
    """The report's section of the GANs' verdicts, a row per record in the series' order (none: no section)."""
    records = [json.loads(path.read_text()) for path in sorted(results.glob("*.json"))]
    if not records:
        return []
    order = list(EXPERIMENTS)
    records.sort(key=lambda r: (order.index(r["model"]), r["framework"] != "keras", r["seed"]))
    lines = [
        "## The GANs: the judge's verdicts",
        "",
        "Written by `python -m parity gan-run` (Keras) and `python -m parity gan-record` (torchae): each run's digits",
        "as the judge reads them (`python -m parity judge`), drawn from its prior with its seed. The two frameworks",
        "train from their own initialisations; compare them within each framework's spread over seeds.",
        "",
        "| model | framework | seed | outer iterations | samples | label accuracy | judge's confidence "
        "| Fréchet distance to the test digits | most / least frequent digit | commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        article = EXPERIMENTS[record["model"]].iterations
        length = f"{record['iterations']:,}" + (" (full)" if record["iterations"] >= article else f" of {article:,}")
        samples, *cells = verdict_cells(record["verdict"])
        commit = (record.get("commit") or "")[:7] or "—"
        lines.append(
            f"| {record['model']} | {record['framework']} | {record['seed']} | {length} | {samples} | "
            + " | ".join(cells)
            + f" | {commit} |"
        )
    return [*lines, ""]
