"""The SQL store (SQLAlchemy Core): one implementation for SQLite and PostgreSQL."""

from __future__ import annotations

import math
import operator
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import and_, delete, exc, or_, select, update
from sqlalchemy.engine import Connection

from jupyter_mltrack import names, search, validation
from jupyter_mltrack.entities import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    MetricSeries,
    PagedList,
    Param,
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
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    StoreError,
)
from jupyter_mltrack.store.artifacts import get_artifact_repository
from jupyter_mltrack.store.base import PendingWrites, Store
from jupyter_mltrack.store.datasets import SqlDatasets
from jupyter_mltrack.store.engine import make_engine
from jupyter_mltrack.store.migrate import ensure_schema
from jupyter_mltrack.store.schema import (
    experiment_tags,
    experiments,
    latest_metrics,
    runs,
)
from jupyter_mltrack.store.schema import metrics as metric_history
from jupyter_mltrack.store.schema import params as run_params
from jupyter_mltrack.store.schema import tags as run_tags
from jupyter_mltrack.store.series_sql import metric_series_sql

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
SEARCH_MAX_RESULTS = 50_000
RUN_NAME_TAG = "mlflow.runName"
_METRIC_COLUMNS = ("run_id", "key", "step", "timestamp", "value", "is_nan")
_STEP_TIME = operator.itemgetter(2, 3)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _experiment_key(experiment_id: str | int) -> int:
    try:
        return int(experiment_id)
    except (TypeError, ValueError):
        raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}.") from None


