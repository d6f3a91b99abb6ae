"""Seconds per epoch, torchae against the Keras 3 reference on each of its backends, side by side on one machine.

    python benchmarks/bench.py                      # all five, writes benchmarks/RESULTS.md
    python benchmarks/bench.py dense --epochs 4     # some models, prints the table only
    python benchmarks/bench.py --backends jax       # Keras on some backends only
    python benchmarks/bench.py --baseline ../old    # this checkout's torchae against another's, interleaved
    python benchmarks/bench.py denoising --busy 1   # with one busy process beside every measurement

Each measurement runs in its own process (Keras 3 on TensorFlow, JAX and PyTorch, running the article's model code
unchanged; torchae's loop; and torchae's real user path ``torchae fit --config configs/NAME.yaml``), one after the
other, so neither framework's threads or memory disturb the other's. JAX comes with the ``bench`` extra
(``pip install -e ".[bench]"``). An epoch is training plus validation on the test images, as Keras's ``fit``
reports it; the figure is the median over the epochs after the first (warm-up: graph tracing, compiling, allocator).
Peak memory is the process's peak resident set size above what it held before training began.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torchae.autoencoder import AutoencoderModule
from torchae.data import MNISTDataModule
from torchae.registry import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
# Conv is 150 s (Intel Xeon) to 1,400 s (AMD EPYC, AVX2 only) per full epoch for Keras on TensorFlow on a 2-core CPU,
# and all three Keras backends run in each round: time it on a stated subset there.
CPU_SUBSET = {"conv": (2_048, 1_000)}
TARGET = 0.5
"""``torchae fit`` per epoch over the fastest Keras backend's, for every model but those of :data:`TARGETS`."""
TARGETS = {"vae": 0.7, "cvae": 0.7}
"""The models whose floor (their matrix products) is above half of Keras's epoch on a 2-core CPU: their target."""
FLOOR_TARGETS = {"vae": 1.6, "cvae": 1.6}
"""``torchae fit`` per epoch over the epoch's floor (``benchmarks/floor.py``), where a target is set."""
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
MNIST_EXPERIMENTS = tuple(
    name
    for name, e in EXPERIMENTS.items()
    if issubclass(e.model, AutoencoderModule) and issubclass(e.model.datamodule, MNISTDataModule)
)
"""The experiments timed: the autoencoders on MNIST (part 2's points models train in seconds to minutes, bound by
Python; part 5's GANs have no Keras worker here yet, their loop being the article's own)."""


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_keras(name: str, epochs: int, train_size: int, val_size: int) -> dict:
    """Keras 3 on the backend that ``KERAS_BACKEND`` names (``run_worker`` sets it)."""
    from parity.keras_models import build_keras
    from parity.train import _train_keras, keras_data

    x_train, x_val = keras_data(name, train_size, val_size)  # images, and the CVAE's labels as its article gives them
    models = build_keras(name, seed=0)
    before = _rss_mb()
    curves = _train_keras(models, x_train, x_val, epochs, EXPERIMENTS[name].batch_size)
    last = {"loss": curves["loss"][-1], "val_loss": curves["val_loss"][-1]}
    return {"seconds": curves["seconds"], "peak_mb": _peak_mb() - before, **last}


def worker_torch(name: str, epochs: int, train_size: int, val_size: int) -> dict:
    from torchae.cli.configs import data_of, fit_quietly

    model = EXPERIMENTS[name].model()
    data = data_of(name, train_size, val_size)
    data.setup("fit")  # as the Keras worker, the data is in memory before the baseline is taken
    before = _rss_mb()
    history, seconds = fit_quietly(model, name, epochs, train_size, val_size, data=data)
    return {"seconds": seconds, "peak_mb": _peak_mb() - before, "val_loss": history[-1]["val_loss"]}


