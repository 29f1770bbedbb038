"""``import jupyter_mltrack`` is cheap: no heavy dependency is imported until it is needed."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "pandas",
    "sqlalchemy",
    "matplotlib",
    "sklearn",
    "numpy",
    "alembic",
    "ipywidgets",
    "anywidget",
)
IMPORT_BUDGET_S = 0.15

PROBE = """
import json, sys, time
started = time.perf_counter()
import jupyter_mltrack
elapsed = time.perf_counter() - started
heavy = sorted(name for name in {heavy!r} if name in sys.modules)
print(json.dumps({{"elapsed": elapsed, "heavy": heavy}}))
"""


def _probe(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_pulls_in_no_heavy_dependency():
    result = _probe(PROBE.format(heavy=HEAVY))
    assert result["heavy"] == []


def test_import_is_fast():
    # best of three fresh interpreters: the budget is for the import, not for a busy machine
    times = [_probe(PROBE.format(heavy=HEAVY))["elapsed"] for _ in range(3)]
    assert min(times) < IMPORT_BUDGET_S, times


def test_public_names_resolve_lazily():
    code = """
import json, sys
import jupyter_mltrack as mlflow
names = ["start_run", "log_metric", "search_runs", "MlflowClient", "MlflowException"]
resolved = {n: callable(getattr(mlflow, n)) for n in names}
after_api = sorted(m for m in ("pandas", "matplotlib", "sklearn") if m in sys.modules)
print(json.dumps({"resolved": resolved, "after_api": after_api, "dir": dir(mlflow)}))
"""
    result = _probe(code)
    assert all(result["resolved"].values())
    # resolving the tracking API does not import pandas (only search_runs' DataFrame does)
    assert result["after_api"] == []
    for name in ("set_experiment", "log_params", "log_figure", "MlflowClient", "entities"):
        assert name in result["dir"]


def test_unknown_attribute_is_an_attribute_error():
    code = """
import jupyter_mltrack
try:
    jupyter_mltrack.no_such_function
except AttributeError as err:
    print(err)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "no_such_function" in done.stdout
