"""What every route handler gets: the server's one Client, the artifact-location mapping, and
the request's fields.

Artifact locations are stored as real locations (``file:///srv/artifacts/3/<run>/artifacts``,
``s3://bucket/prefix/3/...``), so a notebook opening the same database reads them directly.
When the server proxies artifacts (the default), locations under the artifacts destination are
shown to HTTP clients as ``mlflow-artifacts:/3/<run>/artifacts`` (MLflow's form), so MLflow's
client uploads and downloads through the server; ``mlflow-artifacts:`` URIs sent by clients are
mapped back before they are stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from jupyter_mltrack.entities import (
    Experiment,
    Metric,
    ModelVersion,
    Param,
    RegisteredModel,
    Run,
    RunInfo,
    RunTag,
)
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.store.artifacts import clean_artifact_path, path_to_uri
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking.client import Client

_LOCAL_SCHEMES = ("", "file")


def _now_ms() -> int:
    return int(time.time() * 1000)


class ServerClient(Client):
    """The Client as a server uses it: every write synchronous, no per-run state kept.

    A server answers 200 only once the write is in the database (so another worker, or a
    notebook on the same store, sees it at once), and it lives for weeks: runs must not pile
    up in the buffered writer's bookkeeping. Run state is re-read before each write, because
    another worker process may have deleted the run or its experiment meanwhile.
    """

    def _forget_run(self, run_id: str) -> None:
        # The SQL store caches "this run is writable" per process; another worker may have
        # deleted the run since. Dropping the entry costs one indexed SELECT per write.
        # (Store change asked for: a store option that revalidates inside the write.)
        cache = getattr(self.store, "_writable", None)
        if cache is not None:
            cache.pop(run_id, None)

    def _forget_experiment(self, experiment_id: str) -> None:
        cache = getattr(self.store, "_active_experiments", None)
        if cache is not None and str(experiment_id).isdigit():
            cache.pop(int(experiment_id), None)

    def create_server_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int | None,
        tags: dict[str, str],
        run_name: str | None,
    ) -> Run:
        self._forget_experiment(experiment_id)
        return self.store.create_run(
            str(experiment_id), user_id, start_time or _now_ms(), tags, run_name
        )

    def update_server_run(
        self, run_id: str, status: str | None, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        return self.store.update_run_info(run_id, status, end_time, run_name)

    def log_server_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        self._forget_run(run_id)
        self.log_batch(run_id, metrics, params, tags, synchronous=True)

    def delete_server_tag(self, run_id: str, key: str) -> None:
        self._forget_run(run_id)
        self.delete_tag(run_id, key)

    def writable(self, run_id: str) -> None:
        """Raise unless ``run_id`` exists and is active (read now, not from a cache)."""
        self._forget_run(run_id)
        self.store.writable_run_key(run_id)


class ServerContext:
    """The server's shared state: one Client per process and the artifact mapping."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifacts_destination: str | None = None,
        serve_artifacts: bool = True,
    ) -> None:
        self.client = ServerClient(tracking_uri)
        store = self.client.store
        self.store_artifact_root = str(store.artifact_root).rstrip("/")
        destination = (
            normalize_destination(artifacts_destination)
            if artifacts_destination
            else self.store_artifact_root
        )
        if destination != self.store_artifact_root:
            # New experiments get their folder under the destination; older ones (the Default
            # experiment among them) keep theirs. Store change asked for: an artifact root
            # chosen when the store is opened, for every backend.
            store.artifact_root = destination
        self.artifacts_destination = destination
        self.serve_artifacts = serve_artifacts
        self.readable_roots = tuple({destination, self.store_artifact_root})

    # -- artifact locations ---------------------------------------------------------------
    def present(self, uri: str | None) -> str | None:
        """A stored location as HTTP clients see it (``mlflow-artifacts:/...`` when proxied)."""
        if not uri or not self.serve_artifacts:
            return uri
        root = self.artifacts_destination
        if uri == root:
            return f"{protocol.MLFLOW_ARTIFACTS_SCHEME}:/"
        if uri.startswith(root + "/"):
            return f"{protocol.MLFLOW_ARTIFACTS_SCHEME}:/{uri[len(root) + 1 :]}"
        return uri

    def internal(self, uri: str | None) -> str | None:
        """A location sent by a client as it is stored (``mlflow-artifacts:`` mapped back)."""
        if not uri or not uri.startswith(protocol.MLFLOW_ARTIFACTS_SCHEME + ":"):
            return uri
        rel = clean_artifact_path(urlparse(uri).path.lstrip("/"))
        return f"{self.artifacts_destination}/{rel}" if rel else self.artifacts_destination

    def check_readable(self, uri: str) -> None:
        """Refuse to read server-side files outside the artifact roots this server manages.

        A client may create an experiment whose artifact location is any local path; reading
        that path through the server would expose the server's file system.
        """
        if urlparse(uri).scheme not in _LOCAL_SCHEMES and len(urlparse(uri).scheme) > 1:
            return  # object stores: the repository for that scheme reads them
        if any(uri == root or uri.startswith(root + "/") for root in self.readable_roots):
            return
        raise InvalidParameterValue(
            "This run's artifacts are outside the server's artifact destination; the server "
            "does not read them. Read them where they are stored."
        )

    # -- entities as MLflow JSON, with locations as clients see them ----------------------
    def experiment_json(self, exp: Experiment) -> dict[str, Any]:
        out = protocol.experiment_to_json(exp)
        if exp.artifact_location:
            out["artifact_location"] = self.present(exp.artifact_location)
        return out

    def run_info_json(self, info: RunInfo) -> dict[str, Any]:
        out = protocol.run_info_to_json(info)
        if info.artifact_uri:
            out["artifact_uri"] = self.present(info.artifact_uri)
        return out

    def run_json(self, run: Run) -> dict[str, Any]:
        out = protocol.run_to_json(run)
        out["info"] = self.run_info_json(run.info)
        return out

    def model_version_json(self, mv: ModelVersion) -> dict[str, Any]:
        out = protocol.model_version_to_json(mv)
        if mv.source:
            out["source"] = self.present(mv.source)
        return out

    def registered_model_json(self, rm: RegisteredModel) -> dict[str, Any]:
        out = protocol.registered_model_to_json(rm)
        if rm.latest_versions:
            out["latest_versions"] = [self.model_version_json(v) for v in rm.latest_versions]
        return out


