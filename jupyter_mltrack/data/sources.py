"""Where a dataset came from: MLflow's ``DatasetSource`` kinds that need no extra packages.

A source is recorded as ``source_type`` plus a JSON string (``to_json()``); it describes the
origin, it does not load the data.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlparse

from jupyter_mltrack.exceptions import InvalidParameterValue


class DatasetSource:
    """Base class: ``source_type`` names the kind, ``to_dict()`` its fields."""

    source_type = "unknown"

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.to_json()}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetSource):
            return NotImplemented
        return (self.source_type, self.to_json()) == (other.source_type, other.to_json())

    def __hash__(self) -> int:
        return hash((self.source_type, self.to_json()))


class CodeDatasetSource(DatasetSource):
    """Data built in code (no source given): tags say which notebook or script made it."""

    source_type = "code"

    def __init__(self, tags: dict[str, str] | None = None) -> None:
        self.tags = dict(tags or {})

    def to_dict(self) -> dict[str, Any]:
        return {"tags": self.tags}


class HTTPDatasetSource(DatasetSource):
    """Data downloaded from an ``http(s)://`` URL."""

    source_type = "http"

    def __init__(self, url: str) -> None:
        self.url = url

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url}


class UriDatasetSource(DatasetSource):
    """Data at a file path or another URI (``s3://...``, ``gs://...``); the scheme is the type."""

    def __init__(self, uri: str, source_type: str = "local") -> None:
        self.uri = uri
        self.source_type = source_type

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri}


def resolve_source(source: DatasetSource | str | os.PathLike[str] | None) -> DatasetSource:
    """A ``DatasetSource`` for what the user passed: nothing (code), a URL, a path or a URI."""
    if source is None:
        return CodeDatasetSource(_code_tags())
    if isinstance(source, DatasetSource):
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        raise InvalidParameterValue(
            f"A dataset source must be a path, a URI or a DatasetSource, got {source!r}."
        )
    scheme = urlparse(source).scheme.lower()
    if scheme in ("http", "https"):
        return HTTPDatasetSource(source)
    if len(scheme) <= 1 or scheme == "file":  # a plain path (or a Windows drive letter)
        return UriDatasetSource(source, "local")
    return UriDatasetSource(source, scheme)


def _code_tags() -> dict[str, str]:
    """The notebook or script building the dataset, as MLflow's code sources record it."""
    from jupyter_mltrack.tracking.context import source_tags

    return source_tags()