def worker_cli(name: str, epochs: int, train_size: int, val_size: int, root: Path = ROOT) -> dict:
    """The real user path: ``torchae fit --config configs/NAME.yaml`` of checkout ``root``, in a process of its own,
    with its progress bar, loggers and checkpoints on."""
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "torchae",
            "fit",
            "--config",
            str(root / "configs" / f"{name}.yaml"),
            "--trainer.max_epochs",
            str(epochs),
            "--trainer.default_root_dir",
            tmp,
            "--data.train_size",
            str(train_size),
            "--data.val_size",
            str(val_size),
            "--figures.enabled",
            "false",
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"torchae fit failed ({done.returncode}):\n{done.stderr[-3000:]}")
        with open(Path(tmp) / "version_0" / "metrics.csv") as f:
            seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f) if row.get("epoch_seconds")]
    return {"seconds": seconds, "peak_mb": float("nan"), "val_loss": float("nan")}


def worker_floor(name: str, epochs: int, train_size: int, val_size: int) -> dict:
    """The epoch's floor: its matrix products and convolutions alone (``benchmarks/floor.py``)."""
    from floor import floor_of_epoch  # beside this script, which runs as one

    from torchae.engine.threads import CpuThreads

    threads = CpuThreads()  # the threads `torchae fit` takes (engine.cpu_threads auto): as many as others leave free
    threads.start()
    try:
        floor = floor_of_epoch(name, train_size, val_size)
    finally:
        threads.restore()
    return {"seconds": [floor["seconds"]] * 2, "peak_mb": float("nan"), "train_step_ms": floor["train_step_ms"]}


WORKERS = {
    **{f"keras-{backend}": worker_keras for backend in KERAS_BACKENDS},
    "torch": worker_torch,
    "cli": worker_cli,
    "floor": worker_floor,
}


def run_worker(kind: str, name: str, epochs: int, train_size: int, val_size: int, root: Path = ROOT) -> dict:
    """One measurement in its own process, with the torchae (and bench.py) of checkout ``root``. ``torchae fit``
    starts its own process, so it needs no worker process around it."""
    if kind == "cli":
        return worker_cli(name, epochs, train_size, val_size, root)
    command = [
        sys.executable,
        str(root / "benchmarks" / "bench.py"),
        "--worker",
        kind,
        name,
        "--epochs",
        str(epochs),
        "--train-size",
        str(train_size),
        "--val-size",
        str(val_size),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    if kind.startswith("keras-"):
        env["KERAS_BACKEND"] = kind.removeprefix("keras-")
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=root).stdout
    return json.loads(out.strip().splitlines()[-1])


