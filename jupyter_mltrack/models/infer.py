"""Schema inference from example data: pandas DataFrames and Series, numpy arrays, scipy
sparse matrices, lists (of scalars, dicts or lists), dicts and scalars."""

from __future__ import annotations

import warnings
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.models.signature import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec


def infer_or_warn(data: Any, label: str) -> Schema | None:
    if data is None:
        return None
    try:
        return infer_schema(data)
    except InvalidParameterValue as exc:
        warnings.warn(f"Could not infer the signature's {label}: {exc}", UserWarning, stacklevel=3)
        return None


def infer_param_schema(params: dict[str, Any]) -> ParamSchema:
    """A ParamSchema from a dict of default values."""
    if not isinstance(params, dict):
        raise InvalidParameterValue(f"params must be a dict, got {type(params).__name__}.")
    specs = []
    for name, value in params.items():
        shape = None
        sample = value
        if isinstance(value, (list, tuple)) or (
            hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1
        ):
            items = value.tolist() if hasattr(value, "tolist") else list(value)
            if not items:
                raise InvalidParameterValue(
                    f"Cannot infer the type of param {name!r} from an empty list."
                )
            shape, sample = (-1,), items[0]
        specs.append(ParamSpec(name, _scalar_type(sample, f"param {name!r}"), value, shape))
    return ParamSchema(specs)


def _scalar_type(value: Any, what: str) -> str:
    import datetime as dt

    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        import numpy as np

        if isinstance(value, np.generic):
            return _numpy_type(value.dtype, what)
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    if isinstance(value, (dt.datetime, dt.date)):
        return "datetime"
    raise InvalidParameterValue(
        f"Cannot infer a type for {what} from a {type(value).__name__} value ({value!r:.60})."
    )


def _numpy_type(dtype: Any, what: str) -> str:
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return "boolean"
    if kind == "i":
        return "long" if size > 4 else "integer"
    if kind == "u":
        return "long" if size >= 4 else "integer"
    if kind == "f":
        return "double" if size > 4 else "float"
    if kind == "M":
        return "datetime"
    if kind == "U":
        return "string"
    if kind == "S":
        return "binary"
    raise InvalidParameterValue(f"Cannot infer a type for {what} from dtype {dtype}.")


def _column_type(series: Any, name: Any) -> str:
    """The MLflow type of one pandas column (object columns are inspected value by value)."""
    import pandas as pd

    dtype = series.dtype
    what = f"column {name!r}"
    if isinstance(dtype, pd.CategoricalDtype):
        return _column_type(pd.Series(dtype.categories), name)
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if isinstance(dtype, pd.BooleanDtype):
        return "boolean"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime"
    if hasattr(dtype, "numpy_dtype") and dtype.kind in "iuf":  # nullable Int64, Float64...
        return _numpy_type(dtype.numpy_dtype, what)
    if dtype.kind != "O":
        return _numpy_type(dtype, what)
    values = series.dropna()
    if values.empty:
        raise InvalidParameterValue(
            f"Cannot infer the type of {what}: it holds only missing values."
        )
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    mapping = {
        "string": "string",
        "bytes": "binary",
        "boolean": "boolean",
        "integer": "long",
        "floating": "double",
        "mixed-integer-float": "double",
        "datetime": "datetime",
        "datetime64": "datetime",
        "date": "datetime",
    }
    if inferred in mapping:
        return mapping[inferred]
    kinds = sorted({type(v).__name__ for v in values})
    raise InvalidParameterValue(
        f"Cannot infer the type of {what}: it mixes values of types {', '.join(kinds)}."
    )


def infer_schema(data: Any) -> Schema:
    """The Schema of one input or output example (see ``infer_signature`` for the kinds)."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if data.columns.empty:
            raise InvalidParameterValue("Cannot infer a schema from a DataFrame with no columns.")
        return Schema([ColSpec(_column_type(data[c], c), str(c)) for c in data.columns])
    if isinstance(data, pd.Series):
        name = None if data.name is None else str(data.name)
        return Schema([ColSpec(_column_type(data, data.name), name)])
    if isinstance(data, np.ndarray):
        return Schema([_tensor_spec(data)])
    if _is_sparse(data):
        return Schema([TensorSpec(data.dtype, (-1, *data.shape[1:]))])
    if isinstance(data, dict):
        if not data:
            raise InvalidParameterValue("Cannot infer a schema from an empty dict.")
        if all(isinstance(v, np.ndarray) and v.ndim > 1 for v in data.values()):
            return Schema([_tensor_spec(v, name=str(k)) for k, v in data.items()])
        return infer_schema(frame_from_dict(data))
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise InvalidParameterValue("Cannot infer a schema from an empty list.")
        if all(isinstance(v, dict) for v in data):
            return infer_schema(pd.DataFrame.from_records(list(data)))
        if all(isinstance(v, (list, tuple, np.ndarray)) for v in data):
            return Schema([_tensor_spec(np.asarray(data))])
        return Schema(
            [ColSpec(_column_type(pd.Series(list(data), dtype=object).infer_objects(), "values"))]
        )
    return Schema([ColSpec(_scalar_type(data, "the example"))])


def _tensor_spec(array: Any, name: str | None = None) -> TensorSpec:
    if array.dtype.kind == "O":
        kinds = {type(v) for v in array.ravel()}
        if kinds != {str}:
            raise InvalidParameterValue(
                "Cannot infer a tensor type from a numpy array of Python objects "
                f"({', '.join(sorted(k.__name__ for k in kinds))})."
            )
    shape = (-1, *array.shape[1:]) if array.ndim else ()
    return TensorSpec(array.dtype, shape, name)


def _is_sparse(data: Any) -> bool:
    module = type(data).__module__
    return module.startswith("scipy.sparse") and hasattr(data, "tocsr")


def frame_from_dict(data: dict[str, Any]) -> Any:
    """Columns from a dict: scalars make one row, lists (equal lengths) make columns."""
    import numpy as np
    import pandas as pd

    def is_seq(v: Any) -> bool:
        return isinstance(v, (list, tuple, pd.Series)) or (
            isinstance(v, np.ndarray) and v.ndim == 1
        )

    if all(is_seq(v) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}: {len(v)}" for k, v in data.items())
            raise InvalidParameterValue(f"The dict's columns have different lengths ({sizes}).")
        return pd.DataFrame(
            {str(k): list(v) if not hasattr(v, "dtype") else v for k, v in data.items()}
        )
    if not any(is_seq(v) for v in data.values()):
        return pd.DataFrame([{str(k): v for k, v in data.items()}])
    raise InvalidParameterValue(
        "A dict input must map every column to a scalar (one row) or every column to a list "
        "of values; this one mixes both."
    )
