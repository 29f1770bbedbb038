"""Search results as a pandas DataFrame, built column-wise (no per-run objects)."""

from __future__ import annotations

import math
from typing import Any


def runs_frame(columns: dict[str, Any]) -> Any:
    """MLflow's layout: run_id, experiment_id, status, artifact_uri, start_time, end_time,
    then ``metrics.*``, ``params.*`` and ``tags.*`` (keys sorted within each group).

    ``columns`` holds the run rows (tuples in ``run_columns`` order) and, per kind,
    ``(run_key, key, value[, is_nan])`` rows.
    """
    import pandas as pd

    rows = columns["runs"]
    at = {name: i for i, name in enumerate(columns["run_columns"])}
    ids = [r[at["id"]] for r in rows]
    position = {key: i for i, key in enumerate(ids)}
    n = len(rows)
    data: dict[str, Any] = {
        "run_id": [r[at["run_uuid"]] for r in rows],
        "experiment_id": [str(r[at["experiment_id"]]) for r in rows],
        "status": [r[at["status"]] for r in rows],
        "artifact_uri": [r[at["artifact_uri"]] for r in rows],
        "start_time": pd.to_datetime([r[at["start_time"]] for r in rows], unit="ms", utc=True),
        "end_time": pd.to_datetime([r[at["end_time"]] for r in rows], unit="ms", utc=True),
    }
    nan = math.nan
    metrics: dict[str, list[Any]] = {}
    for run_key, key, value, is_nan in columns["metrics"]:
        index = position.get(run_key)
        if index is not None:
            column = metrics.get(key) or metrics.setdefault(key, [nan] * n)
            column[index] = nan if is_nan else value
    for key in sorted(metrics):
        data[f"metrics.{key}"] = pd.array(metrics[key], dtype="float64")
    for kind in ("params", "tags"):
        values: dict[str, list[Any]] = {}
        for run_key, key, value in columns[kind]:
            index = position.get(run_key)
            if index is not None:
                column = values.get(key) or values.setdefault(key, [None] * n)
                column[index] = value
        for key in sorted(values):
            data[f"{kind}.{key}"] = values[key]
    return pd.DataFrame(data)
