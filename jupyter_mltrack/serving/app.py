"""The scoring server's ASGI app: ``create_app(model_uri)`` loads the model once and answers
``/invocations``, ``/ping``, ``/health``, ``/version`` and ``/metadata``.

All state lives in the app (a ``ModelSlot`` holding the current ``ServedModel``); a reload swaps
the slot's model in one assignment, so a request scores with the model it started with.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jupyter_mltrack.exceptions import BAD_REQUEST, INTERNAL_ERROR, MlflowException
from jupyter_mltrack.serving import DEFAULT_MAX_BODY_BYTES
from jupyter_mltrack.serving.formats import (
    PayloadTooLarge,
    ServingError,
    content_kind,
    error_body,
    parse_request,
    predictions_body,
)

logger = logging.getLogger("jupyter_mltrack.serving")

# Predict in the event loop when it is quick (a threadpool hop costs ~100 µs per request);
# slow models and large inputs go to a thread so /ping and other requests stay responsive.
INLINE_MAX_SECONDS = 0.02
INLINE_MAX_ROWS = 1000
_JSON = "application/json"


class ServedModel:
    """One loaded model with what the server says about it (immutable once built)."""

    def __init__(self, model: Any, model_uri: str, resolved: Any) -> None:
        from jupyter_mltrack import __version__

        self.model = model
        self.model_uri = model_uri
        meta = model.metadata
        self.name = resolved.name
        self.version = resolved.version
        self.stage = resolved.stage
        self.alias = resolved.alias
        self.run_id = resolved.run_id or meta.run_id
        self.path = resolved.local_path
        self.input_schema = meta.get_input_schema()
        self.loaded_at = time.time()
        self.predict_seconds = 0.0  # running estimate; decides inline vs threadpool
        self.input_example = _serving_example(self.path, meta)
        signature = meta.signature
        self.metadata = {
            "model_uri": model_uri,
            "name": self.name,
            "version": self.version,
            "stage": self.stage,
            "alias": self.alias,
            "run_id": self.run_id,
            "artifact_path": meta.artifact_path,
            "model_uuid": meta.model_uuid,
            "utc_time_created": meta.utc_time_created,
            "flavors": sorted(meta.flavors),
            "signature": {
                "inputs": _schema_list(signature.inputs) if signature else None,
                "outputs": _schema_list(signature.outputs) if signature else None,
                "params": _schema_list(signature.params) if signature else None,
            },
            "input_example": self.input_example,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "server_version": __version__,
        }
        self.metadata_body = json.dumps(self.metadata, default=str).encode()

    def predict(self, data: Any, params: dict[str, Any] | None) -> Any:
        start = time.perf_counter()
        out = self.model.predict(data, params=params)
        elapsed = time.perf_counter() - start
        # a running mean that forgets: a model that got slower moves to the threadpool
        self.predict_seconds = 0.9 * self.predict_seconds + 0.1 * elapsed
        return out

    def warm_up(self) -> None:
        """Predict the saved input example a few times (first calls pay for lazy imports and
        caches) and keep the typical time; a failure is logged, not fatal: the model loaded,
        and requests will say what is wrong with their input."""
        if self.input_example is None:
            return
        try:
            from jupyter_mltrack.serving.formats import parse_json

            data, params = parse_json(
                json.dumps(self.input_example).encode(), None, self.input_schema
            )
            times = []
            for _ in range(5):
                start = time.perf_counter()
                self.predict(data, params)
                times.append(time.perf_counter() - start)
            self.predict_seconds = sorted(times)[len(times) // 2]
        except Exception as exc:
            logger.warning("Warm-up predict on the model's input example failed: %s", exc)

    def describe(self) -> str:
        if self.name:
            where = f"{self.name} v{self.version}"
            if self.stage:
                where += f" ({self.stage})"
            elif self.alias:
                where += f" (@{self.alias})"
            return where
        return self.model_uri


class ModelSlot:
    """Holds the model being served; ``swap`` replaces it atomically (one reference assignment)."""

    def __init__(self, served: ServedModel) -> None:
        self.current = served
        self.last_reload_error: str | None = None
        self._lock = threading.Lock()

    def swap(self, served: ServedModel) -> ServedModel:
        with self._lock:
            old, self.current = self.current, served
            self.last_reload_error = None
        return old


def load_served_model(
    model_uri: str, tracking_uri: str | None = None, resolved: Any = None
) -> ServedModel:
    """Resolve (unless ``resolved`` is given) and load ``model_uri`` (any URI
    ``pyfunc.load_model`` takes) for serving."""
    from jupyter_mltrack.pyfunc import load_model

    if resolved is None:
        from jupyter_mltrack.models.uri import resolve_model_uri
        from jupyter_mltrack.tracking.client import Client

        resolved = resolve_model_uri(model_uri, Client(tracking_uri) if tracking_uri else None)
    model = load_model(resolved.local_path)
    return ServedModel(model, model_uri, resolved)


class Invocations:
    """``POST /invocations`` as a bare ASGI endpoint: the request path is the hot path, so it
    skips Starlette's request and response objects (the other routes use them)."""

    def __init__(self, slot: ModelSlot, max_body_bytes: int) -> None:
        self.slot = slot
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        content_type = length = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                length = value
        status, body = await self.score(content_type, length, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def score(
        self, content_type: str | None, length: bytes | None, receive: Any
    ) -> tuple[int, bytes]:
        try:
            kind, charset = content_kind(content_type)
            body = await _read_body(receive, length, self.max_body_bytes)
            model = self.slot.current  # this request's model, even if a reload swaps the slot
            data, params = parse_request(body, kind, charset, model.input_schema)
            if model.predict_seconds < INLINE_MAX_SECONDS and _rows(data) <= INLINE_MAX_ROWS:
                predictions = model.predict(data, params)
            else:
                predictions = await run_in_threadpool(model.predict, data, params)
            return 200, predictions_body(predictions)
        except ServingError as exc:
            return exc.status, error_body(exc.error_code, exc.message)
        except MlflowException as exc:
            if exc.get_http_status_code() >= 500:
                logger.error("Scoring failed: %s", exc.message)
                return 500, error_body(INTERNAL_ERROR, _short(exc.message))
            return 400, error_body(exc.error_code, exc.message)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            # what models raise for input they cannot take (sklearn's checks, missing keys)
            logger.info("The model refused the input: %r", exc)
            message = f"The model could not score this input: {_short(str(exc))}"
            return 400, error_body(BAD_REQUEST, message)
        except _Disconnected:
            return 400, error_body(BAD_REQUEST, "The client disconnected.")
        except Exception as exc:
            logger.exception("Unexpected error while scoring")
            message = f"The model failed while scoring ({type(exc).__name__}); see the server log."
            return 500, error_body(INTERNAL_ERROR, message)


class ScoringApp(Starlette):
    """Starlette, with ``POST /invocations`` sent straight to its endpoint (no middleware or
    routing on the hot path; anything else goes through Starlette as usual)."""

    def __init__(self, invocations: Invocations, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._invocations = invocations

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/invocations"
        ):
            await self._invocations(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _Disconnected(Exception):
    pass


async def _read_body(receive: Any, length: bytes | None, limit: int) -> bytes:
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(_too_large(limit))
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def create_app(
    model_uri: str | None = None,
    *,
    served: ServedModel | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    watch: bool = False,
    poll_interval: float = 1.0,
    tracking_uri: str | None = None,
) -> ScoringApp:
    """The scoring app for ``model_uri`` (loaded now: a bad URI or model raises here, before any
    port is opened), or for an already loaded ``served`` model.

    Parameters
    ----------
    max_body_bytes
        Larger request bodies are answered with 413.
    watch
        For ``models:/Name/Stage`` and ``models:/Name@alias``: poll the registry every
        ``poll_interval`` seconds and swap in the version that stage or alias moves to.
    """
    if watch:  # a URI that cannot move fails before the (slow) load
        from jupyter_mltrack.serving.watch import watch_target

        watch_target(model_uri if served is None else served.model_uri)
    if served is None:
        if model_uri is None:
            raise TypeError("create_app() needs model_uri or served.")
        served = load_served_model(model_uri, tracking_uri)
        served.warm_up()
    slot = ModelSlot(served)
    watcher = None
    if watch:
        from jupyter_mltrack.serving.watch import RegistryWatcher

        watcher = RegistryWatcher(
            served.model_uri, slot, interval=poll_interval, tracking_uri=tracking_uri
        )

    invocations = Invocations(slot, max_body_bytes)

    async def ping(request: Request) -> Response:
        return Response(b"\n", media_type=_JSON)

    async def health(request: Request) -> Response:
        model = slot.current
        body = {
            "status": "ok",
            "model": model.describe(),
            "version": model.version,
            "last_reload_error": slot.last_reload_error,
        }
        return Response(json.dumps(body).encode(), media_type=_JSON)

    async def version(request: Request) -> Response:
        from jupyter_mltrack import __version__

        return Response(__version__.encode(), media_type="text/plain")

    async def metadata(request: Request) -> Response:
        return Response(slot.current.metadata_body, media_type=_JSON)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()

    app = ScoringApp(
        invocations,
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/ping", ping, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metadata", metadata, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.slot = slot
    app.state.watcher = watcher
    return app


def _too_large(limit: int) -> str:
    return (
        f"The request body is larger than this server's limit of {limit:,} bytes; send fewer "
        "rows per request or start the server with a larger --max-body-bytes."
    )


def _rows(data: Any) -> int:
    try:
        return len(data)
    except TypeError:
        return 1


def _error(status: int, code: str, message: str) -> Response:
    return Response(error_body(code, message), status_code=status, media_type=_JSON)


def _short(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _schema_list(schema: Any) -> Any:
    return schema.to_dict() if schema is not None else None


def _serving_example(path: str, meta: Any) -> Any:
    """The model's saved request body (``serving_input_example.json``), if it has one."""
    import os

    info = meta.saved_input_example_info or {}
    name = info.get("serving_input_path")
    if not name:
        return None
    try:
        with open(os.path.join(path, name), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
