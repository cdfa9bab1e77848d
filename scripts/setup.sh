#!/usr/bin/env bash
# One-shot set-up of a fresh machine: Debian packages (when missing), the virtual
# environment at .venv/, and vattfw installed editable with its test and demo extras.
# Idempotent: a second run only checks.  Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg espeak-ng timidity freepats)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=.venv/.vattfw-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing vattfw and its pinned stack into .venv (a few minutes on a fresh machine)"
    .venv/bin/python -m pip install -q --upgrade "pip>=24" 
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[test,demo]"
    echo "$want" > "$stamp"
fi
.venv/bin/python -c "import torch, torch_xla, torchaudio, vattfw; print('setup: ok, torch', torch.__version__, 'torch_xla', torch_xla.__version__)"
