"""Min/max bucket downsampling of metric histories, shared by the SQL and Python paths.

A history of n points over the x range [lo, hi] is cut into ``max_points // 2`` equal-width
buckets; each bucket keeps its minimum and its maximum value, placed at the bucket's first and
last x. Peaks and dips survive (unlike every-k-th sampling), and a plot of the result is
indistinguishable at screen resolution from a plot of every point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from jupyter_mltrack.entities import MetricSeries

MIN_POINTS = 16


def bucket_count(max_points: int) -> int:
    """How many buckets give about ``max_points`` points (two per bucket)."""
    return max(MIN_POINTS // 2, max_points // 2)


def series_from_buckets(
    run_id: str,
    key: str,
    x_axis: str,
    rows: Iterable[Sequence[float]],
    total_points: int | None,
) -> MetricSeries:
    """A series from ``(x_first, x_last, v_min, v_max, count)`` bucket rows in x order."""
    xs: list[float] = []
    values: list[float] = []
    for x_first, x_last, v_min, v_max, count in rows:
        if count == 1 or v_min == v_max:
            xs.append(x_first)
            values.append(v_min)
            if x_last != x_first:
                xs.append(x_last)
                values.append(v_max)
        else:
            xs += [x_first, x_last]
            values += [v_min, v_max]
    return MetricSeries(run_id, key, x_axis, xs, values, total_points, downsampled=True)


def min_max_buckets(
    run_id: str,
    key: str,
    x_axis: str,
    xs: Sequence[float],
    values: Sequence[float],
    max_points: int,
) -> MetricSeries:
    """Downsample one history held in memory (``xs`` ascending) to about ``max_points``."""
    total = len(xs)
    if total <= max_points:
        return MetricSeries(run_id, key, x_axis, list(xs), list(values), total)
    buckets = bucket_count(max_points)
    lo, span = xs[0], xs[-1] - xs[0] + 1
    rows: list[list[float]] = []
    current = -1
    for x, value in zip(xs, values, strict=True):
        bucket = int((x - lo) * buckets // span)
        if bucket != current:
            rows.append([x, x, value, value, 1])
            current = bucket
        else:
            row = rows[-1]
            row[1] = x
            row[2] = min(row[2], value)
            row[3] = max(row[3], value)
            row[4] += 1
    return series_from_buckets(run_id, key, x_axis, rows, None)
