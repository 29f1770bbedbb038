"""MLflow's tracking endpoints: experiments, runs, logging, metric history, artifact listing.

Each handler takes the server context and the request's fields and returns the response
object; they run in a worker thread and call the Client, never SQL. Request and response
fields are MLflow's (``protocol`` holds the entity mapping).
"""

from __future__ import annotations

import logging
from typing import Any

from jupyter_mltrack import search
from jupyter_mltrack.entities import Metric, ViewType
from jupyter_mltrack.exceptions import (
    InvalidParameterValue,
    ResourceDoesNotExist,
)
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking.context import USER_TAG
from jupyter_mltrack.tracking_server.context import Params, ServerContext, _now_ms

logger = logging.getLogger("jupyter_mltrack.tracking_server")
Handler = Any


# -- experiments ------------------------------------------------------------------------------
def create_experiment(ctx: ServerContext, p: Params) -> dict[str, Any]:
    name = p.required("name")
    location = ctx.internal(p.text("artifact_location"))
    tags = protocol.tags_from_json(p.get("tags"))
    return {"experiment_id": ctx.client.create_experiment(name, location or None, tags)}


def get_experiment(ctx: ServerContext, p: Params) -> dict[str, Any]:
    exp = ctx.client.get_experiment(p.required("experiment_id"))
    return {"experiment": ctx.experiment_json(exp)}


def get_experiment_by_name(ctx: ServerContext, p: Params) -> dict[str, Any]:
    name = p.required("experiment_name")
    exp = ctx.client.get_experiment_by_name(name)
    if exp is None:
        raise ResourceDoesNotExist(f"Could not find experiment with name '{name}'.")
    return {"experiment": ctx.experiment_json(exp)}


def search_experiments(ctx: ServerContext, p: Params) -> dict[str, Any]:
    found = ctx.client.search_experiments(
        view_type=protocol.view_type_from_json(p.get("view_type")),
        max_results=p.integer("max_results", 1000),
        filter_string=p.text("filter") or None,
        order_by=p.strings("order_by") or None,
        page_token=p.text("page_token") or None,
    )
    return page("experiments", [ctx.experiment_json(e) for e in found], found.token)


