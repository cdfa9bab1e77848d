#!/usr/bin/env bash
# README command (1): set up a fresh machine and run the main job on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PJRT_DEVICE=CPU TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/vattfw plugins
.venv/bin/vattfw validate specs/pretrain.yaml
