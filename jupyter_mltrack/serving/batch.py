"""Batch scoring (``mltrack models predict``): a file in, predictions out, chunk by chunk.

CSV and parquet inputs are read in chunks and JSON lines line by line, and every chunk's
predictions are appended to the output as soon as they exist, so memory holds one chunk at a
time whatever the file's size. A JSON document (MLflow's ``dataframe_split``,
``dataframe_records``, ``instances``, ``inputs``, or a plain list of records) has to be parsed
whole; it is then scored chunk by chunk too.

The output is written to a hidden file beside the target and renamed at the end: a failure
(a signature violation in row 80,000, Ctrl-C) leaves no partial output, and an existing file
of that name untouched.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException, ResourceDoesNotExist

FORMATS = ("csv", "json", "jsonl", "parquet")
_EXTENSIONS = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_JSON_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
DEFAULT_CHUNK_SIZE = 10_000
# inputs at least this large get a progress bar (when stderr is a terminal)
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


class BatchPredictError(MlflowException):
    """Batch scoring stopped: unreadable input, a signature violation in a chunk..."""

    default_error_code = "INVALID_PARAMETER_VALUE"


@dataclass
class BatchResult:
    """What ``predict_batch`` did."""

    output_path: str
    rows: int
    chunks: int
    columns: list[str]


def format_of(path: str | os.PathLike[str], given: str | None = None, *, role: str) -> str:
    """The file format: ``given`` (csv, json, jsonl, parquet) or the file's extension."""
    if given:
        given = given.lower().split("/")[-1]  # "text/csv" and "application/json" too
        if given not in FORMATS:
            raise InvalidParameterValue(
                f"Unknown {role} format {given!r}; use one of: {', '.join(FORMATS)}."
            )
        return given
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise InvalidParameterValue(
            f"Cannot tell the {role} format of {os.fspath(path)!r} from its extension; name it "
            f"{', '.join(sorted(_EXTENSIONS))} or pass --content-type "
            f"({', '.join(FORMATS)})."
        )
    return _EXTENSIONS[suffix]


