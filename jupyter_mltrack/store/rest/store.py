"""``RestStore``: the Store contract over an MLflow-protocol tracking server.

Talks MLflow's REST API (``/api/2.0/mlflow/...``), so it works against ``mltrack server``,
``mlflow server`` and hosted MLflow servers alike. Entities are mapped by
``store.rest.protocol``; calls, retries and auth are ``store.rest.http``.

Differences from the SQL store, all imposed by the protocol: a write that spans several calls
(buffered metrics beyond one log-batch, ending a run with its last metrics) is not one
transaction; ``gc`` runs on the server host, not through the API.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from jupyter_mltrack import validation
from jupyter_mltrack.entities import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    MetricSeries,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from jupyter_mltrack.exceptions import (
    RESOURCE_DOES_NOT_EXIST,
    InvalidParameterValue,
    InvalidState,
    MlflowException,
    ResourceDoesNotExist,
)
from jupyter_mltrack.store.base import PendingWrites, Store
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.store.rest.http import HttpClient

# MLflow's log-batch limits (per call).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
SEARCH_PAGE_SIZE = 1000
HISTORY_PAGE_SIZE = 25_000
_RUN_COLUMNS = (
    "id",
    "run_uuid",
    "experiment_id",
    "status",
    "artifact_uri",
    "start_time",
    "end_time",
    "name",
    "user_id",
    "lifecycle_stage",
)

MetricRow = tuple[int, str, int, int, float, bool]


class RestStore(Store):
    """Experiments and runs kept by a tracking server at ``uri`` (``http(s)://host[:port]``)."""

    def __init__(self, uri: str) -> None:
        self.tracking_uri = uri.rstrip("/")
        self.http = HttpClient(self.tracking_uri)
        # Where new runs' artifacts go is the server's decision; this is only informative.
        self.artifact_root = "mlflow-artifacts:/"
        # run id <-> the small integer key buffered rows carry (the SQL store's runs.id)
        self._writable: dict[str, int] = {}
        self._run_ids: dict[int, str] = {}
        self._keys = itertools.count(1)
        self._keys_lock = threading.Lock()
        self._registry: Any = None
        self._series_route: bool | None = None  # whether the server downsamples series

    def describe(self) -> str:
        return self.http.display_url

    @property
    def registry(self) -> Any:
        """The server's model registry (``RestRegistry``)."""
        if self._registry is None:
            from jupyter_mltrack.store.rest.registry import RestRegistry

            self._registry = RestRegistry(self.http)
        return self._registry

    def _call(
        self, name: str, body: dict[str, Any] | None = None, repeatable: bool = True
    ) -> dict[str, Any]:
        """Call MLflow endpoint ``name`` (see ``protocol.ROUTES``)."""
        method, path = protocol.ROUTES[name]
        return self.http.call(method, protocol.API_PREFIX + path, body, repeatable=repeatable)

    # -- experiments --------------------------------------------------------------------------
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        validation.validate_experiment_name(name)
        body: dict[str, Any] = {"name": name, "tags": _tag_list(tags)}
        if artifact_location:
            body["artifact_location"] = artifact_location
        answer = self._call("create_experiment", body, repeatable=False)
        return str(answer["experiment_id"])

    def get_experiment(self, experiment_id: str) -> Experiment:
        answer = self._call("get_experiment", {"experiment_id": str(experiment_id)})
        return protocol.experiment_from_json(answer["experiment"])

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            answer = self._call("get_experiment_by_name", {"experiment_name": name})
        except MlflowException as err:
            if err.error_code == RESOURCE_DOES_NOT_EXIST:
                return None
            raise
        return protocol.experiment_from_json(answer["experiment"])

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        body: dict[str, Any] = {
            "view_type": ViewType.to_string(view_type),
            "max_results": max_results,
        }
        if filter_string:
            body["filter"] = filter_string
        if order_by:
            body["order_by"] = list(order_by)
        if page_token:
            body["page_token"] = page_token
        answer = self._call("search_experiments", body)
        found = [protocol.experiment_from_json(e) for e in answer.get("experiments", [])]
        return PagedList(found, answer.get("next_page_token") or None)

    def delete_experiment(self, experiment_id: str) -> None:
        self._call("delete_experiment", {"experiment_id": str(experiment_id)})
        self._forget_writable()

    def restore_experiment(self, experiment_id: str) -> None:
        self._call("restore_experiment", {"experiment_id": str(experiment_id)})

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        validation.validate_experiment_name(new_name)
        body = {"experiment_id": str(experiment_id), "new_name": new_name}
        self._call("update_experiment", body)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        validation.validate_key(key, "Tag")
        body = {
            "experiment_id": str(experiment_id),
            "key": key,
            "value": validation.tag_value(key, value),
        }
        self._call("set_experiment_tag", body)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._call("delete_experiment_tag", {"experiment_id": str(experiment_id), "key": key})

    # -- runs ---------------------------------------------------------------------------------
    def _key_for(self, run_id: str) -> int:
        key = self._writable.get(run_id)
        if key is None:
            with self._keys_lock:
                key = self._writable.get(run_id)
                if key is None:
                    key = next(self._keys)
                    self._run_ids[key] = run_id
                    self._writable[run_id] = key
        return key

    def _forget_writable(self, run_id: str | None = None) -> None:
        with self._keys_lock:
            if run_id is None:
                self._writable.clear()
            else:
                self._writable.pop(run_id, None)
        # _run_ids keeps every key: rows already buffered under one must still find their run

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: dict[str, str],
        run_name: str | None,
    ) -> Run:
        tag_map = {
            k: validation.tag_value(validation.validate_key(k, "Tag"), v) for k, v in tags.items()
        }
        body: dict[str, Any] = {
            "experiment_id": str(experiment_id),
            "user_id": user_id,
            "start_time": start_time,
            "tags": _tag_list(tag_map),
        }
        if run_name is not None:
            body["run_name"] = validation.validate_run_name(run_name)
        answer = self._call("create_run", body, repeatable=False)
        run = protocol.run_from_json(answer["run"])
        self._key_for(run.info.run_id)
        return run

    def get_run(self, run_id: str) -> Run:
        return protocol.run_from_json(self._call("get_run", {"run_id": run_id})["run"])

    def update_run_info(
        self,
        run_id: str,
        run_status: str | None,
        end_time: int | None,
        run_name: str | None,
        tags: dict[str, str] | None = None,
        pending: PendingWrites | None = None,
    ) -> RunInfo:
        """Write ``pending`` and ``tags``, then change status / end time / name.

        Over HTTP these are separate calls in that order, so a run is never seen FINISHED
        without its last metrics.
        """
        conflict: MlflowException | None = None
        if pending:
            try:
                self.write_pending(pending)
            except InvalidParameterValue as err:  # a param conflict: still end the run
                conflict = err
        if tags:
            self.log_batch(run_id, [], [], [RunTag(k, v) for k, v in tags.items()])
        body: dict[str, Any] = {"run_id": run_id}
        if run_status is not None:
            body["status"] = RunStatus.from_string(RunStatus.to_string(run_status))
        if end_time is not None:
            body["end_time"] = validation.int_value(end_time, "end_time")
        if run_name is not None:
            body["run_name"] = validation.validate_run_name(run_name)
        if len(body) == 1:
            info = self.get_run(run_id).info
        else:
            info = protocol.run_info_from_json(self._call("update_run", body)["run_info"])
        if conflict is not None:
            raise conflict
        return info

    def delete_run(self, run_id: str) -> None:
        self._call("delete_run", {"run_id": run_id})
        self._forget_writable(run_id)

    def restore_run(self, run_id: str) -> None:
        self._call("restore_run", {"run_id": run_id})

    def writable_run_key(self, run_id: str) -> int:
        key = self._writable.get(run_id)
        if key is not None:
            return key
        info = self.get_run(run_id).info
        if info.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidState.deleted_run(run_id)
        return self._key_for(run_id)

    # -- logging ------------------------------------------------------------------------------
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        run_key = self.writable_run_key(run_id)
        param_rows = [(k, v) for k, v in validation.new_params(run_id, params, {}).items()]
        tag_rows = [validation.tag_row(run_key, t)[1:] for t in tags]
        metric_rows = [validation.metric_row(run_key, m) for m in metrics]
        conflicts = self._send(run_id, metric_rows, param_rows, tag_rows)
        _raise_conflicts(conflicts)

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        checked = validation.dataset_inputs(datasets)
        self.writable_run_key(run_id)
        if checked:
            body = {
                "run_id": run_id,
                "datasets": [protocol.dataset_input_to_json(d) for d in checked],
            }
            self._call("log_inputs", body)  # repeating it changes nothing: retry is safe

    def write_pending(self, pending: PendingWrites) -> None:
        if not pending:
            return
        per_run: dict[int, tuple[list[Any], list[Any], list[Any]]] = defaultdict(
            lambda: ([], [], [])
        )
        for row in pending.metrics:
            per_run[row[0]][0].append(row)
        for run_key, _run_id, key, value in pending.params:
            per_run[run_key][1].append((key, value))
        for run_key, key, value in pending.tags:
            per_run[run_key][2].append((key, value))
        conflicts: list[MlflowException] = []
        for run_key, (metric_rows, param_rows, tag_rows) in per_run.items():
            run_id = self._run_ids[run_key]
            conflicts.extend(self._send(run_id, metric_rows, param_rows, tag_rows))
        _raise_conflicts(conflicts)

    def write_metric_rows(self, rows: Sequence[MetricRow]) -> None:
        """Persist history rows ``(run_key, key, step, timestamp, value, is_nan)`` now."""
        self.write_pending(PendingWrites(metrics=list(rows)))

    def _send(
        self,
        run_id: str,
        metric_rows: Sequence[MetricRow],
        params: Sequence[tuple[str, str]],
        tags: Sequence[tuple[str, str]],
    ) -> list[MlflowException]:
        """log-batch calls within MLflow's limits; return param conflicts instead of raising.

        A retried log-batch is harmless: servers keep one row per identical metric point, a
        param logged again with the same value and a tag set again change nothing.
        """
        conflicts: list[MlflowException] = []
        for m, p, t in _batches(metric_rows, params, tags):
            body = {
                "run_id": run_id,
                "metrics": [_metric_json(row) for row in m],
                "params": [{"key": k, "value": v} for k, v in p],
                "tags": [{"key": k, "value": v} for k, v in t],
            }
            try:
                self._call("log_batch", body)
            except InvalidParameterValue:
                if not p:
                    raise
                # Most likely a param logged before with another value: the server refused the
                # whole call, so write the rest, then the params one by one to find the culprit.
                if m or t:
                    self._call("log_batch", {**body, "params": []})
                for key, value in p:
                    try:
                        self._call(
                            "log_param",
                            {"run_id": run_id, "key": key, "value": value},
                        )
                    except InvalidParameterValue as err:
                        conflicts.append(err)
        return conflicts

    def delete_tag(self, run_id: str, key: str) -> None:
        self.writable_run_key(run_id)
        self._call("delete_tag", {"run_id": run_id, "key": key})

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        points: list[Metric] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {
                "run_id": run_id,
                "metric_key": key,
                "max_results": HISTORY_PAGE_SIZE,
            }
            if token:
                query["page_token"] = token
            answer = self._call("get_metric_history", query)
            points.extend(protocol.metric_from_json(m) for m in answer.get("metrics", []))
            token = answer.get("next_page_token") or None
            if not token:
                break
        points.sort(key=lambda m: (m.step, m.timestamp))
        return points

    def get_metric_series(
        self, run_ids: Sequence[str], key: str, max_points: int, x_axis: str = "step"
    ) -> dict[str, MetricSeries]:
        """Downsampled in the database by ``mltrack server``; elsewhere every point is read
        and cut here (MLflow's protocol has no such call)."""
        if self._series_route is not False and run_ids:
            method, path = protocol.MLTRACK_ROUTES["get_metric_series"]
            body = {
                "run_ids": list(run_ids),
                "metric_key": key,
                "max_points": max_points,
                "x_axis": x_axis,
            }
            try:
                answer = self.http.call(method, path, body)
            except MlflowException as err:
                if err.error_code != "ENDPOINT_NOT_FOUND":
                    raise
                self._series_route = False
            else:
                self._series_route = True
                return {s["run_id"]: _series_from_json(s) for s in answer.get("series", [])}
        return super().get_metric_series(run_ids, key, max_points, x_axis)

    # -- search -------------------------------------------------------------------------------
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        body: dict[str, Any] = {
            "experiment_ids": [str(e) for e in experiment_ids],
            "run_view_type": ViewType.to_string(run_view_type),
            "max_results": max_results,
        }
        if filter_string:
            body["filter"] = filter_string
        if order_by:
            body["order_by"] = list(order_by)
        if page_token:
            body["page_token"] = page_token
        answer = self._call("search_runs", body)
        found = [protocol.run_from_json(r) for r in answer.get("runs", [])]
        return PagedList(found, answer.get("next_page_token") or None)

    def _all_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: Sequence[str] | None,
    ) -> Iterator[Run]:
        token: str | None = None
        left = max_results
        while left > 0:
            page = self.search_runs(
                experiment_ids,
                filter_string,
                run_view_type,
                min(left, SEARCH_PAGE_SIZE),
                order_by,
                token,
            )
            yield from page
            left -= len(page)
            token = page.token
            if not token or not page:
                return

    def search_runs_columns(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 100_000,
        order_by: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Every page of the search, laid out as the SQL store's columns (for DataFrames)."""
        rows: list[tuple[Any, ...]] = []
        kinds: dict[str, list[tuple[Any, ...]]] = {"metrics": [], "params": [], "tags": []}
        runs = self._all_runs(experiment_ids, filter_string, run_view_type, max_results, order_by)
        for index, run in enumerate(runs):
            info = run.info
            rows.append(
                (
                    index,
                    info.run_id,
                    info.experiment_id,
                    info.status,
                    info.artifact_uri,
                    info.start_time,
                    info.end_time,
                    info.run_name,
                    info.user_id,
                    info.lifecycle_stage,
                )
            )
            for key, value in run.data.metrics.items():
                is_nan = isinstance(value, float) and math.isnan(value)
                kinds["metrics"].append((index, key, value, is_nan))
            kinds["params"].extend((index, k, v) for k, v in run.data.params.items())
            kinds["tags"].extend((index, k, v) for k, v in run.data.tags.items())
        return {"runs": rows, "run_columns": list(_RUN_COLUMNS), **kinds}

    # -- garbage collection -------------------------------------------------------------------
    def gc(self, older_than_ms: int | None = None) -> tuple[list[str], list[str]]:
        raise MlflowException(
            f"gc cannot run through the tracking server at {self.describe()}: the REST API has "
            "no call for permanent deletion. Run it on the server host against the server's "
            "own store, e.g. `mltrack gc` with that store's URI, or `mlflow gc "
            "--backend-store-uri ...` for an MLflow server.",
            error_code="INVALID_STATE",
        )


# -- helpers ------------------------------------------------------------------------------------
def _tag_list(tags: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"key": str(k), "value": str(v)} for k, v in (tags or {}).items()]


