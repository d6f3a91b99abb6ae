"""``parity/RESULTS.md`` from the JSON records of the article runs (``parity/results/NAME.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.gan_records import gan_section
from parity.spread import seeds_done, val_loss_spread
from parity.train import TrainRecord, full_sizes, load_record
from torchae.data import MNISTDataModule
from torchae.registry import EXPERIMENTS

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
FULL_LENGTH_TOLERANCE = 0.01


def keras_backend(versions: dict[str, str]) -> str:
    """The backend a record's Keras ran on: named since backends other than TensorFlow ran the references; the
    records from before only ever ran on TensorFlow, whose version they list."""
    return versions.get("keras_backend") or ("tensorflow" if "tensorflow" in versions else "—")


def _same_run_results(record: TrainRecord, spreads: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]] | None:
    """The per-framework seed results of the spread record of ``record``'s run (same model, epochs and images), the
    one with the most seeds; ``None`` when there is none."""
    same_run = [
        spread
        for spread in spreads
        if (spread["model"], spread["epochs"], spread["train_size"], spread["val_size"])
        == (record.model, record.epochs, record.train_size, record.val_size)
    ]
    if not same_run:
        return None
    return max(same_run, key=lambda spread: sum(map(len, spread["results"].values())))["results"]


def _relative_deviation(rows: list[dict[str, Any]]) -> float | None:
    """The standard deviation of the final val_loss over seeds relative to its mean (``None`` under two seeds)."""
    if len(rows) < 2:
        return None
    mean, deviation, _, _ = val_loss_spread(rows)
    return deviation / mean


def _relative_deviations(record: TrainRecord, spreads: list[dict[str, Any]]) -> list[float]:
    """Each framework's relative seed spread in ``record``'s run, where it has two seeds or more."""
    results = _same_run_results(record, spreads) or {}
    return [d for d in map(_relative_deviation, results.values()) if d is not None]


def _spread_cell(record: TrainRecord, spreads: list[dict[str, Any]]) -> str:
    """The seed spread of ``record``'s run (same model, epochs and images) in each framework: the standard deviation
    of the final val_loss over seeds relative to its mean, so that it reads beside the row's relative difference."""
    results = _same_run_results(record, spreads)
    if results is None:
        return "—"
    deviations = [_relative_deviation(results[framework]) for framework in ("keras", "torchae")]
    cells = ["—" if d is None else f"{d:.2%}" for d in deviations]
    counts = [len(results[framework]) for framework in ("keras", "torchae")]
    return f"{cells[0]} / {cells[1]} ({counts[0]} / {counts[1]} seeds)"


def _row(record: TrainRecord, spreads: list[dict[str, Any]]) -> str:
    article_epochs = EXPERIMENTS[record.model].epochs
    full = record.epochs == article_epochs and (record.train_size, record.val_size) == full_sizes(record.model)
    length = f"{record.epochs} (full)" if full else f"{record.epochs} of {article_epochs} (shorter run)"
    figures = EXPERIMENTS[record.model].article_losses
    article = f"{figures[0]:.4f} / {figures[1]:.4f}" if figures and full else "—"
    k, t = record.keras, record.torchae
    diffs = [record.final_rel_diff(key) for key in ("loss", "val_loss")]
    if not full:
        verdict = "not full length"
    elif issubclass(EXPERIMENTS[record.model].model.datamodule, MNISTDataModule):
        verdict = "within 1%" if max(diffs) <= FULL_LENGTH_TOLERANCE else "OUTSIDE 1%"
    else:  # part 2's points: equal within the seed spread (docs/parity.md)
        deviations = _relative_deviations(record, spreads)
        within = deviations and max(diffs) <= max(deviations)
        verdict = "spread pending" if not deviations else "within the seed spread" if within else "OUTSIDE the spread"
    commit = (record.commit or "")[:7] or "—"
    start = "torchae run's" if record.torchae_run else "Keras's"
    return (
        f"| {record.model} | {length} | {record.train_size:,} / {record.val_size:,} | {record.batch_size} | {article} "
        f"| {k['loss'][-1]:.4f} / {k['val_loss'][-1]:.4f} | {t['loss'][-1]:.4f} / {t['val_loss'][-1]:.4f} "
        f"| {diffs[0]:.2%} / {diffs[1]:.2%} ({verdict}) | {_spread_cell(record, spreads)} "
        f"| {start} | {keras_backend(record.versions)} | {commit} |"
    )


