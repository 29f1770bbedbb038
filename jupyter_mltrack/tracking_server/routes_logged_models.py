"""MLflow 3's logged-model endpoints, which ``log_model`` calls on a tracking server.

``POST /api/2.0/mlflow/logged-models`` creates one (PENDING), the client uploads the files under
its ``artifact_uri`` (through the artifact proxy), ``PATCH .../logged-models/<id>`` finalizes it
(READY / FAILED) and ``POST /api/2.0/mlflow/runs/outputs`` records it as the run's output.
Also: get, delete, search, tags, params, and a listing of the model's artifacts.

The app provides ``request.app.state.client`` (a jupyter_mltrack Client) and, optionally, a
server context (``request.app.state.ctx``) whose ``present(uri)`` shows stored locations as
clients see them (``mlflow-artifacts:/...`` when artifacts are proxied).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from jupyter_mltrack.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.store.artifacts import get_artifact_repository, path_to_uri

API = "/api/2.0/mlflow"


# -- JSON mapping -------------------------------------------------------------------------------
def logged_model_to_json(model: LoggedModel, artifact_uri: str | None = None) -> dict[str, Any]:
    """A LoggedModel as MLflow's ``LoggedModel`` message (``{"info": ..., "data": ...}``)."""
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "creation_timestamp_ms": model.creation_timestamp,
        "last_updated_timestamp_ms": model.last_updated_timestamp,
        "artifact_uri": artifact_uri or model.artifact_location,
        "status": LoggedModelStatus.to_proto_name(model.status),
        "model_type": model.model_type or "",
    }
    if model.source_run_id:
        info["source_run_id"] = model.source_run_id
    if model.status_message:
        info["status_message"] = model.status_message
    if model.tags:
        info["tags"] = [{"key": k, "value": v} for k, v in sorted(model.tags.items())]
    data: dict[str, Any] = {}
    if model.params:
        data["params"] = [{"key": k, "value": v} for k, v in sorted(model.params.items())]
    if model.metrics:
        data["metrics"] = [_metric_json(m) for m in model.metrics]
    return {"info": info, "data": data}


def _metric_json(metric: Any) -> dict[str, Any]:
    value = metric.value
    out: dict[str, Any] = {
        "key": metric.key,
        "value": "NaN" if value != value else value,
        "timestamp": metric.timestamp,
        "step": metric.step,
    }
    for name in ("model_id", "run_id", "dataset_name", "dataset_digest"):
        if getattr(metric, name, None):
            out[name] = getattr(metric, name)
    return out


def _pairs(items: Any, field: str) -> dict[str, str]:
    if items in (None, ""):
        return {}
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise InvalidParameterValue(f"Invalid value for parameter '{field}': expected a list.")
    out = {}
    for item in items:
        key = item.get("key")
        if not isinstance(key, str) or not key:
            raise InvalidParameterValue(f"Every item of '{field}' needs a non-empty 'key'.")
        value = item.get("value")
        out[key] = "" if value is None else str(value)
    return out


# -- plumbing -----------------------------------------------------------------------------------
def _client(request: Request) -> Any:
    return request.app.state.client


def _present(request: Request, uri: str) -> str:
    """A stored location as HTTP clients see it: ``mlflow-artifacts:/...`` under the proxy."""
    state = request.app.state
    for name in ("ctx", "context"):
        ctx = getattr(state, name, None)
        if ctx is not None and hasattr(ctx, "present"):
            return ctx.present(uri) or uri
    if getattr(state, "serve_artifacts", True) is False:
        return uri
    root = getattr(state, "artifacts_destination", None)
    if not root:
        return uri
    root = str(root)
    root = (root if "://" in root else path_to_uri(root)).rstrip("/")
    if uri == root:
        return "mlflow-artifacts:/"
    if uri.startswith(root + "/"):
        return f"mlflow-artifacts:/{uri[len(root) + 1 :]}"
    return uri


