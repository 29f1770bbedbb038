"""Running the scoring app under uvicorn: in the foreground for ``mltrack models serve``, or in
a background thread of the notebook kernel for ``serve()`` / ``%mltrack serve``.

The order is always: load the model, bind the port, serve, so that a bad URI, a broken model
or a port in use fails with one clear message and no port was ever opened.
"""

from __future__ import annotations

import atexit
import http.client
import json
import logging
import os
import socket
import sys
import threading
import time
import weakref
from typing import Any

from jupyter_mltrack.exceptions import InvalidState
from jupyter_mltrack.serving import DEFAULT_MAX_BODY_BYTES

logger = logging.getLogger("jupyter_mltrack.serving")

_OPTIONS_ENV = "MLTRACK_SERVE_OPTIONS"  # create_app arguments handed to uvicorn's worker processes
# the servers this process started from the notebook, for `%mltrack serve --stop` and atexit
_RUNNING: weakref.WeakSet[ServingHandle] = weakref.WeakSet()


class PortInUse(InvalidState):
    """The address and port to serve on are taken (or not ours to bind)."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port`` (port 0: a free one), or ``PortInUse``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortInUse(f"Cannot serve on host {host!r}: {exc.strerror}.") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = "already in use" if exc.errno in (98, 48, 10048) else (exc.strerror or str(exc))
        raise PortInUse(
            f"Cannot serve on {host}:{port}: the port is {reason}. Choose another with "
            "--port, or stop what is using it."
            if "in use" in reason
            else f"Cannot serve on {host}:{port}: {reason}."
        ) from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, host: str, port: int, **extra: Any) -> Any:
    import uvicorn

    # loop/http "auto": uvloop and httptools when installed, asyncio and h11 otherwise
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        http="auto",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level="warning",
        server_header=False,
        **extra,
    )


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


# -- the CLI ------------------------------------------------------------------------------------
def run_server(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    watch: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    poll_interval: float = 1.0,
    tracking_uri: str | None = None,
) -> None:
    """Serve ``model_uri`` in the foreground until interrupted (``mltrack models serve``)."""
    import gc

    from jupyter_mltrack.serving.deferred_imports import defer_heavy_imports
    from jupyter_mltrack.serving.early_resolve import EarlyResolution

    started = time.perf_counter()
    defer_heavy_imports()  # this process only serves: scipy.stats loads when first used
    # Imports and unpickling allocate millions of objects that all live as long as the server:
    # collecting during startup only costs time (~3% of it), and frozen afterwards they are
    # never scanned again by the collections that run while serving.
    gc.disable()
    if watch:  # a URI that cannot move fails before the (slow) load
        from jupyter_mltrack.serving.watch import watch_target

        watch_target(model_uri)
    resolving = EarlyResolution(model_uri, tracking_uri)  # overlaps the imports below
    import uvicorn

    from jupyter_mltrack.serving.app import create_app, load_served_model

    _log_to_stderr()
    options = {
        "model_uri": model_uri,
        "max_body_bytes": max_body_bytes,
        "watch": watch,
        "poll_interval": poll_interval,
        "tracking_uri": tracking_uri,
    }
    served = load_served_model(model_uri, tracking_uri, resolving.result())
    if workers <= 1:
        app = create_app(
            served=served,
            max_body_bytes=max_body_bytes,
            watch=watch,
            poll_interval=poll_interval,
            tracking_uri=tracking_uri,
        )
        served.warm_up()
        gc.freeze()
        gc.enable()
        sock = bind_socket(host, port)
        config = _uvicorn_config(app, host, port)
        logger.info(
            "Serving %s at %s (ready in %.2f s; POST /invocations)",
            served.describe(),
            _url(host, sock.getsockname()[1]),
            time.perf_counter() - started,
        )
        uvicorn.Server(config).run(sockets=[sock])
        return
    # several processes: each worker loads its own copy; the parent checked the model loads
    del served
    gc.enable()
    bind_socket(host, port).close()  # a port in use fails here, with our message
    os.environ[_OPTIONS_ENV] = json.dumps(options)
    logger.info(
        "Serving %s at %s with %d workers (POST /invocations)", model_uri, _url(host, port), workers
    )
    uvicorn.run(
        "jupyter_mltrack.serving.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level="warning",
        server_header=False,
    )


def app_from_env() -> Any:
    """The app of one uvicorn worker process, from the options the parent put in the env."""
    from jupyter_mltrack.serving.deferred_imports import defer_heavy_imports

    defer_heavy_imports()
    from jupyter_mltrack.serving.app import create_app

    _log_to_stderr()
    return create_app(**json.loads(os.environ[_OPTIONS_ENV]))


def _log_to_stderr() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.WARNING,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    logger.setLevel(logging.INFO)


# -- the notebook ---------------------------------------------------------------------------------
class ServingHandle:
    """A scoring server running in a background thread of this process.

    ``url`` is where it answers; ``curl`` is a ready-to-paste request built from the model's
    input example (or its signature); ``stop()`` shuts it down and closes the port (it also
    happens when the process exits).
    """

    def __init__(
        self, server: Any, thread: threading.Thread, sock: socket.socket, served: Any, host: str
    ) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self.model_uri: str = served.model_uri
        self.host = host
        self.port: int = sock.getsockname()[1]
        self.url = _url(host, self.port)
        self.model = served.describe()
        self.curl = curl_example(self.url, served)

    @property
    def app(self) -> Any:
        return self._server.config.app

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: in-flight requests finish, then the port is closed."""
        _RUNNING.discard(self)
        atexit.unregister(self.stop)
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ServingHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ServingHandle {self.model} at {self.url} ({state})>"


