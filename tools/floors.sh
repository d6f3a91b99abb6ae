#!/usr/bin/env bash
# The suite (without Keras: the parity tests skip) on the oldest versions pyproject.toml allows, in a fresh virtual
# environment: torch 2.6 with Lightning 2.4 and numpy 1.26. Usage: bash tools/floors.sh [VENV_DIR] [pytest args]
# The pyproject floors are the versions this run passed on (docs/versions.md records the run).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/torchae-floors}"
shift || true
python3 -m venv "$venv"
"$venv/bin/pip" install -q "torch==2.6.0" "torchvision==0.21.0" "pytorch-lightning==2.4.0" "numpy==1.26.4" \
  "matplotlib==3.8.4" "jsonargparse[signatures]==4.32.0" "pyyaml==6.0.1" \
  pytest pytest-xdist tensorboard onnx onnxruntime onnxscript
"$venv/bin/pip" install -q --no-deps -e .
"$venv/bin/pip" list 2>/dev/null | grep -iE "^(torch|torchvision|pytorch-lightning|numpy|matplotlib|jsonargparse|pyyaml|onnx|onnxruntime) "
"$venv/bin/python" -m pytest -q -n 2 -p no:cacheprovider "$@"
