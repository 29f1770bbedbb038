"""Search results as a pandas DataFrame, built column-wise (no per-run objects)."""

from __future__ import annotations

from typing import Any


def runs_frame(columns: dict[str, Any]) -> Any:
    """MLflow's layout: run_id, experiment_id, status, artifact_uri, start_time, end_time,
    then ``metrics.*``, ``params.*`` and ``tags.*`` (keys sorted within each group)."""
    import numpy as np
    import pandas as pd

    rows = columns["runs"]
    keys = [r.id for r in rows]
    data: dict[str, Any] = {
        "run_id": [r.run_uuid for r in rows],
        "experiment_id": [str(r.experiment_id) for r in rows],
        "status": [r.status for r in rows],
        "artifact_uri": [r.artifact_uri for r in rows],
        "start_time": pd.to_datetime([r.start_time for r in rows], unit="ms", utc=True),
        "end_time": pd.to_datetime([r.end_time for r in rows], unit="ms", utc=True),
    }
    for kind, missing in (("metrics", np.nan), ("params", None), ("tags", None)):
        per_run = columns[kind]
        names = sorted({k for values in per_run.values() for k in values})
        for name in names:
            data[f"{kind}.{name}"] = [per_run.get(key, {}).get(name, missing) for key in keys]
    frame = pd.DataFrame(data)
    for name in frame.columns:
        if name.startswith("metrics."):
            frame[name] = frame[name].astype("float64")
    return frame
