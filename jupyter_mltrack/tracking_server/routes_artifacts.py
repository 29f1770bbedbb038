"""MLflow's artifact proxy: ``/api/2.0/mlflow-artifacts/artifacts/...`` over the server's
artifacts destination (a folder, ``file://`` or ``s3://`` root).

- ``PUT .../artifacts/<path>`` uploads one file: the body is streamed to a temporary file
  (next to the target for a folder, then renamed; uploaded in parts for S3), never held in
  memory whole.
- ``GET .../artifacts/<path>`` streams one file; ``GET .../artifacts?path=<dir>`` lists a
  folder (``{"files": [{"path": <name>, "is_dir": ..., "file_size": ...}]}``);
  ``DELETE .../artifacts/<path>`` removes a file or folder.
- Paths are relative to the destination: ``..`` segments, absolute paths, drive letters,
  backslashes, ``#`` and symbolic links leading outside are refused with 400 and MLflow's error
  body (``INVALID_PARAMETER_VALUE``, "Invalid path").
- The presigned multipart endpoints (``/mlflow-artifacts/mpu/...``), which MLflow clients use
  only with ``MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=true``, answer MLflow's "not supported"
  error so those clients fall back to a streamed ``PUT``.

The app provides ``request.app.state.artifacts_destination`` (the root URI or folder).
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException, ResourceDoesNotExist
from jupyter_mltrack.store.artifacts import (
    ArtifactRepository,
    clean_artifact_path,
    get_artifact_repository,
    path_to_uri,
)

PREFIX = "/api/2.0/mlflow-artifacts"
UNSUPPORTED_MULTIPART = "Multipart upload is not supported for the current artifact repository"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_path(raw: str | None, required: bool = True) -> str:
    """A client's artifact path, checked as MLflow's server checks it; "" is the root."""
    text = raw or ""
    bad = (
        "#" in text
        or "\\" in text
        or _CONTROL.search(text) is not None
        or text.startswith("/")
        or _DRIVE.match(text) is not None
        or ".." in text.split("/")
        or text.startswith("~")
    )
    if bad:
        raise InvalidParameterValue(
            f"Invalid path {raw!r}: artifact paths are relative to the artifact root, without "
            "'..' segments."
        )
    rel = clean_artifact_path(text)
    if required and not rel:
        raise InvalidParameterValue("Invalid path: an artifact path is required.")
    return rel


def _destination(request: Request) -> ArtifactRepository:
    state = request.app.state
    repo = getattr(state, "artifacts_repository", None)
    if repo is None:
        root = getattr(state, "artifacts_destination", None)
        if not root:
            raise MlflowException(
                "This server does not serve artifacts (started without an artifacts "
                "destination, or with --no-serve-artifacts).",
                error_code="ENDPOINT_NOT_FOUND",
            )
        root = str(root)
        if "://" not in root and not root.startswith("mlflow-artifacts:"):
            root = path_to_uri(root)
        repo = get_artifact_repository(root.rstrip("/"))
        state.artifacts_repository = repo  # one repository (and S3 client) per app
    return repo  # type: ignore[no-any-return]


def _error(exc: BaseException, where: str) -> Response:
    from jupyter_mltrack.tracking_server.errors import error_response

    status, body = error_response(exc, where)
    return JSONResponse(body, status_code=status)


# -- handlers -----------------------------------------------------------------------------------
async def upload_artifact(request: Request) -> Response:
    where = f"PUT {request.url.path}"
    try:
        rel = safe_path(request.path_params.get("artifact_path"))
        repo = _destination(request)
        if repo.is_local:
            tmp = await run_in_threadpool(repo.temp_file_near, rel)  # type: ignore[attr-defined]
        else:
            fd, tmp = tempfile.mkstemp(prefix="mltrack-upload-")
            os.close(fd)
        try:
            with open(tmp, "wb") as fh:
                async for chunk in request.stream():
                    if chunk:
                        await run_in_threadpool(fh.write, chunk)
            await run_in_threadpool(repo.log_artifact_as, tmp, rel, True)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except Exception as exc:  # every failure becomes MLflow's error body
        return _error(exc, where)
    return JSONResponse({})


async def download_artifact(request: Request) -> Response:
    where = f"GET {request.url.path}"
    try:
        rel = safe_path(request.path_params.get("artifact_path"))
        repo = _destination(request)
        media = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        headers = {"Content-Disposition": f'attachment; filename="{posixpath.basename(rel)}"'}
        if repo.is_local:
            path = repo.local_path(rel)  # refuses symbolic links leading outside
            if not os.path.isfile(path):
                raise ResourceDoesNotExist(f"No such artifact: '{rel}'")
            return FileResponse(path, media_type=media, headers=headers)
        chunks = repo.iter_bytes(rel)
        first = await run_in_threadpool(next, chunks, b"")  # errors surface before the headers
    except Exception as exc:
        return _error(exc, where)

    def rest() -> Iterator[bytes]:
        if first:
            yield first
        yield from chunks

    return StreamingResponse(iterate_in_threadpool(rest()), media_type=media, headers=headers)


async def list_artifacts(request: Request) -> Response:
    where = f"GET {request.url.path}"
    try:
        rel = safe_path(request.query_params.get("path"), required=False)
        repo = _destination(request)
        infos = await run_in_threadpool(repo.list_artifacts, rel or None)
    except Exception as exc:
        return _error(exc, where)
    files: list[dict[str, Any]] = []
    for info in infos:
        item: dict[str, Any] = {"path": posixpath.basename(info.path), "is_dir": info.is_dir}
        if not info.is_dir and info.file_size is not None:
            item["file_size"] = info.file_size
        files.append(item)
    return JSONResponse({"files": files} if files else {})


async def delete_artifact(request: Request) -> Response:
    where = f"DELETE {request.url.path}"
    try:
        rel = safe_path(request.path_params.get("artifact_path"))
        repo = _destination(request)
        await run_in_threadpool(repo.delete_artifacts, rel)
    except Exception as exc:
        return _error(exc, where)
    return JSONResponse({})


async def unsupported_multipart(request: Request) -> Response:
    try:
        safe_path(request.path_params.get("artifact_path"), required=False)
    except InvalidParameterValue as exc:
        return _error(exc, request.url.path)
    return JSONResponse(
        {"error_code": "NOT_IMPLEMENTED", "message": UNSUPPORTED_MULTIPART}, status_code=501
    )


async def unsupported_presigned(request: Request) -> Response:
    return JSONResponse(
        {
            "error_code": "NOT_IMPLEMENTED",
            "message": "Presigned downloads are not supported by this server; use a plain GET.",
        },
        status_code=501,
    )


def routes() -> list[BaseRoute]:
    """The artifact proxy's routes (mounted at the app's root)."""
    artifacts = f"{PREFIX}/artifacts"
    return [
        Route(artifacts, list_artifacts, methods=["GET"]),
        Route(f"{artifacts}/{{artifact_path:path}}", download_artifact, methods=["GET"]),
        Route(f"{artifacts}/{{artifact_path:path}}", upload_artifact, methods=["PUT"]),
        Route(f"{artifacts}/{{artifact_path:path}}", delete_artifact, methods=["DELETE"]),
        Route(
            f"{PREFIX}/mpu/create/{{artifact_path:path}}", unsupported_multipart, methods=["POST"]
        ),
        Route(
            f"{PREFIX}/mpu/complete/{{artifact_path:path}}", unsupported_multipart, methods=["POST"]
        ),
        Route(
            f"{PREFIX}/mpu/abort/{{artifact_path:path}}", unsupported_multipart, methods=["POST"]
        ),
        Route(f"{PREFIX}/presigned/{{artifact_path:path}}", unsupported_presigned, methods=["GET"]),
    ]
