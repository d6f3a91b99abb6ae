"""The whole of part 1's article through ``torchae fit``: its five models at their full epochs, side by side on one
machine, and the wall time from the first start to the last finish.

    python benchmarks/article.py --out runs/article                     # the article, on what Lightning picks
    python benchmarks/article.py --out runs/article --set engine.compiled_steps=false engine.cuda_graphs=true
    python benchmarks/article.py --out /tmp/a --epochs 1 --train-size 512 --val-size 256   # a quick CPU try
    python benchmarks/article.py --out runs/article-jax --keras jax     # the peer: Keras 3 on JAX, the same way

Each model is its own process, ``torchae fit --config configs/NAME.yaml`` (the real user path: logger, checkpoints,
figures), all started together; denoising retrains the trained dense model, as the article does, so it starts when
dense has finished, from dense's last checkpoint. ``--set KEY=VALUE`` adds ``--KEY VALUE`` to every command (the
second line above is the GPU's: whole-step CUDA graphs instead of the CPU's compiled steps). A model that fails
does not stop the others: the table says which failed and why, and the exit status is 1. With ``--keras BACKEND``
the same schedule runs Keras 3 on that backend instead (``bench.py``'s Keras worker: the article's model code, from
its own initial weights, denoising from scratch), each JAX process allocating GPU memory as it needs it.

Writes ``article.json`` into ``--out`` (per model: when it started and finished, seconds, the last epoch's
loss / val_loss, the command; the machine and the whole wall time) and prints a table. Each run's folder
(``--out/NAME``) and log (``--out/NAME.log``) stay there.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("dense", "deep", "conv", "denoising", "sparse")
RETRAINS = {"denoising": "dense"}
"""A model that starts from another's trained weights (``--model.init_from``), so after it: the article's order."""


def fit_command(name: str, out: Path, args: argparse.Namespace, init_from: Path | None = None) -> list[str]:
    """``torchae fit`` of ``name`` into ``out/name``, with the run's overrides."""
    command = [sys.executable, "-m", "torchae", "fit", "--config", str(ROOT / "configs" / f"{name}.yaml")]
    command += ["--trainer.default_root_dir", str(out / name), "--trainer.enable_progress_bar", "false"]
    overrides = {"trainer.max_epochs": args.epochs, "data.train_size": args.train_size, "data.val_size": args.val_size}
    for key, value in overrides.items():
        if value is not None:
            command += [f"--{key}", str(value)]
    for setting in args.set:
        key, value = setting.split("=", 1)
        command += [f"--{key}", value]
    if init_from is not None:
        command += ["--model.init_from", str(init_from)]
    return command


def keras_command(name: str, args: argparse.Namespace) -> list[str]:
    """Keras 3 on ``args.keras`` training ``name``'s article model (``bench.py``'s Keras worker, the article's
    code unchanged), at the same epochs and sizes; it prints its curves' last values as JSON."""
    from torchae.registry import EXPERIMENTS

    epochs = args.epochs or EXPERIMENTS[name].epochs
    command = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--worker", f"keras-{args.keras}", name]
    command += ["--epochs", str(epochs)]
    for flag, value in (("--train-size", args.train_size), ("--val-size", args.val_size)):
        if value is not None:
            command += [flag, str(value)]
    return command


def keras_losses(log: Path) -> tuple[float, float] | None:
    """The last epoch's ``loss`` and ``val_loss`` a Keras worker printed (its last line, JSON)."""
    lines = log.read_text(errors="replace").strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return None
    return (result["loss"], result["val_loss"]) if "loss" in result else None


def final_losses(run_dir: Path) -> tuple[float, float] | None:
    """The last epoch's ``train_loss`` and ``val_loss`` from the run's ``metrics.csv`` (None if it logged none)."""
    from torchae.checkpoints import run_order

    files = sorted(run_dir.glob("version_*/metrics.csv"), key=run_order)
    if not files:
        return None
    last: dict[str, float] = {}
    with files[-1].open() as file:
        for row in csv.DictReader(file):
            last.update({key: float(row[key]) for key in ("train_loss", "val_loss") if row.get(key)})
    return (last["train_loss"], last["val_loss"]) if len(last) == 2 else None


