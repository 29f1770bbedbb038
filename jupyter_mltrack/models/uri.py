"""Model URIs: ``runs:/<run_id>/<path>``, ``models:/<name>/<version|stage|latest>``,
``models:/<name>@<alias>``, ``file://`` URIs and plain paths -> a local model directory."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist

_RUNS = re.compile(r"^runs:/(?P<run_id>[^/]+)/?(?P<path>.*)$")
_MODELS_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)/?$")
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<ref>[^/]+)/?$")


@dataclass
class ResolvedModel:
    """Where a model URI points: the local directory, and the registry facts when known."""

    local_path: str
    run_id: str | None = None
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
    from jupyter_mltrack.tracking.client import Client

    uri = os.fspath(model_uri)
    client = client or Client()
    if uri.startswith("runs:/"):
        run_id, path = parse_runs_uri(uri)
        local = _run_artifact_path(client, run_id, path)
        return ResolvedModel(local, run_id=run_id)
    if uri.startswith("models:/"):
        return _resolve_registered(client, uri)
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


def _run_artifact_path(client: object, run_id: str, path: str) -> str:
    from jupyter_mltrack.store.artifacts import get_artifact_repository

    run = client.get_run(run_id)  # type: ignore[attr-defined]
    repo = get_artifact_repository(run.info.artifact_uri or "")
    local = repo.local_path(path)
    if not os.path.exists(local):
        existing = ", ".join(a.path for a in repo.list_artifacts()) or "none"
        raise ResourceDoesNotExist(
            f"Run {run_id} has no artifact {path!r} (its artifacts: {existing})."
        )
    return local


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
    from jupyter_mltrack.store.artifacts import uri_to_path

    local = uri_to_path(mv.source)  # type: ignore[attr-defined]
    if not os.path.exists(local):
        raise ResourceDoesNotExist(
            f"Model version {mv.name} v{mv.version} points at {mv.source}, which no longer exists."  # type: ignore[attr-defined]
        )
    return ResolvedModel(
        local,
        run_id=mv.run_id,  # type: ignore[attr-defined]
        name=mv.name,  # type: ignore[attr-defined]
        version=int(mv.version),  # type: ignore[attr-defined]
        stage=stage,
        alias=alias,
    )
