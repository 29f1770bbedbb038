"""The Jupyter server extension behind the JupyterLab sidebar: JSON routes over the Client.

Enabled automatically on install (``jupyter-config/jupyter_server_config.d/jupyter_mltrack.json``);
``jupyter server extension list`` shows it.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_mltrack.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from jupyter_mltrack.server.handlers import API_ROOT, setup_handlers
    from jupyter_mltrack.server.store_choice import redact

    choice = setup_handlers(server_app.web_app, server_app.root_dir)
    resolved = choice.resolve()
    server_app.log.info(
        "jupyter_mltrack: /%s/ serving the store %s (%s)",
        API_ROOT,
        redact(resolved.uri),
        resolved.source,
    )
