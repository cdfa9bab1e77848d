#!/usr/bin/env bash
# README command (2): set up a fresh machine (scripts/setup.sh) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" tests/foundation
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PJRT_DEVICE=CPU TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -q --durations=15 "$@"
