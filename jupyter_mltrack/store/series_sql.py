"""The two statements behind ``get_metric_series``, written once for SQLite and PostgreSQL.

Both start from the same per-run bounds (first and last step of the metric: index seeks).
``whole`` returns every point of runs whose step range fits in ``:max_points``; ``cut`` splits
the longer ones into ``:buckets`` step ranges and takes, per range, the min and max value (range
scans of the clustered primary key) and the first and last x (index seeks). Nothing sorts the
raw points, which is what makes 2M-point comparisons fast.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any, NamedTuple

_BOUNDS = """
bounds AS {materialized} (
  SELECT r.run_uuid AS run_uuid, r.id AS rk,
    (SELECT MIN(step) FROM metrics WHERE run_id = r.id AND key = :key) AS lo,
    (SELECT MAX(step) FROM metrics WHERE run_id = r.id AND key = :key) AS hi
  FROM runs r WHERE r.run_uuid IN :run_ids
)"""

_WHOLE = """
WITH {bounds}
SELECT b.run_uuid, m.{x}, m.value
FROM bounds b JOIN metrics m ON m.run_id = b.rk AND m.key = :key
WHERE b.hi - b.lo + 1 <= :max_points AND NOT m.is_nan
ORDER BY b.run_uuid, m.step, m.timestamp
"""

_IN_RANGE = "run_id = c.rk AND key = :key AND step >= c.s0 AND step < c.s1"

_CUT = """
WITH RECURSIVE {bounds},
seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < :buckets - 1),
cuts AS {materialized} (
  SELECT b.run_uuid, b.rk, seq.i,
    b.lo + (b.hi - b.lo + 1) * seq.i / :buckets AS s0,
    b.lo + (b.hi - b.lo + 1) * (seq.i + 1) / :buckets AS s1
  FROM bounds b CROSS JOIN seq
  WHERE b.hi - b.lo + 1 > :max_points
)
SELECT c.run_uuid,
  (SELECT {x} FROM metrics WHERE {in_range} ORDER BY step, timestamp LIMIT 1),
  (SELECT {x} FROM metrics WHERE {in_range} ORDER BY step DESC, timestamp DESC LIMIT 1),
  (SELECT MIN(value) FROM metrics WHERE {in_range} AND NOT is_nan),
  (SELECT MAX(value) FROM metrics WHERE {in_range} AND NOT is_nan)
FROM cuts c
ORDER BY c.run_uuid, c.i
"""


class SeriesStatements(NamedTuple):
    whole: Any
    cut: Any


def _materialized(dialect_name: str) -> str:
    # Without it SQLite re-evaluates the bounds subqueries for every bucket; the keyword
    # exists from SQLite 3.35 and PostgreSQL 12.
    if dialect_name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        return ""
    return "MATERIALIZED"


@functools.lru_cache(maxsize=8)
def _statements(dialect_name: str, x_axis: str) -> SeriesStatements:
    from sqlalchemy import bindparam, text

    materialized = _materialized(dialect_name)
    bounds = _BOUNDS.format(materialized=materialized)
    x = "step" if x_axis == "step" else "timestamp"
    whole = text(_WHOLE.format(bounds=bounds, x=x)).bindparams(bindparam("run_ids", expanding=True))
    cut = text(
        _CUT.format(bounds=bounds, materialized=materialized, x=x, in_range=_IN_RANGE)
    ).bindparams(bindparam("run_ids", expanding=True))
    return SeriesStatements(whole, cut)


def metric_series_sql(dialect: Any, x_axis: str) -> SeriesStatements:
    """The compiled-once statements for this database and x axis."""
    return _statements(dialect.name, x_axis)
