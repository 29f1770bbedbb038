#!/usr/bin/env bash
# Create (or reuse) .venv with the project installed with the given extras.
# Reinstalls only when pyproject.toml changed since the last install (hash kept in the venv).
# Usage: scripts/venv.sh EXTRAS    e.g. scripts/venv.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-dev}
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -c "import ensurepip, venv" 2>/dev/null; then
    # Debian's python3 ships venv separately
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  "$PY" -m venv .venv
fi
want="$(sha256sum pyproject.toml | cut -d' ' -f1)-$extras"
if [ "$(cat .venv/.mltrack-installed 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q -e ".[$extras]"
  .venv/bin/python -c "import jupyter_mltrack" # fail loudly if the install did not work
  echo "$want" > .venv/.mltrack-installed
fi
