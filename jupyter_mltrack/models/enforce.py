"""Signature enforcement at predict time: the input is checked against the model's schema.

Missing columns are an error listing all of them; types are converted when no value changes
(int -> float/double, int32 -> int64, float holding whole numbers -> int) and refused otherwise,
naming the column and both types; extra columns are dropped with a warning naming them.
"""

from __future__ import annotations

import warnings
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.models.signature import (
    ColSpec,
    DataType,
    ParamSchema,
    Schema,
    TensorSpec,
    convert_param,
)


def to_frame(data: Any) -> Any:
    """Input as a DataFrame where it has a tabular form (dict, list of dicts, Series...)."""
    import numpy as np
    import pandas as pd

    from jupyter_mltrack.models.infer import frame_from_dict

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if isinstance(data, dict):
        return frame_from_dict(data)
    if isinstance(data, (list, tuple)) and data and all(isinstance(r, dict) for r in data):
        return pd.DataFrame.from_records(list(data))
    if isinstance(data, (list, tuple)):
        array = np.asarray(data)
        return pd.DataFrame(array if array.ndim == 2 else {0: list(data)})
    if isinstance(data, np.ndarray):
        if data.ndim == 1:
            return pd.DataFrame({0: data})
        if data.ndim == 2:
            return pd.DataFrame(data)
        raise InvalidParameterValue(
            f"A {data.ndim}-dimensional array has no column form; this model takes columns."
        )
    if isinstance(data, (str, bytes, int, float, bool)):
        return pd.DataFrame({0: [data]})
    raise InvalidParameterValue(
        f"Unsupported model input type {type(data).__name__}; pass a pandas DataFrame, a dict "
        "of lists, a list of dicts or a numpy array."
    )


def enforce_schema(data: Any, schema: Schema) -> Any:
    """``data`` checked and converted to match ``schema`` (see the module docstring)."""
    if schema.is_tensor_spec():
        return _enforce_tensors(data, schema)
    return _enforce_columns(data, schema)


# -- columns -----------------------------------------------------------------------------------
def _enforce_columns(data: Any, schema: Schema) -> Any:
    import numpy as np

    frame = to_frame(data)
    specs: list[ColSpec] = schema.inputs  # type: ignore[assignment]
    if not schema.has_input_names():
        if len(frame.columns) != len(specs):
            raise InvalidParameterValue(
                f"The model takes {len(specs)} column(s) matched by position; the input has "
                f"{len(frame.columns)}."
            )
        return _convert_all(frame, list(frame.columns), specs)
    names = [str(s.name) for s in specs]
    positional = all(isinstance(c, (int, np.integer)) for c in frame.columns)
    if positional and not set(names) & {str(c) for c in frame.columns}:
        # column-less input (a numpy array, lists of lists): match by position
        if len(frame.columns) != len(specs):
            raise InvalidParameterValue(
                f"The input has {len(frame.columns)} unnamed column(s); the model's signature "
                f"has {len(specs)} ({', '.join(repr(n) for n in names)}). Pass a DataFrame "
                "with those columns, or an array with that many columns in that order."
            )
        frame = frame.set_axis(names, axis=1)
    frame = frame.rename(columns={c: str(c) for c in frame.columns if not isinstance(c, str)})
    present = set(frame.columns)
    missing = [s.name for s in specs if s.required and s.name not in present]
    if missing:
        raise InvalidParameterValue(
            f"Model input is missing {len(missing)} column(s) required by the model's signature: "
            f"{', '.join(repr(m) for m in missing)}. Input columns: "
            f"{', '.join(repr(c) for c in frame.columns) or 'none'}."
        )
    extra = [c for c in frame.columns if c not in set(names)]
    if extra:
        warnings.warn(
            f"Dropping {len(extra)} input column(s) not in the model's signature: "
            f"{', '.join(repr(c) for c in extra)}.",
            UserWarning,
            stacklevel=4,
        )
    kept = [s for s in specs if s.name in present]
    return _convert_all(frame, [s.name for s in kept], kept)