def _series_from_json(data: dict[str, Any]) -> MetricSeries:
    return MetricSeries(
        run_id=data["run_id"],
        key=data["key"],
        x_axis=data.get("x_axis", "step"),
        x=[float(x) for x in data.get("x", [])],
        values=[protocol.to_float(v, "values") for v in data.get("values", [])],
        total_points=protocol.to_int(data.get("total_points"), "total_points"),
        downsampled=bool(data.get("downsampled")),
    )


def _metric_json(row: MetricRow) -> dict[str, Any]:
    _, key, step, timestamp, value, is_nan = row
    return protocol.metric_to_json(Metric(key, math.nan if is_nan else value, timestamp, step))


def _batches(
    metrics: Sequence[MetricRow],
    params: Sequence[tuple[str, str]],
    tags: Sequence[tuple[str, str]],
) -> Iterator[tuple[Sequence[MetricRow], Sequence[tuple[str, str]], Sequence[tuple[str, str]]]]:
    """Split writes into log-batch calls within MLflow's limits, params and tags first."""
    m = p = t = 0
    while m < len(metrics) or p < len(params) or t < len(tags):
        n_params = min(MAX_PARAMS_TAGS_PER_BATCH, len(params) - p)
        n_tags = min(MAX_PARAMS_TAGS_PER_BATCH, len(tags) - t)
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - n_params - n_tags)
        n_metrics = min(room, len(metrics) - m)
        yield metrics[m : m + n_metrics], params[p : p + n_params], tags[t : t + n_tags]
        m, p, t = m + n_metrics, p + n_params, t + n_tags


def _raise_conflicts(conflicts: Sequence[MlflowException]) -> None:
    if len(conflicts) == 1:
        raise conflicts[0]
    if conflicts:
        raise InvalidParameterValue(" ".join(err.message for err in conflicts))


__all__ = ["ResourceDoesNotExist", "RestStore"]
