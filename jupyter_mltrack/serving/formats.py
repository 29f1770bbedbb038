"""The scoring protocol of MLflow's ``/invocations``: request bodies -> model input, predictions
-> ``{"predictions": ...}``.

JSON bodies carry exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs`` (plus optional ``params``); ``text/csv`` bodies are read as a table with a header.
Every way a body can be unusable is a ``ServingError`` carrying its HTTP status, so the app never
answers bad input with a 500.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from jupyter_mltrack.exceptions import BAD_REQUEST, INVALID_PARAMETER_VALUE, MlflowException
from jupyter_mltrack.models.signature import Schema

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON = "application/json"
CSV = "text/csv"
CONTENT_TYPES = (JSON, CSV)


class ServingError(MlflowException):
    """A request the scoring server refuses; ``status`` is the HTTP status it answers with."""

    default_error_code = BAD_REQUEST
    status = 400

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message, error_code)


class PayloadTooLarge(ServingError):
    """The request body is larger than the server's limit."""

    status = 413


class UnsupportedMediaType(ServingError):
    """The request's content type is neither JSON nor CSV."""

    status = 415


def error_body(error_code: str, message: str) -> bytes:
    """MLflow's REST error body."""
    return json.dumps({"error_code": error_code, "message": message}).encode()


# -- requests ----------------------------------------------------------------------------------
def content_kind(content_type: str | None) -> tuple[str, str | None]:
    """(``JSON`` or ``CSV``, charset) for a Content-Type header, or ``UnsupportedMediaType``."""
    if not content_type:
        raise UnsupportedMediaType(
            "The request has no Content-Type; send application/json or text/csv."
        )
    kind, _, rest = content_type.partition(";")
    kind = kind.strip().lower()
    if kind not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {content_type!r}; this server takes application/json "
            "or text/csv."
        )
    charset = None
    for part in rest.split(";"):
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if key == "charset":
            charset = value.strip().strip('"').lower() or None
        elif key == "format" and value.strip():
            # MLflow 1.x's "format=pandas-split" is gone; the JSON key says the format now
            raise ServingError(
                f"Content-Type parameter format={value.strip()} is not supported: put the input "
                f"under one of the JSON keys {', '.join(INPUT_KEYS)} instead."
            )
    return kind, charset


def parse_request(
    body: bytes, kind: str, charset: str | None, schema: Schema | None
) -> tuple[Any, dict[str, Any] | None]:
    """The model input and params of a request body (``kind`` from ``content_kind``)."""
    if kind == CSV:
        return parse_csv(body, charset), None
    return parse_json(body, charset, schema)


def parse_csv(body: bytes, charset: str | None = None) -> pd.DataFrame:
    if not body.strip():
        raise ServingError("The CSV body is empty; send a header line and at least one row.")
    try:
        return pd.read_csv(io.BytesIO(body), encoding=charset or "utf-8")
    except (ValueError, UnicodeDecodeError, LookupError, pd.errors.ParserError) as exc:
        raise ServingError(f"Could not read the CSV body: {_one_line(exc)}") from None


def parse_json(
    body: bytes, charset: str | None, schema: Schema | None
) -> tuple[Any, dict[str, Any] | None]:
    try:
        text: str | bytes = body if charset in (None, "utf-8", "utf8") else body.decode(charset)
        payload = json.loads(text)
    except (ValueError, UnicodeDecodeError, LookupError) as exc:
        raise ServingError(f"The request body is not valid JSON: {_one_line(exc)}") from None
    if not isinstance(payload, dict):
        raise ServingError(
            "The request body must be a JSON object with exactly one of the keys "
            f"{', '.join(INPUT_KEYS)} (got a JSON {type(payload).__name__})."
        )
    keys = [k for k in INPUT_KEYS if k in payload]
    unknown = [k for k in payload if k not in INPUT_KEYS and k != "params"]
    if len(keys) != 1 or unknown:
        got = ", ".join(repr(k) for k in payload) or "none"
        raise ServingError(
            f"The request body must hold exactly one of the keys {', '.join(INPUT_KEYS)} "
            f"(and optionally 'params'); it has: {got}."
        )
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise ServingError(f"'params' must be a JSON object, got a {type(params).__name__}.")
    key = keys[0]
    value = payload[key]
    if key == "dataframe_records":
        return records_frame(value, schema), params
    if key == "dataframe_split":
        return split_frame(value), params
    return tensor_input(value, key, schema), params


