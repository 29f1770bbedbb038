"""Serving models over HTTP: MLflow's scoring protocol under uvicorn.

``serve(model_uri)`` runs a server in the background of the notebook kernel;
``mltrack models serve -m URI`` runs one in the foreground; ``create_app(model_uri)`` is the
ASGI app itself. Importing this package is cheap: starlette and uvicorn load on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024

_EXPORTS = {
    "serve": "jupyter_mltrack.serving.server",
    "ServingHandle": "jupyter_mltrack.serving.server",
    "running_servers": "jupyter_mltrack.serving.server",
    "create_app": "jupyter_mltrack.serving.app",
}

__all__ = [*_EXPORTS, "DEFAULT_MAX_BODY_BYTES", "require_server_packages"]


def require_server_packages() -> None:
    """Raise a clear error when starlette or uvicorn (the ``serve`` extra) is missing."""
    from jupyter_mltrack.exceptions import InvalidState

    missing = [p for p in ("starlette", "uvicorn") if importlib.util.find_spec(p) is None]
    if missing:
        raise InvalidState(
            f"Serving models needs {' and '.join(missing)}: pip install 'jupyter-mltrack[serve]'."
        )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        require_server_packages()
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jupyter_mltrack.serving' has no attribute {name!r}")
