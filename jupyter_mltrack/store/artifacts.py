"""Artifact repositories: where a run's files live, chosen by URI scheme.

``get_artifact_repository(uri)`` picks a repository from a small registry: local folders and
``file://`` here, ``s3://`` in ``artifacts_s3``, ``mlflow-artifacts:`` and ``http(s)://`` (a
tracking server's artifact proxy) in ``artifacts_http``. Every repository implements
``ArtifactRepository``; only local ones also offer ``local_path`` (no copy).
"""

from __future__ import annotations

import abc
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from jupyter_mltrack.entities import FileInfo
from jupyter_mltrack.exceptions import InvalidParameterValue, ResourceDoesNotExist


def path_to_uri(path: str | os.PathLike[str]) -> str:
    """An absolute ``file://`` URI for a local path."""
    return Path(path).resolve().as_uri()


def uri_to_path(uri: str) -> str:
    """The local path of a ``file:`` URI (or a plain path)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else uri
    raise InvalidParameterValue(f"Not a local artifact location: {uri!r}.")


def clean_artifact_path(artifact_path: str | None) -> str:
    """Normalize a relative artifact path; refuse anything that would leave the run's folder."""
    if artifact_path in (None, "", "."):
        return ""
    text = str(artifact_path).replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or text.startswith("~"):
        raise InvalidParameterValue(
            f"Invalid artifact path {artifact_path!r}: it must be relative to the run's "
            "artifact root (e.g. 'plots/loss.png'), not absolute."
        )
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../") or "/../" in f"/{text}/":
        raise InvalidParameterValue(
            f"Invalid artifact path {artifact_path!r}: '..' would leave the run's artifact "
            "folder. Use a path inside it, e.g. 'plots/loss.png'."
        )
    return "" if norm == "." else norm


class ArtifactRepository(abc.ABC):
    """Where one run's (or logged model's) artifacts live; paths are relative to its root."""

    #: True when files are plain local files (``local_path`` then works without a copy).
    is_local = False

    def __init__(self, artifact_uri: str) -> None:
        self.artifact_uri = artifact_uri

    @abc.abstractmethod
    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Copy one local file into the repository (under ``artifact_path``)."""

    @abc.abstractmethod
    def log_artifact_as(self, local_file: str, artifact_file: str) -> None:
        """Store one local file as the artifact ``artifact_file`` (any name)."""

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Copy a local folder's contents into the repository (under ``artifact_path``)."""
        if not os.path.isdir(local_dir):
            raise ResourceDoesNotExist(f"Cannot log artifacts: no such folder {local_dir!r}.")
        base = clean_artifact_path(artifact_path)
        for root, _dirs, files in os.walk(local_dir):
            rel = os.path.relpath(root, local_dir).replace(os.sep, "/")
            rel = "" if rel == "." else rel
            for name in sorted(files):
                target = posixpath.join(base, rel, name) if base or rel else name
                self.log_artifact_as(os.path.join(root, name), target.lstrip("/"))

    @abc.abstractmethod
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The direct children of ``path`` (the root when None), folders first then files."""

    @abc.abstractmethod
    def download_artifacts(self, artifact_path: str = "", dst_path: str | None = None) -> str:
        """Copy an artifact file or folder to ``dst_path`` (a temp folder if None); return it."""

    @abc.abstractmethod
    def read_bytes(self, artifact_path: str, max_bytes: int | None = None) -> bytes:
        """The content of one artifact file (its first ``max_bytes`` when given)."""

    @abc.abstractmethod
    def iter_bytes(self, artifact_path: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The content of one artifact file in chunks (for streaming responses)."""

    @abc.abstractmethod
    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        """Remove an artifact file or folder (everything when None)."""

    def delete(self) -> None:
        """Remove every artifact of this repository."""
        self.delete_artifacts(None)

    def write_bytes(self, data: bytes, artifact_file: str) -> None:
        """Write ``data`` as the artifact ``artifact_file``."""
        rel = clean_artifact_path(artifact_file)
        if not rel:
            raise InvalidParameterValue("artifact_file must name a file, e.g. 'notes/summary.txt'.")
        with tempfile.TemporaryDirectory(prefix="mltrack-upload-") as tmp:
            path = os.path.join(tmp, posixpath.basename(rel))
            with open(path, "wb") as fh:
                fh.write(data)
            self.log_artifact_as(path, rel)

    def write_with(self, artifact_file: str, writer: Callable[[str], None]) -> None:
        """Let ``writer(path)`` produce the artifact file (used for figures and images)."""
        rel = clean_artifact_path(artifact_file)
        if not rel:
            raise InvalidParameterValue("artifact_file must name a file, e.g. 'plots/loss.png'.")
        with tempfile.TemporaryDirectory(prefix="mltrack-upload-") as tmp:
            path = os.path.join(tmp, posixpath.basename(rel))
            writer(path)
            self.log_artifact_as(path, rel)

    def local_path(self, artifact_path: str = "") -> str:
        """The local path of an artifact without a copy: local repositories only."""
        raise InvalidParameterValue(
            f"{self.artifact_uri} is not a local folder; use download_artifacts() instead."
        )

    def exists(self, artifact_path: str) -> bool:
        """Whether ``artifact_path`` names a file or a non-empty folder."""
        rel = clean_artifact_path(artifact_path)
        parent, name = posixpath.split(rel)
        return any(posixpath.basename(f.path) == name for f in self.list_artifacts(parent or None))


