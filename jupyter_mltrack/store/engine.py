"""SQLAlchemy engines tuned for a store: SQLite in WAL mode with immediate write locks."""

from __future__ import annotations

import logging

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
    _quiet_lost_connections_on_reset()
    return create_engine(url, pool_pre_ping=True)


class _LostConnectionOnReset(logging.Filter):
    """Report a connection that died before the pool could reset it as a warning, not an error.

    When the database server goes away (restart, failover), a connection coming back to the
    pool fails its ROLLBACK; the pool discards it and opens a new one next time, and the
    request that used it has already been answered. SQLAlchemy logs that at ERROR level with a
    traceback, which reads like data loss to an operator; nothing was lost.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "during reset" in record.getMessage():
            error = record.exc_info[1] if record.exc_info else None
            if error is not None and _is_lost_connection(error):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                record.msg = "Database connection lost; the pool discarded it: %s"
                record.args = (str(error).strip().splitlines()[0] if str(error) else "",)
                record.exc_info = record.exc_text = None
        return True


def _is_lost_connection(error: BaseException) -> bool:
    # DB-API drivers name these classes the same way (PEP 249)
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"OperationalError", "InterfaceError"})


_reset_filter = _LostConnectionOnReset()


def _quiet_lost_connections_on_reset() -> None:
    for name in ("sqlalchemy.pool.impl.QueuePool", "sqlalchemy.pool"):
        pool_logger = logging.getLogger(name)
        if _reset_filter not in pool_logger.filters:
            pool_logger.addFilter(_reset_filter)


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
