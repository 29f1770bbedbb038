"""Artifacts behind a tracking server's artifact proxy (MLflow's ``mlflow-artifacts`` API).

Two URI forms name the same place:

- ``mlflow-artifacts:/1/<run_id>/artifacts`` (what a server gives runs and models); the server is
  the tracking URI in use, as in MLflow. ``mlflow-artifacts://host:port/path`` names one.
- ``http(s)://host[:port]/api/2.0/mlflow-artifacts/artifacts/1/<run_id>/artifacts``.

Uploads are one streamed ``PUT`` per file, downloads one streamed ``GET``, listings
``GET .../artifacts?path=``; calls go through the REST store's HTTP client (auth, TLS, retries).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlparse

from jupyter_mltrack.entities import FileInfo
from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist
from jupyter_mltrack.store.artifacts import ArtifactRepository, clean_artifact_path

PROXY_PREFIX = "/api/2.0/mlflow-artifacts/artifacts"

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def _http_client(base_url: str) -> Any:
    from jupyter_mltrack.store.rest.http import HttpClient

    with _lock:
        client = _clients.get(base_url)
        if client is None:
            client = _clients[base_url] = HttpClient(base_url)
        return client


def _server_from_tracking_uri(tracking_uri: str | None, artifact_uri: str) -> str:
    candidates = [
        tracking_uri,
        os.environ.get("MLTRACK_TRACKING_URI"),
        os.environ.get("MLFLOW_TRACKING_URI"),
    ]
    for uri in candidates:
        if uri and urlparse(uri).scheme in ("http", "https"):
            return uri.rstrip("/")
    raise InvalidParameterValue(
        f"{artifact_uri} lives on a tracking server's artifact proxy, but the tracking URI in "
        f"use ({tracking_uri or 'none'}) is not an http(s):// server. Set the tracking URI to "
        "that server (set_tracking_uri('http://host:5000') or MLTRACK_TRACKING_URI)."
    )


def split_artifact_uri(artifact_uri: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """(server base URL, path under the proxy root) of an ``mlflow-artifacts`` or http(s) URI."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "mlflow-artifacts":
        if parsed.netloc:
            base = f"http://{parsed.netloc}"
        else:
            base = _server_from_tracking_uri(tracking_uri, artifact_uri)
        return base, parsed.path.strip("/")
    if parsed.scheme in ("http", "https"):
        path = parsed.path
        at = path.find(PROXY_PREFIX)
        if at < 0:
            raise InvalidParameterValue(
                f"{artifact_uri!r} is not an artifact proxy URL; expected "
                f"http(s)://host{PROXY_PREFIX}/<path>."
            )
        base = f"{parsed.scheme}://{parsed.netloc}{path[:at]}"
        return base, path[at + len(PROXY_PREFIX) :].strip("/")
    raise InvalidParameterValue(f"Not an artifact proxy URI: {artifact_uri!r}.")