def _convert_all(frame: Any, columns: list[Any], specs: list[ColSpec]) -> Any:
    import pandas as pd

    converted, errors = {}, []
    for column, spec in zip(columns, specs):
        try:
            converted[column] = convert_column(frame[column], spec.type, column)
        except InvalidParameterValue as exc:
            errors.append(str(exc))
    if errors:
        raise InvalidParameterValue(
            "Model input does not match the model's signature:\n  - " + "\n  - ".join(errors)
        )
    return pd.DataFrame(converted, index=frame.index, columns=columns)


def _type_label(values: Any) -> str:
    return str(values.dtype)


def convert_column(values: Any, t: str, name: Any) -> Any:
    """One column converted to MLflow type ``t``, or an error naming it and both types."""
    import numpy as np
    import pandas as pd

    def refuse(why: str = "") -> InvalidParameterValue:
        return InvalidParameterValue(
            f"column {name!r}: cannot convert {_type_label(values)} to {t}"
            f"{' (' + why + ')' if why else ''}."
        )

    dtype = values.dtype
    if t == "string":
        if isinstance(dtype, pd.StringDtype) or (dtype.kind == "O" and _all(values, str)):
            return values
        if isinstance(dtype, pd.CategoricalDtype) and _all(pd.Series(dtype.categories), str):
            return values.astype(object)
        raise refuse("only text is accepted for a string column")
    if t == "binary":
        if dtype.kind in "OS" and _all(values, (bytes, bytearray)):
            return values
        raise refuse("only bytes are accepted for a binary column")
    if t == "datetime":
        if dtype.kind == "M" or isinstance(dtype, pd.DatetimeTZDtype):
            return values
        if dtype.kind == "O" or isinstance(dtype, pd.StringDtype):
            try:
                return pd.to_datetime(values, errors="raise")
            except (ValueError, TypeError):
                raise refuse("some values are not dates") from None
        raise refuse()
    if dtype.kind == "O" or isinstance(dtype, pd.StringDtype):
        if isinstance(dtype, pd.StringDtype) or _any(values, str):
            raise refuse("text is not a number" if t != "boolean" else "text is not a boolean")
        values = values.infer_objects()
        dtype = values.dtype
        if dtype.kind == "O":
            raise refuse()
    if hasattr(dtype, "numpy_dtype"):  # nullable pandas dtypes (Int64, boolean, Float64)
        if values.isna().any():
            if t in ("float", "double"):
                return values.astype(DataType.to_numpy(t))
            raise refuse("it has missing values")
        values = values.astype(dtype.numpy_dtype)
        dtype = values.dtype
    target = DataType.to_numpy(t)
    if dtype == target:
        return values
    if t == "boolean":
        raise refuse()
    kind = dtype.kind
    if kind == "b":
        raise refuse("booleans are not numbers here")
    if target.kind == "f":
        if kind in "iuf":
            # ints -> floats and float64 -> float32 are what the model would do anyway
            return values.astype(target)
        raise refuse()
    # integer targets
    if kind in "iu":
        info = np.iinfo(target)
        if values.empty or (values.min() >= info.min and values.max() <= info.max):
            return values.astype(target)
        raise refuse(f"values outside the {target} range")
    if kind == "f":
        if values.isna().any():
            raise refuse(
                "it has missing values, which integers cannot hold; declare the column as "
                "double in the signature if it may be missing"
            )
        fractional = values[values != np.floor(values)]
        if not fractional.empty:
            raise refuse(f"value {float(fractional.iloc[0])!r} has a fractional part")
        return values.astype(target)
    raise refuse()


def _all(values: Any, kinds: Any) -> bool:
    return all(isinstance(v, kinds) for v in values.dropna())


def _any(values: Any, kinds: Any) -> bool:
    return any(isinstance(v, kinds) for v in values.dropna())


