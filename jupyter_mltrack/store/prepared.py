"""Statements compiled once per dialect and run on the driver's cursor: the store's hot path.

SQLAlchemy builds the SQL (so it stays portable: SQLite and PostgreSQL each get their own
text); executing it through the DBAPI cursor skips SQLAlchemy's per-call work, which costs
tens of microseconds a statement — more than SQLite itself takes to run them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection, Dialect


class Prepared:
    """One statement; parameters are passed as mappings keyed by bind name."""

    def __init__(self, statement: Any, dialect: Dialect, keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.order: tuple[str, ...] = tuple(compiled.positiontup or ()) if self.positional else ()

    def _args(self, params: Mapping[str, Any]) -> Any:
        return tuple(params[name] for name in self.order) if self.positional else params

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Run once; returns the DBAPI cursor (for ``fetchone`` / ``rowcount``)."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(self.sql, self._args(params))
        return cursor

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run for every row; returns the total row count the driver reports."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(self.sql, [self._args(row) for row in rows])
        return cursor.rowcount


def fetch_all(conn: Connection, statement: Any) -> list[tuple[Any, ...]]:
    """All rows of a SELECT as plain tuples, fetched by the driver in one call.

    For result sets of 100,000+ rows SQLAlchemy's per-row processing dominates; the statement
    is still compiled by SQLAlchemy (IN lists expanded into bound parameters, never inlined).
    """
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else params
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(str(compiled), args)
    return cursor.fetchall()
