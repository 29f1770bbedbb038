"""The ``<base_url>/mltrack/api/`` routes (JSON; see ``handlers_runs`` / ``handlers_registry``).

| route                                                        | methods     |
|--------------------------------------------------------------|-------------|
| store                                                        | GET, POST   |
| experiments                                                  | GET         |
| runs, runs/{run_id}                                          | GET         |
| runs/{run_id}/metrics/{key}, metrics?run_ids=&key=           | GET         |
| runs/{run_id}/artifacts?path=, runs/{run_id}/artifact?path=  | GET         |
| registered-models, registered-models/{name}                  | GET         |
| registered-models/{name}/versions                            | POST        |
| registered-models/{name}/versions/{version}/stage | promote  | POST        |
| registered-models/{name}/aliases/{alias}                     | POST, DELETE|
| registered-models/{name}/rollback                            | POST        |
| registered-models/{name}/rollback-candidate?stage=|alias=    | GET         |

Every route takes ``?notebook=<path relative to the Jupyter root>`` to resolve the default
store from that notebook's folder, as the notebook's kernel does.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from jupyter_mltrack.server import handlers_registry as reg
from jupyter_mltrack.server import handlers_runs as runs
from jupyter_mltrack.server.base import SETTINGS_KEY
from jupyter_mltrack.server.store_choice import StoreChoice

API_ROOT = "mltrack/api"
_RUN = r"(?P<run_id>[^/]+)"
_MODEL = r"(?P<name>[^/]+)"

ROUTES: list[tuple[str, type]] = [
    ("store", runs.StoreHandler),
    ("experiments", runs.ExperimentsHandler),
    ("runs", runs.RunsHandler),
    (f"runs/{_RUN}", runs.RunHandler),
    (f"runs/{_RUN}/metrics/(?P<key>.+)", runs.MetricHistoryHandler),
    ("metrics", runs.MetricSeriesHandler),
    (f"runs/{_RUN}/artifacts", runs.ArtifactListHandler),
    (f"runs/{_RUN}/artifact", runs.ArtifactHandler),
    ("registered-models", reg.RegisteredModelsHandler),
    (f"registered-models/{_MODEL}", reg.RegisteredModelHandler),
    (f"registered-models/{_MODEL}/versions", reg.VersionsHandler),
    (f"registered-models/{_MODEL}/versions/(?P<version>[^/]+)/stage", reg.StageHandler),
    (f"registered-models/{_MODEL}/versions/(?P<version>[^/]+)/promote", reg.PromoteHandler),
    (f"registered-models/{_MODEL}/aliases/(?P<alias>[^/]+)", reg.AliasHandler),
    (f"registered-models/{_MODEL}/rollback", reg.RollbackHandler),
    (f"registered-models/{_MODEL}/rollback-candidate", reg.RollbackCandidateHandler),
]


def setup_handlers(web_app: Any, root_dir: str) -> StoreChoice:
    """Add the routes under ``<base_url>/mltrack/api/`` and the server's store choice."""
    choice = StoreChoice(root_dir)
    web_app.settings[SETTINGS_KEY] = choice
    base_url = web_app.settings["base_url"]
    host_pattern = ".*$"
    web_app.add_handlers(
        host_pattern,
        [(url_path_join(base_url, API_ROOT, route) + "/?$", handler) for route, handler in ROUTES],
    )
    return choice
