"""MLflow's REST protocol (API 2.0) as plain data: routes, entity JSON both ways, error bodies.

The one mapping between our entities and MLflow's JSON, shared by the HTTP client store and
the tracking server; pure functions, no HTTP library. Conventions, as MLflow's server emits
them: snake_case field names, times in milliseconds as JSON numbers, ids as strings, model
versions as strings, non-finite doubles as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``, unset fields left out. On input every int64 may also arrive as a string
(protobuf JSON) and every double as such a string.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_mltrack.entities import (
    AuditEntry,
    Dataset,
    DatasetInput,
    Experiment,
    FileInfo,
    InputTag,
    LifecycleStage,
    Metric,
    ModelVersion,
    Param,
    RegisteredModel,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    ViewType,
)
from jupyter_mltrack.exceptions import (
    InvalidParameterValue,
    InvalidState,
    MlflowException,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)

# -- routes -----------------------------------------------------------------------------------
API_PREFIX = "/api/2.0"
AJAX_PREFIX = "/ajax-api/2.0"
API3_PREFIX = "/api/3.0"
AJAX3_PREFIX = "/ajax-api/3.0"
#: MLflow's proxied-artifact service root (the ``mlflow-artifacts:`` scheme resolves to it).
MLFLOW_ARTIFACTS_PATH = "/api/2.0/mlflow-artifacts/artifacts"
MLFLOW_ARTIFACTS_SCHEME = "mlflow-artifacts"
#: Our own additions live beside MLflow's, under a prefix MLflow will never use.
MLTRACK_PREFIX = "/api/2.0/mltrack"

#: MLflow's tracking and registry endpoints: name -> (HTTP method, path under /api/2.0).
#: GET requests carry their fields as query parameters (repeated for lists), the others as a
#: JSON body (DELETE included), exactly like MLflow's own client does.
ROUTES: dict[str, tuple[str, str]] = {
    # experiments
    "create_experiment": ("POST", "/mlflow/experiments/create"),
    "get_experiment": ("GET", "/mlflow/experiments/get"),
    "get_experiment_by_name": ("GET", "/mlflow/experiments/get-by-name"),
    "search_experiments": ("POST", "/mlflow/experiments/search"),
    "update_experiment": ("POST", "/mlflow/experiments/update"),
    "delete_experiment": ("POST", "/mlflow/experiments/delete"),
    "restore_experiment": ("POST", "/mlflow/experiments/restore"),
    "set_experiment_tag": ("POST", "/mlflow/experiments/set-experiment-tag"),
    "delete_experiment_tag": ("POST", "/mlflow/experiments/delete-experiment-tag"),
    # runs
    "create_run": ("POST", "/mlflow/runs/create"),
    "update_run": ("POST", "/mlflow/runs/update"),
    "get_run": ("GET", "/mlflow/runs/get"),
    "search_runs": ("POST", "/mlflow/runs/search"),
    "delete_run": ("POST", "/mlflow/runs/delete"),
    "restore_run": ("POST", "/mlflow/runs/restore"),
    "log_metric": ("POST", "/mlflow/runs/log-metric"),
    "log_param": ("POST", "/mlflow/runs/log-parameter"),
    "set_tag": ("POST", "/mlflow/runs/set-tag"),
    "delete_tag": ("POST", "/mlflow/runs/delete-tag"),
    "log_batch": ("POST", "/mlflow/runs/log-batch"),
    "log_inputs": ("POST", "/mlflow/runs/log-inputs"),
    "log_outputs": ("POST", "/mlflow/runs/outputs"),
    "get_metric_history": ("GET", "/mlflow/metrics/get-history"),
    "list_artifacts": ("GET", "/mlflow/artifacts/list"),
    # registered models
    "create_registered_model": ("POST", "/mlflow/registered-models/create"),
    "get_registered_model": ("GET", "/mlflow/registered-models/get"),
    "search_registered_models": ("GET", "/mlflow/registered-models/search"),
    "rename_registered_model": ("POST", "/mlflow/registered-models/rename"),
    "update_registered_model": ("PATCH", "/mlflow/registered-models/update"),
    "delete_registered_model": ("DELETE", "/mlflow/registered-models/delete"),
    "get_latest_versions": ("POST", "/mlflow/registered-models/get-latest-versions"),
    "set_registered_model_tag": ("POST", "/mlflow/registered-models/set-tag"),
    "delete_registered_model_tag": ("DELETE", "/mlflow/registered-models/delete-tag"),
    "set_registered_model_alias": ("POST", "/mlflow/registered-models/alias"),
    "delete_registered_model_alias": ("DELETE", "/mlflow/registered-models/alias"),
    "get_model_version_by_alias": ("GET", "/mlflow/registered-models/alias"),
    # model versions
    "create_model_version": ("POST", "/mlflow/model-versions/create"),
    "get_model_version": ("GET", "/mlflow/model-versions/get"),
    "search_model_versions": ("GET", "/mlflow/model-versions/search"),
    "update_model_version": ("PATCH", "/mlflow/model-versions/update"),
    "delete_model_version": ("DELETE", "/mlflow/model-versions/delete"),
    "transition_model_version_stage": ("POST", "/mlflow/model-versions/transition-stage"),
    "set_model_version_tag": ("POST", "/mlflow/model-versions/set-tag"),
    "delete_model_version_tag": ("DELETE", "/mlflow/model-versions/delete-tag"),
    "get_model_version_download_uri": ("GET", "/mlflow/model-versions/get-download-uri"),
}

#: Endpoints MLflow also serves with a second method (same handler).
EXTRA_METHODS: dict[str, tuple[str, ...]] = {
    "search_experiments": ("GET",),
    "get_latest_versions": ("GET",),
}

#: Our own endpoints (full paths): audit trail, promotion, rollback, metric series, info.
MLTRACK_ROUTES: dict[str, tuple[str, str]] = {
    "get_audit_trail": ("GET", f"{MLTRACK_PREFIX}/registered-models/audit-trail"),
    "promote": ("POST", f"{MLTRACK_PREFIX}/model-versions/promote"),
    "rollback": ("POST", f"{MLTRACK_PREFIX}/model-versions/rollback"),
    "rollback_candidate": ("GET", f"{MLTRACK_PREFIX}/model-versions/rollback-candidate"),
    "get_metric_series": ("POST", f"{MLTRACK_PREFIX}/metrics/get-series"),
    "server_info": ("GET", f"{MLTRACK_PREFIX}/server-info"),
}


def api_path(name: str) -> str:
    """The full path of MLflow endpoint ``name`` (``/api/2.0/mlflow/...``)."""
    return API_PREFIX + ROUTES[name][1]


# -- scalars ----------------------------------------------------------------------------------
_NON_FINITE = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf}


def to_int(value: Any, field: str, default: int | None = None) -> int | None:
    """An int64 field: a JSON number or its decimal string; None/"" give ``default``."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _bad(field, value, "an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _bad(field, value, "an integer")