def normalize_destination(destination: str) -> str:
    """A folder path becomes an absolute ``file://`` URI; other URIs stay as given."""
    scheme = urlparse(destination).scheme
    if len(scheme) <= 1:  # a plain path (or a Windows drive letter)
        return path_to_uri(destination).rstrip("/")
    if scheme == "file":
        from jupyter_mltrack.store.artifacts import uri_to_path

        return path_to_uri(uri_to_path(destination)).rstrip("/")
    return destination.rstrip("/")


class Params:
    """A request's fields (query parameters and JSON body), read with MLflow's types."""

    __slots__ = ("data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def text(self, name: str, required: bool = False, *aliases: str) -> Any:
        value = self.data.get(name)
        for alias in aliases:
            if value in (None, ""):
                value = self.data.get(alias)
        if value in (None, "") and required:
            raise missing(name)
        return protocol.to_str(value, name)

    def required(self, name: str, *aliases: str) -> str:
        return self.text(name, True, *aliases)  # type: ignore[no-any-return]

    def integer(self, name: str, default: int | None = None) -> Any:
        return protocol.to_int(self.data.get(name), name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        return protocol.to_bool(self.data.get(name), name, default)

    def strings(self, name: str) -> list[str]:
        return protocol.to_str_list(self.data.get(name), name)

    def objects(self, name: str) -> Iterable[Mapping[str, Any]]:
        value = self.data.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise InvalidParameterValue(
                f"Invalid value for parameter '{name}': expected a list of objects."
            )
        return value


def missing(name: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Missing value for required parameter '{name}'.")
