"""Command line of the parity suite."""

from __future__ import annotations

import argparse
import sys

from parity.keras_models import MODEL_NAMES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m parity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="structure, weight transfer, forward and one-step parity for all five")
    check.add_argument("models", nargs="*", metavar="MODEL", help=f"any of {', '.join(MODEL_NAMES)} (default: all)")
    check.add_argument("--images", type=int, default=10_000, help="test images for the forward check")
    args = parser.parse_args(argv)
    unknown = [m for m in getattr(args, "models", []) if m not in MODEL_NAMES]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}: choose from {', '.join(MODEL_NAMES)}")
    if args.command == "check":
        from parity.checks import main_check

        sys.exit(main_check(tuple(args.models) or MODEL_NAMES, args.images))


if __name__ == "__main__":
    main()