def to_float(value: Any, field: str) -> float:
    """A double field: a JSON number, a numeric string, or NaN/Infinity/-Infinity as strings."""
    if isinstance(value, bool) or value is None:
        raise _bad(field, value, "a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        special = _NON_FINITE.get(value.strip().lower())
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise _bad(field, value, "a number")


def to_bool(value: Any, field: str, default: bool = False) -> bool:
    """A bool field: JSON true/false or the query-string forms "true"/"false"."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad(field, value, "true or false")


def to_str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise _bad(field, value, "a string")


def to_str_list(value: Any, field: str) -> list[str]:
    """A repeated string field: a JSON list, or one value (a single query parameter)."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else [value]
    return [to_str(v, field) or "" for v in items]


def float_json(value: float) -> float | str:
    """A double as MLflow emits it: non-finite values as strings."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _bad(field: str, value: Any, expected: str) -> InvalidParameterValue:
    shown = json.dumps(value, default=str)
    if len(shown) > 100:
        shown = shown[:100] + "..."
    return InvalidParameterValue(
        f"Invalid value {shown} for parameter '{field}': expected {expected}."
    )


def view_type_from_json(value: Any, default: int = ViewType.ACTIVE_ONLY) -> int:
    """``"ACTIVE_ONLY"`` / ``"DELETED_ONLY"`` / ``"ALL"`` or their numbers (1, 2, 3)."""
    if value is None or value == "":
        return default
    if isinstance(value, str) and not value.strip().isdigit():
        try:
            return ViewType.from_string(value.strip())
        except KeyError:
            raise _bad("view_type", value, "ACTIVE_ONLY, DELETED_ONLY or ALL") from None
    number = to_int(value, "view_type")
    if number not in (1, 2, 3):
        raise _bad("view_type", value, "ACTIVE_ONLY, DELETED_ONLY or ALL")
    return number  # type: ignore[return-value]


def run_status_from_json(value: Any) -> str | None:
    """A run status by name (``"FINISHED"``) or by MLflow's enum number (1-5)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = to_int(value, "status")
        if number is None or not 1 <= number <= len(RunStatus.ALL):
            raise _bad("status", value, "one of " + ", ".join(RunStatus.ALL))
        return RunStatus.ALL[number - 1]
    return RunStatus.from_string(str(value))


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop unset fields (None), as protobuf JSON does."""
    return {k: v for k, v in d.items() if v is not None}


def _pairs_to_json(items: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in items.items()]


def _pairs_from_json(items: Any, field: str = "tags") -> dict[str, str]:
    """``[{key, value}, ...]`` (MLflow) or ``{key: value}`` (lenient) as a dict."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k): v for k, v in items.items()}
    if not isinstance(items, list):
        raise _bad(field, items, "a list of {key, value} objects")
    out = {}
    for item in items:
        if not isinstance(item, Mapping) or "key" not in item:
            raise _bad(field, item, "a {key, value} object")
        out[str(item["key"])] = item.get("value", "")
    return out


# -- experiments ------------------------------------------------------------------------------
def experiment_to_json(exp: Experiment) -> dict[str, Any]:
    out = _compact(
        {
            "experiment_id": str(exp.experiment_id),
            "name": exp.name,
            "artifact_location": exp.artifact_location,
            "lifecycle_stage": exp.lifecycle_stage,
            "last_update_time": exp.last_update_time,
            "creation_time": exp.creation_time,
        }
    )
    if exp.tags:
        out["tags"] = _pairs_to_json(exp.tags)
    return out


def experiment_from_json(d: Mapping[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=str(d.get("experiment_id", "")),
        name=d.get("name", ""),
        artifact_location=d.get("artifact_location", ""),
        lifecycle_stage=d.get("lifecycle_stage") or LifecycleStage.ACTIVE,
        tags=_pairs_from_json(d.get("tags")),
        creation_time=to_int(d.get("creation_time"), "creation_time"),
        last_update_time=to_int(d.get("last_update_time"), "last_update_time"),
    )


# -- runs -------------------------------------------------------------------------------------
def metric_to_json(metric: Metric) -> dict[str, Any]:
    return {
        "key": metric.key,
        "value": float_json(metric.value),
        "timestamp": metric.timestamp,
        "step": metric.step,
    }


def metric_from_json(d: Mapping[str, Any]) -> Metric:
    if "key" not in d:
        raise InvalidParameterValue("A metric needs a 'key'.")
    if "value" not in d:
        raise InvalidParameterValue(f"Metric {d['key']!r} needs a 'value'.")
    return Metric(
        key=str(d["key"]),
        value=to_float(d["value"], "value"),
        timestamp=to_int(d.get("timestamp"), "timestamp", 0),  # type: ignore[arg-type]
        step=to_int(d.get("step"), "step", 0),  # type: ignore[arg-type]
    )


def param_to_json(param: Param) -> dict[str, Any]:
    return {"key": param.key, "value": param.value}


def param_from_json(d: Mapping[str, Any]) -> Param:
    if "key" not in d:
        raise InvalidParameterValue("A param needs a 'key'.")
    return Param(str(d["key"]), "" if d.get("value") is None else str(d["value"]))


def tag_to_json(tag: RunTag) -> dict[str, Any]:
    return {"key": tag.key, "value": tag.value}


def tag_from_json(d: Mapping[str, Any]) -> RunTag:
    if "key" not in d:
        raise InvalidParameterValue("A tag needs a 'key'.")
    return RunTag(str(d["key"]), "" if d.get("value") is None else str(d["value"]))


def run_info_to_json(info: RunInfo) -> dict[str, Any]:
    return _compact(
        {
            "run_id": info.run_id,
            "run_uuid": info.run_id,
            "run_name": info.run_name,
            "experiment_id": str(info.experiment_id),
            "user_id": info.user_id,
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "artifact_uri": info.artifact_uri,
            "lifecycle_stage": info.lifecycle_stage,
        }
    )


def run_info_from_json(d: Mapping[str, Any]) -> RunInfo:
    return RunInfo(
        run_id=d.get("run_id") or d.get("run_uuid") or "",
        experiment_id=str(d.get("experiment_id", "0")),
        user_id=d.get("user_id", ""),
        status=run_status_from_json(d.get("status")) or RunStatus.RUNNING,
        start_time=to_int(d.get("start_time"), "start_time"),
        end_time=to_int(d.get("end_time"), "end_time"),
        lifecycle_stage=d.get("lifecycle_stage") or LifecycleStage.ACTIVE,
        artifact_uri=d.get("artifact_uri"),
        run_name=d.get("run_name"),
    )


def run_data_to_json(data: RunData) -> dict[str, Any]:
    # The latest value's time and step are known when the RunData was built from Metric
    # objects; a RunData built from dicts has values only (proto leaves the others unset).
    points = {m.key: m for m in getattr(data, "_metric_objs", ())}
    metrics = []
    for key, value in data.metrics.items():
        point = points.get(key)
        if point is not None and point.value is value:
            metrics.append(metric_to_json(point))
        else:
            metrics.append({"key": key, "value": float_json(value)})
    out: dict[str, Any] = {}
    if metrics:
        out["metrics"] = metrics
    if data.params:
        out["params"] = _pairs_to_json(data.params)
    if data.tags:
        out["tags"] = _pairs_to_json(data.tags)
    return out


def run_data_from_json(d: Mapping[str, Any]) -> RunData:
    return RunData(
        metrics=[metric_from_json(m) for m in d.get("metrics") or []],
        params=[param_from_json(p) for p in d.get("params") or []],
        tags=[tag_from_json(t) for t in d.get("tags") or []],
    )


def dataset_from_json(d: Mapping[str, Any]) -> Dataset:
    for key in ("name", "digest"):
        if not isinstance(d.get(key), str) or not d[key]:
            raise InvalidParameterValue(f"Each dataset input's dataset needs a '{key}'.")
    texts = {k: to_str(d.get(k), f"dataset.{k}") for k in ("schema", "profile")}
    return Dataset(
        d["name"],
        d["digest"],
        to_str(d.get("source_type"), "dataset.source_type") or "",
        to_str(d.get("source"), "dataset.source") or "",
        texts["schema"] or None,
        texts["profile"] or None,
    )


def dataset_to_json(dataset: Dataset) -> dict[str, Any]:
    return _compact(
        {
            "name": dataset.name,
            "digest": dataset.digest,
            "source_type": dataset.source_type,
            "source": dataset.source,
            "schema": dataset.schema,
            "profile": dataset.profile,
        }
    )


def dataset_input_from_json(d: Mapping[str, Any]) -> DatasetInput:
    """One ``DatasetInput``: ``{"dataset": {...}, "tags": [{"key": ..., "value": ...}]}``."""
    dataset = d.get("dataset")
    if not isinstance(dataset, Mapping):
        raise InvalidParameterValue(
            "Each dataset input needs a 'dataset' with at least 'name' and 'digest'."
        )
    tags = [InputTag(k, v) for k, v in _pairs_from_json(d.get("tags")).items()]
    return DatasetInput(dataset_from_json(dataset), tags)


def dataset_input_to_json(item: DatasetInput) -> dict[str, Any]:
    out: dict[str, Any] = {"dataset": dataset_to_json(item.dataset)}
    if item.tags:
        out["tags"] = [{"key": t.key, "value": t.value} for t in item.tags]
    return out


def run_to_json(run: Run) -> dict[str, Any]:
    inputs = [dataset_input_to_json(i) for i in getattr(run.inputs, "dataset_inputs", ()) or ()]
    out = {
        "info": run_info_to_json(run.info),
        "data": run_data_to_json(run.data),
        "inputs": {"dataset_inputs": inputs} if inputs else {},
    }
    outputs = getattr(getattr(run, "outputs", None), "model_outputs", None)
    if outputs:
        out["outputs"] = {
            "model_outputs": [{"model_id": o.model_id, "step": o.step} for o in outputs]
        }
    return out


def run_from_json(d: Mapping[str, Any]) -> Run:
    inputs = (d.get("inputs") or {}).get("dataset_inputs") or []
    return Run(
        run_info_from_json(d.get("info") or {}),
        run_data_from_json(d.get("data") or {}),
        RunInputs([dataset_input_from_json(i) for i in inputs]),
    )


def file_info_to_json(info: FileInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"path": info.path, "is_dir": bool(info.is_dir)}
    if info.file_size is not None and not info.is_dir:
        out["file_size"] = info.file_size
    return out


def file_info_from_json(d: Mapping[str, Any]) -> FileInfo:
    is_dir = to_bool(d.get("is_dir"), "is_dir")
    size = None if is_dir else to_int(d.get("file_size"), "file_size")
    return FileInfo(d.get("path", ""), is_dir, size)


# -- registry ---------------------------------------------------------------------------------
def model_version_to_json(mv: ModelVersion) -> dict[str, Any]:
    out = _compact(
        {
            "name": mv.name,
            "version": str(mv.version),
            "creation_timestamp": mv.creation_timestamp,
            "last_updated_timestamp": mv.last_updated_timestamp,
            "user_id": mv.user_id,
            "current_stage": mv.current_stage,
            "description": mv.description,
            "source": mv.source,
            "run_id": mv.run_id,
            "status": mv.status,
            "status_message": mv.status_message,
            "run_link": mv.run_link,
            "model_id": getattr(mv, "model_id", None),
        }
    )
    if mv.tags:
        out["tags"] = _pairs_to_json(mv.tags)
    if mv.aliases:
        out["aliases"] = list(mv.aliases)
    return out


def model_version_from_json(d: Mapping[str, Any]) -> ModelVersion:
    mv = ModelVersion(
        name=d.get("name", ""),
        version=to_int(d.get("version"), "version", 0),  # type: ignore[arg-type]
        creation_timestamp=to_int(d.get("creation_timestamp"), "creation_timestamp", 0),  # type: ignore[arg-type]
        last_updated_timestamp=to_int(d.get("last_updated_timestamp"), "last_updated_timestamp"),
        description=d.get("description"),
        user_id=d.get("user_id"),
        current_stage=d.get("current_stage") or "None",
        source=d.get("source"),
        run_id=d.get("run_id") or None,
        status=d.get("status") or "READY",
        status_message=d.get("status_message"),
        tags=_pairs_from_json(d.get("tags")),
        run_link=d.get("run_link"),
        aliases=list(d.get("aliases") or []),
    )
    if d.get("model_id") and hasattr(mv, "model_id"):
        mv.model_id = d["model_id"]  # type: ignore[attr-defined]
    return mv


def registered_model_to_json(rm: RegisteredModel) -> dict[str, Any]:
    out = _compact(
        {
            "name": rm.name,
            "creation_timestamp": rm.creation_timestamp,
            "last_updated_timestamp": rm.last_updated_timestamp,
            "description": rm.description,
        }
    )
    if rm.latest_versions:
        out["latest_versions"] = [model_version_to_json(v) for v in rm.latest_versions]
    if rm.tags:
        out["tags"] = _pairs_to_json(rm.tags)
    if rm.aliases:
        out["aliases"] = [{"alias": a, "version": str(v)} for a, v in rm.aliases.items()]
    return out


def registered_model_from_json(d: Mapping[str, Any]) -> RegisteredModel:
    aliases = {}
    for item in d.get("aliases") or []:
        aliases[item["alias"]] = to_int(item.get("version"), "version")
    return RegisteredModel(
        name=d.get("name", ""),
        creation_timestamp=to_int(d.get("creation_timestamp"), "creation_timestamp"),
        last_updated_timestamp=to_int(d.get("last_updated_timestamp"), "last_updated_timestamp"),
        description=d.get("description"),
        latest_versions=[model_version_from_json(v) for v in d.get("latest_versions") or []],
        tags=_pairs_from_json(d.get("tags")),
        aliases=aliases,  # type: ignore[arg-type]
    )


def audit_entry_to_json(entry: AuditEntry) -> dict[str, Any]:
    return _compact(
        {
            "name": entry.name,
            "version": None if entry.version is None else str(entry.version),
            "action": entry.action,
            "target": entry.target,
            "from_value": entry.from_value,
            "to_value": entry.to_value,
            "user_id": entry.user_id,
            "timestamp": entry.timestamp,
            "comment": entry.comment,
            "details": entry.details,
        }
    )


def audit_entry_from_json(d: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        name=d.get("name", ""),
        version=to_int(d.get("version"), "version"),
        action=d.get("action", ""),
        target=d.get("target"),
        from_value=d.get("from_value"),
        to_value=d.get("to_value"),
        user_id=d.get("user_id"),
        timestamp=to_int(d.get("timestamp"), "timestamp", 0),  # type: ignore[arg-type]
        comment=d.get("comment"),
        details=d.get("details"),
    )


def tags_to_json(tags: Mapping[str, Any] | Iterable[Any]) -> list[dict[str, Any]]:
    """Tags for a request body: a dict, or RunTag-like objects with key/value."""
    if isinstance(tags, Mapping):
        return [{"key": k, "value": str(v)} for k, v in tags.items()]
    return [{"key": t.key, "value": str(t.value)} for t in tags]


def tags_from_json(items: Any) -> dict[str, str]:
    """Request tags (``[{key, value}]``) as a dict."""
    return {k: ("" if v is None else str(v)) for k, v in _pairs_from_json(items).items()}


# -- errors -----------------------------------------------------------------------------------
#: HTTP status per MLflow error code (MLflow's table), with one deliberate difference:
#: INVALID_STATE is 400 here, not 500. Our INVALID_STATE means "not in this state" (a deleted
#: run, an already-active experiment), a caller's error; a 500 would make MLflow's client retry
#: it for minutes as if the server were failing.
HTTP_STATUS: dict[str, int] = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "INVALID_STATE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "NOT_FOUND": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_CONFLICT": 409,
    "ABORTED": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "CUSTOMER_UNAUTHORIZED": 401,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL_ERROR": 500,
    "DATA_LOSS": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "ENDPOINT_NOT_FOUND",
    409: "RESOURCE_CONFLICT",
    413: "RESOURCE_EXHAUSTED",
    429: "REQUEST_LIMIT_EXCEEDED",
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_EXCEPTION_FOR_CODE: dict[str, type[MlflowException]] = {
    "INVALID_PARAMETER_VALUE": InvalidParameterValue,
    "BAD_REQUEST": InvalidParameterValue,
    "RESOURCE_DOES_NOT_EXIST": ResourceDoesNotExist,
    "NOT_FOUND": ResourceDoesNotExist,
    "ENDPOINT_NOT_FOUND": ResourceDoesNotExist,
    "RESOURCE_ALREADY_EXISTS": ResourceAlreadyExists,
    "ALREADY_EXISTS": ResourceAlreadyExists,
    "INVALID_STATE": InvalidState,
}

GENERIC_INTERNAL_MESSAGE = "Internal server error; the details are in the server's log."


def http_status(error_code: str) -> int:
    """The HTTP status for an MLflow error code (500 for codes we do not know)."""
    return HTTP_STATUS.get(error_code, 500)


def error_body(exc: BaseException) -> dict[str, Any]:
    """MLflow's error JSON for ``exc``: ``{"error_code", "message"}``.

    Our own errors carry their code and one-line message; anything else is an internal error
    whose details must stay in the server log, so its body says only that.
    """
    if isinstance(exc, MlflowException):
        body: dict[str, Any] = {"error_code": exc.error_code, "message": exc.message}
        result = getattr(exc, "result", None)
        if result:  # a refused promotion: the gate's outcome (extra field, ignored by MLflow)
            body["validation"] = result
        return body
    return {"error_code": "INTERNAL_ERROR", "message": GENERIC_INTERNAL_MESSAGE}


def error_status(exc: BaseException) -> int:
    """The HTTP status ``error_body(exc)`` goes with."""
    if isinstance(exc, MlflowException):
        return http_status(exc.error_code)
    return 500


def exception_from_error(status: int, body: Any) -> MlflowException:
    """The exception for an error response: ``body`` is the parsed JSON, text, bytes or None.

    Known codes map to our classes (RESOURCE_DOES_NOT_EXIST -> ResourceDoesNotExist, ...);
    the original ``error_code`` string is kept either way.
    """
    data: Any = body
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", "replace")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = {"message": data.strip()}
    if not isinstance(data, Mapping):
        data = {}
    code = str(data.get("error_code") or _BY_STATUS.get(status) or "INTERNAL_ERROR")
    message = data.get("message")
    if not message:
        message = f"The server answered HTTP {status} without an error message."
    elif not data.get("error_code"):
        text = str(message)
        message = f"HTTP {status}: {text[:500]}{'...' if len(text) > 500 else ''}"
    cls = _EXCEPTION_FOR_CODE.get(code, MlflowException)
    exc = cls.__new__(cls)
    MlflowException.__init__(exc, str(message), error_code=code)
    return exc
