"""``MLTrack``: the notebook layer's options, set with ``%config MLTrack.<option> = ...``."""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Unicode, observe, validate
from traitlets.config import Configurable

from jupyter_mltrack.tracking import config as tracking_config


class MLTrack(Configurable):
    """Options of the jupyter_mltrack notebook extension."""

    tracking_uri = Unicode(
        None,
        allow_none=True,
        help="Store for this kernel: a folder, sqlite:///file.db or a PostgreSQL URL. "
        "set_tracking_uri() and MLTRACK_TRACKING_URI take precedence.",
    ).tag(config=True)
    experiment = Unicode(
        None, allow_none=True, help="Experiment for %%track runs when none was chosen."
    ).tag(config=True)
    capture_figures = Bool(True, help="Save matplotlib figures a tracked cell draws.").tag(
        config=True
    )
    capture_params = Bool(True, help="Log literal top-level assignments as params.").tag(
        config=True
    )
    capture_metrics = Bool(True, help="Log top-level names holding real scalars as metrics.").tag(
        config=True
    )
    capture_source = Bool(True, help="Record the cell's source with its run.").tag(config=True)
    capture_inputs = Bool(
        True, help="Record the DataFrames and arrays a tracked cell reads as dataset inputs."
    ).tag(config=True)
    summary = Bool(True, help="Show a one-line summary under each tracked cell.").tag(config=True)

    @validate("tracking_uri", "experiment")
    def _non_empty(self, proposal: dict[str, Any]) -> str | None:
        value = proposal["value"]
        if value is not None and not value.strip():
            return None
        return value

    @observe("tracking_uri")
    def _tracking_uri_changed(self, change: dict[str, Any]) -> None:
        tracking_config.set_notebook_tracking_uri(change["new"])
