"""Request size limits: a JSON request body larger than the limit is refused with 413 before
it is read whole (MLflow's own request messages are far below the 64 MB default)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_mltrack.tracking_server.errors import HttpError

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class ClientDisconnected(Exception):
    """The client went away before sending its whole body: there is nobody to answer."""


class BodyTooLarge(HttpError):
    """The request body is larger than the server accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Request body too large: this server accepts at most {limit} bytes "
            f"({limit / 1024 / 1024:.0f} MB) per request (mltrack server --max-body-mb).",
            error_code="RESOURCE_EXHAUSTED",
            status=413,
        )


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(
    receive: Callable[[], Awaitable[dict[str, Any]]],
    headers: list[tuple[bytes, bytes]],
    limit: int,
) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as it is known to exceed ``limit``."""
    declared = content_length(headers)
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
