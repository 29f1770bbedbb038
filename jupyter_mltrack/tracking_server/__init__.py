"""``mltrack server``: MLflow's REST API 2.0 over our store, as an ASGI app under uvicorn.

``create_app(tracking_uri, ...)`` builds the app (``app.py``); ``mltrack server`` runs it
(``cli.py``). Routes: MLflow's tracking and registry endpoints (``routes_tracking``,
``routes_registry``), our additions under ``/api/2.0/mltrack`` (``routes_ours``), and the
artifact proxy and logged-model routes when their modules are installed. Importing this
package is cheap: starlette and uvicorn load when the app is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See ``jupyter_mltrack.tracking_server.app.create_app``."""
    from jupyter_mltrack.tracking_server.app import create_app as build

    return build(*args, **kwargs)
