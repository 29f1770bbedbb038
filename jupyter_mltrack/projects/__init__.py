"""Projects (MLflow's ``mlflow.projects``): run an MLproject folder or git repository as a
tracked run, ``mltrack run URI -e ENTRY -P k=v``.

``run`` and the names below load on first use, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ExecutionException", "ProjectRun", "ProjectSpecError", "load_project", "run"]

_WHERE = {
    "run": "jupyter_mltrack.projects.runner",
    "ProjectRun": "jupyter_mltrack.projects.runner",
    "ExecutionException": "jupyter_mltrack.projects.spec",
    "ProjectSpecError": "jupyter_mltrack.projects.spec",
    "load_project": "jupyter_mltrack.projects.spec",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'jupyter_mltrack.projects' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
