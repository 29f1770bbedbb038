"""The tracking server's ASGI app: MLflow's REST API 2.0 plus ours, over one Client.

Request path: authentication (when on) -> exact-path lookup of MLflow's JSON endpoints (a dict,
not a list of patterns) -> body read under the size limit -> the handler in a worker thread ->
JSON. Every other path (``/health``, ``/version``, the artifact proxy and the logged-model
routes from their own modules) goes to a Starlette app behind it, under the same
authentication. Every MLflow path is also served under ``/ajax-api/2.0``, like MLflow.

Several uvicorn workers share nothing but the store (SQLite in WAL mode or PostgreSQL): each
process has one Client, and every write is committed before the response.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.store.rest import protocol
from jupyter_mltrack.tracking_server import routes_ours, routes_registry, routes_tracking
from jupyter_mltrack.tracking_server.auth import PUBLIC_PATHS, Auth, Unauthenticated
from jupyter_mltrack.tracking_server.context import Params, ServerContext
from jupyter_mltrack.tracking_server.errors import HttpError, error_bytes
from jupyter_mltrack.tracking_server.limits import (
    DEFAULT_MAX_BODY_BYTES,
    ClientDisconnected,
    read_body,
)

logger = logging.getLogger("jupyter_mltrack.tracking_server")
OPTIONS_ENV = "MLTRACK_SERVER_OPTIONS"  # create_app arguments for uvicorn's worker processes
#: Modules written beside this one whose ``routes()`` are mounted when they are installed.
OPTIONAL_ROUTE_MODULES = (
    "jupyter_mltrack.tracking_server.routes_artifacts",
    "jupyter_mltrack.tracking_server.routes_logged_models",
)
_JSON_HEADERS = [(b"content-type", b"application/json")]
Handler = Callable[[ServerContext, Params], dict[str, Any]]


def _server_info_v3(ctx: ServerContext, p: Params) -> dict[str, Any]:
    """MLflow 3's capability probe (``/api/3.0/mlflow/server-info``): no workspaces, no
    multipart or presigned artifact transfers (clients then upload through the proxy)."""
    return {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
    }


def route_table(taken: set[tuple[str, str]] = frozenset()) -> dict[str, dict[str, Handler]]:  # type: ignore[assignment]
    """``{path: {method: handler}}`` for MLflow's endpoints (both prefixes) and ours,
    leaving out the (path, method) pairs in ``taken`` (served by an optional module)."""
    handlers = {**routes_tracking.HANDLERS, **routes_registry.HANDLERS}
    table: dict[str, dict[str, Handler]] = {}

    def add(path: str, method: str, handler: Handler) -> None:
        if (path, method) not in taken:
            table.setdefault(path, {})[method] = handler

    for name, (method, path) in protocol.ROUTES.items():
        for prefix in (protocol.API_PREFIX, protocol.AJAX_PREFIX):
            for verb in (method, *protocol.EXTRA_METHODS.get(name, ())):
                add(prefix + path, verb, handlers[name])
    for name, (method, path) in protocol.MLTRACK_ROUTES.items():
        add(path, method, routes_ours.HANDLERS[name])
    for prefix in (protocol.API3_PREFIX, protocol.AJAX3_PREFIX):
        add(f"{prefix}/mlflow/server-info", "GET", _server_info_v3)
    return table


class TrackingServer:
    """The ASGI app. ``ctx`` is the shared state; ``fallback`` serves the other paths."""

    def __init__(
        self,
        ctx: ServerContext,
        fallback: Any,
        auth: Auth,
        max_body_bytes: int,
        table: dict[str, dict[str, Handler]],
    ) -> None:
        self.ctx = ctx
        self.fallback = fallback
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.table = table

    @property
    def state(self) -> Any:
        return self.fallback.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan (and nothing else) goes to Starlette
            await self.fallback(scope, receive, send)
            return
        path = scope["path"]
        if self.auth.enabled and path not in PUBLIC_PATHS:
            try:
                scope["mltrack.user"] = self.auth.check(scope["headers"])
            except Unauthenticated as exc:
                await _send_error(send, exc, [(b"www-authenticate", exc.challenge.encode())])
                return
        methods = self.table.get(path)
        if methods is None:
            await self.fallback(scope, receive, send)
            return
        handler = methods.get(scope["method"])
        if handler is None:
            allowed = ", ".join(sorted(methods))
            await _send_error(
                send,
                HttpError(f"{path} takes {allowed}.", "BAD_REQUEST", 405),
                [(b"allow", allowed.encode())],
            )
            return
        await self._dispatch(scope, receive, send, handler)

    async def _dispatch(self, scope: Any, receive: Any, send: Any, handler: Handler) -> None:
        from anyio import to_thread

        try:
            fields = _query(scope["query_string"])
            if scope["method"] != "GET":
                body = await read_body(receive, scope["headers"], self.max_body_bytes)
                if body.strip():
                    fields.update(_json_object(body))
            result = await to_thread.run_sync(handler, self.ctx, Params(fields))
            status, payload = 200, json.dumps(result, separators=(",", ":")).encode()
        except ClientDisconnected:
            return
        except Exception as exc:
            status, payload = error_bytes(exc, f"{scope['method']} {scope['path']}")
        await _send(send, status, payload, _JSON_HEADERS)


def _query(raw: bytes) -> dict[str, Any]:
    """Query parameters; a repeated name (``order_by=a&order_by=b``) becomes a list."""
    fields: dict[str, Any] = {}
    if not raw:
        return fields
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        if key in fields:
            old = fields[key]
            fields[key] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            fields[key] = value
    return fields


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise HttpError("Malformed JSON in the request body.", "BAD_REQUEST", 400) from None
    if not isinstance(data, dict):
        raise InvalidParameterValue("The request body must be a JSON object.")
    return data


async def _send(send: Any, status: int, payload: bytes, headers: list[Any]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _send_error(send: Any, exc: Exception, headers: list[Any] = ()) -> None:  # type: ignore[assignment]
    status, payload = error_bytes(exc)
    await _send(send, status, payload, [*_JSON_HEADERS, *headers])


# -- the Starlette side: health, version, optional modules, JSON 404/405/500 --------------------
def _starlette_app(ctx: ServerContext, extra_routes: list[Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    def health(request: Request) -> Response:
        return PlainTextResponse("OK")

    def version(request: Request) -> Response:
        return PlainTextResponse(_version())

    def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No endpoint {request.url.path}."},
            status_code=404,
        )

    def not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {
                "error_code": "BAD_REQUEST",
                "message": f"{request.url.path} does not take {request.method}.",
            },
            status_code=405,
        )

    def failed(request: Request, exc: Exception) -> Response:
        status, payload = error_bytes(exc, f"{request.method} {request.url.path}")
        return Response(payload, status_code=status, media_type="application/json")

    app = Starlette(
        routes=[Route("/health", health), Route("/version", version), *extra_routes],
        exception_handlers={404: not_found, 405: not_allowed, Exception: failed},
    )
    # What the optional route modules read (documented in create_app).
    app.state.context = app.state.ctx = ctx
    app.state.client = ctx.client
    app.state.artifacts_destination = ctx.artifacts_destination
    app.state.serve_artifacts = ctx.serve_artifacts
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jupyter-mltrack")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def optional_routes(ctx: ServerContext) -> list[Any]:
    """``routes()`` of each optional module that is installed (given ``ctx`` if it takes an
    argument); a module that is missing is skipped, one that fails to import is logged."""
    found: list[Any] = []
    for name in OPTIONAL_ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # the module exists but needs something missing
                logger.warning("Routes of %s not mounted: %s", name, err)
            continue
        make = getattr(module, "routes", None)
        if make is None:
            continue
        found.extend(make(ctx) if inspect.signature(make).parameters else make())
    return found


def create_app(
    tracking_uri: str | None = None,
    *,
    artifacts_destination: str | None = None,
    serve_artifacts: bool = True,
    auth: Auth | str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> TrackingServer:
    """The tracking server's ASGI app over the store at ``tracking_uri``.

    Parameters
    ----------
    tracking_uri
        The backend store (folder, ``sqlite:///...``, ``postgresql+psycopg://...``).
    artifacts_destination
        Where new experiments keep their artifacts (a folder or e.g. ``s3://bucket/prefix``);
        default: the store's own artifact folder.
    serve_artifacts
        Show artifact locations under the destination as ``mlflow-artifacts:/...`` so clients
        go through the server's artifact proxy (MLflow's default).
    auth
        An ``Auth``, or a mode (``"none"``, ``"token"``, ``"basic"``) whose secrets are read
        from the environment.
    max_body_bytes
        JSON request bodies larger than this are refused with 413.

    The optional route modules get the context through ``routes(ctx)`` (or read
    ``request.app.state.context`` / ``.client`` / ``.artifacts_destination`` /
    ``.serve_artifacts``).
    """
    if not isinstance(auth, Auth):
        auth = Auth.from_env(auth or "none")
    ctx = ServerContext(tracking_uri, artifacts_destination, serve_artifacts)
    extra = optional_routes(ctx)
    taken = {
        (route.path, method)
        for route in extra
        for method in (getattr(route, "methods", None) or ())
    }
    fallback = _starlette_app(ctx, extra)
    return TrackingServer(ctx, fallback, auth, max_body_bytes, route_table(taken))


def app_from_env() -> TrackingServer:
    """The app of one uvicorn worker process, from the options its parent put in the env
    (secrets are not among them: each worker reads them from the environment itself)."""
    options = json.loads(os.environ[OPTIONS_ENV])
    _log_to_stderr()
    return create_app(**options)


def _log_to_stderr() -> None:
    import sys

    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.WARNING,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    logger.setLevel(logging.INFO)


def run_server(
    tracking_uri: str | None,
    artifacts_destination: str | None = None,
    serve_artifacts: bool = True,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    auth_mode: str = "none",
    allow_insecure: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Serve in the foreground until interrupted (``mltrack server``).

    Checks come first — auth configuration, exposure rule, store opens (schema created or
    migrated once, here, not by racing workers), port free — so a mistake fails with one
    message before anything listens.
    """
    import uvicorn

    from jupyter_mltrack.serving.server import _url, bind_socket
    from jupyter_mltrack.tracking_server.auth import check_exposure

    _log_to_stderr()
    auth = Auth.from_env(auth_mode)
    check_exposure(host, auth, allow_insecure)
    options = {
        "tracking_uri": tracking_uri,
        "artifacts_destination": artifacts_destination,
        "serve_artifacts": serve_artifacts,
        "auth": auth_mode,
        "max_body_bytes": max_body_bytes,
    }
    common = {
        "lifespan": "on",
        "access_log": False,
        "log_config": None,
        "log_level": "warning",
        "server_header": False,
        "timeout_keep_alive": 30,
    }
    if workers <= 1:
        app = create_app(
            tracking_uri,
            artifacts_destination=artifacts_destination,
            serve_artifacts=serve_artifacts,
            auth=auth,
            max_body_bytes=max_body_bytes,
        )
        sock = bind_socket(host, port)
        where = _url(host, sock.getsockname()[1])
        logger.info("mltrack server on %s (store %s)", where, _describe(app.ctx))
        config = uvicorn.Config(app, host=host, port=port, **common)  # type: ignore[arg-type]
        uvicorn.Server(config).run(sockets=[sock])
        return
    ctx = ServerContext(tracking_uri, artifacts_destination, serve_artifacts)
    described = _describe(ctx)
    del ctx
    from jupyter_mltrack.store import forget_stores

    forget_stores()  # the workers open their own connections
    bind_socket(host, port).close()  # a port in use fails here, with our message
    os.environ[OPTIONS_ENV] = json.dumps(options)
    logger.info(
        "mltrack server on %s with %d workers (store %s)", _url(host, port), workers, described
    )
    uvicorn.run(
        "jupyter_mltrack.tracking_server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **common,  # type: ignore[arg-type]
    )


def _describe(ctx: ServerContext) -> str:
    store = ctx.client.store
    describe = getattr(store, "describe", None)
    text = describe() if describe else ctx.client.tracking_uri
    return f"{text}, artifacts in {ctx.artifacts_destination}"