# -- tensors -----------------------------------------------------------------------------------
def _enforce_tensors(data: Any, schema: Schema) -> Any:
    import numpy as np
    import pandas as pd

    specs: list[TensorSpec] = schema.inputs  # type: ignore[assignment]
    if schema.has_input_names():
        if not isinstance(data, dict):
            if len(specs) == 1 and isinstance(data, np.ndarray):
                data = {specs[0].name: data}
            else:
                raise InvalidParameterValue(
                    "This model takes named tensors "
                    f"({', '.join(repr(s.name) for s in specs)}); pass a dict of numpy arrays."
                )
        missing = [s.name for s in specs if s.name not in data]
        if missing:
            raise InvalidParameterValue(
                f"Model input is missing {len(missing)} tensor(s) required by the model's "
                f"signature: {', '.join(repr(m) for m in missing)}."
            )
        return {s.name: _enforce_tensor(np.asarray(data[s.name]), s) for s in specs}
    if len(specs) != 1:
        raise InvalidParameterValue("A schema of several tensors needs names.")
    if isinstance(data, (pd.DataFrame, pd.Series)):
        array = data.to_numpy()
    elif isinstance(data, dict) and len(data) == 1:
        array = np.asarray(next(iter(data.values())))
    else:
        array = np.asarray(data)
    return _enforce_tensor(array, specs[0])


def _enforce_tensor(array: Any, spec: TensorSpec) -> Any:
    import numpy as np

    label = f"tensor {spec.name!r}" if spec.name else "the input tensor"
    expected = spec.shape
    if len(expected) != array.ndim or any(
        e != -1 and e != a for e, a in zip(expected, array.shape)
    ):
        raise InvalidParameterValue(
            f"Shape mismatch for {label}: the model's signature expects {list(expected)} "
            f"(-1 = any size), the input has {list(array.shape)}."
        )
    target = spec.type
    dtype = array.dtype
    if dtype == target or (target.kind == dtype.kind and target.kind in "USOM"):
        return array
    if target.kind == "U" and dtype.kind == "O" and all(isinstance(v, str) for v in array.ravel()):
        return array
    ok = False
    if target.kind == "f" and dtype.kind in "iuf":
        ok = True
    elif target.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(target)
        ok = array.size == 0 or (array.min() >= info.min and array.max() <= info.max)
    elif target.kind in "iu" and dtype.kind == "f":
        ok = not np.isnan(array).any() and bool(np.all(array == np.floor(array)))
    if ok:
        return array.astype(target)
    raise InvalidParameterValue(
        f"Type mismatch for {label}: cannot convert {dtype} to {target} without changing values."
    )


# -- params ------------------------------------------------------------------------------------
def enforce_params(
    params: dict[str, Any] | None, schema: ParamSchema | None
) -> dict[str, Any] | None:
    """Params checked against the schema, defaults filled in; unknown ones dropped with a warning."""
    if schema is None:
        if params:
            warnings.warn(
                "This model's signature declares no params; ignoring "
                f"{', '.join(repr(k) for k in params)}.",
                UserWarning,
                stacklevel=3,
            )
        return None
    params = dict(params or {})
    known = {p.name for p in schema}
    unknown = [k for k in params if k not in known]
    if unknown:
        warnings.warn(
            f"Ignoring params not in the model's signature: {', '.join(repr(k) for k in unknown)}.",
            UserWarning,
            stacklevel=3,
        )
    return {
        spec.name: convert_param(spec, params[spec.name]) if spec.name in params else spec.default
        for spec in schema
    }


def conforming_columns(meta: Any) -> list[tuple[str, Any]] | None:
    """(name, numpy dtype) of each input column when the signature has named, required, numeric
    columns and no params — then a frame with exactly those columns and dtypes conforms as it
    is, and ``already_conforms`` lets predict skip the checking pass and its copies."""
    signature = meta.signature
    schema = meta.get_input_schema()
    if (
        schema is None
        or schema.is_tensor_spec()
        or not schema.has_input_names()
        or signature.params is not None
        or not all(s.required for s in schema.inputs)
    ):
        return None
    from jupyter_mltrack.models.signature import DataType

    columns = []
    for spec in schema.inputs:
        dtype = DataType.to_numpy(spec.type)
        if dtype.kind not in "biuf":  # strings, bytes, dates: their check looks at values
            return None
        columns.append((spec.name, dtype))
    return columns


def already_conforms(data: Any, columns: list[tuple[str, Any]]) -> bool:
    """True when ``data`` is a DataFrame with exactly ``columns`` (names, order, dtypes)."""
    import pandas as pd

    if type(data) is not pd.DataFrame or len(data.columns) != len(columns):
        return False
    for (name, dtype), column, actual in zip(columns, data.columns, data.dtypes.tolist()):
        if column != name or actual != dtype:
            return False
    return True