def serve(
    model_uri: str,
    port: int | None = None,
    host: str = "127.0.0.1",
    watch: bool = False,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    poll_interval: float = 1.0,
    quiet: bool = False,
    timeout: float = 30.0,
) -> ServingHandle:
    """Serve a model from this kernel, in a background thread, until ``.stop()`` or exit.

    Parameters
    ----------
    model_uri
        ``models:/Name/Stage``, ``models:/Name@alias``, ``runs:/<run_id>/model`` or a path.
    port
        ``None`` picks a free port.
    watch
        Follow the registry: reload when the stage or alias moves to another version.

    Returns
    -------
    ServingHandle
        With ``url``, ``curl`` (an example request) and ``stop()``.
    """
    import uvicorn

    from jupyter_mltrack.serving.app import create_app

    app = create_app(
        model_uri, max_body_bytes=max_body_bytes, watch=watch, poll_interval=poll_interval
    )
    served = app.state.slot.current
    sock = bind_socket(host, port or 0)
    server = uvicorn.Server(_uvicorn_config(app, host, sock.getsockname()[1]))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="mltrack-serve", daemon=True
    )
    handle = ServingHandle(server, thread, sock, served, host)
    thread.start()
    try:
        _wait_ready(handle, server, timeout)
    except BaseException:
        handle.stop()
        raise
    _RUNNING.add(handle)
    atexit.register(handle.stop)
    if not quiet:
        print(f"Serving {handle.model} at {handle.url}  (POST /invocations; .stop() to stop)")
        print(handle.curl)
    return handle


def running_servers() -> list[ServingHandle]:
    """The servers started by ``serve()`` in this process that are still running."""
    return [h for h in list(_RUNNING) if h.running]


def _wait_ready(handle: ServingHandle, server: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not handle.running:
            raise InvalidState(f"The server for {handle.model_uri} stopped while starting.")
        if time.monotonic() > deadline:
            raise InvalidState(f"The server for {handle.model_uri} did not start in {timeout} s.")
        time.sleep(0.005)
    conn = http.client.HTTPConnection(
        handle.url.removeprefix("http://").rsplit(":", 1)[0].strip("[]"), handle.port, timeout=5
    )
    try:
        conn.request("GET", "/ping")
        if conn.getresponse().status != 200:
            raise InvalidState(f"The server for {handle.model_uri} does not answer /ping.")
    finally:
        conn.close()


# -- the example request ------------------------------------------------------------------------
_PLACEHOLDERS = {
    "boolean": False,
    "integer": 0,
    "long": 0,
    "float": 0.0,
    "double": 0.0,
    "string": "text",
    "binary": "",
    "datetime": "2024-01-01T00:00:00",
}


def example_request(served: Any) -> dict[str, Any]:
    """A request body for the model: its saved serving example, else one made from its
    signature (one row of placeholder values), else a generic one-row input."""
    if served.input_example is not None:
        return served.input_example
    schema = served.input_schema
    if schema is None:
        return {"inputs": [[0.0]]}
    if schema.is_tensor_spec():
        import numpy as np

        def zeros(spec: Any) -> Any:
            shape = [1 if d == -1 else d for d in spec.shape]
            return np.zeros(shape, dtype=spec.type if spec.type.kind in "iufb" else float).tolist()

        if schema.has_input_names():
            return {"inputs": {s.name: zeros(s) for s in schema.inputs}}
        return {"inputs": zeros(schema.inputs[0])}
    if schema.has_input_names():
        return {"dataframe_records": [{s.name: _PLACEHOLDERS[s.type] for s in schema.inputs}]}
    return {"inputs": [[_PLACEHOLDERS[s.type] for s in schema.inputs]]}


def curl_example(url: str, served: Any) -> str:
    body = json.dumps(example_request(served), separators=(", ", ": "), default=str)
    quoted = body.replace("'", "'\\''")
    return (
        f"curl -X POST {url}/invocations \\\n"
        f'  -H "Content-Type: application/json" \\\n'
        f"  -d '{quoted}'"
    )
