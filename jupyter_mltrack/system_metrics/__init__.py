"""System metrics (CPU, memory, disk, network, NVIDIA GPUs) logged while a run is active.

MLflow's API and names: ``start_run(log_system_metrics=True)`` for one run, or
``enable_system_metrics_logging()`` for every run (``%%track`` cells included); the metrics are
``system/cpu_utilization_percentage``, ``system/system_memory_usage_megabytes`` ... (with
``system/<node_id>/...`` when a node id is set), logged at steps 0, 1, 2 ...

Settings live in environment variables, as in MLflow, so processes started from this one
(``mltrack run``, a notebook project) inherit them: ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``,
``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` (seconds, default 10),
``MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING`` (default 1) and
``MLFLOW_SYSTEM_METRICS_NODE_ID``. Each also reads as ``MLTRACK_...`` (which wins over the
``MLFLOW_`` name); the functions below set the ``MLFLOW_`` name and clear the ``MLTRACK_`` one,
so the last explicit call always decides.

Importing this package is cheap: psutil and NVML are imported by the sampling thread.
"""

from __future__ import annotations

import numbers
import os
import warnings
from dataclasses import dataclass
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue

ENABLE_VAR = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"
INTERVAL_VAR = "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"
SAMPLES_VAR = "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING"
NODE_ID_VAR = "MLFLOW_SYSTEM_METRICS_NODE_ID"
DEFAULT_SAMPLING_INTERVAL = 10.0
DEFAULT_SAMPLES_BEFORE_LOGGING = 1
PREFIX = "system/"

__all__ = [
    "Settings",
    "disable_system_metrics_logging",
    "enable_system_metrics_logging",
    "set_system_metrics_node_id",
    "set_system_metrics_samples_before_logging",
    "set_system_metrics_sampling_interval",
    "settings",
]


def _ours(name: str) -> str:
    return "MLTRACK_" + name.removeprefix("MLFLOW_")


def _set(name: str, value: str | None) -> None:
    os.environ.pop(_ours(name), None)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def enable_system_metrics_logging() -> None:
    """Log system metrics for every run started from now on (``log_system_metrics=False`` in
    ``start_run`` still opts one run out)."""
    _set(ENABLE_VAR, "true")


def disable_system_metrics_logging() -> None:
    """Stop logging system metrics for new runs (``log_system_metrics=True`` still opts one in)."""
    _set(ENABLE_VAR, "false")


def set_system_metrics_sampling_interval(interval: float | None) -> None:
    """Sample every ``interval`` seconds (default 10); ``None`` restores the default.

    Parameters
    ----------
    interval : float or None
        Seconds between two samples, > 0.
    """
    _set(INTERVAL_VAR, None if interval is None else repr(check_interval(interval)))


def set_system_metrics_samples_before_logging(samples: int | None) -> None:
    """Log the average of every ``samples`` samples (default 1); ``None`` restores the default.

    Parameters
    ----------
    samples : int or None
        Samples averaged into one logged step, >= 1.
    """
    _set(SAMPLES_VAR, None if samples is None else str(check_samples(samples)))


def set_system_metrics_node_id(node_id: str | None) -> None:
    """Name this machine in the metric keys (``system/<node_id>/...``), for runs that gather
    metrics from several nodes; ``None`` removes it.

    Parameters
    ----------
    node_id : str or None
        A non-empty name that is valid inside a metric key (letters, digits, ``_-. /``).
    """
    _set(NODE_ID_VAR, None if node_id is None else check_node_id(node_id))


# -- checks -----------------------------------------------------------------------------------
def check_interval(interval: Any) -> float:
    """``interval`` as seconds, or a clear error."""
    if isinstance(interval, bool) or not isinstance(interval, numbers.Real):
        raise InvalidParameterValue(
            f"The system metrics sampling interval must be a number of seconds, got "
            f"{type(interval).__name__}: {interval!r} (e.g. set_system_metrics_sampling_interval(5))."
        )
    value = float(interval)
    if not value > 0 or value == float("inf"):
        raise InvalidParameterValue(
            f"The system metrics sampling interval must be > 0 seconds (and finite), got "
            f"{interval!r}."
        )
    return value


