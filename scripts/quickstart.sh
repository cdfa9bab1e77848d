#!/usr/bin/env bash
# README command (1): set up a fresh machine and run the main job on embedded defaults:
# the scaled-down VATT of specs/quickstart.yaml pretrained on the demo data set (built into
# runs/demo-data on first use), CPU XLA, checkpoints and a local mlflow store under runs/quickstart/.
# Extra arguments go to `vattfw run`, e.g. scripts/quickstart.sh --set train.steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PJRT_DEVICE=CPU TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/vattfw run specs/quickstart.yaml "$@"
