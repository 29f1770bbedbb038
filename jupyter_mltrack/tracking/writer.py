"""The writer: buffers metric points (and the params/tags of runs this process created) and
writes them in batches from a background thread.

Guarantees: every read through a Client flushes first (read-your-writes in the process);
``flush()``, ``end_run`` and interpreter exit persist everything; a hard crash loses at most the
writes of the last ``window_s`` seconds (or ``max_rows`` points, whichever is first).
"""

from __future__ import annotations

import atexit
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from jupyter_mltrack.store.base import PendingWrites, Store

DEFAULT_WINDOW_S = 0.5
DEFAULT_MAX_ROWS = 50_000
T = TypeVar("T")


class MetricWriter:
    """Background batched writer for one store."""

    def __init__(
        self, store: Store, window_s: float = DEFAULT_WINDOW_S, max_rows: int = DEFAULT_MAX_ROWS
    ) -> None:
        self.store = store
        self.window_s = window_s
        self.max_rows = max_rows
        self._queue: deque[tuple[int, str, int, int, float, bool]] = deque()
        self._params: list[tuple[int, str, str, str]] = []
        self._tags: list[tuple[int, str, str]] = []
        self._ops_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # params logged so far to runs created by this process, for immediate conflict errors
        self.owned: dict[str, dict[str, str]] = {}

    def add(self, row: tuple[int, str, int, int, float, bool]) -> None:
        """Queue one point ``(run_key, key, step, timestamp, value, is_nan)``; never blocks."""
        queue = self._queue
        queue.append(row)
        if len(queue) >= self.max_rows and not self._wake.is_set():
            self._wake.set()
        if self._thread is None:
            self._start()

    def add_many(
        self, rows: Sequence[tuple[int, str, int, int, float, bool]], write_now: bool = False
    ) -> None:
        """Queue many points at once (see ``add``); ``write_now`` wakes the writer thread
        instead of letting the rows wait for its next round."""
        queue = self._queue
        queue.extend(rows)
        if (write_now or len(queue) >= self.max_rows) and not self._wake.is_set():
            self._wake.set()
        if self._thread is None:
            self._start()

    def add_params(self, rows: Sequence[tuple[int, str, str, str]]) -> None:
        """Queue ``(run_key, run_id, key, value)`` params (conflicts were checked by the caller)."""
        with self._ops_lock:
            self._params.extend(rows)
        if self._thread is None:
            self._start()

    def add_tags(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Queue ``(run_key, key, value)`` tags."""
        with self._ops_lock:
            self._tags.extend(rows)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._write_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="mltrack-writer", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.window_s)
            self._wake.clear()
            try:
                self._drain()
            except BaseException as err:  # kept and re-raised by the next flush()
                self._error = err

    def _take(self) -> PendingWrites:
        """Pop what is queued (metrics up to ``max_rows``); call with the write lock held."""
        with self._ops_lock:
            params, self._params = self._params, []
            tags, self._tags = self._tags, []
        queue = self._queue
        pop = queue.popleft
        metrics = [pop() for _ in range(min(len(queue), self.max_rows))]
        return PendingWrites(metrics, params, tags)

    def _drain(self) -> None:
        with self._write_lock:
            while True:
                pending = self._take()
                if not pending:
                    return
                self.store.write_pending(pending)

    def pending(self) -> int:
        return len(self._queue) + len(self._params) + len(self._tags)

    def flush(self) -> None:
        """Write everything queued now; re-raise a failure of an earlier background write."""
        self._drain()  # also waits for a batch the thread is writing right now
        self._raise_error()

    def flush_with(self, finish: Callable[[PendingWrites], T]) -> T:
        """Hand everything queued to ``finish`` (which writes it in its own transaction)."""
        with self._write_lock:
            while len(self._queue) > self.max_rows:
                self.store.write_pending(self._take())
            pending = self._take()
            try:
                result = finish(pending)
            except BaseException:
                if pending:  # the finishing write failed: do not lose the queued ones
                    self.store.write_pending(pending)
                raise
        self._raise_error()
        return result

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error


_writers: dict[int, MetricWriter] = {}
_lock = threading.Lock()


def writer_for(store: Store) -> MetricWriter:
    """The one writer of ``store`` in this process."""
    writer = _writers.get(id(store))
    if writer is None:
        with _lock:
            writer = _writers.setdefault(id(store), MetricWriter(store))
    return writer


def flush_all() -> None:
    """Flush every writer (end of process, explicit ``flush()``)."""
    for writer in list(_writers.values()):
        writer.flush()


def forget_writers() -> None:
    """Flush and drop every writer (their stores are being closed)."""
    flush_all()
    with _lock:
        _writers.clear()


def _flush_at_exit() -> None:
    try:
        flush_all()
    except Exception as err:  # at exit there is no caller left to raise to
        warnings.warn(f"jupyter_mltrack could not write the last metrics: {err}", stacklevel=1)


atexit.register(_flush_at_exit)
