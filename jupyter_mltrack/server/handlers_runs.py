"""Routes for the store, experiments, runs, metric histories and artifacts (all reads)."""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop

from jupyter_mltrack.entities import MetricSeries, Run, ViewType
from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist
from jupyter_mltrack.server.base import MLTrackHandler
from jupyter_mltrack.server.store_choice import StoreNotCreated, StoreUnavailable
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking.client import Client

# Where %%track keeps a cell's source (see notebook/cellrun.py; not imported: it needs IPython).
CELL_SOURCE_ARTIFACT = "cell/source.py"
CELL_SOURCE_TAG = "mltrack.cell.source"

MAX_RUNS_PAGE = 1000
TEXT_NAMES = ("MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "Dockerfile")
TEXT_SUFFIXES = (".txt", ".yaml", ".yml", ".py", ".md", ".log", ".cfg", ".ini", ".toml", ".sh")


class StoreHandler(MLTrackHandler):
    """``GET`` the store in force and whether it opens; ``POST {"tracking_uri"}`` switches."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(lambda: self.store_choice.status(self.query("notebook")))

    @tornado.web.authenticated
    async def post(self) -> None:
        def work() -> dict[str, Any]:
            uri = self.body().get("tracking_uri")
            if uri is not None and not isinstance(uri, str):
                raise InvalidParameterValue("tracking_uri must be a string (or null for default).")
            self.store_choice.switch(uri)
            return self.store_choice.status(self.query("notebook"))

        await self.answer(work)

    def error_reply(self, err: Exception) -> tuple[int, dict[str, Any]]:
        if isinstance(err, StoreUnavailable):  # a switch that failed: the caller's input
            body = {"error_code": "INVALID_PARAMETER_VALUE", "message": err.message}
            return 400, {**body, "hint": err.hint, "tracking_uri": err.tracking_uri}
        return super().error_reply(err)


class ExperimentsHandler(MLTrackHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        def work() -> dict[str, Any]:
            try:
                experiments = _all_experiments(self.client())
            except StoreNotCreated:
                experiments = []
            return {"experiments": [protocol.experiment_to_json(e) for e in experiments]}

        await self.answer(work)


class RunsHandler(MLTrackHandler):
    """One page of runs: ``experiment_ids``, ``filter``, ``order_by``, ``max_results``, ``page_token``."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(self.runs_page)

    def runs_page(self) -> dict[str, Any]:
        max_results = self.query_int("max_results", 50, 1, MAX_RUNS_PAGE)
        view_type = protocol.view_type_from_json(self.query("view_type"))
        order_by = [o for o in self.get_query_arguments("order_by") if o.strip()]
        try:
            client = self.client()
        except StoreNotCreated:
            return {"runs": [], "next_page_token": None}
        ids = self.query_list("experiment_ids") or [
            e.experiment_id for e in _all_experiments(client)
        ]
        if not ids:
            return {"runs": [], "next_page_token": None}
        page = client.search_runs(
            ids,
            self.query("filter", "") or "",
            view_type,
            max_results,
            order_by or None,
            self.query("page_token"),
        )
        return {"runs": [protocol.run_to_json(r) for r in page], "next_page_token": page.token}


class RunHandler(MLTrackHandler):
    """A run with its cell source and metric keys."""

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        def work() -> dict[str, Any]:
            client = self.client()
            run = client.get_run(run_id)
            return {
                "run": protocol.run_to_json(run),
                "cell_source": _cell_source(client, run),
                "metric_keys": sorted(run.data.metrics),
            }

        await self.answer(work)


class MetricHistoryHandler(MLTrackHandler):
    """One run's history of one metric, cut to about ``max_points`` in the database."""

    @tornado.web.authenticated
    async def get(self, run_id: str, key: str) -> None:
        def work() -> dict[str, Any]:
            client = self.client()
            series = self._series(client, [run_id], key).get(run_id)
            if series is None:
                client.get_run(run_id)  # an unknown run: 404 saying so
                raise ResourceDoesNotExist(f"Run {run_id} has no metric {key!r}.")
            return _series_json(series)

        await self.answer(work)

    def _series(self, client: Client, run_ids: list[str], key: str) -> dict[str, MetricSeries]:
        x_axis = self.query("x_axis", "step")
        if x_axis not in ("step", "timestamp"):
            raise InvalidParameterValue(f"x_axis must be 'step' or 'timestamp', got {x_axis!r}.")
        max_points = self.query_int("max_points", 500, 16, 100_000)
        return client.get_metric_series(run_ids, key, max_points, x_axis or "step")


class MetricSeriesHandler(MetricHistoryHandler):
    """Several runs' histories of one metric, for comparisons (runs without it left out)."""

    @tornado.web.authenticated
    async def get(self) -> None:  # type: ignore[override]
        def work() -> dict[str, Any]:
            run_ids = self.query_list("run_ids")
            key = self.query("key")
            if not run_ids or not key:
                raise InvalidParameterValue("Give run_ids (comma-separated) and key.")
            series = self._series(self.client(), run_ids, key)
            return {"series": {rid: _series_json(s) for rid, s in series.items()}}

        await self.answer(work)


class ArtifactListHandler(MLTrackHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        def work() -> dict[str, Any]:
            files = self.client().list_artifacts(run_id, self.query("path"))
            return {"files": [protocol.file_info_to_json(f) for f in files]}

        await self.answer(work)


class ArtifactHandler(MLTrackHandler):
    """The bytes of one artifact file, with a content type from its name."""

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        path = self.query("path")
        try:
            if not path:
                raise InvalidParameterValue("Give the artifact's path, e.g. ?path=model/MLmodel.")
            max_bytes = protocol.to_int(self.query("max_bytes"), "max_bytes")
            data = await IOLoop.current().run_in_executor(
                None, lambda: self.client().read_artifact(run_id, path, max_bytes)
            )
        except Exception as err:
            status, body = self.error_reply(err)
            self.set_status(status)
            self.finish(body)
            return
        self.set_header("X-Content-Type-Options", "nosniff")
        # Artifacts are user content served from Jupyter's origin: an HTML or SVG file must not
        # run scripts with the user's session (the same rule as Jupyter's own file handler).
        self.set_header("Content-Security-Policy", "sandbox allow-scripts")
        self.finish(data, set_content_type=content_type(path))


def content_type(path: str) -> str:
    """The Content-Type for an artifact: text for model metadata and configs, else by suffix."""
    name = posixpath.basename(path)
    if name in TEXT_NAMES or name.endswith(TEXT_SUFFIXES):
        return "text/plain; charset=utf-8"
    if name.endswith(".json"):
        return "application/json"
    guessed, _ = mimetypes.guess_type(name)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def _all_experiments(client: Client) -> list[Any]:
    experiments: list[Any] = []
    token = None
    while True:
        page = client.search_experiments(ViewType.ACTIVE_ONLY, 1000, page_token=token)
        experiments.extend(page)
        token = page.token
        if not token:
            return experiments


def _cell_source(client: Client, run: Run) -> str | None:
    try:  # the artifact holds any length; the tag only short cells
        return client.read_artifact(run.info.run_id, CELL_SOURCE_ARTIFACT).decode("utf-8")
    except ResourceDoesNotExist:
        return run.data.tags.get(CELL_SOURCE_TAG)


def _series_json(series: MetricSeries) -> dict[str, Any]:
    return {
        "key": series.key,
        "x_axis": series.x_axis,
        "x": series.x,
        "values": [protocol.float_json(v) for v in series.values],
        "downsampled": series.downsampled,
        "total_points": series.total_points,
    }