def check_samples(samples: Any) -> int:
    """``samples`` as a positive int, or a clear error."""
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral):
        raise InvalidParameterValue(
            f"samples_before_logging must be a whole number of samples, got "
            f"{type(samples).__name__}: {samples!r} (e.g. set_system_metrics_samples_before_logging(3))."
        )
    if samples < 1:
        raise InvalidParameterValue(f"samples_before_logging must be >= 1, got {samples}.")
    return int(samples)


def check_node_id(node_id: Any) -> str:
    """``node_id`` if it can sit inside a metric key, else a clear error."""
    from jupyter_mltrack import validation

    if not isinstance(node_id, str) or not node_id.strip():
        raise InvalidParameterValue(
            f"The system metrics node id must be a non-empty string, got {node_id!r}."
        )
    try:
        validation.validate_key(f"{PREFIX}{node_id}/cpu_utilization_percentage", "Metric")
    except InvalidParameterValue as err:
        raise InvalidParameterValue(
            f"The system metrics node id {node_id!r} cannot be part of a metric name: {err.message}"
        ) from None
    return node_id


# -- reading the settings -----------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """The system metrics settings in force (explicit calls and environment variables)."""

    enabled: bool = False
    sampling_interval: float = DEFAULT_SAMPLING_INTERVAL
    samples_before_logging: int = DEFAULT_SAMPLES_BEFORE_LOGGING
    node_id: str | None = None


_bad_values_seen: set[tuple[str, str]] = set()


def _env(name: str) -> tuple[str, str] | None:
    for var in (_ours(name), name):
        value = os.environ.get(var)
        if value is not None and value.strip():
            return var, value.strip()
    return None


def _warn_bad(var: str, value: str, expected: str, default: Any) -> None:
    if (var, value) not in _bad_values_seen:
        _bad_values_seen.add((var, value))
        warnings.warn(
            f"{var}={value!r} is not {expected}; using {default!r}. Fix or unset the variable.",
            UserWarning,
            stacklevel=4,
        )


def enabled() -> bool:
    """True when system metrics logging is enabled globally (``enable_...`` or the env var)."""
    found = _env(ENABLE_VAR)
    if found is None:
        return False
    var, value = found
    if value.lower() in ("true", "1"):
        return True
    if value.lower() not in ("false", "0"):
        _warn_bad(var, value, "one of true, false, 1, 0", False)
    return False


def settings() -> Settings:
    """The settings a run starting now would use; a bad environment value is a warning (once)
    and its default, never a failed run."""
    interval, samples, node_id = DEFAULT_SAMPLING_INTERVAL, DEFAULT_SAMPLES_BEFORE_LOGGING, None
    found = _env(INTERVAL_VAR)
    if found:
        try:
            interval = check_interval(float(found[1]))
        except (ValueError, InvalidParameterValue):
            _warn_bad(*found, "a number of seconds > 0", interval)
    found = _env(SAMPLES_VAR)
    if found:
        try:
            samples = check_samples(int(found[1]))
        except (ValueError, InvalidParameterValue):
            _warn_bad(*found, "a whole number >= 1", samples)
    found = _env(NODE_ID_VAR)
    if found:
        try:
            node_id = check_node_id(found[1])
        except InvalidParameterValue:
            _warn_bad(*found, "a name allowed in metric keys", None)
    return Settings(enabled(), interval, samples, node_id)


# -- the hooks of start_run / end_run -----------------------------------------------------------
def run_started(run_id: str, client: Any, wanted: bool | None, resumed: bool) -> None:
    """``start_run``'s ``log_system_metrics`` (None: the global setting) starts the run's
    sampling thread; a thread that cannot start is a warning, never a failed ``start_run``."""
    if wanted is False or not (wanted or enabled()):
        return
    from jupyter_mltrack.system_metrics.monitor import start_for_run

    try:
        start_for_run(run_id, client, resumed)
    except Exception as err:
        warnings.warn(f"System metrics are not logged: {err}", UserWarning, stacklevel=3)


def run_ending(run_id: str | None) -> None:
    """Stop the sampling thread of ``run_id`` (of every run when None) after its last write."""
    import sys

    monitor = sys.modules.get("jupyter_mltrack.system_metrics.monitor")
    if monitor is None:
        return
    if run_id is None:
        monitor.stop_all()
    else:
        monitor.stop_for_run(run_id)
