"""The ``pickle_module`` ``torch.save`` / ``torch.load`` use for PyTorch models by default (as
MLflow's ``mlflow.pytorch.pickle_module``): cloudpickle writes, so classes defined in a
notebook are stored by value; the standard unpickler reads.

Writing finds the submodules a pickled function uses (``torch.nn.functional`` in
``torch.nn.functional.relu(x)``) from the names in its code instead of scanning ``sys.modules`` once
per module it references (thousands of entries with torch and Lightning loaded: ~1 ms per
function): same result, a few dictionary lookups.

Reading differs from cloudpickle in one way: a class stored by value always comes back as a
fresh class. cloudpickle, loading in the process that saved it, would instead pour the saved
class body into the live class of the same identity, replacing the methods of the notebook's
own class with copies (which breaks ``inspect.getsource`` and ``torch.jit.script`` on it).
"""

from __future__ import annotations

import functools
import inspect
import io
import pickle
import sys
import threading
import types
from collections.abc import Iterable
from typing import Any

import cloudpickle
import cloudpickle.cloudpickle as _cloudpickle_impl

_SCAN = "_find_imported_submodules"  # cloudpickle's function replaced while we pickle
_original_scan = getattr(_cloudpickle_impl, _SCAN, None)  # None: a cloudpickle without it
_swap_lock = threading.Lock()
_swaps = 0  # dumps in progress (threads), so the last one out restores the original

_SKELETONS = ("_make_skeleton_class", "_make_skeleton_enum")


def _imported_submodules(code: types.CodeType, dependencies: Iterable[Any]) -> list[Any]:
    """cloudpickle's rule (a loaded submodule of a referenced package is kept when every part
    of its dotted name after the package is a name the code uses), walked from the package
    down through those names instead of over all of ``sys.modules``."""
    names = set(code.co_names)
    modules = sys.modules
    found = []
    for dependency in dependencies:
        if not isinstance(dependency, types.ModuleType) or not getattr(
            dependency, "__package__", None
        ):
            continue
        pending = [dependency.__name__]
        while pending:
            base = pending.pop()
            for name in names:
                child = f"{base}.{name}"
                module = modules.get(child)
                if module is not None:
                    found.append(module)
                    pending.append(child)
    return found


def _swap_scan(on: bool) -> None:
    global _swaps
    if _original_scan is None:
        return
    with _swap_lock:
        _swaps += 1 if on else -1
        setattr(_cloudpickle_impl, _SCAN, _imported_submodules if _swaps else _original_scan)


class Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler with the faster submodule search while it dumps."""

    def dump(self, obj: Any) -> None:
        _swap_scan(True)
        try:
            super().dump(obj)
        finally:
            _swap_scan(False)


def dump(obj: Any, file: Any, protocol: int | None = None, buffer_callback: Any = None) -> None:
    Pickler(file, protocol=protocol, buffer_callback=buffer_callback).dump(obj)


def dumps(obj: Any, protocol: int | None = None, buffer_callback: Any = None) -> bytes:
    with io.BytesIO() as file:
        dump(obj, file, protocol=protocol, buffer_callback=buffer_callback)
        return file.getvalue()


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        if module.startswith("cloudpickle") and name in _SKELETONS:
            return _untracked(found)
        return found


@functools.cache
def _untracked(make: Any) -> Any:
    """``make`` called with ``class_tracker_id=None``: no lookup of a live class to reuse."""
    try:
        position = list(inspect.signature(make).parameters).index("class_tracker_id")
    except ValueError:
        return make

    def fresh(*args: Any, **kwargs: Any) -> Any:
        if "class_tracker_id" in kwargs:
            kwargs["class_tracker_id"] = None
        elif len(args) > position:
            args = (*args[:position], None, *args[position + 1 :])
        return make(*args, **kwargs)

    return fresh


def load(file: Any, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    return Unpickler(io.BytesIO(data), **kwargs).load()