def _spread_records(folder: Path) -> list[dict[str, Any]]:
    """The seed-spread records (``python -m parity spread``) in ``folder``, in file-name order."""
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def _spread_section(records: list[dict[str, Any]]) -> list[str]:
    """The seed-spread runs: val_loss over seeds in each framework."""
    if not records:
        return []
    lines = [
        "## Seed spread",
        "",
        "Written by `python -m parity spread NAME --seeds ...`: each framework trained from several seeds, each from",
        "its own initialisation. val_loss is the last epoch's, as mean ± standard deviation over seeds (range); dead",
        "units are ReLU code units that are zero for every test image, per seed. A record's `note` (what the run",
        "showed) follows the table.",
        "",
        "| model | epochs | train / val images | seeds | Keras 3 val_loss | torchae val_loss "
        "| dead units Keras / torchae | Keras backend | commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        results = record["results"]
        cells = []
        for framework in ("keras", "torchae"):
            if not results[framework]:
                cells.append("—")
                continue
            mean, spread, lowest, highest = val_loss_spread(results[framework])
            cells.append(f"{mean:.4f} ± {spread:.4f} ({lowest:.4f}-{highest:.4f})")
        dead_per_seed = [[row["dead"] for row in results[f]] for f in ("keras", "torchae")]
        # dead_units gives None for a linear code (deep's), whose units cannot die
        dead = "— (linear code)" if None in dead_per_seed[0] + dead_per_seed[1] else " / ".join(map(str, dead_per_seed))
        done = [seeds_done(record)[f] for f in ("keras", "torchae")]
        seeds = ", ".join(map(str, done[0]))
        if done[0] != done[1]:  # a run still going (python -m parity spread resumes it)
            seeds = f"Keras {seeds or '—'}; torchae {', '.join(map(str, done[1])) or '—'} (unfinished)"
        lines.append(
            f"| {record['model']} | {record['epochs']} | {record['train_size']:,} / {record['val_size']:,} | {seeds} "
            f"| {cells[0]} | {cells[1]} | {dead} | {keras_backend(record.get('versions', {}))} "
            f"| {(record.get('commit') or '')[:7] or '—'} |"
        )
    notes = [
        f"{record['model']}, {record['epochs']} epochs: {record['note']}" for record in records if "note" in record
    ]
    return [*lines, "", *(line for note in notes for line in (note, ""))]


def _records(results_dir: Path) -> list[TrainRecord]:
    """The article runs recorded in ``results_dir``, in the article's order."""
    return [
        load_record(results_dir / f"{name}.json") for name in EXPERIMENTS if (results_dir / f"{name}.json").is_file()
    ]


def article_table(
    results_dir: Path = RESULTS_DIR,
    records: list[TrainRecord] | None = None,
    spreads: list[dict[str, Any]] | None = None,
) -> str:
    """The table of the article runs recorded in ``results_dir`` (one row per model, in the article's order), each
    with the seed spread of the same run where ``results_dir/spread`` has one."""
    records = _records(results_dir) if records is None else records
    spreads = _spread_records(results_dir / "spread") if spreads is None else spreads
    header = (
        "| model | epochs | train / val images | batch | article | Keras 3 | torchae | rel. diff "
        "| val_loss sd over seeds, Keras / torchae | initial weights | Keras backend | commit |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    return "\n".join([header, *[_row(r, spreads) for r in records]])


def write_results(results_dir: Path = RESULTS_DIR, out: Path = RESULTS_MD) -> Path:
    """Write ``out`` from the records in ``results_dir`` (``python tools/docs_tables.py`` copies its table into the
    README)."""
    records = _records(results_dir)
    spreads = _spread_records(results_dir / "spread")
    table = article_table(results_dir, records, spreads)
    runs = [(r.machine, r.versions) for r in records] + [(r.get("machine"), r.get("versions", {})) for r in spreads]
    machines = sorted({machine for machine, _ in runs if machine})
    version_sets = sorted({", ".join(f"{k} {v}" for k, v in versions.items()) for _, versions in runs if versions})
    lines = [
        "# Training parity: Keras 3 and torchae, the article's runs",
        "",
        "Written by `python -m parity article` and `python -m parity against` (re-render with `python -m parity",
        "report`); the per-epoch curves are in `parity/results/NAME.json`. Both frameworks start from the same initial",
        "weights: Keras's, copied into torchae (`article`, both trained here), or the weights a `torchae fit` run",
        "started from, copied into Keras (`against`: the torchae side is that run itself, the training run of the",
        "shipped model, so an hours-long run is not repeated). Both train on the same images with the article's batch",
        "size and Adam settings and validate on the test images every epoch; shuffling and noise come from each",
        "framework's own generator. Losses are the last epoch's `loss / val_loss` (speed is measured quietly and side",
        "by side in `benchmarks/RESULTS.md`, not here). A shorter run is not the article's length. The sd column is",
        "the seed spread of the",
        "same run (below): the standard deviation of the final val_loss over seeds, each from its own initialisation,",
        "relative to the mean, in each framework; a rel. diff well inside it is a difference between two seeds.",
        "",
        table,
        "",
        *_spread_section(spreads),
        *gan_section(results_dir / "gans"),
        f"Machine: {'; '.join(machines) or '—'}.",
        f"Versions: {'; '.join(version_sets) or '—'}.",
        "",
    ]
    out.write_text("\n".join(lines))
    return out
