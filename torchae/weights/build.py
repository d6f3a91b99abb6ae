"""Rebuild the shipped weights and their metadata from the configs.

    python -m torchae.weights.build [NAME ...] [--work DIR]

Each model trains with ``torchae fit --config configs/NAME.yaml`` (seed 0, the article's full budget); the denoising
model retrains the dense model just built, as the article does. A run that stops resumes from its ``last.ckpt`` in
``--work`` when the command runs again. The weights land in ``torchae/weights/`` as ``NAME-SHA8.pt``
(weights only) and ``weights.json`` gets their metadata: checksum, parameter count, the loss on the 10,000 test
images, the recipe, the commit and the Keras 3 row of ``parity/results/NAME.json``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from torchae.checkpoints import network_state, run_order
from torchae.cli import AutoencoderCLI, find_last_checkpoint
from torchae.figures import ArticleFigures
from torchae.models import AutoencoderModule
from torchae.registry import EXPERIMENTS
from torchae.runs import source_commit
from torchae.safety import write_text_atomically
from torchae.weights import METADATA_FILE, WEIGHTS_DIR, loss_on_test_images

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
PARITY_RESULTS = REPO / "parity" / "results"
README = REPO / "README.md"


def train(name: str, work: Path, init_from: Path | None = None) -> tuple[AutoencoderModule, list[dict[str, float]]]:
    """Train experiment ``name`` with its config into ``work/name`` (resuming from its ``last.ckpt``); returns the
    trained model and its per-epoch history."""
    root = work / name
    args = ["--config", str(CONFIGS / f"{name}.yaml"), "--trainer.default_root_dir", str(root)]
    args += ["--trainer.enable_progress_bar", "false"]
    if init_from is not None:
        args += ["--model.init_from", str(init_from)]
    cli = AutoencoderCLI(args=args, run=False)
    if init_from is not None:  # as setup() will: the starting point saved below is the retrained model
        cli.model.net.load_state_dict(network_state(init_from, cli.model.net))
    root.mkdir(parents=True, exist_ok=True)
    initial = root / "initial_weights.pt"
    if not initial.exists():  # the starting point, for a Keras run from the same weights (parity)
        torch.save(cli.model.net.state_dict(), initial)
    last = find_last_checkpoint(root)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=last, weights_only=True)
    figures = next(callback for callback in cli.trainer.callbacks if isinstance(callback, ArticleFigures))
    return cli.model, figures.history


def model_arguments(model: AutoencoderModule) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model`` from its weights alone (no ``init_from``)."""
    arguments = {key: value for key, value in model.hparams.items() if not key.startswith("_")}
    if "init_from" in arguments:
        arguments["init_from"] = None
    if "seed" in arguments:  # the denoising noise seed: the process seed when none was configured
        arguments["seed"] = int(model.noise_seed())
    return arguments


def commit() -> str:
    """The commit that trains the weights (the metadata must name one: build from a git checkout)."""
    found = source_commit()
    if found is None:
        raise RuntimeError(f"{REPO} is not a git checkout: build the weights from a clone of torchae")
    return found


def keras_row(name: str) -> dict[str, Any] | None:
    """The last epoch of the Keras 3 run in ``parity/results/NAME.json`` when it ran the article's full length, with
    the backend Keras ran on (records from before the backend was recorded ran on TensorFlow)."""
    path = PARITY_RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record["epochs"] != EXPERIMENTS[name].epochs or record["train_size"] != 60_000:
        return None
    keras, epochs = record["keras"], record["epochs"]
    backend = record.get("versions", {}).get("keras_backend", "tensorflow")
    return {"loss": keras["loss"][-1], "val_loss": keras["val_loss"][-1], "epochs": epochs, "backend": backend}


