"""Which store the tracking API uses.

Order: explicit ``set_tracking_uri`` > ``MLTRACK_TRACKING_URI`` > the notebook's
``%config MLTrack.tracking_uri`` > ``MLFLOW_TRACKING_URI`` when it names a store we support
(otherwise ignored with a one-time warning saying why) > the default embedded folder.
"""

from __future__ import annotations

import os
import warnings
from urllib.parse import urlparse

_explicit: str | None = None
_notebook: str | None = None
_registry: str | None = None
_warned: set[str] = set()

# http(s): a tracking server; databricks / azureml: honoured so that opening them explains what
# they need (see store/rest/hosted.py) instead of silently falling back to the local store
SUPPORTED_SCHEMES = (
    "",
    "file",
    "sqlite",
    "postgresql",
    "http",
    "https",
    "databricks",
    "databricks-uc",
    "azureml",
)


def set_tracking_uri(uri: str | os.PathLike[str] | None) -> None:
    """Use ``uri`` (folder path, ``sqlite:///file.db``, ``postgresql+psycopg://...``)."""
    global _explicit
    _explicit = None if uri is None else _as_text(uri)


def set_notebook_tracking_uri(uri: str | None) -> None:
    """Set by the notebook layer from ``%config MLTrack.tracking_uri``."""
    global _notebook
    _notebook = uri or None


def set_registry_uri(uri: str | os.PathLike[str] | None) -> None:
    global _registry
    _registry = None if uri is None else _as_text(uri)


def get_registry_uri() -> str:
    return _registry or os.environ.get("MLFLOW_REGISTRY_URI") or get_tracking_uri()


def _as_text(uri: str | os.PathLike[str]) -> str:
    return os.fspath(uri) if not isinstance(uri, str) else uri


def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme
    return "" if len(scheme) <= 1 else scheme.split("+")[0]


def get_tracking_uri() -> str:
    """The tracking URI in force, after the precedence rules above."""
    if _explicit:
        return _explicit
    env = os.environ.get("MLTRACK_TRACKING_URI")
    if env:
        return env
    if _notebook:
        return _notebook
    mlflow_env = os.environ.get("MLFLOW_TRACKING_URI")
    if mlflow_env:
        if _scheme(mlflow_env) in SUPPORTED_SCHEMES:
            return mlflow_env
        if mlflow_env not in _warned:
            _warned.add(mlflow_env)
            warnings.warn(
                f"MLFLOW_TRACKING_URI={mlflow_env!r} is ignored: jupyter_mltrack does not "
                "support that kind of store yet. Using the embedded store; set "
                "MLTRACK_TRACKING_URI to choose another.",
                stacklevel=3,
            )
    from jupyter_mltrack.store import default_tracking_uri

    return default_tracking_uri()
