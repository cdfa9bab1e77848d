#!/usr/bin/env bash
# README command (2): set up a fresh machine (scripts/setup.sh) and run the test suite: every test
# not marked slow (about 12 minutes on 2 cores).  Extra arguments go to pytest and come last, so a
# later -m wins: scripts/test.sh -m slow (the slow ones, ~25 minutes), scripts/test.sh -m "" (all).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PJRT_DEVICE=CPU TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -q --durations=15 -m "not slow" "$@"
