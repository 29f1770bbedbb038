"""Resolve a model URI in a forked child while the server process imports its own stack.

Resolving ``runs:/`` or ``models:/`` opens the store (SQLAlchemy and a query, ~0.2 s) and
the server needs pandas, Starlette and uvicorn (~0.3 s) whatever the model: on two cores the
two overlap. The child hands back the resolved location as JSON; if it fails in any way, the
parent resolves again itself, so errors are the very exceptions and messages a plain
resolution gives. Without ``fork`` (Windows) or with threads running, it resolves in process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from typing import Any


class EarlyResolution:
    """A model URI being resolved; ``result()`` gives the ``ResolvedModel``."""

    def __init__(self, model_uri: str, tracking_uri: str | None) -> None:
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self._pid = 0
        self._read_fd = -1
        if hasattr(os, "fork") and threading.active_count() == 1:
            self._fork()

    def _fork(self) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: resolve, report, exit without running the parent's cleanup
            status = 1
            try:
                os.close(read_fd)
                payload = json.dumps(dataclasses.asdict(self._resolve())).encode()
                with os.fdopen(write_fd, "wb") as out:
                    out.write(payload)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        self._pid, self._read_fd = pid, read_fd

    def _resolve(self) -> Any:
        from jupyter_mltrack.models.uri import resolve_model_uri
        from jupyter_mltrack.tracking.client import Client

        client = Client(self.tracking_uri) if self.tracking_uri else None
        return resolve_model_uri(self.model_uri, client)

    def result(self) -> Any:
        """The resolved model location; raises what resolving raises."""
        if not self._pid:
            return self._resolve()
        with os.fdopen(self._read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(self._pid, 0)
        self._pid = 0
        if status != 0 or not payload:
            return self._resolve()  # the child failed: fail here, with the same error
        from jupyter_mltrack.models.uri import ResolvedModel

        return ResolvedModel(**json.loads(payload))
