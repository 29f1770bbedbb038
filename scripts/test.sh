#!/usr/bin/env bash
# Install what the tests need (system packages, the venv) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh
scripts/venv.sh dev
.venv/bin/ruff check .
(cd labextension && npm test --silent)  # the front end's unit tests (vitest)
.venv/bin/python -m pytest "$@"
