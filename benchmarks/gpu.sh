#!/usr/bin/env bash
# The GPU check (under 8 minutes on one H100): CUDA correctness, syncs per step, seconds per epoch for all five,
# and the projected time of the whole article. Installs the project if it is not installed yet.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import torchae" 2>/dev/null || python3 -m pip install -q -e .
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
export PYTHONUNBUFFERED=1
python3 benchmarks/gpu.py --epochs 3 "$@"