class HttpArtifactRepository(ArtifactRepository):
    """A run's or model's artifacts behind a tracking server's ``mlflow-artifacts`` proxy."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None) -> None:
        super().__init__(artifact_uri.rstrip("/"))
        self.base_url, self.root = split_artifact_uri(artifact_uri, tracking_uri)
        self.http = _http_client(self.base_url)

    def _remote(self, artifact_path: str | None) -> str:
        rel = clean_artifact_path(artifact_path)
        return posixpath.join(self.root, rel) if self.root and rel else (rel or self.root)

    def _endpoint(self, artifact_path: str | None) -> str:
        remote = self._remote(artifact_path)
        return f"{PROXY_PREFIX}/{quote(remote)}" if remote else PROXY_PREFIX

    # -- writes ------------------------------------------------------------------------------
    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        if not os.path.isfile(local_file):
            raise ResourceDoesNotExist(f"Cannot log artifact: no such file {local_file!r}.")
        rel = clean_artifact_path(artifact_path)
        name = os.path.basename(local_file)
        self.log_artifact_as(local_file, posixpath.join(rel, name) if rel else name)

    def log_artifact_as(self, local_file: str, artifact_file: str, move: bool = False) -> None:
        if not clean_artifact_path(artifact_file):
            raise InvalidParameterValue("artifact_file must name a file, e.g. 'data/x.csv'.")
        import mimetypes

        mime = mimetypes.guess_type(artifact_file)[0] or "application/octet-stream"
        with open(local_file, "rb") as fh:
            self.http.request(
                "PUT",
                self._endpoint(artifact_file),
                raw=fh,
                extra_headers={"Content-Type": mime},
            ).close()
        if move:
            os.unlink(local_file)

    # -- reads -------------------------------------------------------------------------------
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        rel = clean_artifact_path(path)
        answer = self.http.call("GET", PROXY_PREFIX, {"path": self._remote(path)})
        infos = []
        for item in answer.get("files", []):
            name = clean_artifact_path(item.get("path", ""))  # a server must not send '..'
            if not name:
                continue
            size = item.get("file_size")
            infos.append(
                FileInfo(
                    posixpath.join(rel, name) if rel else name,
                    bool(item.get("is_dir")),
                    int(size) if size is not None and not item.get("is_dir") else None,
                )
            )
        # A listing of a file names the file itself: that is not a folder's content.
        if (
            len(infos) == 1
            and not infos[0].is_dir
            and rel
            and infos[0].path == posixpath.join(rel, posixpath.basename(rel))
        ):
            return []
        return sorted(infos, key=lambda f: (not f.is_dir, f.path))

    def _download_file(self, artifact_path: str, local: str) -> None:
        """Download into a hidden file beside ``local``, renamed when whole: a download cut
        short starts again (see ``HttpClient.read_streamed``) and never leaves half a file."""
        folder = os.path.dirname(local) or "."
        os.makedirs(folder, exist_ok=True)

        def write(response: Any) -> None:
            fd, part = tempfile.mkstemp(prefix=".part-", dir=folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        fh.write(chunk)
                os.replace(part, local)
            finally:
                if os.path.exists(part):
                    os.unlink(part)

        self.http.read_streamed(self._endpoint(artifact_path), write)

    def _download_tree(self, artifact_path: str, dest: str) -> bool:
        found = False
        for info in self.list_artifacts(artifact_path or None):
            name = posixpath.basename(info.path)
            target = os.path.join(dest, name)
            if info.is_dir:
                found = self._download_tree(info.path, target) or found
            else:
                self._download_file(info.path, target)
                found = True
        return found

    def download_artifacts(self, artifact_path: str = "", dst_path: str | None = None) -> str:
        rel = clean_artifact_path(artifact_path)
        dst_root = dst_path or tempfile.mkdtemp(prefix="mltrack-artifacts-")
        os.makedirs(dst_root, exist_ok=True)
        name = posixpath.basename(rel) or posixpath.basename(self.root) or "artifacts"
        dest = os.path.join(dst_root, name)
        if rel and not self.list_artifacts(rel):
            # Not a folder with content: a single file, or nothing at all.
            try:
                self._download_file(rel, dest)
            except ResourceDoesNotExist:
                raise ResourceDoesNotExist(
                    f"No artifact {artifact_path!r} in {self.artifact_uri}; "
                    "list_artifacts() shows what exists."
                ) from None
            return os.path.abspath(dest)
        os.makedirs(dest, exist_ok=True)
        if not self._download_tree(rel, dest) and rel:
            shutil.rmtree(dest, ignore_errors=True)
            raise ResourceDoesNotExist(f"No artifact {artifact_path!r} in {self.artifact_uri}.")
        return os.path.abspath(dest)

    def read_bytes(self, artifact_path: str, max_bytes: int | None = None) -> bytes:
        if not clean_artifact_path(artifact_path):
            raise ResourceDoesNotExist("read_artifact reads one file; give its path.")

        def read(response: Any) -> bytes:
            if max_bytes is None:
                return response.content
            data = bytearray()
            for chunk in response.iter_content(chunk_size=min(max_bytes, 1 << 20) or 1):
                data += chunk
                if len(data) >= max_bytes:
                    break
            return bytes(data[:max_bytes])

        return self.http.read_streamed(self._endpoint(artifact_path), read)

    def iter_bytes(self, artifact_path: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        endpoint = self._endpoint(artifact_path)
        response = self.http.request("GET", endpoint, stream=True)
        try:
            yield from response.iter_content(chunk_size=chunk_size)
        except self.http.CUT_SHORT as err:  # part of it is already with the caller: no restart
            raise self.http.download_cut_short(endpoint, err) from None
        finally:
            response.close()

    # -- deletes -----------------------------------------------------------------------------
    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        self.http.request("DELETE", self._endpoint(artifact_path)).close()
