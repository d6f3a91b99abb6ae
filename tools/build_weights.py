"""Rebuild the shipped weights and their metadata from the configs (a tool of the repository, not of the package).

    python tools/build_weights.py [NAME ...] [--work DIR]

Each model trains with ``torchae fit --config configs/NAME.yaml`` (seed 0, the article's full budget); the denoising
model retrains the dense model just built, as the article does. A run that stops resumes from its ``last.ckpt`` in
``--work`` when the command runs again. The weights land in ``torchae/weights/`` as ``NAME-SHA8.pt``
(weights only) and ``weights.json`` gets their metadata: checksum, parameter count, the loss on the 10,000 test
images (and on their first four batches, for the tests), the recipe, the commit and the Keras 3 row of
``parity/results/NAME.json``. Then ``python tools/docs_tables.py`` puts the new table into the README.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's torchae, installed or not

from torchae.autoencoder import AutoencoderModule  # noqa: E402
from torchae.checkpoints import network_state, run_order  # noqa: E402
from torchae.cli import AutoencoderCLI, find_last_checkpoint  # noqa: E402
from torchae.cli.configs import data_of  # noqa: E402
from torchae.data import MNISTDataModule  # noqa: E402
from torchae.figures import ArticleFigures  # noqa: E402
from torchae.networks import keras_parameter_count  # noqa: E402
from torchae.registry import EXPERIMENTS  # noqa: E402
from torchae.runs import source_commit  # noqa: E402
from torchae.safety import write_text_atomically  # noqa: E402
from torchae.weights import METADATA_FILE, WEIGHTS_DIR, loss_on_test_images  # noqa: E402

CONFIGS = REPO / "configs"
PARITY_RESULTS = REPO / "parity" / "results"
CHECK_BATCHES = 4
"""Validation batches of the metadata's ``check`` loss, which a test recomputes in seconds."""


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
        torch.save(getattr(cli.model, "net", cli.model).state_dict(), initial)  # a model without one network: whole
    last = find_last_checkpoint(root)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=last, weights_only=True)
    figures = next(callback for callback in cli.trainer.callbacks if isinstance(callback, ArticleFigures))
    return cli.model, figures.history


def model_arguments(model: AutoencoderModule) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model`` from its weights alone (no ``init_from``)."""
    arguments = {key: value for key, value in model.hparams.items() if not key.startswith("_")}
    if "init_from" in arguments:
        arguments["init_from"] = None
    if "seed" in model.unsaved_arguments:  # the seed of the model's draws: the process seed when none was configured
        arguments["seed"] = model.draws.resolved_seed()
    return arguments


def commit() -> str:
    """The commit that trains the weights (the metadata must name one: build from a git checkout)."""
    found = source_commit()
    if found is None:
        raise RuntimeError(f"{REPO} is not a git checkout: build the weights from a clone of torchae")
    return found


def full_train_size(name: str) -> int:
    """The training set size of experiment ``name``'s config: MNIST's 60,000, or the points it draws (part 2)."""
    if issubclass(EXPERIMENTS[name].model.datamodule, MNISTDataModule):
        return 60_000
    data = data_of(name)
    data.setup("fit")
    return len(data.train_images)


def keras_row(name: str) -> dict[str, Any] | None:
    """The last epoch of the Keras 3 run in ``parity/results/NAME.json`` when it ran the article's full length, with
    the backend Keras ran on (records from before the backend was recorded ran on TensorFlow)."""
    path = PARITY_RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record["epochs"] != EXPERIMENTS[name].epochs or record["train_size"] != full_train_size(name):
        return None
    keras, epochs = record["keras"], record["epochs"]
    backend = record.get("versions", {}).get("keras_backend", "tensorflow")
    return {"loss": keras["loss"][-1], "val_loss": keras["val_loss"][-1], "epochs": epochs, "backend": backend}


def write_weights(name: str, model: AutoencoderModule, history: list[dict[str, float]], out: Path) -> dict[str, Any]:
    """Save ``model``'s weights as ``out/NAME-SHA8.pt`` and return its metadata entry."""
    experiment = EXPERIMENTS[name]
    model = model.cpu().eval()
    out.mkdir(parents=True, exist_ok=True)
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
        "num_params": keras_parameter_count(model),
        "val_loss": loss_on_test_images(model),
        "check": {"val_batches": CHECK_BATCHES, "val_loss": loss_on_test_images(model, batches=CHECK_BATCHES)},
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
    parser = argparse.ArgumentParser(prog="python tools/build_weights.py", description=__doc__)
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
                    f"{args.out / METADATA_FILE} has no {name} entry: build it (python tools/build_weights.py {name})"
                )
            entry = refresh(name, shipped[name], args.work)
        else:
            retrains = EXPERIMENTS[name].retrains
            init_from = find_last_checkpoint(args.work / retrains) if retrains else None
            if retrains and init_from is None:
                parser.error(f"{name} retrains {retrains}: build it first (python tools/build_weights.py {retrains})")
            model, history = train(name, args.work, init_from)
            entry = write_weights(name, model, history, args.out)
        write_metadata(args.out, name, entry)  # read again: builds of other models may run beside this one
        print(f"{name}: {entry['file']} val_loss {entry['val_loss']:.6f}", flush=True)
    if args.out == WEIGHTS_DIR:
        print("python tools/docs_tables.py puts the new numbers into the README")


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