def _model_json(request: Request, model: LoggedModel) -> dict[str, Any]:
    return logged_model_to_json(model, _present(request, model.artifact_location))


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidParameterValue("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidParameterValue("The request body must be a JSON object.")
    return data


def _text(data: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value in (None, ""):
        if required:
            raise InvalidParameterValue(f"Missing value for required parameter '{name}'.")
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{name}'.")
    return str(value)


def _handler(work: Callable[[Request, dict[str, Any]], Any]) -> Callable[[Request], Any]:
    """Parse the body, run ``work`` in a worker thread, answer its JSON or MLflow's error."""

    async def endpoint(request: Request) -> Response:
        try:
            data = await _body(request) if request.method != "GET" else {}
            data.update({k: v for k, v in request.query_params.items() if k not in data})
            result = await run_in_threadpool(work, request, data)
        except Exception as exc:  # every failure becomes MLflow's error body
            from jupyter_mltrack.tracking_server.errors import error_response

            status, body = error_response(exc, f"{request.method} {request.url.path}")
            return JSONResponse(body, status_code=status)
        return JSONResponse(result)

    return endpoint


# -- handlers -----------------------------------------------------------------------------------
def create_logged_model(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    model = _client(request).create_logged_model(
        _text(data, "experiment_id", required=True),
        name=_text(data, "name"),
        source_run_id=_text(data, "source_run_id"),
        tags=_pairs(data.get("tags"), "tags"),
        params=_pairs(data.get("params"), "params"),
        model_type=_text(data, "model_type"),
    )
    return {"model": _model_json(request, model)}


def get_logged_model(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    model_id = request.path_params["model_id"]
    allow_deleted = str(data.get("allow_deleted", "")).lower() == "true"
    client = _client(request)
    if allow_deleted:
        model = client._logged_models().get_logged_model(model_id, allow_deleted=True)
    else:
        model = client.get_logged_model(model_id)
    return {"model": _model_json(request, model)}


def finalize_logged_model(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    status = _text(data, "status", required=True)
    model = _client(request).finalize_logged_model(request.path_params["model_id"], status)
    return {"model": _model_json(request, model)}


def delete_logged_model(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    _client(request).delete_logged_model(request.path_params["model_id"])
    return {}


def set_logged_model_tags(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    tags = _pairs(data.get("tags"), "tags")
    _client(request).set_logged_model_tags(request.path_params["model_id"], tags)
    return {}


def delete_logged_model_tag(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    params = request.path_params
    _client(request).delete_logged_model_tag(params["model_id"], params["tag_key"])
    return {}


def log_logged_model_params(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    params = _pairs(data.get("params"), "params")
    _client(request).log_model_params(request.path_params["model_id"], params)
    return {}


def search_logged_models(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    ids = data.get("experiment_ids") or []
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not ids:
        raise InvalidParameterValue("Missing value for required parameter 'experiment_ids'.")
    max_results = data.get("max_results")
    if max_results is not None:
        try:
            max_results = int(max_results)
        except (TypeError, ValueError):
            raise InvalidParameterValue(f"Invalid max_results {max_results!r}.") from None
    order_by = data.get("order_by") or None
    if order_by is not None and not isinstance(order_by, list):
        raise InvalidParameterValue("order_by must be a list of {field_name, ascending}.")
    found = _client(request).search_logged_models(
        [str(i) for i in ids],
        filter_string=_text(data, "filter"),
        datasets=data.get("datasets") or None,
        max_results=max_results,
        order_by=order_by,
        page_token=_text(data, "page_token"),
    )
    out: dict[str, Any] = {"models": [_model_json(request, m) for m in found]}
    if found.token:
        out["next_page_token"] = found.token
    return out


def list_logged_model_artifacts(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    from jupyter_mltrack.tracking_server.routes_artifacts import safe_path

    client = _client(request)
    model = client.get_logged_model(request.path_params["model_id"])
    path = safe_path(_text(data, "artifact_directory_path"), required=False)
    for name in ("ctx", "context"):
        ctx = getattr(request.app.state, name, None)
        if ctx is not None and hasattr(ctx, "check_readable"):
            ctx.check_readable(model.artifact_location)
    repo = get_artifact_repository(model.artifact_location, client.tracking_uri)
    files = []
    for info in repo.list_artifacts(path or None):
        item: dict[str, Any] = {"path": info.path, "is_dir": info.is_dir}
        if info.file_size is not None and not info.is_dir:
            item["file_size"] = info.file_size
        files.append(item)
    return {"root_uri": _present(request, model.artifact_location), "files": files}


def log_outputs(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    run_id = _text(data, "run_id", required=True)
    items = data.get("models") or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise InvalidParameterValue("Invalid value for parameter 'models': expected a list.")
    outputs = []
    for item in items:
        model_id = item.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise InvalidParameterValue("Every item of 'models' needs a 'model_id'.")
        try:
            step = int(item.get("step") or 0)
        except (TypeError, ValueError):
            raise InvalidParameterValue(f"Invalid step {item.get('step')!r}.") from None
        outputs.append(LoggedModelOutput(model_id, step))
    client = _client(request)
    forget = getattr(client, "_forget_run", None)
    if forget is not None:  # another worker may have deleted the run: re-read it
        forget(run_id)
    client.log_outputs(run_id, outputs)
    return {}


def routes() -> list[BaseRoute]:
    """The logged-model routes and ``runs/outputs`` (mounted at the app's root)."""
    base = f"{API}/logged-models"
    one = f"{base}/{{model_id}}"
    return [
        Route(base, _handler(create_logged_model), methods=["POST"]),
        Route(f"{base}/search", _handler(search_logged_models), methods=["POST"]),
        Route(one, _handler(get_logged_model), methods=["GET"]),
        Route(one, _handler(finalize_logged_model), methods=["PATCH"]),
        Route(one, _handler(delete_logged_model), methods=["DELETE"]),
        Route(f"{one}/tags", _handler(set_logged_model_tags), methods=["PATCH"]),
        Route(
            f"{one}/tags/{{tag_key:path}}", _handler(delete_logged_model_tag), methods=["DELETE"]
        ),
        Route(f"{one}/params", _handler(log_logged_model_params), methods=["POST"]),
        Route(
            f"{one}/artifacts/directories",
            _handler(list_logged_model_artifacts),
            methods=["GET"],
        ),
        Route(f"{API}/runs/outputs", _handler(log_outputs), methods=["POST"]),
    ]
