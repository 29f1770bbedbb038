"""Logged models (MLflow 3) on the SQL store: models with their own id, and run outputs.

MLflow 3's ``log_model`` creates a logged model (status PENDING), uploads its files under the
model's own artifact location (``<experiment location>/models/<model_id>/artifacts``), then
finalizes it (READY or FAILED) and records it as an output of the run that produced it.
Deleting a logged model is a soft delete, as in MLflow.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from jupyter_mltrack import names, search, validation
from jupyter_mltrack.entities import (
    LifecycleStage,
    LoggedModel,
    LoggedModelMetric,
    LoggedModelOutput,
    LoggedModelStatus,
    PagedList,
)
from jupyter_mltrack.exceptions import (
    InvalidParameterValue,
    InvalidState,
    ResourceDoesNotExist,
)
from jupyter_mltrack.store.schema import (
    experiments,
    logged_model_metrics,
    logged_model_params,
    logged_model_tags,
    logged_models,
    run_model_outputs,
    runs,
)

SEARCH_MAX_RESULTS = 50_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _pairs(items: Mapping[str, Any] | Sequence[Any] | None) -> list[tuple[str, str]]:
    """Tags or params given as a dict or as objects with ``key``/``value`` -> (key, text)."""
    if not items:
        return []
    if isinstance(items, Mapping):
        return [(str(k), "" if v is None else str(v)) for k, v in items.items()]
    return [(str(i.key), "" if i.value is None else str(i.value)) for i in items]


def order_by_strings(order_by: Sequence[Any] | None) -> list[str] | None:
    """MLflow's order_by items (``{"field_name": ..., "ascending": ...}``) or strings -> strings."""
    if not order_by:
        return None
    clauses = []
    for item in order_by:
        if isinstance(item, str):
            clauses.append(item)
            continue
        if not isinstance(item, Mapping) or not item.get("field_name"):
            raise InvalidParameterValue(
                f"Invalid order_by item {item!r}; expected {{'field_name': ..., 'ascending': ...}}."
            )
        if item.get("dataset_name") or item.get("dataset_digest"):
            raise InvalidParameterValue("Ordering logged models by dataset is not supported.")
        field = str(item["field_name"])
        if "." in field and not field.startswith(("params.", "tags.", "attributes.")):
            raise InvalidParameterValue(
                f"Cannot order logged models by {field!r}; use an attribute, params. or tags."
            )
        direction = "ASC" if item.get("ascending", True) else "DESC"
        clauses.append(f"{_quote_key(field)} {direction}")
    return clauses


def _quote_key(field: str) -> str:
    prefix, _, key = field.partition(".")
    if key and not key.replace("_", "").isalnum():
        return f"{prefix}.`{key}`"
    return field