def backend_versions() -> str:
    """The installed versions of Keras's backends (read from the package metadata, nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("keras", "tensorflow", "jax", "jaxlib"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def median_after_warmup(seconds: list[float]) -> float:
    return statistics.median(seconds[1:])


def machine() -> str:
    """The processor's name, family and model numbers (its generation: "AMD EPYC" names Zen 3, 4 and 5 alike), its
    widest vector instructions (which kernels a library picks depend on them), cores and memory."""
    model, flags, numbers = platform.machine(), set(), {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name" and model == platform.machine():
            model = value
        elif key in ("cpu family", "model") and key not in numbers:
            numbers[key] = value
        elif key == "flags" and not flags:
            flags = set(value.split())
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    generation = f", family {numbers['cpu family']} model {numbers['model']}" if len(numbers) == 2 else ""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model} ({vectors}{generation}), {os.cpu_count()} cores, {memory:.0f} GiB"


def compare_with_baseline(baseline: Path, models: list[str], epochs: int, repeats: int, args: Any) -> None:
    """Seconds per epoch of this checkout's loop and `torchae fit` against ``baseline``'s, measured in interleaved
    rounds (the order within a round alternates); prints one row per model with the per-round ratios."""
    print(f"this checkout: {ROOT}; baseline: {baseline}; machine: {machine()}; {epochs} epochs, {repeats} rounds")
    print(
        "| model | train / val images | loop s/epoch (this / baseline) | this / baseline per round "
        "| `torchae fit` s/epoch (this / baseline) | this / baseline per round |"
    )
    print("|---|---|---|---|---|---|", flush=True)
    for name in models:
        train_size, val_size = CPU_SUBSET.get(name, (60_000, 10_000))
        train_size, val_size = args.train_size or train_size, args.val_size or val_size
        ratios: dict[str, list[float]] = {"torch": [], "cli": []}
        seconds: dict[tuple[str, Path], list[float]] = {}
        for round_index in range(repeats):
            roots = (ROOT, baseline) if round_index % 2 == 0 else (baseline, ROOT)
            for kind in ratios:
                for root in roots:
                    run = run_worker(kind, name, epochs, train_size, val_size, root)
                    seconds.setdefault((kind, root), []).append(median_after_warmup(run["seconds"]))
                ratios[kind].append(seconds[(kind, ROOT)][-1] / seconds[(kind, baseline)][-1])
        cells = []
        for kind in ratios:
            this, base = (statistics.median(seconds[(kind, root)]) for root in (ROOT, baseline))
            per_round = ", ".join(f"{r:.2f}" for r in ratios[kind])
            cells += [f"{this:.2f} / {base:.2f}", f"**{statistics.median(ratios[kind]):.2f}** ({per_round})"]
        print(f"| {name} | {train_size:,} / {val_size:,} | {' | '.join(cells)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "models",
        nargs="*",
        default=list(MNIST_EXPERIMENTS),
        help=f"any of {', '.join(MNIST_EXPERIMENTS)} (default: all)",
    )
    parser.add_argument("--epochs", type=int, default=6, help="epochs per measurement; the first is warm-up")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--val-size", type=int, default=None)
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of (each Keras, torchae, torchae fit) per model, interleaved"
    )
    parser.add_argument(
        "--backends", nargs="+", choices=KERAS_BACKENDS, default=list(KERAS_BACKENDS), help="Keras backends to time"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the results file")
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="run this many busy processes (a Python loop each, as other work on a laptop or a shared runner) beside "
        "every measurement, Keras's and torchae's alike",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_MD,
        help="the results file (default: %(default)s; python tools/docs_tables.py copies its table into the README)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of torchae: time its loop and `torchae fit` against this one's, interleaved, and "
        "print the table of both (no Keras)",
    )
    args = parser.parse_args()
    if args.worker:  # one measurement (also benchmarks/article.py's Keras runs, at any number of epochs)
        print(json.dumps(WORKERS[args.worker](args.models[0], args.epochs, args.train_size, args.val_size)))
        return
    unknown = [name for name in args.models if name not in MNIST_EXPERIMENTS]
    if unknown:
        parser.error(f"{unknown[0]!r} is not timed here: choose from {', '.join(MNIST_EXPERIMENTS)}")
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is warm-up)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.baseline:
        compare_with_baseline(args.baseline.resolve(), args.models, args.epochs, args.repeats, args)
        return
    if args.busy < 0:
        parser.error("--busy must be 0 or more")
    with busy_processes(args.busy):
        measure(args)


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` processes that keep a core busy each (a Python loop) while the body runs."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield loops
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def measure(args: Any) -> None:
    """The rounds of every model, the table printed and (unless ``--no-write``) written."""
    backends = args.backends
    kinds = [f"keras-{backend}" for backend in backends] + ["torch", "cli", "floor"]
    rows = []
    header = (
        "| model | train / val images | batch | "
        + " | ".join(f"Keras on {backend} s/epoch" for backend in backends)
        + " | torchae loop s/epoch | `torchae fit` s/epoch | `torchae fit` / fastest Keras (target) "
        "| per round | loop / fastest Keras | floor s/epoch | `torchae fit` / floor (target) "
        f"| Keras peak MB ({backends[0]}) | torchae peak MB |"
    )
    print(header, flush=True)
    for name in args.models:
        train_size, val_size = CPU_SUBSET.get(name, (60_000, 10_000))
        train_size, val_size = args.train_size or train_size, args.val_size or val_size
        started = time.perf_counter()
        rounds = []  # each round runs every kind back to back, so the machine's load is alike for all of them
        for index in range(args.repeats):
            order = kinds if index % 2 == 0 else kinds[::-1]
            runs = {kind: run_worker(kind, name, args.epochs, train_size, val_size) for kind in order}
            rounds.append({kind: median_after_warmup(run["seconds"]) for kind, run in runs.items()} | {"runs": runs})
        seconds = {kind: statistics.median(r[kind] for r in rounds) for kind in kinds}
        fastest = [min(r[f"keras-{b}"] for b in backends) for r in rounds]
        fit_ratios = [r["cli"] / f for r, f in zip(rounds, fastest)]
        loop_ratios = [r["torch"] / f for r, f in zip(rounds, fastest)]
        ratio, target = statistics.median(fit_ratios), TARGETS.get(name, TARGET)
        verdict = f"met {target}" if ratio <= target else f"MISSED {target}"
        floor_ratio = statistics.median(r["cli"] / r["floor"] for r in rounds)
        floor_target = FLOOR_TARGETS.get(name)
        floor_verdict = "" if floor_target is None else f" ({'met' if floor_ratio <= floor_target else 'MISSED'} "
        floor_verdict += "" if floor_target is None else f"{floor_target})"
        keras_mb = statistics.median(r["runs"][kinds[0]]["peak_mb"] for r in rounds)
        torch_mb = statistics.median(r["runs"]["torch"]["peak_mb"] for r in rounds)
        row = (
            f"| {name} | {train_size:,} / {val_size:,} | {EXPERIMENTS[name].batch_size} | "
            + " | ".join(f"{seconds[f'keras-{b}']:.2f}" for b in backends)
            + f" | {seconds['torch']:.2f} | {seconds['cli']:.2f} | **{ratio:.2f}** ({verdict}) "
            f"| {', '.join(f'{r:.2f}' for r in fit_ratios)} | {statistics.median(loop_ratios):.2f} "
            f"| {seconds['floor']:.2f} | **{floor_ratio:.2f}**{floor_verdict} | {keras_mb:.0f} | {torch_mb:.0f} |"
        )
        rows.append(row)
        print(row, f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        if not args.no_write:  # after every model, so that a stopped run keeps the rows it measured
            write_results(header, rows, args, pending=args.models[len(rows) :])
    if not args.no_write:
        print(f"wrote {args.out}")


def write_results(header: str, rows: list[str], args: Any, pending: list[str]) -> None:
    """The results file (``args.out``): the table so far, with the command, machine and versions; ``pending`` names
    the models still to be measured (none once the run is complete)."""
    import pytorch_lightning
    import torch

    command = "python benchmarks/bench.py " + " ".join(sys.argv[1:])
    status = [f"Still running: {', '.join(pending)} to come.", ""] if pending else []
    table = "\n".join([header, "|" + "---|" * (header.count("|") - 1), *rows])
    text = "\n".join(
        [
            "# Benchmark: seconds per epoch, torchae vs Keras 3 on each backend",
            "",
            f"Command: `{command.strip()}`. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
            f"Versions: torch {torch.__version__}, pytorch-lightning {pytorch_lightning.__version__}, "
            f"{backend_versions()}.",
            "",
            *status,
            *(
                [f"Load: {args.busy} busy process(es) (a Python loop each) ran beside every measurement.", ""]
                if args.busy
                else []
            ),
            "An epoch is training plus validation. Each measurement runs in its own process and reports the median"
            " of its epochs after the first; a round runs Keras on each backend, torchae's loop and `torchae fit`"
            f" back to back (alternate rounds in reverse order), and there are {args.repeats} rounds per model."
            " The ratio is `torchae fit` over the fastest Keras backend of the same round (lower is faster); the"
            " bold figure is the median over rounds, followed by each round's. The floor is the time of an epoch's"
            " matrix products and convolutions alone, at their shapes, on the same threads (`benchmarks/floor.py`)."
            " `torchae fit` is the real user path"
            " (progress bar, CSV and TensorBoard loggers, checkpoints every epoch, the config's engine). Seconds are"
            " medians over rounds. Peak MB: peak resident memory above the process's baseline before training."
            " This machine is shared: a single round's figures move by up to ~30%.",
            "",
            table,
            "",
        ]
    )
    args.out.write_text(text)


if __name__ == "__main__":
    main()
