"""Run a callback when a module is imported: ``autolog()`` patches a framework the moment the
user imports it, so enabling every integration imports none of the (heavy) frameworks.

``when_imported("xgboost", patch)`` calls ``patch(module)`` now if ``xgboost`` is imported
already, otherwise right after its import finishes (on the importing thread). A callback that
raises is reported as a warning; the user's import always succeeds.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

Callback = Callable[[ModuleType], None]

_lock = threading.RLock()
_pending: dict[str, list[Callback]] = {}


def when_imported(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` once module ``name`` is imported (now, if it is already)."""
    module = sys.modules.get(name)
    if module is not None and not _initialising(module):
        _call(name, callback, module)
        return
    with _lock:
        _pending.setdefault(name, []).append(callback)
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())


def cancel(name: str, callback: Callback | None = None) -> None:
    """Forget pending callbacks for ``name`` (all of them, or just ``callback``)."""
    with _lock:
        if callback is None:
            _pending.pop(name, None)
            return
        callbacks = _pending.get(name, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            _pending.pop(name, None)


def pending(name: str) -> bool:
    """True when a callback waits for ``name`` to be imported."""
    with _lock:
        return bool(_pending.get(name))


def _initialising(module: ModuleType) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _call(name: str, callback: Callback, module: ModuleType) -> None:
    try:
        callback(module)
    except Exception as exc:  # autologging must never break the user's import
        warnings.warn(
            f"Autologging could not hook into {name}: {type(exc).__name__}: {exc}",
            UserWarning,
            stacklevel=3,
        )


def _fire(name: str, module: ModuleType) -> None:
    with _lock:
        callbacks = _pending.pop(name, [])
    for callback in callbacks:
        _call(name, callback, module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: asks the other finders, then wraps the loader of a watched module
    so the callbacks run after the module's code has run."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._inner  # the module's own loader, for importlib.resources etc.
        self._inner.exec_module(module)
        _fire(self._name, module)

    def __getattr__(self, attribute: str) -> Any:  # get_source, is_package, ...
        return getattr(self._inner, attribute)