def records_frame(records: Any, schema: Schema | None = None) -> pd.DataFrame:
    """``dataframe_records``: a list of row objects -> a DataFrame, its columns in the
    signature's order when the rows have exactly those, else in first-seen order."""
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ServingError(
            '\'dataframe_records\' must be a list of row objects, e.g. [{"age": 35, "tenure": 24}].'
        )
    columns: list[Any] = list(records[0]) if records else []
    if len(records) > 1:
        seen = dict.fromkeys(columns)
        for row in records:
            seen.update(dict.fromkeys(row))
        columns = list(seen)
    if schema is not None and schema.has_input_names() and len(columns) == len(schema.inputs):
        names = schema.input_names()
        if set(names) == set(columns):
            columns = names
    # rows of values with a plain (object) column index: the quickest frame to build, and the
    # quickest for scikit-learn to read its feature names from
    index = pd.Index(columns, dtype=object)
    if len(records) == 1:
        row = records[0]
        values = [row[c] for c in columns]
        if _all_double(schema, columns) and all(type(v) in _NUMBERS for v in values):
            # every column a double that the row gives as a JSON number: one float64 block
            # (~15x quicker than pandas inferring a dtype per column; the same frame)
            return pd.DataFrame(np.array([values]), columns=index, copy=False)
        return pd.DataFrame([values], columns=index)
    return pd.DataFrame([[row.get(c) for c in columns] for row in records], columns=index)


_NUMBERS = (float, int)  # exact types: a bool is not a number here


def _all_double(schema: Schema | None, columns: list[Any]) -> bool:
    """Whether the signature gives ``columns`` (in this order) and types them all double."""
    if schema is None or not schema.has_input_names():
        return False
    inputs = schema.inputs
    return len(inputs) == len(columns) and all(
        spec.type == "double" and spec.name == name for spec, name in zip(inputs, columns)
    )


def split_frame(split: Any) -> pd.DataFrame:
    """``dataframe_split``: ``{"columns": [...], "data": [[...], ...], "index": [...]}``."""
    if not isinstance(split, dict) or "data" not in split:
        raise ServingError(
            "'dataframe_split' must be an object with 'columns' and 'data' (a list of rows), "
            'e.g. {"columns": ["age"], "data": [[35]]}.'
        )
    extra = sorted(set(split) - {"columns", "data", "index"})
    if extra:
        raise ServingError(
            f"'dataframe_split' takes the keys columns, data and index; unknown: {', '.join(extra)}."
        )
    data, columns = split["data"], split.get("columns")
    if not isinstance(data, list) or (columns is not None and not isinstance(columns, list)):
        raise ServingError("'dataframe_split': 'data' and 'columns' must be lists.")
    try:
        if columns is not None and all(isinstance(c, str) for c in columns):
            columns = pd.Index(columns, dtype=object)
        return pd.DataFrame(data, columns=columns, index=split.get("index"))
    except (ValueError, TypeError) as exc:
        raise ServingError(f"'dataframe_split' does not form a table: {_one_line(exc)}") from None


def tensor_input(value: Any, key: str, schema: Schema | None) -> Any:
    """``instances`` / ``inputs``: a list (rows or a tensor) or an object of named inputs."""
    tensors = schema is not None and schema.is_tensor_spec()
    try:
        if isinstance(value, dict):
            if tensors:
                return {k: np.asarray(v) for k, v in value.items()}
            return value  # columns by name: the signature check turns it into a frame
        if not isinstance(value, list):
            raise ServingError(
                f"'{key}' must be a list or an object, got a JSON {type(value).__name__}."
            )
        if value and all(isinstance(v, dict) for v in value):
            if tensors:  # a list of named-tensor rows (TF-serving "instances")
                names = list(dict.fromkeys(k for row in value for k in row))
                return {n: np.asarray([row.get(n) for row in value]) for n in names}
            return records_frame(value, schema)
        if not tensors and schema is not None and value and all(isinstance(v, list) for v in value):
            # rows for a column model: keep one dtype per column instead of one for the array
            return pd.DataFrame(value)
        return np.asarray(value)
    except ValueError as exc:
        raise ServingError(f"'{key}' is not a regular array: {_one_line(exc)}") from None


# -- responses ---------------------------------------------------------------------------------
def predictions_body(predictions: Any) -> bytes:
    """``{"predictions": ...}`` as MLflow writes it (a DataFrame as a list of records)."""
    data = jsonable(predictions)
    try:
        return json.dumps({"predictions": data}, allow_nan=False, default=_default).encode()
    except ValueError:  # NaN or infinity somewhere: JSON has null for them
        return json.dumps(
            {"predictions": _finite(data)}, allow_nan=False, default=_default
        ).encode()


def jsonable(value: Any) -> Any:
    """Predictions as plain JSON data: arrays and Series as lists, DataFrames as records."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, pd.Series):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _default(value: Any) -> Any:
    if isinstance(value, (np.ndarray, pd.Series, pd.DataFrame, np.generic)):
        return jsonable(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if value is pd.NaT or value is pd.NA:
        return None
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


__all__ = [
    "BAD_REQUEST",
    "CONTENT_TYPES",
    "INPUT_KEYS",
    "INVALID_PARAMETER_VALUE",
    "PayloadTooLarge",
    "ServingError",
    "UnsupportedMediaType",
    "content_kind",
    "error_body",
    "parse_request",
    "predictions_body",
]