def write_weights(name: str, model: AutoencoderModule, history: list[dict[str, float]], out: Path) -> dict[str, Any]:
    """Save ``model``'s weights as ``out/NAME-SHA8.pt`` and return its metadata entry."""
    experiment = EXPERIMENTS[name]
    model = model.cpu().eval()
    scratch = out / f"{name}.pt.partial"
    torch.save(model.state_dict(), scratch)
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
    for old in out.glob(f"{name}-*.pt"):
        old.unlink()
    target = out / f"{name}-{digest[:8]}.pt"
    scratch.replace(target)
    config = (CONFIGS / f"{name}.yaml").read_text()
    return {
        "file": target.name,
        "sha256": digest,
        "model": type(model).__name__,
        "model_arguments": model_arguments(model),
        "num_params": sum(p.numel() for p in model.parameters()),
        "val_loss": loss_on_test_images(model),
        "train_loss": history[-1]["train_loss"] if history else None,
        "epochs": experiment.epochs,
        "batch_size": experiment.batch_size,
        "seed": 0,
        "retrains": experiment.retrains,
        "config": config,
        "commit": commit(),
        "article": dict(zip(("loss", "val_loss"), experiment.article_losses)) if experiment.article_losses else None,
        "keras": keras_row(name),
        "history": [{key: row[key] for key in ("epoch", "train_loss", "val_loss") if key in row} for row in history],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m torchae.weights.build", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(EXPERIMENTS)} (default: all)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "pretrained", help="training runs (resumable)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument(
        "--metadata-only", action="store_true", help="refresh the Keras rows and histories of weights.json only"
    )
    args = parser.parse_args(argv)
    names = args.names or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}: choose from {', '.join(EXPERIMENTS)}")
    for name in names:
        if args.metadata_only:
            shipped = read_metadata(args.out)
            if name not in shipped:
                parser.error(
                    f"{args.out / METADATA_FILE} has no {name} entry: build it (python -m torchae.weights.build {name})"
                )
            entry = refresh(name, shipped[name], args.work)
        else:
            retrains = EXPERIMENTS[name].retrains
            init_from = find_last_checkpoint(args.work / retrains) if retrains else None
            if retrains and init_from is None:
                parser.error(f"{name} retrains {retrains}: build it first (python -m torchae.weights.build {retrains})")
            model, history = train(name, args.work, init_from)
            entry = write_weights(name, model, history, args.out)
        write_metadata(args.out, name, entry)  # read again: builds of other models may run beside this one
        print(f"{name}: {entry['file']} val_loss {entry['val_loss']:.6f}", flush=True)
    table = pretrained_table(read_metadata(args.out))
    print(table)
    if args.out == WEIGHTS_DIR and update_readme(README, table):
        print(f"updated the table in {README}")


def refresh(name: str, entry: dict[str, Any], work: Path) -> dict[str, Any]:
    """``entry`` with the Keras row read again and, where the run folder is at hand, the history of its run."""
    entry = {**entry, "keras": keras_row(name)}
    runs = sorted((work / name).glob("version_*/history.csv"), key=run_order)
    if runs:
        with runs[-1].open() as file:
            rows = list(csv.DictReader(file))
        entry["history"] = [
            {"epoch": int(row["epoch"]), "train_loss": float(row["train_loss"]), "val_loss": float(row["val_loss"])}
            for row in rows
        ]
    return entry


def pretrained_table(metadata: dict[str, Any]) -> str:
    """The README's table of the shipped models (printed by every build)."""
    lines = [
        "| model | parameters | epochs | batch | val_loss: article | Keras 3 (parity row) | torchae, shipped | file |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in metadata.items():
        article = f"{entry['article']['val_loss']:.4f}" if entry.get("article") else "—"
        keras = entry.get("keras")
        keras = f"{keras['val_loss']:.4f} ({keras.get('backend', 'tensorflow')})" if keras else "not yet at full length"
        lines.append(
            f"| {name} | {entry['num_params']:,} | {entry['epochs']} | {entry['batch_size']} | {article} | {keras} "
            f"| {entry['val_loss']:.4f} | `{entry['file']}` |"
        )
    return "\n".join(lines)


TABLE_START, TABLE_END = "<!-- pretrained-table", "<!-- end pretrained-table -->"


def _block_span(text: str, markers: tuple[str, str]) -> tuple[int, int]:
    """Where the text between ``markers`` lies: after the line that starts with the first, up to the second."""
    return text.index("\n", text.index(markers[0])) + 1, text.index(markers[1])


def readme_block(readme: Path, markers: tuple[str, str] = (TABLE_START, TABLE_END)) -> str:
    """The text between the README's ``markers`` (the pretrained-table ones unless given), as
    :func:`update_readme` writes it: the table and a newline."""
    text = readme.read_text()
    start, end = _block_span(text, markers)
    return text[start:end]


def update_readme(readme: Path, table: str, markers: tuple[str, str] = (TABLE_START, TABLE_END)) -> bool:
    """Put ``table`` between the README's ``markers`` (the pretrained-table ones unless given: the line that
    starts with the first, and the second); returns whether the file changed."""
    text = readme.read_text()
    start, end = _block_span(text, markers)
    updated = text[:start] + table + "\n" + text[end:]
    if updated == text:
        return False
    readme.write_text(updated)
    return True


def read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_metadata(directory: Path, name: str, entry: dict[str, Any]) -> None:
    """Set ``name``'s entry of ``weights.json`` (written whole, then renamed into place)."""
    metadata = {**read_metadata(directory), name: entry}
    ordered = {key: metadata[key] for key in EXPERIMENTS if key in metadata}
    write_text_atomically(directory / METADATA_FILE, json.dumps(ordered, indent=1) + "\n")


if __name__ == "__main__":
    main()
