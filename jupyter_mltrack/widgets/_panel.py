"""What every panel shares: its Client, an inline error line, a status line, and actions that
run off the kernel's message loop so a slow query or plot never freezes the notebook."""

from __future__ import annotations

import functools
import html
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import ipywidgets as w

from jupyter_mltrack.exceptions import MlflowException

logger = logging.getLogger("jupyter_mltrack.widgets")


def describe_error(err: BaseException) -> str:
    """One line for the panel: our own messages as they are, anything else with its type."""
    if isinstance(err, MlflowException):
        return err.message
    return f"{type(err).__name__}: {err}"


class Panel(w.VBox):
    """Base class of the panels.

    ``background=True`` (the default) runs actions (button clicks, reloads, plots) on one
    worker thread per panel, in order; ``wait()`` blocks until they are done, which is what
    tests and scripts call after driving a control. ``background=False`` runs them inline.
    Errors never escape as tracebacks: they are shown in ``error_box`` and kept in
    ``last_error``.
    """

    def __init__(
        self,
        client: Any = None,
        tracking_uri: str | None = None,
        background: bool = True,
        **kwargs: Any,
    ) -> None:
        from jupyter_mltrack.tracking.client import Client

        self.client = client if client is not None else Client(tracking_uri)
        self.background = background
        self.error_box = w.HTML(layout=w.Layout(display="none"))
        self.error_box.add_class("mltrack-error")
        self.status = w.HTML()
        self.status.add_class("mltrack-status")
        self.last_error: str | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []
        self._lock = threading.Lock()
        super().__init__(**kwargs)
        self.add_class("mltrack-panel")

    # -- errors and status ----------------------------------------------------------------
    def show_error(self, message: str) -> None:
        """Show ``message`` in the panel's error line (and keep it in ``last_error``)."""
        self.last_error = message
        self.error_box.value = f'<div class="mltrack-error-text">⚠ {html.escape(message)}</div>'
        self.error_box.layout.display = None

    def clear_error(self) -> None:
        self.last_error = None
        self.error_box.value = ""
        self.error_box.layout.display = "none"

    def set_status(self, text: str) -> None:
        self.status.value = f'<span class="mltrack-status-text">{html.escape(text)}</span>'

    # -- actions --------------------------------------------------------------------------
    def run_action(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``fn`` now (inline) or on the panel's worker; errors go to the error line."""

        def guarded() -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # the panel shows it; the kernel log stays clean
                logger.debug("panel action failed", exc_info=True)
                self.show_error(describe_error(err))
                return None

        if not self.background:
            future: Future = Future()
            future.set_result(guarded())
            return future
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="mltrack-panel"
                )
            future = self._executor.submit(guarded)
            self._futures = [f for f in self._futures if not f.done()] + [future]
        return future

    def wait(self, timeout: float = 60.0) -> None:
        """Block until every action started so far has finished (for tests and scripts)."""
        with self._lock:
            pending = list(self._futures)
        for future in pending:
            future.result(timeout=timeout)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        super().close()


def action(method: Callable[..., Any]) -> Callable[..., Future]:
    """Decorate a panel method so calling it runs as a panel action (see ``run_action``).

    Button handlers take the button as an argument; the decorated method need not.
    """

    @functools.wraps(method)
    def wrapper(self: Panel, *args: Any, **kwargs: Any) -> Future:
        args = tuple(a for a in args if not isinstance(a, w.Button))
        return self.run_action(method, self, *args, **kwargs)

    return wrapper
