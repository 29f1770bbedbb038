"""Every exception as MLflow's error JSON: ``{"error_code": ..., "message": ...}``.

Our own errors keep their code and one-line message. Anything else is logged with its
traceback in the server's log and answered with a generic 500 INTERNAL_ERROR: no stack trace,
SQL or path ever reaches the client. A database that is momentarily busy (SQLite locked,
PostgreSQL connection trouble) is 503 TEMPORARILY_UNAVAILABLE, which MLflow's client retries.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jupyter_mltrack.exceptions import MlflowException
from jupyter_mltrack.store.rest import protocol

logger = logging.getLogger("jupyter_mltrack.tracking_server")


class HttpError(MlflowException):
    """An error with an HTTP status of its own (401, 405, 413), not the one of its code."""

    def __init__(self, message: str, error_code: str, status: int) -> None:
        super().__init__(message, error_code=error_code)
        self.http_status = status


def error_response(exc: BaseException, where: str = "") -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for an exception raised while handling a request."""
    if isinstance(exc, MlflowException):
        status = getattr(exc, "http_status", None) or protocol.error_status(exc)
        return status, protocol.error_body(exc)
    if _is_busy_database(exc):
        logger.warning("Database busy while handling %s: %s", where or "a request", exc)
        return 503, {
            "error_code": "TEMPORARILY_UNAVAILABLE",
            "message": "The store is busy; retry the request.",
        }
    logger.error("Error while handling %s", where or "a request", exc_info=exc)
    return 500, protocol.error_body(exc)


def error_bytes(exc: BaseException, where: str = "") -> tuple[int, bytes]:
    status, body = error_response(exc, where)
    return status, json.dumps(body).encode()


def _is_busy_database(exc: BaseException) -> bool:
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return False
    if isinstance(exc, sa_exc.OperationalError):
        text = str(getattr(exc, "orig", exc)).lower()
        return any(w in text for w in ("locked", "busy", "connection", "timeout", "terminat"))
    return isinstance(exc, sa_exc.TimeoutError)  # connection pool exhausted
