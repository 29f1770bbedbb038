"""Model URIs: ``runs:/<run_id>/<path>``, ``models:/<name>/<version|stage|latest>``,
``models:/<name>@<alias>``, ``models:/<model_id>`` (MLflow 3 logged models), ``file://`` URIs
and plain paths -> a local model directory.

Models in a local store are used in place; models on S3 or behind a tracking server's artifact
proxy are downloaded once per process into a temporary folder.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist

_RUNS = re.compile(r"^runs:/(?P<run_id>[^/]+)/?(?P<path>.*)$")
_MODELS_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)/?$")
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<ref>[^/]+)/?$")
_MODEL_ID = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]{32})/?$")

_downloads: dict[str, str] = {}  # remote model URI -> local copy, for this process
_downloads_lock = threading.Lock()


@dataclass
class ResolvedModel:
    """Where a model URI points: the local directory, and the registry facts when known."""

    local_path: str
    run_id: str | None = None
    source: str | None = None  # where the model lives (a URI), for registration
    name: str | None = None
    version: int | None = None
    stage: str | None = None
    alias: str | None = None


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """``runs:/<run_id>/<path>`` -> (run_id, path)."""
    match = _RUNS.match(uri)
    if not match or not match.group("run_id"):
        raise InvalidParameterValue(
            f"Invalid runs URI {uri!r}; expected runs:/<run_id>/<artifact path>."
        )
    return match.group("run_id"), match.group("path").strip("/")


def resolve_model_uri(model_uri: str, client: object | None = None) -> ResolvedModel:
    """Resolve any model URI to a local directory (no copy for local stores)."""
    uri = os.fspath(model_uri)
    if not uri.startswith(("runs:/", "models:/")):
        return _resolve_path(uri, model_uri)
    if client is None:  # a plain path needs no store (nor SQLAlchemy)
        from jupyter_mltrack.tracking.client import Client

        client = Client()
    if uri.startswith("runs:/"):
        run_id, path = parse_runs_uri(uri)
        local, source = _run_artifact_path(client, run_id, path)
        return ResolvedModel(local, run_id=run_id, source=source)
    id_match = _MODEL_ID.match(uri)
    if id_match:
        model = client.get_logged_model(id_match.group("model_id"))  # type: ignore[attr-defined]
        local = fetch_artifacts(model.artifact_location, _tracking_uri(client))
        return ResolvedModel(local, run_id=model.source_run_id, source=model.artifact_location)
    return _resolve_registered(client, uri)


def _resolve_path(uri: str, model_uri: Any) -> ResolvedModel:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        uri = unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise InvalidParameterValue(
            f"Unsupported model URI {model_uri!r}; use runs:/, models:/, file:// or a local path."
        )
    if not os.path.exists(uri):
        raise ResourceDoesNotExist(f"No model at {uri!r}: the path does not exist.")
    return ResolvedModel(os.path.abspath(uri))


def _tracking_uri(client: object) -> str | None:
    return getattr(client, "tracking_uri", None)


def fetch_artifacts(artifact_uri: str, tracking_uri: str | None = None) -> str:
    """A local folder (or file) holding what ``artifact_uri`` names: the path itself for a local
    store, else a download (made once per process and reused)."""
    from jupyter_mltrack.store.artifacts import get_artifact_repository

    repo = get_artifact_repository(artifact_uri, tracking_uri)
    if repo.is_local:
        local = repo.local_path("")
        if not os.path.exists(local):
            raise ResourceDoesNotExist(f"No model at {artifact_uri}: it does not exist.")
        return local
    with _downloads_lock:
        cached = _downloads.get(artifact_uri)
        if cached and os.path.exists(cached):
            return cached
        local = repo.download_artifacts("", tempfile.mkdtemp(prefix="mltrack-model-"))
        _downloads[artifact_uri] = local
        return local


def _run_artifact_path(client: Any, run_id: str, path: str) -> tuple[str, str]:
    """(local path, artifact URI) of ``path`` in a run's artifacts.

    A model that MLflow 3 logged for the run lives under its own logged-model location, not
    in the run's artifacts; ``runs:/<run_id>/<name>`` then finds it by name and source run.
    """
    from jupyter_mltrack.store.artifacts import get_artifact_repository, path_to_uri

    run = client.get_run(run_id)
    base = (run.info.artifact_uri or "").rstrip("/")
    repo = get_artifact_repository(base, _tracking_uri(client))
    if repo.is_local:
        local = repo.local_path(path)
        if os.path.exists(local):
            return local, path_to_uri(local)
    elif path and repo.exists(path):
        source = f"{base}/{path}"
        return fetch_artifacts(source, _tracking_uri(client)), source
    logged = _logged_model_of_run(client, run, path)
    if logged is not None:
        return fetch_artifacts(logged, _tracking_uri(client)), logged
    existing = ", ".join(a.path for a in repo.list_artifacts()) or "none"
    raise ResourceDoesNotExist(
        f"Run {run_id} has no artifact {path!r} (its artifacts: {existing})."
    )


def _logged_model_of_run(client: Any, run: Any, name: str) -> str | None:
    if not name or "/" in name or not hasattr(client, "search_logged_models"):
        return None
    try:
        found = client.search_logged_models(
            [run.info.experiment_id],
            filter_string=f"name = '{name}' AND source_run_id = '{run.info.run_id}'",
            max_results=1,
        )
    except Exception:  # a store without logged models: nothing to find there
        return None
    return found[0].artifact_location if found else None


def _resolve_registered(client: object, uri: str) -> ResolvedModel:
    alias_match = _MODELS_ALIAS.match(uri)
    if alias_match:
        name, alias = alias_match.group("name"), alias_match.group("alias")
        mv = client.get_model_version_by_alias(name, alias)  # type: ignore[attr-defined]
        return _from_version(client, mv, alias=alias)
    match = _MODELS.match(uri)
    if not match:
        raise InvalidParameterValue(
            f"Invalid model URI {uri!r}; expected models:/<name>/<version>, models:/<name>/<stage>, "
            "models:/<name>/latest or models:/<name>@<alias>."
        )
    name, ref = match.group("name"), match.group("ref")
    if ref.isdigit():
        mv = client.get_model_version(name, ref)  # type: ignore[attr-defined]
        return _from_version(client, mv)
    if ref.lower() == "latest":
        mv = client.get_latest_model_version(name)  # type: ignore[attr-defined]
        return _from_version(client, mv)
    mv = client.get_model_version_by_stage(name, ref)  # type: ignore[attr-defined]
    return _from_version(client, mv, stage=mv.current_stage)


def _from_version(
    client: object, mv: object, stage: str | None = None, alias: str | None = None
) -> ResolvedModel:
    source: str = mv.source or ""  # type: ignore[attr-defined]
    try:
        local = _source_path(client, source)
    except ResourceDoesNotExist:
        raise ResourceDoesNotExist(
            f"Model version {mv.name} v{mv.version} points at {source}, which no longer exists."  # type: ignore[attr-defined]
        ) from None
    return ResolvedModel(
        local,
        run_id=mv.run_id,  # type: ignore[attr-defined]
        source=source,
        name=mv.name,  # type: ignore[attr-defined]
        version=int(mv.version),  # type: ignore[attr-defined]
        stage=stage,
        alias=alias,
    )


def _source_path(client: Any, source: str) -> str:
    """A model version's source (a path, file://, s3://, mlflow-artifacts:, runs:/ or
    models:/<model_id>) -> a local folder."""
    if source.startswith("runs:/"):
        run_id, path = parse_runs_uri(source)
        return _run_artifact_path(client, run_id, path)[0]
    id_match = _MODEL_ID.match(source)
    if id_match:
        model = client.get_logged_model(id_match.group("model_id"))
        return fetch_artifacts(model.artifact_location, _tracking_uri(client))
    return fetch_artifacts(source, _tracking_uri(client))