class LocalArtifactRepository(ArtifactRepository):
    """A run's (or model's) artifacts in a local folder; every path is checked to stay inside."""

    is_local = True

    def __init__(self, artifact_uri: str) -> None:
        super().__init__(artifact_uri)
        self.root = uri_to_path(artifact_uri)

    def _target(self, artifact_path: str | None) -> str:
        rel = clean_artifact_path(artifact_path)
        target = os.path.join(self.root, rel) if rel else self.root
        root_real = os.path.realpath(self.root)
        real = os.path.realpath(target)
        if real != root_real and not real.startswith(root_real + os.sep):
            raise InvalidParameterValue(
                f"Invalid artifact path {artifact_path!r}: it resolves outside the run's "
                "artifact folder (through a symbolic link)."
            )
        return target

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Copy one local file into the artifact folder (under ``artifact_path``)."""
        if not os.path.isfile(local_file):
            raise ResourceDoesNotExist(f"Cannot log artifact: no such file {local_file!r}.")
        dest_dir = self._target(artifact_path)
        os.makedirs(dest_dir, exist_ok=True)
        dest = self._target(
            posixpath.join(clean_artifact_path(artifact_path), os.path.basename(local_file))
        )
        shutil.copyfile(local_file, dest)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Copy a local folder's contents into the artifact folder (under ``artifact_path``)."""
        if not os.path.isdir(local_dir):
            raise ResourceDoesNotExist(f"Cannot log artifacts: no such folder {local_dir!r}.")
        dest = self._target(artifact_path)
        os.makedirs(dest, exist_ok=True)
        shutil.copytree(local_dir, dest, dirs_exist_ok=True)

    def log_artifact_as(self, local_file: str, artifact_file: str, move: bool = False) -> None:
        """Store ``local_file`` as ``artifact_file`` (atomically; ``move`` renames, no copy)."""
        if not clean_artifact_path(artifact_file):
            raise InvalidParameterValue("artifact_file must name a file, e.g. 'data/x.csv'.")
        dest = self._target(artifact_file)
        if os.path.isdir(dest):
            raise InvalidParameterValue(f"Artifact {artifact_file!r} is a folder, not a file.")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if move:
            try:
                os.replace(local_file, dest)
                return
            except OSError:  # another file system: fall back to a copy
                pass
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(local_file, tmp)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def temp_file_near(self, artifact_file: str) -> str:
        """A fresh temporary file in the folder that will hold ``artifact_file`` (for a rename)."""
        dest = self._target(artifact_file)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".tmp-")
        os.close(fd)
        return tmp

    def write_bytes(self, data: bytes, artifact_file: str) -> None:
        """Write ``data`` as the artifact ``artifact_file`` (atomically: temp file + rename)."""
        if not clean_artifact_path(artifact_file):
            raise InvalidParameterValue("artifact_file must name a file, e.g. 'notes/summary.txt'.")
        dest = self._target(artifact_file)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def write_with(self, artifact_file: str, writer: Callable[[str], None]) -> None:
        """Let ``writer(path)`` produce the artifact file (used for figures and images)."""
        dest = self._target(artifact_file)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        writer(dest)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The direct children of ``path`` (the root when None), folders first then files."""
        rel = clean_artifact_path(path)
        base = self._target(path)
        if not os.path.isdir(base):
            return []
        infos = []
        for entry in sorted(os.scandir(base), key=lambda e: (not e.is_dir(), e.name)):
            if entry.name.startswith(".tmp-"):
                continue
            child = posixpath.join(rel, entry.name) if rel else entry.name
            if entry.is_dir():
                infos.append(FileInfo(child, True, None))
            else:
                infos.append(FileInfo(child, False, entry.stat().st_size))
        return infos

    def download_artifacts(self, artifact_path: str = "", dst_path: str | None = None) -> str:
        """Copy an artifact file or folder to ``dst_path`` (a temp folder if None); return its path."""
        source = self._target(artifact_path)
        if not os.path.exists(source):
            raise ResourceDoesNotExist(
                f"No artifact {artifact_path!r} in {self.artifact_uri}; "
                "list_artifacts() shows what exists."
            )
        dst_root = dst_path or tempfile.mkdtemp(prefix="mltrack-artifacts-")
        os.makedirs(dst_root, exist_ok=True)
        name = os.path.basename(clean_artifact_path(artifact_path)) or os.path.basename(self.root)
        dest = os.path.join(dst_root, name)
        if os.path.isdir(source):
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, dest)
        return os.path.abspath(dest)

    def read_bytes(self, artifact_path: str, max_bytes: int | None = None) -> bytes:
        """The content of one artifact file (its first ``max_bytes`` when given)."""
        source = self._target(artifact_path)
        if not os.path.isfile(source):
            what = "a folder" if os.path.isdir(source) else "not found"
            raise ResourceDoesNotExist(
                f"Artifact {artifact_path!r} in {self.artifact_uri} is {what}; "
                "read_artifact reads one file (list_artifacts() shows what exists)."
            )
        with open(source, "rb") as fh:
            return fh.read() if max_bytes is None else fh.read(max_bytes)

    def iter_bytes(self, artifact_path: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        source = self._target(artifact_path)
        if not os.path.isfile(source):
            raise ResourceDoesNotExist(
                f"No artifact file {artifact_path!r} in {self.artifact_uri}."
            )
        with open(source, "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def local_path(self, artifact_path: str = "") -> str:
        """The local path of an artifact, without copying (local repositories only)."""
        return self._target(artifact_path)

    def exists(self, artifact_path: str) -> bool:
        return os.path.exists(self._target(artifact_path))

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        target = self._target(artifact_path)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)
        elif os.path.lexists(target):
            os.unlink(target)

    def delete(self) -> None:
        """Remove the whole artifact folder."""
        shutil.rmtree(self.root, ignore_errors=True)


# A factory takes the artifact URI and the tracking URI in use (``mlflow-artifacts:`` URIs
# name no host: they resolve against the tracking server, as in MLflow).
RepositoryFactory = Callable[[str, "str | None"], ArtifactRepository]


def _local(uri: str, tracking_uri: str | None = None) -> ArtifactRepository:
    return LocalArtifactRepository(uri)


def _s3(uri: str, tracking_uri: str | None = None) -> ArtifactRepository:
    from jupyter_mltrack.store.artifacts_s3 import S3ArtifactRepository

    return S3ArtifactRepository(uri)


def _http(uri: str, tracking_uri: str | None = None) -> ArtifactRepository:
    from jupyter_mltrack.store.artifacts_http import HttpArtifactRepository

    return HttpArtifactRepository(uri, tracking_uri)


_REPOSITORIES: dict[str, RepositoryFactory] = {
    "": _local,
    "file": _local,
    "s3": _s3,
    "mlflow-artifacts": _http,
    "http": _http,
    "https": _http,
}


def register_artifact_repository(scheme: str, factory: RepositoryFactory) -> None:
    """Make ``scheme:`` artifact URIs use ``factory(uri, tracking_uri)``."""
    _REPOSITORIES[scheme] = factory


def get_artifact_repository(
    artifact_uri: str, tracking_uri: str | None = None
) -> ArtifactRepository:
    """The repository for an artifact URI, chosen by scheme.

    ``tracking_uri`` resolves ``mlflow-artifacts:/path`` URIs (the tracking server's proxy).
    """
    scheme = urlparse(artifact_uri).scheme
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    try:
        factory = _REPOSITORIES[scheme]
    except KeyError:
        known = ", ".join(sorted(s for s in _REPOSITORIES if s)) or "file"
        raise InvalidParameterValue(
            f"No artifact repository for scheme {scheme!r} ({artifact_uri}); supported: {known}."
        ) from None
    return factory(artifact_uri, tracking_uri)
