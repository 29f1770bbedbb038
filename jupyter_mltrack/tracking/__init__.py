"""Tracking: the fluent API, the Client, the metric writer and run context capture."""

from __future__ import annotations

from typing import Any

__all__ = ["Client", "MlflowClient"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from jupyter_mltrack.tracking import client

        return getattr(client, name)
    raise AttributeError(f"module 'jupyter_mltrack.tracking' has no attribute {name!r}")
