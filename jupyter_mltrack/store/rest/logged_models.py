"""Logged models (MLflow 3) kept by a tracking server: the same methods as the SQL store's
``SqlLoggedModels``, over MLflow's ``/api/2.0/mlflow/logged-models`` endpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from jupyter_mltrack.entities import (
    LoggedModel,
    LoggedModelMetric,
    LoggedModelOutput,
    LoggedModelStatus,
    PagedList,
)

BASE = "/api/2.0/mlflow/logged-models"


def _pairs_json(items: Mapping[str, Any] | Sequence[Any] | None) -> list[dict[str, str]]:
    if not items:
        return []
    if isinstance(items, Mapping):
        return [{"key": str(k), "value": "" if v is None else str(v)} for k, v in items.items()]
    return [{"key": str(i.key), "value": str(i.value)} for i in items]


def logged_model_from_json(d: Mapping[str, Any]) -> LoggedModel:
    """MLflow's ``LoggedModel`` message -> LoggedModel."""
    info = d.get("info") or {}
    data = d.get("data") or {}
    status = info.get("status") or "LOGGED_MODEL_PENDING"
    try:
        status = LoggedModelStatus.from_string(status)
    except Exception:  # an unknown state from a newer server: keep it readable
        status = str(status)
    return LoggedModel(
        experiment_id=str(info.get("experiment_id", "")),
        model_id=info.get("model_id", ""),
        name=info.get("name", ""),
        artifact_location=info.get("artifact_uri", ""),
        creation_timestamp=int(info.get("creation_timestamp_ms") or 0),
        last_updated_timestamp=int(info.get("last_updated_timestamp_ms") or 0),
        model_type=info.get("model_type") or None,
        source_run_id=info.get("source_run_id") or None,
        status=status,
        status_message=info.get("status_message") or None,
        tags={t["key"]: t.get("value", "") for t in info.get("tags") or []},
        params={p["key"]: p.get("value", "") for p in data.get("params") or []},
        metrics=[
            LoggedModelMetric(
                m["key"],
                float(m.get("value", 0.0)),
                int(m.get("timestamp") or 0),
                int(m.get("step") or 0),
                model_id=m.get("model_id"),
                run_id=m.get("run_id"),
                dataset_name=m.get("dataset_name"),
                dataset_digest=m.get("dataset_digest"),
            )
            for m in data.get("metrics") or []
        ],
    )


class RestLoggedModels:
    """The logged-model calls to one tracking server (``http`` is its ``HttpClient``)."""

    def __init__(self, http: Any) -> None:
        self.http = http

    def _one(self, model_id: str) -> str:
        return f"{BASE}/{quote(model_id, safe='')}"

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Mapping[str, Any] | Sequence[Any] | None = None,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        body: dict[str, Any] = {"experiment_id": str(experiment_id)}
        for key, value in (("name", name), ("source_run_id", source_run_id)):
            if value:
                body[key] = value
        if model_type:
            body["model_type"] = model_type
        body["tags"] = _pairs_json(tags)
        body["params"] = _pairs_json(params)
        answer = self.http.call("POST", BASE, body, repeatable=False)
        return logged_model_from_json(answer["model"])

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        query = {"allow_deleted": "true"} if allow_deleted else None
        return logged_model_from_json(self.http.call("GET", self._one(model_id), query)["model"])

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        wire = LoggedModelStatus.to_proto_name(LoggedModelStatus.from_string(status))
        answer = self.http.call(
            "PATCH", self._one(model_id), {"model_id": model_id, "status": wire}
        )
        return logged_model_from_json(answer["model"])

    def delete_logged_model(self, model_id: str) -> None:
        self.http.call("DELETE", self._one(model_id), {"model_id": model_id})

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, Any]) -> None:
        self.http.call("PATCH", f"{self._one(model_id)}/tags", {"tags": _pairs_json(tags)})

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        self.http.call("DELETE", f"{self._one(model_id)}/tags/{quote(key, safe='')}")

    def log_logged_model_params(self, model_id: str, params: Mapping[str, Any]) -> None:
        body = {"model_id": model_id, "params": _pairs_json(params)}
        self.http.call("POST", f"{self._one(model_id)}/params", body)

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        datasets: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: Sequence[Any] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        body: dict[str, Any] = {"experiment_ids": [str(e) for e in experiment_ids]}
        if filter_string:
            body["filter"] = filter_string
        if datasets:
            body["datasets"] = list(datasets)
        if max_results is not None:
            body["max_results"] = max_results
        if order_by:
            body["order_by"] = [
                _order_item(item) if isinstance(item, str) else dict(item) for item in order_by
            ]
        if page_token:
            body["page_token"] = page_token
        answer = self.http.call("POST", f"{BASE}/search", body)
        models = [logged_model_from_json(m) for m in answer.get("models", [])]
        return PagedList(models, answer.get("next_page_token") or None)

    def log_outputs(self, run_id: str, models: Sequence[LoggedModelOutput]) -> None:
        body = {
            "run_id": run_id,
            "models": [{"model_id": m.model_id, "step": m.step} for m in models],
        }
        self.http.call("POST", "/api/2.0/mlflow/runs/outputs", body)


def _order_item(text: str) -> dict[str, Any]:
    parts = text.split()
    ascending = not (len(parts) > 1 and parts[-1].upper() == "DESC")
    return {"field_name": parts[0], "ascending": ascending}
