#!/usr/bin/env bash
# The GPU check (about 5 minutes on one H100/H200): CUDA correctness, syncs per step, seconds per epoch for all
# five (bare loop and `torchae fit`), the projected time of the whole article, then the variants: whole-step CUDA
# graphs for all five (checked against eager training), and denoising's compiled whole steps (8 per call), plain and
# under inductor's CUDA graphs. Extra arguments go to benchmarks/gpu.py (e.g. --no-cli).
# Uses the project from this checkout (PYTHONPATH) when it is not installed, so it runs on a machine without network.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd / && python3 -c "import torchae" 2>/dev/null) || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export PYTHONUNBUFFERED=1
python3 benchmarks/gpu.py --epochs 3 "$@" --variants \
  dense:graphs deep:graphs conv:graphs denoising:graphs sparse:graphs \
  denoising:compiled-steps denoising:compiled-steps-graphs
