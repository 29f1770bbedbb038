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

# The JupyterLab extension (labextension/, TypeScript) is built before the install, so the
# package's build hook finds it built and does not build it again in an isolated environment.
# node_modules is kept between runs and reinstalled only when package-lock.json changed; the
# bundle is rebuilt only when the extension's sources changed (hashes kept beside each).
ext=labextension
built=jupyter_mltrack/labextension
lock_hash="$(sha256sum "$ext/package-lock.json" | cut -d' ' -f1)"
src_hash="$(cat "$ext/package.json" "$ext/package-lock.json" "$ext/tsconfig.json" "$ext"/src/*.ts "$ext"/style/* | sha256sum | cut -d' ' -f1)"
if command -v npm >/dev/null 2>&1 &&
  [ "$(cat "$ext/node_modules/.mltrack-lock" 2>/dev/null)" != "$lock_hash" ]; then
  (cd "$ext" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$ext/node_modules/.mltrack-lock"
fi
if [ ! -f "$built/package.json" ] || [ "$(cat "$ext/lib/.mltrack-src" 2>/dev/null)" != "$src_hash" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is missing: run scripts/install-system-deps.sh to build $ext/" >&2
    exit 1
  fi
  # jupyter-builder (Python, light) drives the bundler; JupyterLab depends on it anyway
  [ -x .venv/bin/jupyter-builder ] || .venv/bin/python -m pip install -q "jupyter-builder>=1.2"
  (cd "$ext" && PATH="$PWD/../.venv/bin:$PATH" npm run --silent build:prod >/dev/null)
  echo "$src_hash" > "$ext/lib/.mltrack-src"
fi

want="$(sha256sum pyproject.toml | cut -d' ' -f1)-$extras"
if [ "$(cat .venv/.mltrack-installed 2>/dev/null)" != "$want" ]; then
  if [ "$extras" = dev ]; then
    # an exact torch release first: that one resolves to a CPU build of ~900 MB; a bare range
    # would pull a CUDA build of several GB (pyproject's torch>=2.1 keeps this one)
    .venv/bin/python -m pip install -q "torch==${MLTRACK_TORCH_VERSION:-2.13.0}"
  fi
  .venv/bin/python -m pip install -q -e ".[$extras]"
  .venv/bin/python -c "import jupyter_mltrack" # fail loudly if the install did not work
  echo "$want" > .venv/.mltrack-installed
fi
# an editable install copies the extension into the venv once; a link keeps rebuilds live
labext=.venv/share/jupyter/labextensions/jupyter-mltrack
if [ ! -L "$labext" ]; then
  mkdir -p "$(dirname "$labext")"
  rm -rf "$labext"
  ln -s "$PWD/$built" "$labext"
fi