class SqlStore(Store):
    """Tracking data in a SQL database; artifacts under ``artifact_root`` (a URI)."""

    def __init__(self, db_url: str, artifact_root: str) -> None:
        self.db_url = db_url
        self.artifact_root = artifact_root.rstrip("/")
        self.engine = make_engine(db_url)
        self.dialect = self.engine.dialect.name
        try:
            self._ensure_schema()
        except StoreError:
            self.engine.dispose()
            raise
        except exc.DBAPIError as err:
            self.engine.dispose()
            raise StoreError(f"Cannot open the store {self.describe()}: {err.orig}") from None
        self._registry: Any = None
        self._logged_models: Any = None
        self.datasets = SqlDatasets(self)
        # experiment key -> artifact location, for experiments known to be active here
        self._active_experiments: dict[int, str] = {}
        # run_uuid -> runs.id for runs known to be writable (not deleted) in this process
        self._writable: dict[str, int] = {}
        self._build_statements()
        self._ensure_default_experiment()
        if self.dialect == "sqlite":
            self._refresh_statistics()

    def _ensure_schema(self, attempts: int = 8) -> None:
        """Create or upgrade the schema; on SQLite, retry the rare immediate "database is
        locked" of two processes opening one fresh file at once (switching a new file to WAL
        can fail without waiting for the busy timeout)."""
        for attempt in range(attempts):
            try:
                ensure_schema(self.engine)
                return
            except exc.OperationalError as err:
                locked = self.dialect == "sqlite" and "locked" in str(err.orig)
                if not locked or attempt == attempts - 1:
                    raise
                time.sleep(min(1.0, 0.05 * 2**attempt))

    @property
    def registry(self) -> Any:
        """The model registry kept in the same database (``SqlRegistry``)."""
        if self._registry is None:
            from jupyter_mltrack.store.registry import SqlRegistry

            self._registry = SqlRegistry(self)
        return self._registry

    @property
    def logged_models(self) -> Any:
        """MLflow 3's logged models kept in the same database (``SqlLoggedModels``)."""
        if self._logged_models is None:
            from jupyter_mltrack.store.logged_models import SqlLoggedModels

            self._logged_models = SqlLoggedModels(self)
        return self._logged_models

    def describe(self) -> str:
        """The database URL without its password."""
        return self.engine.url.render_as_string(hide_password=True)

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        dbapi_error = self.engine.dialect.dbapi.Error  # type: ignore[union-attr]
        try:
            with self.engine.connect() as conn:
                conn.execution_options(mltrack_write=True)
                with conn.begin():
                    yield conn
        except dbapi_error as err:  # from a prepared statement on the raw cursor
            raise exc.DBAPIError.instance(None, None, err, dbapi_error) from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _build_statements(self) -> None:
        """Hot-path statements built and compiled once (see ``prepared``)."""
        from sqlalchemy import bindparam

        from jupyter_mltrack.store.prepared import Prepared

        dialect = self.engine.dialect
        run_columns = [c.name for c in runs.c if c.name not in ("id", "deleted_time")]
        self._p_insert_run = Prepared(runs.insert().returning(runs.c.id), dialect, run_columns)
        self._p_insert_tag = Prepared(run_tags.insert(), dialect, ["run_id", "key", "value"])
        self._p_finish_run = Prepared(
            update(runs)
            .where(runs.c.run_uuid == bindparam("b_run_uuid"))
            .values(status=bindparam("b_status"), end_time=bindparam("b_end_time"))
            .returning(*runs.c),
            dialect,
        )
        self._run_columns = [c.name for c in runs.c]
        tag = self._insert(run_tags)
        self._tag_upsert = tag.on_conflict_do_update(
            index_elements=["run_id", "key"], set_={"value": tag.excluded.value}
        )
        self._param_insert = self._insert(run_params).on_conflict_do_nothing()
        latest = self._insert(latest_metrics)
        ex = latest.excluded
        self._latest_upsert = latest.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                "value": ex.value,
                "is_nan": ex.is_nan,
                "timestamp": ex.timestamp,
                "step": ex.step,
            },
            where=or_(
                ex.step > latest_metrics.c.step,
                and_(ex.step == latest_metrics.c.step, ex.timestamp >= latest_metrics.c.timestamp),
            ),
        )

        self._p_tag_upsert = Prepared(self._tag_upsert, dialect, ["run_id", "key", "value"])
        self._p_param_insert = Prepared(
            self._param_insert, dialect, ["run_id", "key", "value", "value_num"]
        )
        self._p_latest_upsert = Prepared(
            self._latest_upsert, dialect, ["run_id", "key", "value", "is_nan", "timestamp", "step"]
        )
        self._p_metric_insert = Prepared(
            self._insert(metric_history).on_conflict_do_nothing(), dialect, list(_METRIC_COLUMNS)
        )

    def paged(
        self,
        build: Callable[[int, int], Any],
        convert: Callable[[Connection, Sequence[Any]], list[Any]],
        max_results: int,
        page_token: str | None,
    ) -> PagedList[Any]:
        """One page of a search: ``build(limit, offset)`` makes the query (one row more than a
        page, to know whether another page follows), ``convert`` turns the rows into entities."""
        offset = search.decode_page_token(page_token)
        with self._read() as conn:
            rows = conn.execute(build(max_results + 1, offset)).all()
            found = convert(conn, rows[:max_results])
        return PagedList(found, search.next_page_token(rows, max_results, offset))

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def _refresh_statistics(self) -> None:
        """Keep SQLite's planner statistics roughly current (ANALYZE when runs doubled).

        Without them SQLite guesses that a metric range is selective and sorts thousands of
        rows for a default-ordered search; with them the same search reads one page.
        """
        from sqlalchemy import text

        with self._read() as conn:
            runs_now = conn.execute(text("SELECT max(id) FROM runs")).scalar() or 0
            if runs_now < 1000:
                return
            has_stats = conn.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            ).scalar()
            counted = 0
            if has_stats:
                stat = conn.execute(
                    text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs' LIMIT 1")
                ).scalar()
                counted = int(stat.split()[0]) if stat else 0
        if counted * 2 > runs_now:
            return
        with self._write() as conn:
            conn.exec_driver_sql("PRAGMA analysis_limit = 1000")
            conn.exec_driver_sql("ANALYZE")

    # -- experiments --------------------------------------------------------------------------
    def _ensure_default_experiment(self) -> None:
        with self._read() as conn:
            exists = conn.execute(
                select(experiments.c.experiment_id).where(experiments.c.experiment_id == 0)
            ).first()
        if exists:
            return
        now = _now_ms()
        with self._write() as conn:
            conn.execute(
                self._insert(experiments)
                .values(
                    experiment_id=0,
                    name=DEFAULT_EXPERIMENT_NAME,
                    artifact_location=f"{self.artifact_root}/0",
                    lifecycle_stage=LifecycleStage.ACTIVE,
                    creation_time=now,
                    last_update_time=now,
                )
                .on_conflict_do_nothing()
            )

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        validation.validate_experiment_name(name)
        now = _now_ms()
        try:
            with self._write() as conn:
                existing = conn.execute(
                    select(experiments.c.lifecycle_stage).where(experiments.c.name == name)
                ).first()
                if existing:
                    raise self._name_taken(name, existing.lifecycle_stage)
                result = conn.execute(
                    experiments.insert().values(
                        name=name,
                        artifact_location=artifact_location or "",
                        lifecycle_stage=LifecycleStage.ACTIVE,
                        creation_time=now,
                        last_update_time=now,
                    )
                )
                key = result.inserted_primary_key[0]
                if not artifact_location:
                    conn.execute(
                        update(experiments)
                        .where(experiments.c.experiment_id == key)
                        .values(artifact_location=f"{self.artifact_root}/{key}")
                    )
                for tag_key, value in (tags or {}).items():
                    validation.validate_key(tag_key, "Tag")
                    conn.execute(
                        experiment_tags.insert().values(
                            experiment_id=key,
                            key=tag_key,
                            value=validation.tag_value(tag_key, value),
                        )
                    )
        except exc.IntegrityError:
            raise self._name_taken(name, LifecycleStage.ACTIVE) from None
        return str(key)

    @staticmethod
    def _name_taken(name: str, stage: str) -> ResourceAlreadyExists:
        hint = (
            " It is deleted: restore it with restore_experiment, or remove it for good with "
            "`mltrack gc`."
            if stage == LifecycleStage.DELETED
            else ""
        )
        return ResourceAlreadyExists(f"Experiment {name!r} already exists.{hint}")

    def _experiments_from_rows(self, conn: Connection, rows: Sequence[Any]) -> list[Experiment]:
        if not rows:
            return []
        keys = [r.experiment_id for r in rows]
        tag_map: dict[int, dict[str, str]] = {k: {} for k in keys}
        for t in conn.execute(
            select(experiment_tags).where(experiment_tags.c.experiment_id.in_(keys))
        ):
            tag_map[t.experiment_id][t.key] = t.value
        return [
            Experiment(
                experiment_id=str(r.experiment_id),
                name=r.name,
                artifact_location=r.artifact_location,
                lifecycle_stage=r.lifecycle_stage,
                tags=tag_map[r.experiment_id],
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
            )
            for r in rows
        ]

    def get_experiment(self, experiment_id: str) -> Experiment:
        key = _experiment_key(experiment_id)
        with self._read() as conn:
            row = conn.execute(
                select(experiments).where(experiments.c.experiment_id == key)
            ).first()
            if row is None:
                raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}.")
            return self._experiments_from_rows(conn, [row])[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._read() as conn:
            row = conn.execute(select(experiments).where(experiments.c.name == name)).first()
            return self._experiments_from_rows(conn, [row])[0] if row else None

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        _check_max_results(max_results)
        return self.paged(
            lambda limit, offset: search.compile_experiments_search(
                filter_string, ViewType.stages(view_type), order_by, limit, offset
            ),
            self._experiments_from_rows,
            max_results,
            page_token,
        )

    def _set_experiment_stage(self, experiment_id: str, stage: str) -> None:
        key = _experiment_key(experiment_id)
        if stage == LifecycleStage.DELETED and key == 0:
            raise InvalidParameterValue("The default experiment (id '0') cannot be deleted.")
        now = _now_ms()
        with self._write() as conn:
            row = conn.execute(
                select(experiments.c.lifecycle_stage, experiments.c.last_update_time).where(
                    experiments.c.experiment_id == key
                )
            ).first()
            if row is None:
                raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}.")
            if row.lifecycle_stage == stage:
                verb = "deleted" if stage == LifecycleStage.DELETED else "active"
                raise InvalidState(f"Experiment {experiment_id!r} is already {verb}.")
            conn.execute(
                update(experiments)
                .where(experiments.c.experiment_id == key)
                .values(lifecycle_stage=stage, last_update_time=now)
            )
            self._active_experiments.pop(key, None)
            if stage == LifecycleStage.DELETED:
                conn.execute(
                    update(runs)
                    .where(
                        runs.c.experiment_id == key, runs.c.lifecycle_stage == LifecycleStage.ACTIVE
                    )
                    .values(lifecycle_stage=LifecycleStage.DELETED, deleted_time=now)
                )
                self._writable.clear()
            else:  # restore the runs that were deleted together with the experiment
                conn.execute(
                    update(runs)
                    .where(runs.c.experiment_id == key, runs.c.deleted_time == row.last_update_time)
                    .values(lifecycle_stage=LifecycleStage.ACTIVE, deleted_time=None)
                )

    def delete_experiment(self, experiment_id: str) -> None:
        self._set_experiment_stage(experiment_id, LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        self._set_experiment_stage(experiment_id, LifecycleStage.ACTIVE)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        validation.validate_experiment_name(new_name)
        key = _experiment_key(experiment_id)
        try:
            with self._write() as conn:
                result = conn.execute(
                    update(experiments)
                    .where(experiments.c.experiment_id == key)
                    .values(name=new_name, last_update_time=_now_ms())
                )
                if result.rowcount == 0:
                    raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}.")
        except exc.IntegrityError:
            raise ResourceAlreadyExists(f"Experiment {new_name!r} already exists.") from None

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        validation.validate_key(key, "Tag")
        text = validation.tag_value(key, value)
        exp_key = _experiment_key(experiment_id)
        with self._write() as conn:
            self._require_experiment(conn, exp_key, experiment_id, active=True)
            stmt = self._insert(experiment_tags).values(experiment_id=exp_key, key=key, value=text)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["experiment_id", "key"], set_={"value": stmt.excluded.value}
                )
            )

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        exp_key = _experiment_key(experiment_id)
        with self._write() as conn:
            self._require_experiment(conn, exp_key, experiment_id, active=True)
            deleted = conn.execute(
                delete(experiment_tags).where(
                    experiment_tags.c.experiment_id == exp_key, experiment_tags.c.key == key
                )
            ).rowcount
        if not deleted:
            raise ResourceDoesNotExist(f"No tag with name {key!r} in experiment {experiment_id}.")

    def _require_experiment(
        self, conn: Connection, key: int, experiment_id: str, active: bool
    ) -> Any:
        row = conn.execute(
            select(experiments.c.lifecycle_stage, experiments.c.artifact_location).where(
                experiments.c.experiment_id == key
            )
        ).first()
        if row is None:
            raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}.")
        if active and row.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidState(
                f"Experiment {experiment_id!r} is deleted; restore it (restore_experiment) "
                "before adding to it."
            )
        return row

    # -- runs ---------------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: dict[str, str],
        run_name: str | None,
    ) -> Run:
        exp_key = _experiment_key(experiment_id)
        tag_map = {
            k: validation.tag_value(validation.validate_key(k, "Tag"), v) for k, v in tags.items()
        }
        name = run_name or tag_map.get(RUN_NAME_TAG) or names.generate_run_name()
        validation.validate_run_name(name)
        tag_map[RUN_NAME_TAG] = name
        run_uuid = uuid.uuid4().hex
        location = self._active_experiments.get(exp_key)
        with self._write() as conn:
            if location is None:
                location = self._require_experiment(
                    conn, exp_key, experiment_id, active=True
                ).artifact_location
                self._active_experiments[exp_key] = location
            artifact_uri = f"{location.rstrip('/')}/{run_uuid}/artifacts"
            run_key = self._p_insert_run.execute(
                conn,
                {
                    "run_uuid": run_uuid,
                    "experiment_id": exp_key,
                    "name": name,
                    "user_id": user_id,
                    "status": RunStatus.RUNNING,
                    "start_time": start_time,
                    "end_time": None,
                    "lifecycle_stage": LifecycleStage.ACTIVE,
                    "artifact_uri": artifact_uri,
                },
            ).fetchone()[0]
            self._p_insert_tag.executemany(
                conn, [{"run_id": run_key, "key": k, "value": v} for k, v in tag_map.items()]
            )
        self._writable[run_uuid] = run_key
        info = RunInfo(
            run_id=run_uuid,
            experiment_id=str(exp_key),
            user_id=user_id,
            status=RunStatus.RUNNING,
            start_time=start_time,
            end_time=None,
            lifecycle_stage=LifecycleStage.ACTIVE,
            artifact_uri=artifact_uri,
            run_name=name,
        )
        return Run(info, RunData.from_dicts({}, {}, dict(tag_map)))

    def _run_row(self, conn: Connection, run_id: str) -> Any:
        row = conn.execute(select(runs).where(runs.c.run_uuid == run_id)).first()
        if row is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found.")
        return row

    def get_run(self, run_id: str) -> Run:
        with self._read() as conn:
            row = self._run_row(conn, run_id)
            data = self._run_data(conn, [row.id])[row.id]
            inputs = self.datasets.inputs_of(conn, [row.id]).get(row.id)
        return Run(_run_info(row), data, RunInputs(inputs))

    def get_run_tag(self, run_id: str, key: str) -> str | None:
        """One tag's value with one query (no run data loaded); None when it is not set."""
        query = (
            select(run_tags.c.value)
            .join(runs, runs.c.id == run_tags.c.run_id)
            .where(runs.c.run_uuid == run_id, run_tags.c.key == key)
        )
        with self._read() as conn:
            return conn.execute(query).scalar()

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        self.datasets.log_inputs(run_id, datasets)

    def _run_data(self, conn: Connection, run_keys: Any) -> dict[int, RunData]:
        """Params, latest metrics and tags for runs (a list of keys or a subquery of keys)."""
        maps = self._run_maps(conn, run_keys)
        out: dict[int, RunData] = {}
        if isinstance(run_keys, list):
            for key in run_keys:
                out[key] = RunData.from_dicts({}, {}, {})
        for kind in ("metrics", "params", "tags"):
            for key, values in maps[kind].items():
                out.setdefault(key, RunData.from_dicts({}, {}, {}))
                setattr(out[key], kind, values)
        return out

    def _run_maps(self, conn: Connection, run_keys: Any) -> dict[str, dict[int, dict[str, Any]]]:
        """One query per kind: ``{kind: {run_key: {key: value}}}``."""
        maps: dict[str, dict[int, dict[str, Any]]] = {"metrics": {}, "params": {}, "tags": {}}
        nan = math.nan
        metric_rows = conn.execute(
            select(
                latest_metrics.c.run_id,
                latest_metrics.c.key,
                latest_metrics.c.value,
                latest_metrics.c.is_nan,
            ).where(latest_metrics.c.run_id.in_(run_keys))
        )
        target = maps["metrics"]
        for run_key, key, value, is_nan in metric_rows:
            target.setdefault(run_key, {})[key] = nan if is_nan else value
        for kind, table in (("params", run_params), ("tags", run_tags)):
            target = maps[kind]
            for run_key, key, value in conn.execute(
                select(table.c.run_id, table.c.key, table.c.value).where(
                    table.c.run_id.in_(run_keys)
                )
            ):
                target.setdefault(run_key, {})[key] = value
        return maps

    def update_run_info(
        self,
        run_id: str,
        run_status: str | None,
        end_time: int | None,
        run_name: str | None,
        tags: dict[str, str] | None = None,
        pending: PendingWrites | None = None,
    ) -> RunInfo:
        """Change status / end time / name (and set ``tags``, write ``pending``) in one
        transaction."""
        values: dict[str, Any] = {}
        if run_status is not None:
            values["status"] = RunStatus.from_string(RunStatus.to_string(run_status))
        if end_time is not None:
            values["end_time"] = validation.int_value(end_time, "end_time")
        if run_name is not None:
            values["name"] = validation.validate_run_name(run_name)
        tag_map = dict(tags or {})
        if run_name is not None:
            tag_map[RUN_NAME_TAG] = run_name
        conflicts: list[str] = []
        with self._write() as conn:
            if pending:
                conflicts = self._write_pending(conn, pending)
            if set(values) == {"status", "end_time"}:  # ending a run: the hot path
                found = self._p_finish_run.execute(
                    conn,
                    {
                        "b_run_uuid": run_id,
                        "b_status": values["status"],
                        "b_end_time": values["end_time"],
                    },
                ).fetchone()
                row = None if found is None else _Row(zip(self._run_columns, found))
            elif values:
                row = conn.execute(
                    update(runs)
                    .where(runs.c.run_uuid == run_id)
                    .values(**values)
                    .returning(*runs.c)
                ).first()
            else:
                row = self._run_row(conn, run_id)
            if row is None:
                raise ResourceDoesNotExist(f"Run {run_id!r} not found.")
            if tag_map:
                self._p_tag_upsert.executemany(
                    conn, [{"run_id": row.id, "key": k, "value": v} for k, v in tag_map.items()]
                )
        _raise_conflicts(conflicts)
        return _run_info(row)

    def _set_run_stage(self, run_id: str, stage: str) -> None:
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            deleted_time = _now_ms() if stage == LifecycleStage.DELETED else None
            conn.execute(
                update(runs)
                .where(runs.c.id == row.id)
                .values(lifecycle_stage=stage, deleted_time=deleted_time)
            )
        self._writable.pop(run_id, None)

    def delete_run(self, run_id: str) -> None:
        self._set_run_stage(run_id, LifecycleStage.DELETED)

    def restore_run(self, run_id: str) -> None:
        self._set_run_stage(run_id, LifecycleStage.ACTIVE)

    def writable_run_key(self, run_id: str) -> int:
        key = self._writable.get(run_id)
        if key is not None:
            return key
        with self._read() as conn:
            row = conn.execute(
                select(runs.c.id, runs.c.lifecycle_stage).where(runs.c.run_uuid == run_id)
            ).first()
        if row is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found.")
        if row.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidState.deleted_run(run_id)
        self._writable[run_id] = row.id
        return row.id

    # -- logging ------------------------------------------------------------------------------
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        run_key = self.writable_run_key(run_id)
        param_values = validation.new_params(run_id, params, {})
        tag_rows = [
            {"run_id": k, "key": key, "value": v}
            for k, key, v in (validation.tag_row(run_key, t) for t in tags)
        ]
        metric_rows = [validation.metric_row(run_key, m) for m in metrics]
        with self._write() as conn:
            conflicts = self._insert_params(
                conn, [(run_key, run_id, k, v) for k, v in param_values.items()]
            )
            _raise_conflicts(conflicts)  # rolls the whole batch back: all or nothing
            if tag_rows:
                conn.execute(self._tag_upsert, tag_rows)
            if metric_rows:
                self._insert_metrics(conn, metric_rows)

    def _insert_params(
        self, conn: Connection, rows: Sequence[tuple[int, str, str, str]]
    ) -> list[str]:
        """Insert ``(run_key, run_id, key, value)`` rows; return a message per conflicting key
        (a key already stored with another value) instead of raising, so the caller decides."""
        if not rows:
            return []
        params = [
            {"run_id": k, "key": key, "value": v, "value_num": validation.numeric_shadow(v)}
            for k, _, key, v in rows
        ]
        inserted = self._p_param_insert.executemany(conn, params)
        if inserted == len(params) and self.dialect == "sqlite":
            return []  # every key was new: nothing to compare
        wanted = {(k, key): (run_id, v) for k, run_id, key, v in rows}
        stored = conn.execute(
            select(run_params.c.run_id, run_params.c.key, run_params.c.value).where(
                run_params.c.run_id.in_({k for k, *_ in rows}),
                run_params.c.key.in_({key for _, _, key, _ in rows}),
            )
        ).all()
        conflicts = []
        for run_key, key, old in stored:
            run_id, new = wanted.get((run_key, key), (None, old))
            if old != new:
                conflicts.append(
                    f"Changing param values is not allowed. Param {key!r} was already logged "
                    f"with value {old!r} for run {run_id!r}; attempted new value {new!r}. Log it "
                    "under another name, or start a new run."
                )
        return conflicts

    def _write_pending(self, conn: Connection, pending: PendingWrites) -> list[str]:
        conflicts = self._insert_params(conn, pending.params)
        if pending.tags:
            self._p_tag_upsert.executemany(
                conn, [{"run_id": k, "key": key, "value": v} for k, key, v in pending.tags]
            )
        if pending.metrics:
            self._insert_metrics(conn, pending.metrics)
        return conflicts

    def write_pending(self, pending: PendingWrites) -> None:
        if not pending:
            return
        try:
            with self._write() as conn:
                conflicts = self._write_pending(conn, pending)
        except exc.IntegrityError:
            # A run was removed for good (``mltrack gc`` elsewhere) while its writes waited in
            # the buffer: keep every other run's writes of the batch, report the lost ones.
            lost = self._write_surviving(pending)
            if not lost:
                raise
            raise ResourceDoesNotExist(
                f"{lost} buffered write(s) could not be stored: their run was removed "
                "permanently (mltrack gc) before they were flushed. The other writes were kept."
            ) from None
        _raise_conflicts(conflicts)

    def write_metric_rows(self, rows: Sequence[tuple[int, str, int, int, float, bool]]) -> None:
        """Persist history rows ``(run_key, key, step, timestamp, value, is_nan)`` now."""
        self.write_pending(PendingWrites(metrics=list(rows)))

    def _write_surviving(self, pending: PendingWrites) -> int:
        """Write the buffered rows whose run still exists; return how many were dropped."""
        keys = {row[0] for rows in (pending.metrics, pending.params, pending.tags) for row in rows}
        with self._write() as conn:
            alive = set(conn.execute(select(runs.c.id).where(runs.c.id.in_(keys))).scalars())
            kept = PendingWrites(
                [r for r in pending.metrics if r[0] in alive],
                [r for r in pending.params if r[0] in alive],
                [r for r in pending.tags if r[0] in alive],
            )
            if kept:
                self._write_pending(conn, kept)
        gone = keys - alive
        if gone:
            self._writable = {u: k for u, k in self._writable.items() if k not in gone}
        total = len(pending.metrics) + len(pending.params) + len(pending.tags)
        return total - (len(kept.metrics) + len(kept.params) + len(kept.tags))

    def _insert_metrics(
        self, conn: Connection, rows: Sequence[tuple[int, str, int, int, float, bool]]
    ) -> None:
        """History rows through the driver's executemany as they are (the hot path), then the
        latest value per (run, key): the last of the batch by (step, timestamp)."""
        history = rows
        latest = {(r[0], r[1]): r for r in sorted(rows, key=_STEP_TIME)}
        metric_insert = self._p_metric_insert
        if metric_insert.positional and metric_insert.order == _METRIC_COLUMNS:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(metric_insert.sql, history)  # millions of rows: no dicts
        else:
            metric_insert.executemany(conn, [dict(zip(_METRIC_COLUMNS, row)) for row in history])
        self._p_latest_upsert.executemany(
            conn,
            [
                {
                    "run_id": run_key,
                    "key": key,
                    "value": None if is_nan else value,
                    "is_nan": is_nan,
                    "timestamp": timestamp,
                    "step": step,
                }
                for run_key, key, step, timestamp, value, is_nan in latest.values()
            ],
        )

    def delete_tag(self, run_id: str, key: str) -> None:
        run_key = self.writable_run_key(run_id)
        with self._write() as conn:
            result = conn.execute(
                delete(run_tags).where(run_tags.c.run_id == run_key, run_tags.c.key == key)
            )
            if result.rowcount == 0:
                raise ResourceDoesNotExist(f"No tag {key!r} on run {run_id!r}.")

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        with self._read() as conn:
            row = self._run_row(conn, run_id)
            rows = conn.execute(
                select(
                    metric_history.c.step,
                    metric_history.c.timestamp,
                    metric_history.c.value,
                    metric_history.c.is_nan,
                )
                .where(metric_history.c.run_id == row.id, metric_history.c.key == key)
                .order_by(metric_history.c.step, metric_history.c.timestamp)
            ).all()
        nan = math.nan
        return [Metric(key, nan if is_nan else value, ts, step) for step, ts, value, is_nan in rows]

    def get_metric_series(
        self, run_ids: Sequence[str], key: str, max_points: int, x_axis: str = "step"
    ) -> dict[str, MetricSeries]:
        """Histories of ``key`` for several runs, min/max-bucketed inside the database.

        Runs whose step range fits in ``max_points`` come back whole (one statement); longer
        ones are cut into step buckets (a second statement) where every bucket's min and max
        are range scans of the clustered (run, key, step) key: no sort of the raw points, so
        20 runs x 100,000 steps take well under a second. Runs without the metric are absent.
        """
        from jupyter_mltrack.store.downsample import bucket_count, series_from_buckets

        if x_axis not in ("step", "timestamp"):
            raise InvalidParameterValue(f"x_axis must be 'step' or 'timestamp', got {x_axis!r}.")
        if not run_ids:
            return {}
        params = {"key": key, "max_points": max_points, "buckets": bucket_count(max_points)}
        statements = metric_series_sql(self.engine.dialect, x_axis)
        whole: dict[str, tuple[list[float], list[float]]] = {}
        cut: dict[str, list[tuple]] = {}
        with self._read() as conn:
            for run_uuid, x, value in conn.execute(
                statements.whole, {**params, "run_ids": list(run_ids)}
            ):
                xs, values = whole.setdefault(run_uuid, ([], []))
                xs.append(x)
                values.append(value)
            for run_uuid, x_first, x_last, v_min, v_max in conn.execute(
                statements.cut, {**params, "run_ids": list(run_ids)}
            ):
                if v_min is not None:
                    cut.setdefault(run_uuid, []).append((x_first, x_last, v_min, v_max, 2))
        out = {
            run_uuid: MetricSeries(run_uuid, key, x_axis, xs, values, len(xs))
            for run_uuid, (xs, values) in whole.items()
        }
        for run_uuid, rows in cut.items():
            out[run_uuid] = series_from_buckets(run_uuid, key, x_axis, rows, None)
        return out

    # -- search -------------------------------------------------------------------------------
    def _page_query(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None,
        run_view_type: int,
        limit: int,
        order_by: Sequence[str] | None,
        offset: int,
    ) -> Any:
        keys = [_experiment_key(e) for e in experiment_ids]
        return search.compile_runs_search(
            keys, filter_string, ViewType.stages(run_view_type), order_by, limit, offset
        )

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        _check_max_results(max_results)

        def runs_of(conn: Connection, rows: Sequence[Any]) -> list[Run]:
            if not rows:
                return []
            keys = [r.id for r in rows]
            data = self._run_data(conn, keys)
            inputs = self.datasets.inputs_of(conn, keys)  # MLflow's search returns them too
            return [Run(_run_info(r), data[r.id], RunInputs(inputs.get(r.id))) for r in rows]

        return self.paged(
            lambda limit, offset: self._page_query(
                experiment_ids, filter_string, run_view_type, limit, order_by, offset
            ),
            runs_of,
            max_results,
            page_token,
        )

    def search_runs_columns(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 100_000,
        order_by: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        query = self._page_query(
            experiment_ids, filter_string, run_view_type, max_results, order_by, 0
        )
        from jupyter_mltrack.store.prepared import fetch_all

        with self._read() as conn:
            rows = fetch_all(conn, query)
            # every match fits in the page: the children need no ORDER BY / LIMIT to find them
            keyed = query if len(rows) >= max_results else query.order_by(None).limit(None)
            page_keys = select(keyed.subquery().c.id)
            kinds: dict[str, list[tuple[Any, ...]]] = {"metrics": [], "params": [], "tags": []}
            if rows:
                kinds["metrics"] = fetch_all(
                    conn,
                    select(
                        latest_metrics.c.run_id,
                        latest_metrics.c.key,
                        latest_metrics.c.value,
                        latest_metrics.c.is_nan,
                    ).where(latest_metrics.c.run_id.in_(page_keys)),
                )
                for kind, table in (("params", run_params), ("tags", run_tags)):
                    kinds[kind] = fetch_all(
                        conn,
                        select(table.c.run_id, table.c.key, table.c.value).where(
                            table.c.run_id.in_(page_keys)
                        ),
                    )
        names = [c.name for c in runs.c]
        return {"runs": rows, "run_columns": names, **kinds}

    # -- garbage collection -------------------------------------------------------------------
    def gc(self, older_than_ms: int | None = None) -> tuple[list[str], list[str]]:
        cutoff = _now_ms() - older_than_ms if older_than_ms else None
        with self._write() as conn:
            exp_query = select(experiments.c.experiment_id).where(
                experiments.c.lifecycle_stage == LifecycleStage.DELETED
            )
            if cutoff is not None:
                exp_query = exp_query.where(experiments.c.last_update_time <= cutoff)
            exp_keys = [r.experiment_id for r in conn.execute(exp_query)]
            run_query = select(runs.c.id, runs.c.run_uuid, runs.c.artifact_uri).where(
                or_(
                    runs.c.lifecycle_stage == LifecycleStage.DELETED,
                    runs.c.experiment_id.in_(exp_keys),
                )
            )
            if cutoff is not None:
                run_query = run_query.where(
                    or_(runs.c.deleted_time <= cutoff, runs.c.experiment_id.in_(exp_keys))
                )
            doomed = conn.execute(run_query).all()
            run_keys = [r.id for r in doomed]
            for start in range(0, len(run_keys), 500):
                chunk = run_keys[start : start + 500]
                for table in (metric_history, latest_metrics, run_params, run_tags):
                    conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
                conn.execute(delete(runs).where(runs.c.id.in_(chunk)))
            if exp_keys:
                conn.execute(
                    delete(experiment_tags).where(experiment_tags.c.experiment_id.in_(exp_keys))
                )
                conn.execute(delete(experiments).where(experiments.c.experiment_id.in_(exp_keys)))
        for run in doomed:
            if run.artifact_uri:
                get_artifact_repository(run.artifact_uri.rsplit("/artifacts", 1)[0]).delete()
            self._writable.pop(run.run_uuid, None)
        return [r.run_uuid for r in doomed], [str(k) for k in exp_keys]


class _Row(dict):  # type: ignore[type-arg]
    """A row from the driver with attribute access, like SQLAlchemy's."""

    __getattr__ = dict.__getitem__


def _raise_conflicts(conflicts: list[str]) -> None:
    if conflicts:
        raise InvalidParameterValue(" ".join(conflicts))


def _check_max_results(max_results: int) -> None:
    if (
        not isinstance(max_results, int)
        or isinstance(max_results, bool)
        or not (0 < max_results <= SEARCH_MAX_RESULTS)
    ):
        raise InvalidParameterValue(
            f"max_results must be an integer between 1 and {SEARCH_MAX_RESULTS}, got {max_results!r}."
        )


def _run_info(row: Any) -> RunInfo:
    return RunInfo(
        run_id=row.run_uuid,
        experiment_id=str(row.experiment_id),
        user_id=row.user_id,
        status=row.status,
        start_time=row.start_time,
        end_time=row.end_time,
        lifecycle_stage=row.lifecycle_stage,
        artifact_uri=row.artifact_uri,
        run_name=row.name,
    )
