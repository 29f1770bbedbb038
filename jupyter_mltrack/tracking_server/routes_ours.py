"""Our additions, under ``/api/2.0/mltrack/...`` (MLflow clients never call them).

- ``GET  registered-models/audit-trail?name=``: every transition, alias move, promotion (and
  refusal) and rollback of a model, oldest first.
- ``POST model-versions/promote``: ``{name, version, stage | alias, archive_existing_versions
  (default true), comment, gate}``. The gate travels as JSON: ``{"metric", "threshold",
  "greater_is_better"}``, checked against the metric the version's source run logged. A gate
  that needs data and a model prediction (``Client.promote(validate=...)``) cannot travel over
  HTTP and stays in the Python API. A refused promotion changes nothing, is recorded in the
  audit trail, and answers 400 INVALID_STATE with the gate's outcome in ``validation``.
- ``POST model-versions/rollback``: ``{name, stage | alias, comment}``.
- ``GET  model-versions/rollback-candidate?name=&stage=|alias=``: what a rollback would restore.
- ``POST metrics/get-series``: ``{run_ids, metric_key, max_points, x_axis}``, histories cut to
  about ``max_points`` points in the database, for plots.
- ``GET  server-info``: what this server is and which of these it offers.

Numeric param comparisons need no route of their own: ``runs/search`` takes our grammar, where
``params.lr < 0.01`` (unquoted) compares numerically.
"""

from __future__ import annotations

from typing import Any

from jupyter_mltrack.registry import promote_on_logged_metric
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking_server.context import Params, ServerContext
from jupyter_mltrack.tracking_server.routes_tracking import Handler

FEATURES = ("audit_trail", "promote", "rollback", "numeric_param_search", "metric_series")


def get_audit_trail(ctx: ServerContext, p: Params) -> dict[str, Any]:
    entries = ctx.client.get_audit_trail(p.required("name"))
    return {"entries": [protocol.audit_entry_to_json(e) for e in entries]}


def promote(ctx: ServerContext, p: Params) -> dict[str, Any]:
    mv, _ = promote_on_logged_metric(
        ctx.client,
        p.required("name"),
        p.required("version"),
        p.text("stage"),
        p.text("alias"),
        p.get("gate"),
        p.flag("archive_existing_versions", True),
        p.text("comment"),
    )
    return {"model_version": ctx.model_version_json(mv)}


def rollback(ctx: ServerContext, p: Params) -> dict[str, Any]:
    mv = ctx.client.rollback(
        p.required("name"), p.text("stage"), p.text("alias"), p.text("comment")
    )
    return {"model_version": ctx.model_version_json(mv)}


def rollback_candidate(ctx: ServerContext, p: Params) -> dict[str, Any]:
    mv = ctx.client.rollback_candidate(p.required("name"), p.text("stage"), p.text("alias"))
    return {"model_version": ctx.model_version_json(mv)}


def get_metric_series(ctx: ServerContext, p: Params) -> dict[str, Any]:
    series = ctx.client.get_metric_series(
        p.strings("run_ids"),
        p.required("metric_key"),
        max_points=p.integer("max_points", 2000),
        x_axis=p.text("x_axis") or "step",
    )
    return {
        "series": [
            {
                "run_id": s.run_id,
                "key": s.key,
                "x_axis": s.x_axis,
                "x": s.x,
                "values": [protocol.float_json(v) for v in s.values],
                "total_points": s.total_points,
                "downsampled": s.downsampled,
            }
            for s in series.values()
        ]
    }


def server_info(ctx: ServerContext, p: Params) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("jupyter-mltrack")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ours = "unknown"
    return {
        "server": "jupyter_mltrack",
        "version": ours,
        "serve_artifacts": ctx.serve_artifacts,
        "features": list(FEATURES),
    }


HANDLERS: dict[str, Handler] = {
    "get_audit_trail": get_audit_trail,
    "promote": promote,
    "rollback": rollback,
    "rollback_candidate": rollback_candidate,
    "get_metric_series": get_metric_series,
    "server_info": server_info,
}
