"""Command line of the parity suite.

python -m parity check [MODEL ...]       structure, weight transfer, forward and one-step parity (exit 1 on a mismatch)
python -m parity train NAME [--epochs E] [--train-size K] [--val-size V] [--seed S] [--out FILE]
python -m parity article [MODEL ...]     the article's budgets, recorded in parity/results/ and parity/RESULTS.md
python -m parity against NAME RUN_DIR    Keras from the weights a torchae fit run started from, against that run
                                         (resumable; on the backend KERAS_BACKEND names, TensorFlow when unset)
python -m parity spread NAME --seeds S ...  several seeds in each framework, each from its own initialisation
python -m parity spread-merge RECORD ... add the seeds other processes trained to this checkout's spread record
python -m parity report                  re-render parity/RESULTS.md from parity/results/
python -m parity gan-run NAME            a GAN's Keras reference at the article's length, resumable, then judged
python -m parity gan-record NAME         a torchae GAN run's verdict from its checkpoint, into parity/results/gans/
python -m parity judge [MODEL ...]       the judge's verdict on each generative model's digits (GENERATIVE's)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from parity.judging import GENERATIVE
from torchae.data import MNISTDataModule
from torchae.registry import EXPERIMENTS

MODEL_NAMES = tuple(EXPERIMENTS)
# The article's budget on this 2-core CPU: conv (hours) and denoising (over half an hour for Keras alone) run
# shorter here unless --full, stated as such in RESULTS.md (a GPU or a long background run does them in full).
SHORT_CPU_EPOCHS = {"conv": 3, "denoising": 10}


def _models(parser: argparse.ArgumentParser, names: list[str]) -> tuple[str, ...]:
    unknown = [m for m in names if m not in MODEL_NAMES]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}: choose from {', '.join(MODEL_NAMES)}")
    return tuple(names) or MODEL_NAMES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m parity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="structure, weight transfer, forward and one-step parity")
    check.add_argument("models", nargs="*", metavar="MODEL", help=f"any of {', '.join(MODEL_NAMES)} (default: all)")
    check.add_argument("--images", type=int, default=10_000, help="test images for the forward check")
    train = sub.add_parser("train", help="train Keras and torchae side by side and compare the curves")
    train.add_argument("name", metavar="NAME", help=", ".join(MODEL_NAMES))
    train.add_argument("--epochs", type=int, default=None, help="default: the article's")
    train.add_argument("--train-size", type=int, default=60_000)
    train.add_argument("--val-size", type=int, default=10_000)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, default=None, help="JSON record (default: parity/results/runs/...)")
    article = sub.add_parser("article", help="the article's runs, recorded in parity/RESULTS.md")
    article.add_argument("models", nargs="*", metavar="MODEL")
    article.add_argument("--full", action="store_true", help="conv and denoising at full length too")
    against = sub.add_parser(
        "against",
        help="train Keras (on the backend KERAS_BACKEND names) from a torchae run's starting weights; pair the curves",
    )
    against.add_argument("name", metavar="NAME", help=", ".join(MODEL_NAMES))
    against.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="default_root_dir of the torchae fit run")
    against.add_argument(
        "--initial",
        type=Path,
        default=None,
        help="the run's starting network: a state dict or a checkpoint (default: RUN_DIR/initial_weights.pt)",
    )
    against.add_argument("--state", type=Path, default=None, help="Keras's resumable state (default: RUN_DIR/keras)")
    against.add_argument("--epochs", type=int, default=None, help="default: the article's")
    against.add_argument("--seed", type=int, default=0, help="Keras's seed (shuffling, noise)")
    against.add_argument("--out", type=Path, default=None, help="JSON record (default: parity/results/...)")
    spread = sub.add_parser("spread", help="several seeds per framework: the spread a difference is measured against")
    spread.add_argument("name", metavar="NAME", help=", ".join(MODEL_NAMES))
    spread.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    spread.add_argument("--epochs", type=int, default=None, help="default: the article's")
    spread.add_argument("--train-size", type=int, default=60_000)
    spread.add_argument("--val-size", type=int, default=10_000)
    merge = sub.add_parser("spread-merge", help="add the seeds of spread records from other processes to this one's")
    merge.add_argument("records", metavar="RECORD", type=Path, nargs="+", help="spread records (JSON) of the same run")
    sub.add_parser("report", help="re-render parity/RESULTS.md")
    gan_run = sub.add_parser("gan-run", help="a GAN's Keras reference at the article's length, resumable, judged")
    gan_run.add_argument("name", metavar="NAME", choices=("gan", "cgan", "cvae_gan"), help="gan, cgan or cvae_gan")
    gan_run.add_argument("--seed", type=int, default=0, help="Keras's seed, the batches' and the codes'")
    gan_run.add_argument("--state", type=Path, default=None, help="its state folder (default: runs/keras/NAME-seedS)")
    gan_run.add_argument("--iterations", type=int, default=None, help="outer iterations (default: the article's)")
    gan_run.add_argument("--save-every", type=int, default=100, help="outer iterations between saves")
    gan_run.add_argument("--samples", type=int, default=10_000, help="digits the judge reads at the end")
    gan_record = sub.add_parser("gan-record", help="a torchae GAN run's verdict, into parity/results/gans/")
    gan_record.add_argument("name", metavar="NAME", choices=("gan", "cgan", "cvae_gan"), help="gan, cgan or cvae_gan")
    gan_record.add_argument("--checkpoint", type=Path, required=True, help="the run's checkpoint (its last.ckpt)")
    gan_record.add_argument("--seed", type=int, required=True, help="the run's seed (seed_everything)")
    gan_record.add_argument("--samples", type=int, default=10_000, help="digits the judge reads")
    gan_record.add_argument("--results", type=Path, default=None, help="records folder (default: parity/results/gans)")
    judge = sub.add_parser("judge", help="the judge's verdict on each generative model's digits")
    judge.add_argument("models", nargs="*", metavar="MODEL", help=f"any of {', '.join(GENERATIVE)} (default: all)")
    judge.add_argument("--samples", type=int, default=10_000, help="digits generated per model")
    judge.add_argument("--seed", type=int, default=0, help="seed of the codes the models generate from")
    judge.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="judge this checkpoint as NAME (judge=PATH: another judge) instead of the shipped weights",
    )
    judge.add_argument("--out", type=Path, default=None, help="also write the verdicts as JSON here")
    args = parser.parse_args(argv)

    if args.command == "gan-run":
        from parity.gan_runs import run_keras_gan

        for option in ("iterations", "save_every", "samples"):
            value = getattr(args, option)
            if value is not None and value <= 0:
                parser.error(f"--{option.replace('_', '-')} must be a positive integer, got {value}")
        state = args.state or Path("runs") / "keras" / f"{args.name}-seed{args.seed}"
        record = run_keras_gan(args.name, state, args.seed, args.iterations, args.save_every, args.samples)
        verdict = record["verdict"]
        print(f"{args.name} (Keras, seed {args.seed}, {record['iterations']} outer iterations): {json.dumps(verdict)}")
        print(f"wrote {state / 'record.json'}")
        if record["iterations"] >= EXPERIMENTS[args.name].iterations:  # the article's length: a row of the report
            from parity.gan_records import write_gan_record
            from parity.report import write_results

            print(f"wrote {write_gan_record(record)} and {write_results()}")
        return

    if args.command == "gan-record":
        from parity.gan_records import GAN_RESULTS, torchae_gan_record, write_gan_record
        from parity.report import write_results

        if not args.checkpoint.is_file():
            parser.error(f"--checkpoint {str(args.checkpoint)!r} is not a file: give a run's last.ckpt")
        try:
            record = torchae_gan_record(args.name, args.checkpoint, args.seed, args.samples)
        except ValueError as error:
            parser.error(str(error))
        print(
            f"{args.name} (torchae, seed {args.seed}, {record['iterations']} outer iterations): "
            f"{json.dumps(record['verdict'])}"
        )
        written = write_gan_record(record, args.results or GAN_RESULTS)
        print(f"wrote {written}" + ("" if args.results else f" and {write_results()}"))
        return

    if args.command == "judge":
        from parity.judging import format_judged, judge_all, write_judged

        unknown = [name for name in args.models if name not in GENERATIVE]
        if unknown:
            parser.error(f"{unknown[0]!r} generates no digits from a prior: choose from {', '.join(GENERATIVE)}")
        pairs = [item.partition("=") for item in args.checkpoint]
        if any(not name or not path for name, _, path in pairs):
            parser.error("--checkpoint takes NAME=PATH, e.g. --checkpoint gan=runs/gan/version_0/checkpoints/last.ckpt")
        checkpoints = {name: Path(path) for name, _, path in pairs}
        judged = judge_all(tuple(args.models) or GENERATIVE, args.samples, args.seed, checkpoints)
        print(format_judged(judged))
        if args.out is not None:
            print(f"wrote {write_judged(judged, args.out)}")
        return

    if args.command == "check":
        from parity.checks import main_check

        sys.exit(main_check(_models(parser, args.models), args.images))
    if args.command == "train":
        from parity.train import format_curves, save_record, train_both

        (name,) = _models(parser, [args.name])
        for key in ("epochs", "train_size", "val_size"):
            value = getattr(args, key)
            if value is not None and value <= 0:
                parser.error(f"--{key.replace('_', '-')} must be positive, got {value}")
        epochs = args.epochs or EXPERIMENTS[name].epochs
        record = train_both(name, epochs, args.train_size, args.val_size, args.seed)
        print(format_curves(record))
        out = args.out or Path(__file__).resolve().parent / "results" / "runs" / (
            f"{name}-e{epochs}-n{record.train_size}-v{record.val_size}-s{args.seed}.json"
        )
        print(
            f"final relative difference: loss {record.final_rel_diff('loss'):.2%}, "
            f"val_loss {record.final_rel_diff('val_loss'):.2%}; record: {save_record(record, out)}"
        )
        return
    if args.command == "article":
        from parity.report import RESULTS_DIR, write_results
        from parity.train import format_curves, save_record, train_both

        for name in _models(parser, args.models):
            full = EXPERIMENTS[name].epochs
            epochs = full if args.full else SHORT_CPU_EPOCHS.get(name, full)
            record = train_both(name, epochs)
            print(format_curves(record), flush=True)
            save_record(record, RESULTS_DIR / f"{name}.json")
            print(f"wrote {write_results()}", flush=True)
        return
    if args.command == "against":
        from parity.report import RESULTS_DIR, write_results
        from parity.train import RunStateError, format_curves, keras_against_run, save_record

        (name,) = _models(parser, [args.name])
        initial = args.initial or args.run_dir / "initial_weights.pt"
        if not initial.is_file():
            parser.error(f"{initial} does not exist: give the run's starting weights with --initial")
        try:
            record = keras_against_run(
                name, args.run_dir, initial, args.state or args.run_dir / "keras", args.seed, args.epochs
            )
        except (RunStateError, FileNotFoundError) as error:
            parser.error(str(error))
        print(format_curves(record), flush=True)
        full = args.out is None and record.epochs == EXPERIMENTS[name].epochs  # a full-length row of the report
        out = args.out or (
            RESULTS_DIR / f"{name}.json" if full else RESULTS_DIR / "runs" / f"{name}-against-e{record.epochs}.json"
        )
        save_record(record, out)
        print(f"wrote {out}" + (f" and {write_results()}" if full else ""), flush=True)
        return
    if args.command == "spread":
        from parity.report import RESULTS_DIR, write_results
        from parity.spread import record_name, seed_spread, seeds_done, summarise
        from torchae.safety import write_text_atomically

        (name,) = _models(parser, [args.name])
        epochs = args.epochs or EXPERIMENTS[name].epochs
        # The sizes are the config's where its data is not MNIST (part 2's points).
        if not issubclass(EXPERIMENTS[name].model.datamodule, MNISTDataModule):
            from parity.train import parity_inputs

            args.train_size, args.val_size = (len(inputs) for inputs in parity_inputs(name))
        out = RESULTS_DIR / "spread" / record_name(name, epochs, args.train_size, args.val_size)
        resume = json.loads(out.read_text()) if out.is_file() else None
        if resume is not None:
            print(f"resuming {out}: seeds done {seeds_done(resume)}", flush=True)

        def save(record: dict) -> None:  # after every seed: a stopped run keeps what it finished
            write_text_atomically(out, json.dumps(record, indent=1))
            write_results()

        record = seed_spread(name, args.seeds, epochs, args.train_size, args.val_size, resume=resume, save=save)
        print(summarise(record), f"wrote {out} and {write_results()}", sep="\n", flush=True)
        return
    if args.command == "spread-merge":
        from parity.report import RESULTS_DIR, write_results
        from parity.spread import merge_records, record_name, summarise
        from torchae.safety import write_text_atomically

        for path in args.records:
            try:
                other = json.loads(path.read_text())
                name = record_name(other["model"], other["epochs"], other["train_size"], other["val_size"])
            except (OSError, ValueError, KeyError, TypeError) as error:
                parser.error(f"{path} is not a spread record ({error!r}): give a parity/results/spread/*.json file")
            out = RESULTS_DIR / "spread" / name
            try:
                record = merge_records(json.loads(out.read_text()), other) if out.is_file() else other
            except ValueError as error:
                parser.error(str(error))
            write_text_atomically(out, json.dumps(record, indent=1))
            print(summarise(record), f"wrote {out}", sep="\n", flush=True)
        print(f"wrote {write_results()}")
        return
    from parity.report import write_results

    print(f"wrote {write_results()}")


if __name__ == "__main__":
    main()
