"""Input examples: ``input_example.json`` (pandas split orient, or ``{"inputs": ...}`` for
tensors) and the matching ``serving_input_example.json`` request body."""

from __future__ import annotations

import json
import os
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue

INPUT_EXAMPLE_FILE = "input_example.json"
SERVING_INPUT_FILE = "serving_input_example.json"


def save_input_example(path: str, example: Any) -> dict[str, Any]:
    """Write ``input_example.json`` (and the matching serving request); return the MLmodel entry."""
    import numpy as np

    from jupyter_mltrack.models.enforce import to_frame

    if (isinstance(example, np.ndarray) and example.ndim != 2) or (
        isinstance(example, dict)
        and all(isinstance(v, np.ndarray) and v.ndim > 1 for v in example.values())
    ):
        inputs = (
            {k: v.tolist() for k, v in example.items()}
            if isinstance(example, dict)
            else example.tolist()
        )
        _write_json(os.path.join(path, INPUT_EXAMPLE_FILE), {"inputs": inputs})
        _write_json(os.path.join(path, SERVING_INPUT_FILE), {"inputs": inputs})
        return {
            "artifact_path": INPUT_EXAMPLE_FILE,
            "type": "ndarray",
            "format": "tf-serving",
            "serving_input_path": SERVING_INPUT_FILE,
        }
    try:
        frame = to_frame(example)
    except InvalidParameterValue:
        _write_json(os.path.join(path, INPUT_EXAMPLE_FILE), example)
        return {"artifact_path": INPUT_EXAMPLE_FILE, "type": "json_object"}
    split = json.loads(frame.to_json(orient="split", index=False, date_format="iso"))
    _write_json(os.path.join(path, INPUT_EXAMPLE_FILE), split)
    _write_json(os.path.join(path, SERVING_INPUT_FILE), {"dataframe_split": split})
    return {
        "artifact_path": INPUT_EXAMPLE_FILE,
        "type": "dataframe",
        "pandas_orient": "split",
        "serving_input_path": SERVING_INPUT_FILE,
    }


def _write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, default=str)


def load_input_example(path: str, info: dict[str, Any] | None) -> Any:
    if not info:
        return None
    with open(os.path.join(path, info["artifact_path"]), encoding="utf-8") as fh:
        data = json.load(fh)
    kind = info.get("type")
    if kind == "dataframe":
        import pandas as pd

        if info.get("pandas_orient", "split") == "split":
            return pd.DataFrame(data["data"], columns=data["columns"])
        return pd.DataFrame.from_records(data)
    if kind == "ndarray":
        import numpy as np

        inputs = data["inputs"]
        return (
            {k: np.asarray(v) for k, v in inputs.items()}
            if isinstance(inputs, dict)
            else np.asarray(inputs)
        )
    return data