def update_experiment(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.rename_experiment(p.required("experiment_id"), p.required("new_name"))
    return {}


def delete_experiment(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_experiment(p.required("experiment_id"))
    return {}


def restore_experiment(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.restore_experiment(p.required("experiment_id"))
    return {}


def set_experiment_tag(ctx: ServerContext, p: Params) -> dict[str, Any]:
    value = p.get("value")
    ctx.client.set_experiment_tag(
        p.required("experiment_id"), p.required("key"), "" if value is None else str(value)
    )
    return {}


def delete_experiment_tag(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_experiment_tag(p.required("experiment_id"), p.required("key"))
    return {}


# -- runs -------------------------------------------------------------------------------------
def create_run(ctx: ServerContext, p: Params) -> dict[str, Any]:
    tags = protocol.tags_from_json(p.get("tags"))
    user = p.text("user_id") or tags.get(USER_TAG) or ""
    run = ctx.client.create_server_run(
        p.text("experiment_id") or "0",
        user,
        p.integer("start_time"),
        tags,
        p.text("run_name") or None,
    )
    return {"run": ctx.run_json(run)}


def update_run(ctx: ServerContext, p: Params) -> dict[str, Any]:
    info = ctx.client.update_server_run(
        _run_id(p),
        protocol.run_status_from_json(p.get("status")),
        p.integer("end_time"),
        p.text("run_name") or None,
    )
    return {"run_info": ctx.run_info_json(info)}


def get_run(ctx: ServerContext, p: Params) -> dict[str, Any]:
    return {"run": ctx.run_json(ctx.client.get_run(_run_id(p)))}


def search_runs(ctx: ServerContext, p: Params) -> dict[str, Any]:
    found = ctx.client.search_runs(
        experiment_ids=p.strings("experiment_ids"),
        filter_string=p.text("filter") or "",
        run_view_type=protocol.view_type_from_json(p.get("run_view_type"), ViewType.ACTIVE_ONLY),
        max_results=p.integer("max_results", 1000),
        order_by=p.strings("order_by") or None,
        page_token=p.text("page_token") or None,
    )
    return page("runs", [ctx.run_json(r) for r in found], found.token)


def delete_run(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_run(p.required("run_id"))
    return {}


def restore_run(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.restore_run(p.required("run_id"))
    return {}


def log_metric(ctx: ServerContext, p: Params) -> dict[str, Any]:
    key = p.required("key")
    if p.get("value") is None:
        raise InvalidParameterValue("Missing value for required parameter 'value'.")
    metric = Metric(
        key,
        protocol.to_float(p.get("value"), "value"),
        p.integer("timestamp") or _now_ms(),
        p.integer("step", 0),
    )
    ctx.client.log_server_batch(_run_id(p), metrics=[metric])
    return {}


def log_param(ctx: ServerContext, p: Params) -> dict[str, Any]:
    param = protocol.param_from_json({"key": p.required("key"), "value": p.get("value")})
    ctx.client.log_server_batch(_run_id(p), params=[param])
    return {}


def set_tag(ctx: ServerContext, p: Params) -> dict[str, Any]:
    tag = protocol.tag_from_json({"key": p.required("key"), "value": p.get("value")})
    ctx.client.log_server_batch(_run_id(p), tags=[tag])
    return {}


def delete_tag(ctx: ServerContext, p: Params) -> dict[str, Any]:
    ctx.client.delete_server_tag(p.required("run_id"), p.required("key"))
    return {}


def log_batch(ctx: ServerContext, p: Params) -> dict[str, Any]:
    now = _now_ms()
    metrics = []
    for item in p.objects("metrics"):
        metric = protocol.metric_from_json(item)
        if item.get("timestamp") in (None, ""):
            metric.timestamp = now
        metrics.append(metric)
    params = [protocol.param_from_json(x) for x in p.objects("params")]
    tags = [protocol.tag_from_json(x) for x in p.objects("tags")]
    ctx.client.log_server_batch(p.required("run_id"), metrics, params, tags)
    return {}


def log_inputs(ctx: ServerContext, p: Params) -> dict[str, Any]:
    """Dataset inputs are stored with the run (once per experiment and name/digest); model
    inputs are accepted as they are, the link lives on the logged model."""
    run_id = p.required("run_id")
    datasets = [protocol.dataset_input_from_json(d) for d in p.objects("datasets")]
    p.objects("models")  # shape checked only
    ctx.client.writable(run_id)
    if datasets:
        ctx.client.log_inputs(run_id, datasets)
    return {}


def log_outputs(ctx: ServerContext, p: Params) -> dict[str, Any]:
    """A run's model outputs (``log_model`` sends them): the run is checked; the link itself
    is the logged model's ``source_run_id``, kept by the logged-model routes."""
    run_id = p.required("run_id")
    models = list(p.objects("models"))
    record = getattr(ctx.client, "log_outputs", None)
    ctx.client.writable(run_id)
    if record is not None:
        record(run_id, models)
    return {}


def get_metric_history(ctx: ServerContext, p: Params) -> dict[str, Any]:
    history = ctx.client.get_metric_history(_run_id(p), p.required("metric_key"))
    max_results = p.integer("max_results")
    token = None
    if max_results is not None or p.text("page_token"):
        if max_results is not None and max_results < 1:
            raise InvalidParameterValue(f"max_results must be at least 1, got {max_results}.")
        offset = search.decode_page_token(p.text("page_token"))
        end = len(history) if max_results is None else offset + max_results
        if end < len(history):
            token = search.encode_page_token(end)
        history = history[offset:end]
    return page("metrics", [protocol.metric_to_json(m) for m in history], token)


def list_artifacts(ctx: ServerContext, p: Params) -> dict[str, Any]:
    run_id = _run_id(p)
    root = ctx.client.get_run(run_id).info.artifact_uri or ""
    ctx.check_readable(root)
    files = ctx.client.list_artifacts(run_id, p.text("path") or None)
    out: dict[str, Any] = {"root_uri": ctx.present(root)}
    if files:
        out["files"] = [protocol.file_info_to_json(f) for f in files]
    return out


# -- helpers ----------------------------------------------------------------------------------
def _run_id(p: Params) -> str:
    return p.required("run_id", "run_uuid")


def page(field: str, items: list[Any], token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if items:
        out[field] = items
    if token:
        out["next_page_token"] = token
    return out


HANDLERS: dict[str, Handler] = {
    "create_experiment": create_experiment,
    "get_experiment": get_experiment,
    "get_experiment_by_name": get_experiment_by_name,
    "search_experiments": search_experiments,
    "update_experiment": update_experiment,
    "delete_experiment": delete_experiment,
    "restore_experiment": restore_experiment,
    "set_experiment_tag": set_experiment_tag,
    "delete_experiment_tag": delete_experiment_tag,
    "create_run": create_run,
    "update_run": update_run,
    "get_run": get_run,
    "search_runs": search_runs,
    "delete_run": delete_run,
    "restore_run": restore_run,
    "log_metric": log_metric,
    "log_param": log_param,
    "set_tag": set_tag,
    "delete_tag": delete_tag,
    "log_batch": log_batch,
    "log_inputs": log_inputs,
    "log_outputs": log_outputs,
    "get_metric_history": get_metric_history,
    "list_artifacts": list_artifacts,
}
