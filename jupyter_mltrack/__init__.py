"""jupyter_mltrack: MLflow's tracking API on a fast embedded store, native to Jupyter.

``import jupyter_mltrack as mlflow`` runs ordinary MLflow tracking code. Everything is imported
lazily: importing the package costs milliseconds, not SQLAlchemy or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_FLUENT = [
    "set_tracking_uri",
    "get_tracking_uri",
    "set_registry_uri",
    "get_registry_uri",
    "set_experiment",
    "create_experiment",
    "get_experiment",
    "get_experiment_by_name",
    "search_experiments",
    "delete_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "start_run",
    "end_run",
    "active_run",
    "last_active_run",
    "get_run",
    "delete_run",
    "get_parent_run",
    "log_param",
    "log_params",
    "log_metric",
    "log_metrics",
    "set_tag",
    "set_tags",
    "delete_tag",
    "log_batch",
    "log_input",
    "log_artifact",
    "log_artifacts",
    "log_text",
    "log_dict",
    "log_figure",
    "log_image",
    "get_artifact_uri",
    "search_runs",
    "flush",
    "flush_async_logging",
    "ActiveRun",
    "register_model",
]
_ELSEWHERE = {
    "Client": "jupyter_mltrack.tracking.client",
    "MlflowClient": "jupyter_mltrack.tracking.client",
    "MlflowException": "jupyter_mltrack.exceptions",
    "MLTrackError": "jupyter_mltrack.exceptions",
    "autolog": "jupyter_mltrack.autolog",
    "serve": "jupyter_mltrack.serving",
    "run": "jupyter_mltrack.projects",
    "enable_system_metrics_logging": "jupyter_mltrack.system_metrics",
    "disable_system_metrics_logging": "jupyter_mltrack.system_metrics",
    "set_system_metrics_sampling_interval": "jupyter_mltrack.system_metrics",
    "set_system_metrics_samples_before_logging": "jupyter_mltrack.system_metrics",
    "set_system_metrics_node_id": "jupyter_mltrack.system_metrics",
}
_SUBMODULES = {
    "data",
    "entities",
    "exceptions",
    "tracking",
    "store",
    "search",
    "validation",
    "registry",
    "models",
    "sklearn",
    "pytorch",
    "xgboost",
    "lightgbm",
    "keras",
    "system_metrics",
    "pyfunc",
    "widgets",
    "projects",
}

__all__ = [*_FLUENT, *_ELSEWHERE, *_SUBMODULES]

if TYPE_CHECKING:
    from jupyter_mltrack.exceptions import MlflowException, MLTrackError  # noqa: F401
    from jupyter_mltrack.tracking.client import Client, MlflowClient  # noqa: F401
    from jupyter_mltrack.tracking.fluent import *  # noqa: F403


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_mltrack``: register the ``%%track`` and ``%mltrack`` magics."""
    from jupyter_mltrack.notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from jupyter_mltrack.notebook import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"jupyter_mltrack.{name}")
    if name in _ELSEWHERE:
        value = getattr(importlib.import_module(_ELSEWHERE[name]), name)
    elif name in _FLUENT:
        value = getattr(importlib.import_module("jupyter_mltrack.tracking.fluent"), name)
    else:
        raise AttributeError(f"module 'jupyter_mltrack' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