class SqlLoggedModels:
    """Logged-model operations over a SqlStore's engine (same database, same transactions)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    # -- helpers ------------------------------------------------------------------------------
    def _row(self, conn: Connection, model_id: str, allow_deleted: bool = False) -> Any:
        row = conn.execute(
            select(logged_models).where(logged_models.c.model_id == str(model_id))
        ).first()
        if row is None or (not allow_deleted and row.lifecycle_stage != LifecycleStage.ACTIVE):
            raise ResourceDoesNotExist(f"Logged model with ID {model_id!r} not found.")
        return row

    def _models(self, conn: Connection, rows: Sequence[Any]) -> list[LoggedModel]:
        ids = [r.model_id for r in rows]
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, list[LoggedModelMetric]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for t in conn.execute(
                select(logged_model_tags).where(logged_model_tags.c.model_id.in_(chunk))
            ):
                tags[t.model_id][t.key] = t.value
            for p in conn.execute(
                select(logged_model_params).where(logged_model_params.c.model_id.in_(chunk))
            ):
                params[p.model_id][p.key] = p.value
            for m in conn.execute(
                select(logged_model_metrics)
                .where(logged_model_metrics.c.model_id.in_(chunk))
                .order_by(logged_model_metrics.c.id)
            ):
                metrics[m.model_id].append(
                    LoggedModelMetric(
                        m.key,
                        math.nan if m.value is None else m.value,
                        m.timestamp,
                        m.step,
                        model_id=m.model_id,
                        run_id=m.run_id,
                        dataset_name=m.dataset_name,
                        dataset_digest=m.dataset_digest,
                    )
                )
        return [
            LoggedModel(
                experiment_id=str(r.experiment_id),
                model_id=r.model_id,
                name=r.name,
                artifact_location=r.artifact_location,
                creation_timestamp=r.creation_timestamp,
                last_updated_timestamp=r.last_updated_timestamp,
                model_type=r.model_type,
                source_run_id=r.source_run_id,
                status=r.status,
                status_message=r.status_message,
                tags=tags[r.model_id],
                params=params[r.model_id],
                metrics=metrics[r.model_id],
                lifecycle_stage=r.lifecycle_stage,
            )
            for r in rows
        ]

    def _touch(self, conn: Connection, model_id: str, **values: Any) -> None:
        conn.execute(
            update(logged_models)
            .where(logged_models.c.model_id == model_id)
            .values(last_updated_timestamp=_now_ms(), **values)
        )

    def _write_tags(self, conn: Connection, model_id: str, pairs: list[tuple[str, str]]) -> None:
        for key, value in pairs:
            validation.validate_key(key, "Tag")
            stmt = self.store._insert(logged_model_tags).values(
                model_id=model_id, key=key, value=value
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_id", "key"], set_={"value": value}
                )
            )

    def _write_params(self, conn: Connection, model_id: str, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            return
        keys = [k for k, _ in pairs]
        for key in keys:
            validation.validate_key(key, "Param")
        existing = dict(
            conn.execute(
                select(logged_model_params.c.key, logged_model_params.c.value).where(
                    logged_model_params.c.model_id == model_id,
                    logged_model_params.c.key.in_(keys),
                )
            ).all()
        )
        new = {}
        for key, value in pairs:
            if key in existing and existing[key] != value:
                raise InvalidParameterValue(
                    f"Param {key!r} of logged model {model_id} is already {existing[key]!r}; "
                    f"it cannot change to {value!r} (params are immutable)."
                )
            if key not in existing:
                new[key] = value
        if new:
            conn.execute(
                logged_model_params.insert(),
                [{"model_id": model_id, "key": k, "value": v} for k, v in new.items()],
            )

    # -- create, read, finalize ---------------------------------------------------------------
    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Mapping[str, Any] | Sequence[Any] | None = None,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        try:
            exp_key = int(experiment_id)
        except (TypeError, ValueError):
            raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}.") from None
        name = name or names.generate_run_name()
        if "/" in name or ":" in name:
            raise InvalidParameterValue(
                f"Invalid logged model name {name!r}: it may not contain '/' or ':'."
            )
        model_id = f"m-{uuid.uuid4().hex}"
        now = _now_ms()
        with self.store._write() as conn:
            exp = conn.execute(
                select(experiments.c.artifact_location, experiments.c.lifecycle_stage).where(
                    experiments.c.experiment_id == exp_key
                )
            ).first()
            if exp is None:
                raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}.")
            if exp.lifecycle_stage != LifecycleStage.ACTIVE:
                raise InvalidState(
                    f"Experiment {experiment_id} is deleted; restore it to log models to it."
                )
            if source_run_id:
                found = conn.execute(
                    select(runs.c.id).where(runs.c.run_uuid == source_run_id)
                ).first()
                if found is None:
                    raise ResourceDoesNotExist(f"Run {source_run_id!r} not found.")
            location = f"{exp.artifact_location.rstrip('/')}/models/{model_id}/artifacts"
            conn.execute(
                logged_models.insert().values(
                    model_id=model_id,
                    experiment_id=exp_key,
                    name=name,
                    artifact_location=location,
                    creation_timestamp=now,
                    last_updated_timestamp=now,
                    status=LoggedModelStatus.PENDING,
                    model_type=model_type or None,
                    source_run_id=source_run_id or None,
                    lifecycle_stage=LifecycleStage.ACTIVE,
                )
            )
            self._write_tags(conn, model_id, _pairs(tags))
            self._write_params(conn, model_id, _pairs(params))
            return self._models(conn, [self._row(conn, model_id)])[0]

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        with self.store._read() as conn:
            return self._models(conn, [self._row(conn, model_id, allow_deleted)])[0]

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        final = LoggedModelStatus.from_string(status)
        with self.store._write() as conn:
            self._row(conn, model_id)
            self._touch(conn, model_id, status=final)
            return self._models(conn, [self._row(conn, model_id)])[0]

    def delete_logged_model(self, model_id: str) -> None:
        with self.store._write() as conn:
            self._row(conn, model_id)
            self._touch(conn, model_id, lifecycle_stage=LifecycleStage.DELETED)

    # -- tags, params, metrics ----------------------------------------------------------------
    def set_logged_model_tags(
        self, model_id: str, tags: Mapping[str, Any] | Sequence[Any]
    ) -> LoggedModel:
        with self.store._write() as conn:
            self._row(conn, model_id)
            self._write_tags(conn, model_id, _pairs(tags))
            self._touch(conn, model_id)
            return self._models(conn, [self._row(conn, model_id)])[0]

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        with self.store._write() as conn:
            self._row(conn, model_id)
            result = conn.execute(
                delete(logged_model_tags).where(
                    logged_model_tags.c.model_id == model_id, logged_model_tags.c.key == key
                )
            )
            if result.rowcount == 0:
                raise ResourceDoesNotExist(f"No tag {key!r} on logged model {model_id!r}.")
            self._touch(conn, model_id)

    def log_logged_model_params(
        self, model_id: str, params: Mapping[str, Any] | Sequence[Any]
    ) -> None:
        with self.store._write() as conn:
            self._row(conn, model_id)
            self._write_params(conn, model_id, _pairs(params))
            self._touch(conn, model_id)

    def log_logged_model_metrics(self, model_id: str, metrics: Sequence[Any]) -> None:
        """Metrics logged against a model (each may carry ``run_id`` and ``dataset_*``)."""
        rows = []
        for m in metrics:
            validation.validate_key(m.key, "Metric")
            value = validation.metric_value(m.key, m.value)
            rows.append(
                {
                    "model_id": model_id,
                    "key": m.key,
                    "value": None if value != value else value,
                    "timestamp": int(m.timestamp or _now_ms()),
                    "step": int(m.step or 0),
                    "run_id": getattr(m, "run_id", None),
                    "dataset_name": getattr(m, "dataset_name", None),
                    "dataset_digest": getattr(m, "dataset_digest", None),
                }
            )
        if not rows:
            return
        with self.store._write() as conn:
            self._row(conn, model_id)
            conn.execute(logged_model_metrics.insert(), rows)

    # -- search -------------------------------------------------------------------------------
    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        datasets: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        order_by: Sequence[Any] | None = None,
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        if datasets:
            raise InvalidParameterValue(
                "Searching logged models by dataset metrics is not supported yet."
            )
        limit = 100 if max_results is None else max_results
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= 50_000:
            raise InvalidParameterValue(
                f"max_results must be an integer between 1 and {SEARCH_MAX_RESULTS}, "
                f"got {max_results!r}."
            )
        ids = [experiment_ids] if isinstance(experiment_ids, (str, int)) else experiment_ids
        clauses = order_by_strings(order_by)
        return self.store.paged(
            lambda lim, offset: search.compile_logged_models_search(
                list(ids), filter_string, [LifecycleStage.ACTIVE], clauses, lim, offset
            ),
            self._models,
            limit,
            page_token,
        )

    # -- run outputs --------------------------------------------------------------------------
    def log_outputs(self, run_id: str, models: Sequence[LoggedModelOutput]) -> None:
        """Record logged models as outputs of ``run_id`` (at a step); repeating is harmless."""
        run_key = self.store.writable_run_key(run_id)
        with self.store._write() as conn:
            for output in models:
                self._row(conn, output.model_id)
                stmt = self.store._insert(run_model_outputs).values(
                    run_id=run_key, model_id=output.model_id, step=int(output.step or 0)
                )
                conn.execute(stmt.on_conflict_do_nothing())

    def run_outputs(self, run_id: str) -> list[LoggedModelOutput]:
        """The logged models ``run_id`` produced, in the order they were recorded."""
        with self.store._read() as conn:
            row = conn.execute(select(runs.c.id).where(runs.c.run_uuid == run_id)).first()
            if row is None:
                raise ResourceDoesNotExist(f"Run {run_id!r} not found.")
            found = conn.execute(
                select(run_model_outputs.c.model_id, run_model_outputs.c.step)
                .where(run_model_outputs.c.run_id == row.id)
                .order_by(run_model_outputs.c.step, run_model_outputs.c.model_id)
            ).all()
        return [LoggedModelOutput(r.model_id, r.step) for r in found]
