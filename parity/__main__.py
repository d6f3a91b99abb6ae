"""``python -m parity check`` | ``python -m parity train NAME`` | ``python -m parity article``."""

from parity.cli import main

if __name__ == "__main__":
    main()
