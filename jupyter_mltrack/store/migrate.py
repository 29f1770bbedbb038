"""Schema versioning: create, upgrade (Alembic) or refuse a database as our store.

The fast path (an up-to-date store) is one query and does not import Alembic.
"""

from __future__ import annotations

import os

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from jupyter_mltrack.exceptions import StoreError
from jupyter_mltrack.store.schema import SCHEMA_REVISION, VERSION_TABLE

_MLFLOW_MARKERS = {"alembic_version", "experiments", "runs", "latest_metrics"}


def current_revision(conn: Connection, where: str | None = None) -> str | None:
    """The schema revision recorded in the database, or None when it has none of our tables."""
    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE in tables:
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    _refuse_foreign(conn, tables, where or _describe(conn))
    return None


def check_sqlite_file(path: str | os.PathLike[str]) -> None:
    """Refuse a foreign or newer SQLite file through a read-only connection.

    The store's engine switches a database to WAL mode as it connects, which rewrites the
    file's header: a file that is not ours must be refused before that, left byte-identical.
    """
    import sqlite3
    from urllib.parse import quote

    from sqlalchemy import create_engine, exc
    from sqlalchemy.pool import NullPool

    uri = f"file:{quote(os.fspath(path))}?mode=ro"
    engine = create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True), poolclass=NullPool
    )
    where = f"The database {os.fspath(path)}"
    try:
        with engine.connect() as conn:
            revision = current_revision(conn, where)
    except (exc.DBAPIError, sqlite3.Error) as err:
        raise StoreError(f"Cannot read the store database {os.fspath(path)}: {err}") from None
    finally:
        engine.dispose()
    if revision is not None and revision != SCHEMA_REVISION:
        _refuse_unknown(where, revision, _script())


def _refuse_foreign(conn: Connection, tables: set[str], where: str) -> None:
    if tables >= _MLFLOW_MARKERS:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        raise StoreError(
            f"{where} is an MLflow tracking database (MLflow schema revision {revision}), not a "
            "jupyter_mltrack store. jupyter_mltrack keeps its own schema and will not modify "
            "MLflow's. Point set_tracking_uri / MLTRACK_TRACKING_URI at a new folder or database."
        )
    if tables:
        listed = ", ".join(sorted(tables)[:8])
        raise StoreError(
            f"{where} already holds tables ({listed}) but no jupyter_mltrack schema; refusing to "
            "write into a foreign database. Use an empty database or a new folder."
        )


def _describe(conn: Connection) -> str:
    url = conn.engine.url
    if url.get_backend_name() == "sqlite":
        return f"The database {url.database}"
    return f"The database {url.render_as_string(hide_password=True)}"


def ensure_schema(engine: Engine) -> None:
    """Make the database's schema current: create it, upgrade it, or refuse it clearly."""
    with engine.connect() as conn:
        revision = current_revision(conn)
    if revision == SCHEMA_REVISION:
        return
    with engine.connect() as conn:
        conn.execution_options(mltrack_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # Two processes opening a fresh database at once: one migrates, the other waits.
                conn.execute(text("SELECT pg_advisory_xact_lock(741953)"))
            revision = current_revision(conn)
            if revision == SCHEMA_REVISION:
                return
            _upgrade(conn, revision)


def _script():  # type: ignore[no-untyped-def]
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", os.path.join(os.path.dirname(__file__), "migrations"))
    return ScriptDirectory.from_config(config)


def _refuse_unknown(where: str, revision: str, script) -> None:  # type: ignore[no-untyped-def]
    known = {rev.revision for rev in script.walk_revisions()}
    if revision not in known:
        raise StoreError(
            f"{where} was written by a newer jupyter_mltrack (schema revision "
            f"{revision}; this version knows up to {SCHEMA_REVISION}). Upgrade the package "
            "(pip install -U jupyter-mltrack); the store was left untouched."
        )


def _upgrade(conn: Connection, revision: str | None) -> None:
    from alembic.runtime.migration import MigrationContext

    script = _script()
    if revision is not None:
        _refuse_unknown(_describe(conn), revision, script)
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    from alembic.operations import Operations

    with Operations.context(context):
        for step in reversed(list(script.iterate_revisions(SCHEMA_REVISION, revision or "base"))):
            step.module.upgrade()
            context.stamp(script, step.revision)
