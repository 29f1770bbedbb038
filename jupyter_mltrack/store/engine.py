"""SQLAlchemy engines tuned for a store: SQLite in WAL mode with immediate write locks."""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

SQLITE_BUSY_TIMEOUT_S = 60.0


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and BEGIN IMMEDIATE.

    Writes run in connections marked ``execution_options(mltrack_write=True)``: on SQLite they
    start with BEGIN IMMEDIATE so concurrent writers queue on the busy timeout instead of
    failing with "database is locked" when a read transaction tries to upgrade.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            # every transaction is ended explicitly (commit or rollback), so the pool's
            # ROLLBACK on checkin would only cost a round trip per transaction
            pool_reset_on_return=None,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_on_begin(conn) -> None:  # type: ignore[no-untyped-def]
    write = conn.get_execution_options().get("mltrack_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
