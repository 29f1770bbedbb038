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

import math
from typing import Any

from jupyter_mltrack.entities import ModelVersion, Stage
from jupyter_mltrack.exceptions import InvalidParameterValue, PromotionRefused
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking_server.context import Params, ServerContext
from jupyter_mltrack.tracking_server.routes_tracking import Handler

_LOWER_IS_BETTER = ("error", "loss", "mae", "mse", "rmse")
FEATURES = ("audit_trail", "promote", "rollback", "numeric_param_search", "metric_series")


def get_audit_trail(ctx: ServerContext, p: Params) -> dict[str, Any]:
    entries = ctx.client.get_audit_trail(p.required("name"))
    return {"entries": [protocol.audit_entry_to_json(e) for e in entries]}


def promote(ctx: ServerContext, p: Params) -> dict[str, Any]:
    name, version = p.required("name"), p.required("version")
    stage, alias = p.text("stage"), p.text("alias")
    archive = p.flag("archive_existing_versions", True)
    comment = p.text("comment")
    gate = p.get("gate")
    if gate is None:
        mv = ctx.client.promote(name, version, stage, alias, None, archive, comment)
        return {"model_version": ctx.model_version_json(mv)}
    if stage is not None and alias is not None:
        raise InvalidParameterValue("promote takes stage or alias, not both.")
    target_stage = Stage.canonical(stage or Stage.PRODUCTION) if alias is None else None
    mv = ctx.client.get_model_version(name, version)
    details = _check_gate(ctx, mv, gate)
    registry = ctx.client.registry
    target = alias if alias is not None else target_stage
    recorded = {"validation": details}
    if not details["passed"]:
        registry.record(name, mv.version, "promote_refused", target, comment, recorded)
        raise PromotionRefused(
            f"Promotion of {name} version {mv.version} to {target} refused: "
            f"{details['reason']}. Nothing was changed.",
            details,
        )
    if alias is None:
        keep = archive and target_stage in (Stage.STAGING, Stage.PRODUCTION)
        mv = registry.transition_model_version_stage(
            name, mv.version, target_stage, keep, comment, action="promote", details=recorded
        )
    else:
        registry.set_registered_model_alias(
            name, alias, mv.version, comment, action="promote", details=recorded
        )
        mv = ctx.client.get_model_version(name, mv.version)
    return {"model_version": ctx.model_version_json(mv)}


def _check_gate(ctx: ServerContext, mv: ModelVersion, gate: Any) -> dict[str, Any]:
    """The gate's outcome: the source run's logged ``metric`` against ``threshold``."""
    if not isinstance(gate, dict) or not {"metric", "threshold"} <= set(gate):
        raise InvalidParameterValue(
            "gate must be an object with 'metric' and 'threshold' (and optionally "
            "'greater_is_better'), checked against the metric the version's run logged."
        )
    unknown = set(gate) - {"metric", "threshold", "greater_is_better"}
    if unknown:
        raise InvalidParameterValue(f"Unknown gate field(s): {', '.join(sorted(unknown))}.")
    metric = str(gate["metric"])
    threshold = protocol.to_float(gate["threshold"], "gate.threshold")
    greater = gate.get("greater_is_better")
    if greater is None:
        greater = not any(word in metric.lower() for word in _LOWER_IS_BETTER)
    greater = protocol.to_bool(greater, "gate.greater_is_better")
    details: dict[str, Any] = {
        "metric": metric,
        "threshold": threshold,
        "greater_is_better": greater,
        "run_id": mv.run_id,
    }
    if not mv.run_id:
        raise InvalidParameterValue(
            f"{mv.name} version {mv.version} has no source run, so a metric gate has nothing "
            "to check; promote it without a gate, or from Python with validate=."
        )
    value = ctx.client.get_run(mv.run_id).data.metrics.get(metric)
    if value is None:
        return {**details, "passed": False, "value": None, "reason": f"run never logged {metric!r}"}
    passed = not math.isnan(value) and (value >= threshold if greater else value <= threshold)
    sign = ">=" if greater else "<="
    reason = f"{metric} = {value:.6g}, needs {sign} {threshold:g}"
    return {**details, "passed": passed, "value": value, "reason": reason}


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
