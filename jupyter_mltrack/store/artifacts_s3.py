"""Artifacts on S3-compatible object storage (``s3://bucket/prefix``), through boto3.

Configured like MLflow: the endpoint from ``MLFLOW_S3_ENDPOINT_URL`` (AWS when unset), the
credentials and region from the usual AWS variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles...). Addressing is path-style, which
every S3-compatible server accepts; big files go up in parts through boto3's transfer manager.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from jupyter_mltrack.entities import FileInfo
from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException, ResourceDoesNotExist
from jupyter_mltrack.store.artifacts import ArtifactRepository, clean_artifact_path

MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNK = 8 * 1024 * 1024

_clients: dict[tuple[str | None, str | None], Any] = {}
_clients_lock = threading.Lock()


def _client() -> Any:
    """One boto3 client per (endpoint, region): clients are thread-safe and costly to build."""
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None
    key = (endpoint, region)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise InvalidParameterValue(
                    "s3:// artifact locations need boto3: pip install boto3"
                ) from None
            verify: Any = os.environ.get("MLFLOW_S3_IGNORE_TLS", "").lower() not in ("1", "true")
            client = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name=region or "us-east-1",
                verify=verify,
                config=Config(
                    s3={"addressing_style": "path"},
                    signature_version="s3v4",
                    # S3-compatible servers (Swift, Ceph...) may not know the newer checksums.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    retries={"max_attempts": 5, "mode": "standard"},
                ),
            )
            client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
            _clients[key] = client
        return client


def _add_content_md5(request: Any, **_: Any) -> None:
    """S3 requires Content-MD5 on a multi-object delete; newer boto3 sends a CRC instead, which
    some S3-compatible servers (Swift) refuse."""
    import base64
    import hashlib

    body = request.body if isinstance(request.body, bytes) else (request.body or b"")
    if isinstance(body, str):
        body = body.encode()
    if "Content-MD5" not in request.headers:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()


def forget_clients() -> None:
    """Drop cached clients (after the endpoint or credentials in the environment changed)."""
    with _clients_lock:
        _clients.clear()


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNK
    )


def _error(err: Exception, what: str) -> MlflowException:
    code = getattr(err, "response", {}).get("Error", {}).get("Code", "")
    if code in ("NoSuchKey", "404", "NoSuchBucket"):
        return ResourceDoesNotExist(f"{what}: not found ({code}).")
    return MlflowException(f"{what}: S3 error {code or type(err).__name__}: {err}")


class S3ArtifactRepository(ArtifactRepository):
    """Artifacts under ``s3://bucket/prefix``; keys are ``prefix/<artifact path>``."""

    def __init__(self, artifact_uri: str) -> None:
        super().__init__(artifact_uri.rstrip("/"))
        parsed = urlparse(artifact_uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InvalidParameterValue(
                f"Not an S3 URI: {artifact_uri!r}; expected s3://bucket/prefix."
            )
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")

    @property
    def client(self) -> Any:
        return _client()

    def _key(self, artifact_path: str | None) -> str:
        rel = clean_artifact_path(artifact_path)
        return posixpath.join(self.prefix, rel) if self.prefix and rel else (rel or self.prefix)

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def _keys_under(self, key: str) -> Iterator[dict[str, Any]]:
        """Every object whose key is ``key`` itself or lies in the folder ``key``."""
        folder = f"{key}/" if key else ""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
            yield from page.get("Contents", [])

    def _is_file(self, key: str) -> int | None:
        """The size of object ``key``, or None when there is no such object."""
        from botocore.exceptions import ClientError

        if not key:
            return None
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _error(err, f"Cannot read s3://{self.bucket}/{key}") from None

    # -- writes ------------------------------------------------------------------------------
    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        if not os.path.isfile(local_file):
            raise ResourceDoesNotExist(f"Cannot log artifact: no such file {local_file!r}.")
        rel = clean_artifact_path(artifact_path)
        name = os.path.basename(local_file)
        self.log_artifact_as(local_file, posixpath.join(rel, name) if rel else name)

    def log_artifact_as(self, local_file: str, artifact_file: str, move: bool = False) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(artifact_file)
        if not clean_artifact_path(artifact_file):
            raise InvalidParameterValue("artifact_file must name a file, e.g. 'data/x.csv'.")
        try:
            self.client.upload_file(local_file, self.bucket, key, Config=_transfer_config())
        except (ClientError, BotoCoreError) as err:
            raise _error(err, f"Cannot upload to s3://{self.bucket}/{key}") from None
        if move:
            os.unlink(local_file)

    # -- reads -------------------------------------------------------------------------------
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        rel = clean_artifact_path(path)
        key = self._key(path)
        folder = f"{key}/" if key else ""
        dirs, files = [], []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(folder) :].rstrip("/")
                    dirs.append(FileInfo(posixpath.join(rel, name) if rel else name, True, None))
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(folder) :]
                    if not name or name.endswith("/"):
                        continue  # a folder marker object
                    files.append(
                        FileInfo(posixpath.join(rel, name) if rel else name, False, obj["Size"])
                    )
        except (ClientError, BotoCoreError) as err:
            raise _error(err, f"Cannot list s3://{self.bucket}/{folder}") from None
        return sorted(dirs, key=lambda f: f.path) + sorted(files, key=lambda f: f.path)

    def download_artifacts(self, artifact_path: str = "", dst_path: str | None = None) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        rel = clean_artifact_path(artifact_path)
        key = self._key(artifact_path)
        dst_root = dst_path or tempfile.mkdtemp(prefix="mltrack-artifacts-")
        os.makedirs(dst_root, exist_ok=True)
        name = posixpath.basename(rel) or posixpath.basename(self.prefix) or self.bucket
        dest = os.path.join(dst_root, name)
        config = _transfer_config()
        try:
            if self._is_file(key) is not None:
                self.client.download_file(self.bucket, key, dest, Config=config)
                return os.path.abspath(dest)
            found = False
            for obj in self._keys_under(key):
                inner = obj["Key"][len(key) + 1 :] if key else obj["Key"]
                if not inner or inner.endswith("/"):
                    continue
                local = os.path.join(dest, *clean_artifact_path(inner).split("/"))
                os.makedirs(os.path.dirname(local), exist_ok=True)
                self.client.download_file(self.bucket, obj["Key"], local, Config=config)
                found = True
        except (ClientError, BotoCoreError) as err:
            raise _error(err, f"Cannot download s3://{self.bucket}/{key}") from None
        if not found:
            raise ResourceDoesNotExist(
                f"No artifact {artifact_path!r} in {self.artifact_uri}; "
                "list_artifacts() shows what exists."
            )
        return os.path.abspath(dest)

    def _get(self, artifact_path: str, byte_range: str | None = None) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(artifact_path)
        if not clean_artifact_path(artifact_path):
            raise ResourceDoesNotExist("read_artifact reads one file; give its path.")
        kwargs = {"Range": byte_range} if byte_range else {}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise ResourceDoesNotExist(
                    f"Artifact {artifact_path!r} in {self.artifact_uri} is not a file; "
                    "list_artifacts() shows what exists."
                ) from None
            if code == "InvalidRange":  # an empty file
                return None
            raise _error(err, f"Cannot read s3://{self.bucket}/{key}") from None
        except BotoCoreError as err:
            raise _error(err, f"Cannot read s3://{self.bucket}/{key}") from None

    def read_bytes(self, artifact_path: str, max_bytes: int | None = None) -> bytes:
        if max_bytes == 0:
            self._get(artifact_path)  # still an error when missing
            return b""
        response = self._get(artifact_path, f"bytes=0-{max_bytes - 1}" if max_bytes else None)
        return b"" if response is None else response["Body"].read()

    def iter_bytes(self, artifact_path: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        response = self._get(artifact_path)
        body = response["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def size(self, artifact_path: str) -> int | None:
        """The size of one artifact file, or None when it is not a file."""
        return self._is_file(self._key(artifact_path))

    def exists(self, artifact_path: str) -> bool:
        key = self._key(artifact_path)
        return self._is_file(key) is not None or next(self._keys_under(key), None) is not None

    # -- deletes -----------------------------------------------------------------------------
    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(artifact_path)
        try:
            keys = [obj["Key"] for obj in self._keys_under(key)]
            if key and self._is_file(key) is not None:
                keys.append(key)
            for start in range(0, len(keys), 1000):
                chunk = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                )
        except (ClientError, BotoCoreError) as err:
            raise _error(err, f"Cannot delete s3://{self.bucket}/{key}") from None
