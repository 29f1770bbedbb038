#!/usr/bin/env bash
# Create benchmarks/.venv-mlflow with the pinned MLflow the benchmarks compare against.
# Cached: does nothing when the venv exists and already holds the pinned version and the
# PostgreSQL driver (psycopg2-binary: the driver of `postgresql://` URLs, one of the two in
# MLflow's own `db` extra) that the `server` benchmark's `mlflow server` needs.
#
# With `--torch` (or MLFLOW_VENV_TORCH=1) it also installs PyTorch and PyTorch Lightning, which
# only the `autolog` benchmark needs (mlflow.pytorch.autolog): torch==$TORCH_VERSION first (a
# bare `torch` requirement would pull a multi-GB CUDA build), then pytorch-lightning with torch
# held at that version. Without the option nothing about torch is checked or installed, so the
# test suite's call stays as fast as before.
set -euo pipefail

MLFLOW_VERSION="${MLFLOW_VERSION:-3.17.2}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-mlflow"
PYTHON="${PYTHON:-python3}"
WITH_TORCH="${MLFLOW_VENV_TORCH:-0}"

for arg in "$@"; do
  case "$arg" in
    --torch) WITH_TORCH=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (expected --torch)" >&2; exit 2 ;;
  esac
done

have_version() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mlflow') != '$MLFLOW_VERSION')" 2>/dev/null
}

have_driver() {
  "$VENV/bin/python" -c "import psycopg2" 2>/dev/null
}

install_driver() {
  have_driver || "$VENV/bin/python" -m pip install --quiet psycopg2-binary
  have_driver || { echo "psycopg2-binary did not install in $VENV" >&2; exit 1; }
}

have_torch() {
  "$VENV/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(m.version('torch').split('+')[0] != '$TORCH_VERSION' or not m.version('pytorch-lightning'))
" 2>/dev/null
}

install_torch() {
  [ "$WITH_TORCH" = 1 ] || return 0
  have_torch && return 0
  echo "installing torch==$TORCH_VERSION and pytorch-lightning into $VENV"
  "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
  "$VENV/bin/python" -m pip install --quiet pytorch-lightning "torch==$TORCH_VERSION"
  have_torch || { echo "torch==$TORCH_VERSION / pytorch-lightning did not install in $VENV" >&2; exit 1; }
}

if have_version; then
  install_driver
  install_torch
  echo "mlflow==$MLFLOW_VERSION (with psycopg2$([ "$WITH_TORCH" = 1 ] && echo ", torch, pytorch-lightning")) already in $VENV"
  exit 0
fi

echo "creating $VENV with mlflow==$MLFLOW_VERSION (takes a few minutes)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "mlflow==$MLFLOW_VERSION"
have_version || { echo "mlflow==$MLFLOW_VERSION did not install in $VENV" >&2; exit 1; }
install_driver
install_torch
echo "mlflow==$MLFLOW_VERSION installed in $VENV"