def machine() -> str:
    """The GPU when there is one (Lightning picks it), else the CPU, as ``bench.py`` describes it."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench import machine as cpu_machine

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible), torch {torch.__version__}"
    return f"{cpu_machine()}, no GPU, torch {torch.__version__}"


def run_article(args: argparse.Namespace) -> dict[str, Any]:
    """Start every model (each retraining model once what it retrains has finished) and wait for all of them."""
    from torchae.cli import find_last_checkpoint  # imported here: a refused command line answers at once

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if args.keras:  # several JAX processes share one card: each takes what it needs, not 75% of it
        env.update(KERAS_BACKEND=args.keras, XLA_PYTHON_CLIENT_PREALLOCATE="false", TF_CPP_MIN_LOG_LEVEL="3")
    waiting = list(args.models)
    running: dict[str, tuple[subprocess.Popen, Any, float]] = {}
    results: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    while waiting or running:
        for name in list(waiting):
            before = RETRAINS.get(name) if RETRAINS.get(name) in args.models else None
            if before is not None and results.get(before, {}).get("status", "running") == "running":
                continue  # what it retrains has not finished
            waiting.remove(name)
            init_from = None
            if before is not None and not args.keras:  # Keras's worker trains from scratch, in the same order
                init_from = find_last_checkpoint(out / before) if results[before]["status"] == "finished" else None
                if init_from is None:
                    results[name] = {"status": f"not started: {before} did not finish", "command": None}
                    continue
            command = keras_command(name, args) if args.keras else fit_command(name, out, args, init_from)
            log = (out / f"{name}.log").open("w")
            process = subprocess.Popen(command, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[name] = (process, log, time.perf_counter() - start)
            results[name] = {"status": "running", "command": command, "started_s": running[name][2]}
        for name, (process, log, started) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
            ended = time.perf_counter() - start
            entry = results[name]
            entry.update(ended_s=ended, seconds=ended - started, exit_status=process.returncode)
            losses = keras_losses(out / f"{name}.log") if args.keras else final_losses(out / name)
            entry["loss"], entry["val_loss"] = losses if losses else (None, None)
            if process.returncode == 0:
                entry["status"] = "finished"
            else:
                lines = (out / f"{name}.log").read_text(errors="replace").strip().splitlines() or ["(no output)"]
                entry["status"] = f"failed (exit {process.returncode}): {lines[-1][:300]}"
        time.sleep(0.2)
    return {
        "machine": machine(),
        "wall_s": time.perf_counter() - start,
        "framework": f"Keras 3 on {args.keras}" if args.keras else "torchae fit",
        "settings": {"epochs": args.epochs, "train_size": args.train_size, "val_size": args.val_size, "set": args.set},
        "models": {name: results[name] for name in args.models},
    }


def table(record: dict[str, Any]) -> str:
    lines = [
        "| model | started (s) | finished (s) | seconds | loss / val_loss | status |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in record["models"].items():
        times = [f"{entry[key]:.1f}" if entry.get(key) is not None else "—" for key in ("started_s", "ended_s")]
        seconds = f"{entry['seconds']:.1f}" if entry.get("seconds") is not None else "—"
        losses = f"{entry['loss']:.4f} / {entry['val_loss']:.4f}" if entry.get("loss") is not None else "—"
        lines.append(f"| {name} | {times[0]} | {times[1]} | {seconds} | {losses} | {entry['status']} |")
    lines.append(
        f"\nThe whole article ({record['framework']}): {record['wall_s']:.1f} s of wall time on {record['machine']}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/article.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", metavar="MODEL", help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs, their logs and article.json")
    parser.add_argument("--epochs", type=int, default=None, help="every model's epochs (default: the article's)")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: all 60,000)")
    parser.add_argument("--val-size", type=int, default=None, help="test images (default: all 10,000)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="--KEY VALUE for every torchae fit")
    parser.add_argument(
        "--keras", choices=("tensorflow", "jax", "torch"), help="the peer: Keras 3 on this backend instead of torchae"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.models if name not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}: choose from {', '.join(MODELS)}")
    args.models = tuple(args.models) or MODELS
    malformed = [setting for setting in args.set if "=" not in setting or setting.startswith("=")]
    if malformed:
        parser.error(f"--set takes KEY=VALUE, got {malformed[0]!r}: for example --set engine.cuda_graphs=true")
    for key in ("epochs", "train_size", "val_size"):
        value = getattr(args, key)
        if value is not None and value <= 0:
            parser.error(f"--{key.replace('_', '-')} must be positive, got {value}")
    if args.keras and args.set:
        parser.error("--set sets torchae fit's options: leave it out with --keras")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty: give a new --out folder (earlier runs are kept, not overwritten)")
    record = run_article(args)
    (args.out / "article.json").write_text(json.dumps(record, indent=1))
    print(table(record))
    print(f"wrote {args.out / 'article.json'}")
    return 0 if all(entry["status"] == "finished" for entry in record["models"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
