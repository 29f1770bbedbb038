"""Copy experiments, runs and registered models between two stores, either way.

Either side is any tracking URI: our store (a folder, SQLite, PostgreSQL) or an MLflow-protocol
server (``mlflow server``, ``mltrack server``). ``mltrack import`` / ``mltrack export`` are the
command line; ``copy.Transfer`` does the work, ``state.TransferState`` makes it resumable and
``verify.verify`` compares counts at the end.
"""

from __future__ import annotations

from typing import Any

from jupyter_mltrack.exceptions import MlflowException


class TransferError(MlflowException):
    """A transfer cannot start or go on: bad URI, unreachable server, foreign state file..."""


_LAZY = {
    "Transfer": "jupyter_mltrack.transfer.copy",
    "open_source": "jupyter_mltrack.transfer.copy",
    "TransferState": "jupyter_mltrack.transfer.state",
    "default_state_path": "jupyter_mltrack.transfer.state",
    "verify": "jupyter_mltrack.transfer.verify",
}

__all__ = ["TransferError", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
