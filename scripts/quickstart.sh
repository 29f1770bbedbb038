#!/usr/bin/env bash
# Install everything and run the main job: the quickstart against the embedded store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh dev
.venv/bin/python scripts/run_notebook.py notebooks/quickstart.ipynb
