"""What every route shares: the store in force, work off the event loop, JSON errors.

Handlers are ``APIHandler`` subclasses whose methods carry ``@tornado.web.authenticated``.
Jupyter refuses unauthenticated requests before they reach a handler and checks XSRF on every
POST/DELETE authenticated by the browser's login cookie (requests that carry the server token
themselves are exempt: a cross-site page cannot know the token).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado.ioloop import IOLoop
from tornado.web import HTTPError

from jupyter_mltrack.exceptions import InvalidParameterValue, MlflowException, PromotionRefused
from jupyter_mltrack.server.store_choice import StoreChoice, StoreUnavailable
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking.client import Client

SETTINGS_KEY = "mltrack_store_choice"
CONFLICT = "CONFLICT"


class Conflict(MlflowException):
    """The data changed under the user (another user or notebook moved a stage or alias)."""

    default_error_code = CONFLICT


class MLTrackHandler(APIHandler):
    """Base of every ``/mltrack/api/`` route."""

    @property
    def store_choice(self) -> StoreChoice:
        return self.settings[SETTINGS_KEY]

    # -- request fields -----------------------------------------------------------------------
    def query(self, name: str, default: str | None = None) -> str | None:
        value = self.get_query_argument(name, None)
        return default if value is None or value == "" else value

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        value = protocol.to_int(self.query(name), name, default)
        if value is None or not low <= value <= high:
            raise InvalidParameterValue(f"'{name}' must be an integer from {low} to {high}.")
        return value

    def query_list(self, name: str) -> list[str]:
        """A comma-separated list (``run_ids=a,b``), repeated arguments allowed too."""
        items = []
        for value in self.get_query_arguments(name):
            items.extend(v.strip() for v in value.split(",") if v.strip())
        return items

    def body(self) -> dict[str, Any]:
        """The JSON object sent with a POST/DELETE (an empty object when there is none)."""
        if not self.request.body:
            return {}
        data = self.get_json_body()
        if not isinstance(data, dict):
            raise InvalidParameterValue("The request body must be a JSON object.")
        return data

    def client(self) -> Client:
        """The Client of the store in force for this request (``?notebook=`` picks a folder)."""
        return self.store_choice.client(self.query("notebook"))

    # -- answering ----------------------------------------------------------------------------
    async def answer(self, work: Callable[[], Any]) -> None:
        """Run ``work`` in a worker thread and answer its result as JSON, or its error.

        ``Server-Timing: app;dur=<ms>`` tells how long the work and its encoding took here.
        """
        started = time.perf_counter()
        try:
            result = await IOLoop.current().run_in_executor(None, work)
        except Exception as err:
            status, result = self.error_reply(err)
            self.set_status(status)
        text = json.dumps(_json_safe(result))
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.set_header("Server-Timing", f"app;dur={elapsed_ms:.1f}")
        self.finish(text)  # APIHandler.finish: application/json

    def error_reply(self, err: Exception) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for an error; internals never leave the server log."""
        if isinstance(err, StoreUnavailable):
            return 503, {
                "error_code": err.error_code,
                "message": err.message,
                "hint": err.hint,
                "tracking_uri": err.tracking_uri,
            }
        if isinstance(err, HTTPError) and err.status_code < 500:  # e.g. a body that is not JSON
            return err.status_code, {"error_code": "BAD_REQUEST", "message": err.log_message}
        if isinstance(err, Conflict):
            return 409, {"error_code": CONFLICT, "message": err.message}
        if isinstance(err, PromotionRefused):
            body = {"error_code": "PROMOTION_REFUSED", "message": err.message}
            return 400, {**body, "validation": err.result}
        status = protocol.error_status(err)
        if status >= 500:
            self.log.error(
                "mltrack: %s %s failed", self.request.method, self.request.path, exc_info=err
            )
            return 500, {
                "error_code": "INTERNAL_ERROR",
                "message": protocol.GENERIC_INTERNAL_MESSAGE,
            }
        return status, protocol.error_body(err)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors raised before a handler runs (401/403 auth and XSRF, 404, 405): JSON too."""
        self.set_header("Content-Type", "application/json")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        if status_code >= 500:
            message = protocol.GENERIC_INTERNAL_MESSAGE
        code = {
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "ENDPOINT_NOT_FOUND",
            405: "BAD_REQUEST",
        }.get(status_code, "BAD_REQUEST" if status_code < 500 else "INTERNAL_ERROR")
        self.finish(json.dumps({"error_code": code, "message": message}))


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as MLflow's strings (browsers' JSON.parse refuses NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else protocol.float_json(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
