"""What every autologging integration shares: replacing methods on classes and restoring them
exactly, knowing whether a fit is the outermost one, the run a fit logs into, and warnings that
are given once.

Nothing here imports a framework or the tracking store at import time.
"""

from __future__ import annotations

import copy
import functools
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

AUTOLOGGING_TAG = "mlflow.autologging"  # MLflow's tag on the runs autologging starts

Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


# -- patches ----------------------------------------------------------------------------------
@dataclass
class _Patch:
    owner: type
    name: str
    had_own: bool  # the attribute was in owner.__dict__ (else it was inherited)
    previous: Any  # owner.__dict__[name] before patching, when had_own
    replacement: Any


class PatchSet:
    """Methods replaced on classes, restorable exactly (same objects back in the same places).

    A method a class inherits is patched on the class itself (so subclasses inherit the patched
    one) and restored by deleting that attribute, so inheritance resumes. Plain functions are
    wrapped; descriptors holding their function in ``fn`` (scikit-learn's ``available_if``,
    which makes ``hasattr(pipeline, "fit_transform")`` depend on the last step) are copied with
    the function wrapped, so they keep deciding whether the method exists.
    """

    def __init__(self) -> None:
        self._patches: list[_Patch] = []
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._patches)

    def __len__(self) -> int:
        return len(self._patches)

    def apply(self, targets: Iterable[tuple[type, str]], wrap: Wrapper) -> None:
        """Patch each ``(class, method name)``; the originals are all looked up before any class
        is changed, so a subclass never wraps its base's wrapper."""
        with self._lock:
            if self._patches:
                return  # enabled already: patching twice would wrap the wrappers
            planned = []
            for owner, name in targets:
                raw = _raw_attribute(owner, name)
                if raw is None:
                    continue
                replacement = _wrapped(raw, wrap)
                if replacement is None:
                    continue
                had_own = name in owner.__dict__
                planned.append(_Patch(owner, name, had_own, owner.__dict__.get(name), replacement))
            for patch in planned:
                setattr(patch.owner, patch.name, patch.replacement)
                self._patches.append(patch)

    def restore(self) -> None:
        """Put every original back (in reverse order) and forget the patches."""
        with self._lock:
            while self._patches:
                patch = self._patches.pop()
                if patch.had_own:
                    setattr(patch.owner, patch.name, patch.previous)
                elif patch.owner.__dict__.get(patch.name) is patch.replacement:
                    delattr(patch.owner, patch.name)


def _raw_attribute(owner: type, name: str) -> Any:
    for klass in owner.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _wrapped(raw: Any, wrap: Wrapper) -> Any:
    import types

    if isinstance(raw, types.FunctionType):
        return wrap(raw)
    fn = getattr(raw, "fn", None)
    if isinstance(fn, types.FunctionType) and hasattr(type(raw), "__get__"):
        replacement = copy.copy(raw)
        replacement.fn = wrap(fn)
        return replacement
    return None  # staticmethods, properties, builtins: not fit methods we can wrap safely


def wraps(original: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``functools.wraps`` keeping the original's signature visible (``__wrapped__``), which
    scikit-learn inspects (``has_fit_parameter``, metadata routing)."""
    return functools.wraps(original)


# -- the outermost fit --------------------------------------------------------------------------
class _ThreadState(threading.local):
    depth = 0


_thread = _ThreadState()
_active_lock = threading.Lock()
_active_fits = 0
_dispatchers: set[Any] = set()  # code objects of libraries' "run this task in a worker" calls


def register_dispatcher(code: Any) -> None:
    """Declare a library's worker-side task wrapper (e.g. scikit-learn's ``_FuncWrapper
    .__call__``): a fit running under it in a joblib thread was farmed out by another fit."""
    _dispatchers.add(code)


def in_fit() -> bool:
    """True when this call is inside a fit autologging already handles: an outer fit on this
    thread, or a fit that an autologged fit on another thread farmed out to a joblib *threading*
    worker (through a registered dispatcher). Threads the user starts, and the user's own
    ``joblib.Parallel`` tasks, log their own fits."""
    if _thread.depth:
        return True
    return _active_fits > 0 and _is_pool_worker() and _under_dispatcher()


def _is_pool_worker() -> bool:
    from multiprocessing.dummy import DummyProcess  # joblib's threading backend runs on these

    return isinstance(threading.current_thread(), DummyProcess)


def _under_dispatcher() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code in _dispatchers:
            return True
        frame = frame.f_back
    return False


@contextmanager
def outermost_fit() -> Iterator[None]:
    """Mark this thread as inside an autologged fit until the block ends."""
    global _active_fits
    _thread.depth += 1
    with _active_lock:
        _active_fits += 1
    try:
        yield
    finally:
        with _active_lock:
            _active_fits -= 1
        _thread.depth -= 1


# -- the run a fit logs into --------------------------------------------------------------------
class FitRun:
    """The run a fit logs into: the active run (a ``with start_run()`` block, a ``%%track``
    cell's run), or one started for this fit and ended after it, as MLflow does."""

    def __init__(self, run: Any, started: bool) -> None:
        self.run = run
        self.started = started
        self.run_id: str = run.info.run_id
        self.client = run._client

    @classmethod
    def open(cls, flavor: str, extra_tags: dict[str, Any] | None, exclusive: bool) -> FitRun | None:
        """The run to log into, or None when ``exclusive`` forbids logging into the active one."""
        from jupyter_mltrack.tracking import fluent

        active = fluent.active_run()
        if active is not None:
            return None if exclusive else cls(active, started=False)
        tags = {AUTOLOGGING_TAG: flavor, **{k: str(v) for k, v in (extra_tags or {}).items()}}
        return cls(fluent.start_run(tags=tags), started=True)

    def close(self, status: str) -> None:
        """End the run if this fit started it (metrics flushed); the user's runs stay open."""
        if not self.started:
            return
        from jupyter_mltrack.tracking import fluent

        stack = fluent._state.stack
        if any(r is self.run for r in stack):
            while stack and stack[-1] is not self.run:  # runs the fit left open end with it
                fluent.end_run(status)
            fluent.end_run(status)
        else:
            self.client.set_terminated(self.run_id, status)


# -- warnings -------------------------------------------------------------------------------------
_warned: set[str] = set()


def warn_once(message: str, silent: bool, stacklevel: int, key: str | None = None) -> None:
    """Warn (a UserWarning) the first time ``key`` (default: the message) comes up in this
    process; a message naming a run id can be keyed without it."""
    key = message if key is None else key
    if silent or key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)


def forget_warnings() -> None:
    """Let each warning be given once more (``autolog()`` calls this when it is re-enabled)."""
    _warned.clear()
