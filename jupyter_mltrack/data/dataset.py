"""Datasets for ``log_input``: pandas DataFrames and numpy arrays with name, digest, source,
schema and profile (MLflow's ``mlflow.data`` objects).

The digest is a content hash, the same in every process and on every machine: SHA-256 over
a canonical byte form, cut to ``DIGEST_LENGTH`` hex characters. For a DataFrame: its shape,
each column's name and dtype in order, then pandas' own per-row hash
(``pandas.util.hash_pandas_object`` with the index, a keyed hash with a fixed key, so no
process-dependent seed; cells it cannot hash, such as lists, are hashed as their text). For
numpy: each array's label, dtype string (byte order included) and shape, then its raw bytes
(the ``repr`` of each value for object arrays). Data up to ``FULL_HASH_ROWS`` rows is hashed
whole, so changing any single value changes the digest. Larger data hashes ``SAMPLE_ROWS``
evenly spaced rows (``linspace(0, n - 1)``: always the first and the last) plus its full
shape, about 10 ms for 10 million rows of a few columns; an edit between sampled rows of such
data is not seen, as in MLflow (which hashes only the first 10,000 rows).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from jupyter_mltrack import entities
from jupyter_mltrack.data.sources import DatasetSource, resolve_source
from jupyter_mltrack.exceptions import InvalidParameterValue

DIGEST_LENGTH = 16
FULL_HASH_ROWS = 1_000_000
SAMPLE_ROWS = 100_000
DEFAULT_NAME = "dataset"


class Dataset:
    """Base class: a name, a digest and a source; subclasses add schema and profile."""

    def __init__(self, source: DatasetSource, name: str | None, digest: str | None) -> None:
        self._source = source
        self._name = _text(name, "name") if name is not None else DEFAULT_NAME
        self._digest = _text(digest, "digest") if digest is not None else self._compute_digest()

    def _compute_digest(self) -> str:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self._name

    @property
    def digest(self) -> str:
        return self._digest

    @property
    def source(self) -> DatasetSource:
        return self._source

    @property
    def schema(self) -> dict[str, Any] | None:
        return None

    @property
    def profile(self) -> dict[str, Any] | None:
        return None

    def to_dict(self) -> dict[str, str]:
        """The stored fields as strings (``source``, ``schema``, ``profile`` are JSON)."""
        out = {
            "name": self.name,
            "digest": self.digest,
            "source": self.source.to_json(),
            "source_type": self.source.source_type,
        }
        for key in ("schema", "profile"):
            value = getattr(self, key)
            if value is not None:
                out[key] = json.dumps(value, sort_keys=True)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def _to_mlflow_entity(self) -> entities.Dataset:
        return entities.Dataset(**self.to_dict())

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: name={self.name!r}, digest={self.digest!r}>"


class PandasDataset(Dataset):
    """A pandas DataFrame (``df``), optionally naming its ``targets`` column."""

    def __init__(
        self,
        df: Any,
        source: DatasetSource,
        targets: str | None = None,
        name: str | None = None,
        digest: str | None = None,
    ) -> None:
        if targets is not None and targets not in df.columns:
            raise InvalidParameterValue(
                f"The DataFrame has no targets column {targets!r}; its columns are "
                f"{list(map(str, df.columns))[:20]}."
            )
        self._df = df
        self._targets = targets
        super().__init__(source, name, digest)

    @property
    def df(self) -> Any:
        return self._df

    @property
    def targets(self) -> str | None:
        return self._targets

    def _compute_digest(self) -> str:
        return pandas_digest(self._df)

    @property
    def schema(self) -> dict[str, Any]:
        return {
            "mlflow_colspec": [
                {"type": _column_type(dtype), "name": str(col), "required": True}
                for col, dtype in self._df.dtypes.items()
            ]
        }

    @property
    def profile(self) -> dict[str, Any]:
        return {"num_rows": len(self._df), "num_elements": int(self._df.size)}


class NumpyDataset(Dataset):
    """A numpy array (or a dict of arrays) of ``features``, with optional ``targets``."""

    def __init__(
        self,
        features: Any,
        source: DatasetSource,
        targets: Any = None,
        name: str | None = None,
        digest: str | None = None,
    ) -> None:
        self._features = features
        self._targets = targets
        super().__init__(source, name, digest)

    @property
    def features(self) -> Any:
        return self._features

    @property
    def targets(self) -> Any:
        return self._targets

    def _compute_digest(self) -> str:
        return numpy_digest(self._features, self._targets)

    @property
    def schema(self) -> dict[str, Any]:
        spec = {"features": json.dumps(_tensor_spec(self._features))}
        if self._targets is not None:
            spec["targets"] = json.dumps(_tensor_spec(self._targets))
        return {"mlflow_tensorspec": spec}

    @property
    def profile(self) -> dict[str, Any]:
        arrays = _named_arrays("features", self._features)
        if self._targets is not None:
            arrays += _named_arrays("targets", self._targets)
        first = arrays[0][1]
        return {
            "num_rows": int(first.shape[0]) if first.ndim else 1,
            "num_elements": sum(int(a.size) for _, a in arrays),
        }


def from_pandas(
    df: Any,
    source: DatasetSource | str | None = None,
    targets: str | None = None,
    name: str | None = None,
    digest: str | None = None,
) -> PandasDataset:
    """A dataset for ``log_input`` from a pandas DataFrame.

    Parameters
    ----------
    df : pandas.DataFrame
        The data.
    source : DatasetSource or str, optional
        Where it came from: a path, a URL, a URI or a ``DatasetSource``. Without one the
        source is the code (notebook or script) that built it.
    targets : str, optional
        The name of the target column.
    name : str, optional
        The dataset's name (``"dataset"`` if none).
    digest : str, optional
        A digest to record instead of the computed content hash.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise InvalidParameterValue(
            f"from_pandas expects a pandas DataFrame, got {type(df).__name__}; for a Series use "
            "series.to_frame(), for arrays use from_numpy."
        )
    return PandasDataset(df, resolve_source(source), targets, name, digest)