# -- reading ------------------------------------------------------------------------------------
class _Reader:
    """Chunks of the input as DataFrames (or arrays), with progress as (done, total) units."""

    total: int | None = None

    def __iter__(self) -> Iterator[Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def done(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class _CsvReader(_Reader):
    def __init__(self, path: str, chunk_size: int, dtypes: dict[str, Any]) -> None:
        self.path, self.chunk_size, self.dtypes = path, chunk_size, dtypes
        self.total = os.path.getsize(path)
        self._fh: Any = None

    def __iter__(self) -> Iterator[Any]:
        import pandas as pd

        rows = 0
        with open(self.path, "rb") as self._fh:
            try:
                for chunk in pd.read_csv(self._fh, chunksize=self.chunk_size, dtype=self.dtypes):
                    rows += len(chunk)
                    yield chunk
            except pd.errors.EmptyDataError:
                return
            except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
                raise BatchPredictError(
                    f"Cannot read {self.path} as CSV after row {rows}: {exc}"
                ) from None

    def done(self) -> int:
        return self._fh.tell() if self._fh is not None and not self._fh.closed else 0


class _ParquetReader(_Reader):
    def __init__(self, path: str, chunk_size: int) -> None:
        pq = _pyarrow_parquet()
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:
            raise BatchPredictError(f"Cannot read {path} as parquet: {exc}") from None
        self.chunk_size = chunk_size
        self.total = self._file.metadata.num_rows
        self._done = 0

    def __iter__(self) -> Iterator[Any]:
        for batch in self._file.iter_batches(batch_size=self.chunk_size):
            frame = batch.to_pandas()
            self._done += len(frame)
            yield frame

    def done(self) -> int:
        return self._done


class _JsonLinesReader(_Reader):
    def __init__(self, path: str, chunk_size: int) -> None:
        self.path, self.chunk_size = path, chunk_size
        self.total = os.path.getsize(path)
        self._done = 0

    def __iter__(self) -> Iterator[Any]:
        import pandas as pd

        rows: list[Any] = []
        with open(self.path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                self._done += len(line)
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BatchPredictError(
                        f"{self.path}, line {number}: not valid JSON ({exc.msg})."
                    ) from None
                if len(rows) == self.chunk_size:
                    yield _records_frame(rows, pd)
                    rows = []
        if rows:
            yield _records_frame(rows, pd)

    def done(self) -> int:
        return self._done


def _records_frame(rows: list[Any], pd: Any) -> Any:
    if all(isinstance(r, dict) for r in rows):
        return pd.DataFrame.from_records(rows)
    import numpy as np

    return np.asarray(rows)


class _InMemoryReader(_Reader):
    """A whole JSON document, scored in slices."""

    def __init__(self, data: Any, chunk_size: int) -> None:
        self.data, self.chunk_size = data, chunk_size
        self.total = len(data)
        self._done = 0

    def __iter__(self) -> Iterator[Any]:
        for start in range(0, len(self.data), self.chunk_size):
            part = self.data[start : start + self.chunk_size]
            self._done = start + len(part)
            yield part

    def done(self) -> int:
        return self._done


def parse_json_document(document: Any) -> Any:
    """MLflow's JSON input forms as a DataFrame (or an array for positional ``instances``)."""
    import numpy as np
    import pandas as pd

    if isinstance(document, list):
        return _records_frame(document, pd) if document else pd.DataFrame()
    if not isinstance(document, dict):
        raise InvalidParameterValue(
            f"The JSON input must be an object with one of {', '.join(_JSON_KEYS)}, or a list "
            f"of records; got a {type(document).__name__}."
        )
    keys = [k for k in _JSON_KEYS if k in document]
    if len(keys) != 1:
        found = ", ".join(sorted(document)) or "none"
        raise InvalidParameterValue(
            f"The JSON input must have exactly one of the keys {', '.join(_JSON_KEYS)} "
            f"(found: {found})."
        )
    key = keys[0]
    value = document[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise InvalidParameterValue(
                'dataframe_split must be {"columns": [...], "data": [[...], ...]}.'
            )
        return pd.DataFrame(value["data"], columns=value.get("columns"))
    if key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise InvalidParameterValue("dataframe_records must be a list of objects.")
        return pd.DataFrame.from_records(value)
    if isinstance(value, dict):  # named tensors / columns: {"x": [...], "y": [...]}
        return pd.DataFrame(value)
    if isinstance(value, list):
        return _records_frame(value, pd) if value else pd.DataFrame()
    return np.asarray([value])


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BatchPredictError(
            "Parquet files need pyarrow: pip install 'jupyter-mltrack[parquet]' (or pyarrow)."
        ) from None
    return pq


def _reader(path: str, fmt: str, chunk_size: int, schema: Any) -> _Reader:
    if fmt == "csv":
        return _CsvReader(path, chunk_size, _csv_dtypes(schema))
    if fmt == "parquet":
        return _ParquetReader(path, chunk_size)
    if fmt == "jsonl":
        return _JsonLinesReader(path, chunk_size)
    try:
        with open(path, encoding="utf-8") as fh:
            document = json.load(fh)
    except json.JSONDecodeError as exc:
        raise BatchPredictError(
            f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); for one record per line, "
            "name the file .jsonl or pass --content-type jsonl."
        ) from None
    return _InMemoryReader(parse_json_document(document), chunk_size)


def _csv_dtypes(schema: Any) -> dict[str, Any]:
    """String columns of the signature read as strings in every chunk (``"007"`` stays
    ``"007"``, not 7). Numeric columns are left to pandas: a forced float dtype would turn a
    bad value into a parse error without its column, whereas the signature check names it."""
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return {}
    return {str(s.name): "object" for s in schema.inputs if s.type == "string"}


# -- writing ------------------------------------------------------------------------------------
def _as_frame(predictions: Any, output_names: list[str] | None) -> Any:
    """Predictions as a DataFrame: one ``prediction`` column, or the model's output columns."""
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return predictions.reset_index(drop=True)
    if isinstance(predictions, pd.Series):
        return pd.DataFrame({"prediction": predictions.to_numpy()})
    if isinstance(predictions, dict):
        return pd.DataFrame({str(k): np.asarray(v).tolist() for k, v in predictions.items()})
    array = np.asarray(predictions)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim == 1:
        name = output_names[0] if output_names and len(output_names) == 1 else "prediction"
        return pd.DataFrame({name: array})
    if array.ndim == 2:
        if output_names and len(output_names) == array.shape[1]:
            names = output_names
        else:
            names = [f"prediction_{i}" for i in range(array.shape[1])]
        return pd.DataFrame(array, columns=names)
    return pd.DataFrame({"prediction": [row.tolist() for row in array]})


class _Writer:
    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.count = 0

    def write(self, frame: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class _CsvWriter(_Writer):
    def write(self, frame: Any) -> None:
        frame.to_csv(self.fh, header=self.count == 0, index=False)
        self.count += 1


def _json_items(frame: Any) -> list[Any]:
    """Plain values for one prediction column, records for several; NaN as null. Python's
    float repr keeps every digit (pandas' to_json stops at 15)."""
    plain = frame.astype(object).where(frame.notna(), None)
    if len(plain.columns) == 1:
        return plain.iloc[:, 0].tolist()
    return plain.to_dict(orient="records")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class _JsonWriter(_Writer):
    def write(self, frame: Any) -> None:
        items = _dumps(_json_items(frame))[1:-1]
        if not items:
            return
        self.fh.write(("[" if self.count == 0 else ",\n") + items)
        self.count += 1

    def close(self) -> None:
        self.fh.write("[]\n" if self.count == 0 else "]\n")


class _JsonLinesWriter(_Writer):
    def write(self, frame: Any) -> None:
        self.fh.writelines(_dumps(item) + "\n" for item in _json_items(frame))
        self.count += 1


class _ParquetWriter(_Writer):
    def __init__(self, fh: Any) -> None:
        super().__init__(fh)
        self._writer: Any = None
        self._schema: Any = None

    def write(self, frame: Any) -> None:
        import pyarrow as pa

        pq = _pyarrow_parquet()
        if self._writer is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.fh, self._schema)
        else:
            try:
                table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
                raise BatchPredictError(
                    f"The predictions of this chunk do not fit the types of the first chunk's "
                    f"({self._schema}): {exc}"
                ) from None
        self._writer.write_table(table)
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        else:  # no rows: still a valid (empty) parquet file
            import pyarrow as pa

            _pyarrow_parquet().write_table(
                pa.table({"prediction": pa.array([], pa.float64())}), self.fh
            )


_WRITERS: dict[str, type[_Writer]] = {
    "csv": _CsvWriter,
    "json": _JsonWriter,
    "jsonl": _JsonLinesWriter,
    "parquet": _ParquetWriter,
}


# -- the loop -----------------------------------------------------------------------------------
def predict_batch(
    model_uri: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    content_type: str | None = None,
    output_format: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool | None = None,
    model: Any = None,
) -> BatchResult:
    """Score a CSV, JSON, JSON lines or parquet file with a model, chunk by chunk.

    Parameters
    ----------
    model_uri
        Any model URI; ignored when ``model`` (a loaded ``PyFuncModel``) is given.
    input_path, output_path
        Files; formats come from their extensions unless ``content_type`` /
        ``output_format`` say otherwise.
    chunk_size
        Rows per chunk: memory holds about one chunk of input and predictions.
    progress
        Show a progress bar: None shows one for large inputs when stderr is a terminal.

    Returns
    -------
    BatchResult
        Rows and chunks scored and the output columns.
    """
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    if chunk_size < 1:
        raise InvalidParameterValue(f"chunk_size must be at least 1, got {chunk_size}.")
    if not os.path.isfile(input_path):
        raise ResourceDoesNotExist(f"Input file {input_path!r} does not exist.")
    in_fmt = format_of(input_path, content_type, role="input")
    out_fmt = format_of(output_path, output_format, role="output")
    if model is None:
        from jupyter_mltrack.pyfunc import load_model

        model = load_model(model_uri)
    output_schema = model.metadata.get_output_schema()
    output_names = (
        [str(n) for n in output_schema.input_names()]
        if output_schema is not None and output_schema.has_input_names()
        else None
    )
    reader = _reader(input_path, in_fmt, chunk_size, model.metadata.get_input_schema())
    if progress is None:
        progress = sys.stderr.isatty() and os.path.getsize(input_path) >= PROGRESS_MIN_BYTES
    target = os.path.abspath(output_path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, partial = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", suffix=".partial", dir=os.path.dirname(target)
    )
    rows = chunks = 0
    columns: list[str] = []
    try:
        binary = out_fmt == "parquet"
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            writer = _WRITERS[out_fmt](fh)
            with _progress(progress, reader, input_path) as advance:
                for chunk in reader:
                    frame = _predict_chunk(model, chunk, rows, output_names)
                    if chunks == 0:
                        columns = [str(c) for c in frame.columns]
                    elif [str(c) for c in frame.columns] != columns:
                        raise BatchPredictError(
                            f"Rows {rows + 1}-{rows + len(chunk)}: the predictions have the "
                            f"columns {[str(c) for c in frame.columns]}, earlier chunks had "
                            f"{columns}."
                        )
                    writer.write(frame)
                    rows += len(chunk)
                    chunks += 1
                    advance()
            writer.close()
        os.replace(partial, target)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    return BatchResult(target, rows, chunks, columns)


def _predict_chunk(model: Any, chunk: Any, offset: int, output_names: list[str] | None) -> Any:
    import warnings

    first, last = offset + 1, offset + len(chunk)
    try:
        with warnings.catch_warnings():
            # "extra columns dropped" would repeat once per chunk
            warnings.simplefilter("ignore", UserWarning)
            predictions = model.predict(chunk)
    except MlflowException as exc:
        raise BatchPredictError(f"Rows {first}-{last}: {exc.message}") from None
    frame = _as_frame(predictions, output_names)
    if len(frame) != len(chunk):
        raise BatchPredictError(
            f"Rows {first}-{last}: the model returned {len(frame)} prediction(s) for "
            f"{len(chunk)} row(s)."
        )
    return frame


class _progress:
    """A rich progress bar over the reader's (done, total), or nothing."""

    def __init__(self, enabled: bool, reader: _Reader, label: str) -> None:
        self.enabled, self.reader, self.label = enabled, reader, label
        self._bar: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        by_rows = isinstance(self.reader, (_ParquetReader, _InMemoryReader))
        self._bar = Progress(
            TextColumn("[bold]scoring[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn() if by_rows else TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        task = self._bar.add_task(os.path.basename(self.label), total=self.reader.total)
        return lambda: self._bar.update(task, completed=self.reader.done())

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
