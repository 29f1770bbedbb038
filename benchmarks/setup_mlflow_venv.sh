#!/usr/bin/env bash
# Create benchmarks/.venv-mlflow with the pinned MLflow the benchmarks compare against.
# Cached: does nothing when the venv exists and already holds the pinned version and the
# PostgreSQL driver (psycopg2-binary: the driver of `postgresql://` URLs, one of the two in
# MLflow's own `db` extra) that the `server` benchmark's `mlflow server` needs.
set -euo pipefail

MLFLOW_VERSION="${MLFLOW_VERSION:-3.17.2}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-mlflow"
PYTHON="${PYTHON:-python3}"

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

if have_version; then
  install_driver
  echo "mlflow==$MLFLOW_VERSION (with psycopg2) already in $VENV"
  exit 0
fi

echo "creating $VENV with mlflow==$MLFLOW_VERSION (takes a few minutes)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "mlflow==$MLFLOW_VERSION"
have_version || { echo "mlflow==$MLFLOW_VERSION did not install in $VENV" >&2; exit 1; }
install_driver
echo "mlflow==$MLFLOW_VERSION installed in $VENV"