def from_numpy(
    features: Any,
    source: DatasetSource | str | None = None,
    targets: Any = None,
    name: str | None = None,
    digest: str | None = None,
) -> NumpyDataset:
    """A dataset for ``log_input`` from a numpy array (or a dict of arrays).

    Parameters
    ----------
    features : numpy.ndarray or dict of str to numpy.ndarray
        The features.
    source : DatasetSource or str, optional
        Where they came from (see ``from_pandas``).
    targets : numpy.ndarray or dict of str to numpy.ndarray, optional
        The targets; their first dimension must match the features'.
    name : str, optional
        The dataset's name (``"dataset"`` if none).
    digest : str, optional
        A digest to record instead of the computed content hash.
    """
    features_rows = _rows(_named_arrays("features", features))
    if targets is not None and _rows(_named_arrays("targets", targets)) != features_rows:
        raise InvalidParameterValue(
            "from_numpy: targets must have as many rows as the features "
            f"({features_rows}); got {_rows(_named_arrays('targets', targets))}."
        )
    return NumpyDataset(features, resolve_source(source), targets, name, digest)


# -- digests ----------------------------------------------------------------------------------
def pandas_digest(df: Any) -> str:
    """The content hash of a DataFrame (see the module docstring)."""
    import pandas as pd

    h = hashlib.sha256(b"mltrack-pandas-1\0")
    h.update(f"{df.shape}\0".encode())
    for col, dtype in df.dtypes.items():
        h.update(f"{col!r}\0{dtype}\0".encode())
    part = df.iloc[_sample_positions(len(df))] if len(df) > FULL_HASH_ROWS else df
    try:
        hashed = pd.util.hash_pandas_object(part, index=True)
    except TypeError:  # unhashable cells (lists, dicts): hash their text instead
        hashed = pd.util.hash_pandas_object(part.astype(str), index=True)
    h.update(hashed.to_numpy().astype("<u8").tobytes())
    return h.hexdigest()[:DIGEST_LENGTH]


def numpy_digest(features: Any, targets: Any = None) -> str:
    """The content hash of features (and targets): dtype, shape and values of each array."""
    h = hashlib.sha256(b"mltrack-numpy-1\0")
    arrays = _named_arrays("features", features)
    if targets is not None:
        arrays += _named_arrays("targets", targets)
    for label, array in arrays:
        _hash_array(h, label, array)
    return h.hexdigest()[:DIGEST_LENGTH]


def _hash_array(h: Any, label: str, array: Any) -> None:
    import numpy as np

    h.update(f"{label}\0{array.dtype.str}\0{array.shape}\0".encode())
    if array.ndim and array.shape[0] > FULL_HASH_ROWS:
        array = array[_sample_positions(array.shape[0])]
    if array.dtype.hasobject:  # the bytes would be pointers: hash each value's repr
        h.update("\x1f".join(map(repr, array.ravel().tolist())).encode())
    else:
        h.update(np.ascontiguousarray(array).view(np.uint8).ravel())


def _sample_positions(n: int) -> Any:
    import numpy as np

    positions = np.linspace(0, n - 1, num=SAMPLE_ROWS, dtype=np.int64)
    if n >= SAMPLE_ROWS:  # steps of at least one row: already unique and sorted
        return positions
    return np.unique(positions)  # (sorting costs 15 ms for 100,000 rows)


def _named_arrays(label: str, value: Any) -> list[tuple[str, Any]]:
    import numpy as np

    if isinstance(value, Mapping):
        if not value:
            raise InvalidParameterValue(f"from_numpy: {label} is an empty dict.")
        return [(f"{label}.{k}", _array(f"{label}[{k!r}]", value[k])) for k in sorted(value)]
    if not isinstance(value, np.ndarray):
        raise InvalidParameterValue(
            f"from_numpy expects a numpy array or a dict of arrays as {label}, got "
            f"{type(value).__name__}; for a DataFrame use from_pandas."
        )
    return [(label, value)]


def _array(label: str, value: Any) -> Any:
    import numpy as np

    if not isinstance(value, np.ndarray):
        raise InvalidParameterValue(f"from_numpy: {label} must be a numpy array.")
    return value


def _rows(arrays: list[tuple[str, Any]]) -> int:
    return int(arrays[0][1].shape[0]) if arrays[0][1].ndim else 1


def _tensor_spec(value: Any) -> list[dict[str, Any]]:
    out = []
    for label, array in _named_arrays("", value):
        spec: dict[str, Any] = {"dtype": str(array.dtype), "shape": [-1, *array.shape[1:]]}
        entry: dict[str, Any] = {"type": "tensor", "tensor-spec": spec}
        if label:
            entry["name"] = label.lstrip(".")
        out.append(entry)
    return out


_KIND_TYPES = {"b": "boolean", "M": "datetime", "O": "string", "U": "string", "S": "binary"}


def _column_type(dtype: Any) -> str:
    """MLflow's column type names for a pandas dtype."""
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        return "long" if dtype.itemsize > 4 else "integer"
    if kind == "f":
        return "double" if dtype.itemsize > 4 else "float"
    return _KIND_TYPES.get(kind, str(dtype))


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterValue(
            f"A dataset's {field} must be a non-empty string, got {value!r}."
        )
    return value
