"""Regenerate the documentation's tables from the results they summarise, in one command:

    python tools/docs_tables.py           # rewrite the tables in README.md (and say which changed)
    python tools/docs_tables.py --check   # exit 1 if any table is out of date (nothing written)

Each table sits between two HTML comments in the README (``<!-- NAME-table ... -->`` and
``<!-- end NAME-table -->``) and is made from:

- ``pretrained``: ``torchae/weights/weights.json`` (the shipped models, written by ``tools/build_weights.py``);
- ``parity``: ``parity/results/`` (the article runs against Keras 3, as ``parity/RESULTS.md`` shows them);
- ``bench``: ``benchmarks/RESULTS.md`` (written by ``benchmarks/bench.py``).

Re-running a benchmark or a parity run writes its own results file; the README follows when this runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
WEIGHTS_JSON = REPO / "torchae" / "weights" / "weights.json"
BENCH_RESULTS = REPO / "benchmarks" / "RESULTS.md"


def has_keras_reference(name: str) -> bool:
    """Whether experiment ``name`` has a Keras reference (the judge of digits, a tool of the project, has none)."""
    sys.path.insert(0, str(REPO))
    from torchae.registry import EXPERIMENTS

    return EXPERIMENTS[name].keras if name in EXPERIMENTS else True


def markers(name: str) -> tuple[str, str]:
    """The README comments around table ``name``: the line starting with the first, and the second."""
    return f"<!-- {name}-table", f"<!-- end {name}-table -->"


def block_span(text: str, name: str) -> tuple[int, int]:
    """Where table ``name``'s text lies in ``text``: after the line of its start marker, up to its end marker.

    Raises:
        ValueError: ``text`` lacks a marker.
    """
    start, end = markers(name)
    if start not in text or end not in text:
        raise ValueError(f"the README has no {start} ... {end} block")
    return text.index("\n", text.index(start)) + 1, text.index(end)


def read_block(text: str, name: str) -> str:
    """The table ``name`` as it stands in ``text`` (without the trailing newline)."""
    first, last = block_span(text, name)
    return text[first:last].rstrip("\n")


def replace_block(text: str, name: str, table: str) -> str:
    """``text`` with table ``name`` replaced by ``table``."""
    first, last = block_span(text, name)
    return text[:first] + table.rstrip("\n") + "\n" + text[last:]


def pretrained_table(metadata: dict[str, Any]) -> str:
    """The shipped models: parameters, recipe, the article's, Keras 3's and torchae's val_loss, the file."""
    lines = [
        "| model | parameters | epochs | batch | val_loss: article | Keras 3 (parity row) | torchae, shipped | file |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in metadata.items():
        article = f"{entry['article']['val_loss']:.4f}" if entry.get("article") else "—"
        keras = entry.get("keras")
        keras = f"{keras['val_loss']:.4f} ({keras.get('backend', 'tensorflow')})" if keras else "not yet at full length"
        keras = keras if has_keras_reference(name) else "— (no Keras model)"
        lines.append(
            f"| {name} | {entry['num_params']:,} | {entry['epochs']} | {entry['batch_size']} | {article} | {keras} "
            f"| {entry['val_loss']:.4f} | `{entry['file']}` |"
        )
    return "\n".join(lines)


def results_table(text: str) -> str:
    """The first table of a results file's ``text`` (its header, rule and rows)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def _parity_table() -> str:
    sys.path.insert(0, str(REPO))
    from parity.report import article_table  # imports torch and the parity records only, not Keras

    return article_table()


TABLES: dict[str, Callable[[], str]] = {
    "pretrained": lambda: pretrained_table(json.loads(WEIGHTS_JSON.read_text())),
    "parity": _parity_table,
    "bench": lambda: results_table(BENCH_RESULTS.read_text()),
}


def regenerate(readme: Path = README, names: list[str] | None = None, check: bool = False) -> list[str]:
    """Put the current tables into ``readme`` (unless ``check``); returns the names of those that differed."""
    text = original = readme.read_text()
    stale = []
    for name in names or list(TABLES):
        table = TABLES[name]()
        if read_block(text, name) != table.rstrip("\n"):
            stale.append(name)
            text = replace_block(text, name, table)
    if not check and text != original:
        readme.write_text(text)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/docs_tables.py", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(TABLES)} (default: all)")
    parser.add_argument("--check", action="store_true", help="only say which tables are out of date (exit 1 if any)")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in TABLES]
    if unknown:
        parser.error(f"no table {unknown[0]!r}: choose from {', '.join(TABLES)}")
    stale = regenerate(args.readme, args.names or None, args.check)
    verb = "out of date" if args.check else "updated"
    print(f"{verb}: {', '.join(stale)}" if stale else "every table is up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
