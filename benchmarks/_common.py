"""Shared helpers for the benchmark workloads.

Every workload runs the same code on both libraries: ``--lib mltrack`` imports
``jupyter_mltrack`` and ``--lib mlflow`` imports ``mlflow``, each under its own interpreter
(``run_all.py`` picks the venv). The only library-specific parts live here: how a store is
named (a folder for ours, ``sqlite:///.../mlflow.db`` for MLflow) and where it is on disk.

A workload prints one line ``BENCH_RESULT {json}`` on stdout; everything else it or the library
prints is ignored by ``run_all.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
WORK_ROOT = BENCH_DIR / ".work"
RESULT_PREFIX = "BENCH_RESULT "
LIBS = ("mltrack", "mlflow")
SEED = 20240611

# Quiet, deterministic MLflow: no telemetry, no async logging unless asked per call.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "PYTHONWARNINGS": "ignore",
}
# Variables that would point either library somewhere else than the store we give it.
CLEARED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLTRACK_TRACKING_URI")


def quiet_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Return an environment for a workload process (``base`` defaults to ``os.environ``)."""
    env = dict(os.environ if base is None else base)
    for key in CLEARED_ENV:
        env.pop(key, None)
    env.update(QUIET_ENV)
    return env


def load(lib: str) -> ModuleType:
    """Import the library under test as the ``mlflow`` name the workloads use."""
    if lib == "mltrack":
        import jupyter_mltrack as mlflow
    elif lib == "mlflow":
        import mlflow
    else:
        raise SystemExit(f"unknown --lib {lib!r}; expected one of {', '.join(LIBS)}")
    return mlflow


def client_class(mlflow: ModuleType) -> Any:
    """``MlflowClient`` of the loaded library (same import path on both)."""
    from importlib import import_module

    return import_module(f"{mlflow.__name__}.tracking").MlflowClient


def entity_classes(mlflow: ModuleType) -> tuple[Any, Any, Any]:
    """``(Metric, Param, RunTag)`` of the loaded library (same import path on both)."""
    from importlib import import_module

    entities = import_module(f"{mlflow.__name__}.entities")
    return entities.Metric, entities.Param, entities.RunTag


def store_uri(lib: str, workdir: Path) -> str:
    """Tracking URI of a fresh store inside ``workdir``."""
    if lib == "mltrack":
        return str(workdir / "mltrack")
    return f"sqlite:///{workdir / 'mlflow.db'}"


def sklearn_log_kwargs(lib: str) -> dict[str, Any]:
    """Extra ``sklearn.log_model`` arguments each library needs to log a RandomForest.

    Ours logs it with its default format (cloudpickle). MLflow 3.17 defaults to skops and then
    refuses a plain RandomForest unless every type is listed in ``skops_trusted_types``; the
    same cloudpickle format as ours is asked for explicitly.
    """
    return {} if lib == "mltrack" else {"serialization_format": "cloudpickle"}


def serve_command(lib: str, bin_dir: Path, model_uri: str, port: int) -> list[str]:
    """The library's ``models serve`` command line (its CLI from the venv's ``bin_dir``).

    MLflow is asked for ``--env-manager local`` (serve from this environment, as ours does by
    default) instead of building a virtualenv from the model's requirements.
    """
    if lib == "mltrack":
        return [str(bin_dir / "mltrack"), "models", "serve", "-m", model_uri, "-p", str(port)]
    return [
        str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "-p", str(port),
        "--env-manager", "local",
    ]  # fmt: skip


def tracking_env(lib: str) -> str:
    """Environment variable that points the library's processes (a server) at a store."""
    return "MLTRACK_TRACKING_URI" if lib == "mltrack" else "MLFLOW_TRACKING_URI"


def store_bytes(lib: str, workdir: Path) -> int:
    """Bytes on disk of the store: our whole folder, or MLflow's db file with its journals."""
    if lib == "mltrack":
        root = workdir / "mltrack"
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return sum(
        p.stat().st_size for p in workdir.glob("mlflow.db*") if p.is_file()
    )  # mlflow.db, -wal, -shm, -journal


@contextlib.contextmanager
def workdir(name: str, lib: str, keep: bool = False) -> Iterator[Path]:
    """A fresh work directory under ``benchmarks/.work``; the process runs inside it.

    MLflow puts ``mlruns/`` (artifact roots) under the working directory, so both libraries
    run with the work directory as cwd and everything they write is removed afterwards.
    """
    path = WORK_ROOT / f"{name}-{lib}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    old = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(old)
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every workload takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lib", choices=LIBS, required=True, help="library under test")
    parser.add_argument("--quick", action="store_true", help="scaled-down smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser


def run_inputs(rng: random.Random) -> tuple[dict[str, int], dict[str, float]]:
    """Params and metrics of one run: n_estimators 10..500, max_depth 1..20, f1/accuracy 0..1."""
    params = {"n_estimators": rng.randint(10, 500), "max_depth": rng.randint(1, 20)}
    metrics = {"f1": rng.random(), "accuracy": rng.random()}
    return params, metrics


def summary(samples: list[float]) -> dict[str, float]:
    """Mean, median, min, max and count of timing samples (seconds)."""
    return {
        "mean": statistics.fmean(samples),
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
    }


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Call ``fn`` once; return (seconds, result)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def interleaved(
    variants: dict[str, Callable[[], float]], n: int, warmup: int = 0
) -> dict[str, list[float]]:
    """Run each variant (a callable returning its own timed seconds) ``n`` times, interleaved.

    Variants alternate within every round, in reverse order every other round, so drift on a
    shared machine spreads over all of them. The ``warmup`` rounds first are not kept.
    """
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + n):
        for name in names if i % 2 == 0 else reversed(names):
            seconds = variants[name]()
            if i >= warmup:
                samples[name].append(seconds)
    return samples


def emit(result: dict[str, Any]) -> None:
    """Print the workload's result line (the only stdout line ``run_all.py`` reads)."""
    import platform

    result.setdefault("python", platform.python_version())
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The last ``BENCH_RESULT`` line of a workload's stdout, decoded, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None


def lib_version(lib: str) -> str:
    """Installed version of the library's distribution (read without importing it)."""
    from importlib import metadata

    try:
        return metadata.version("jupyter-mltrack" if lib == "mltrack" else "mlflow")
    except metadata.PackageNotFoundError:
        return "unknown"
