"""Where a model's classes come from.

User code (a notebook cell, ``__main__``, a ``.py`` file beside the notebook) travels inside the
model: it is pickled *by value* with cloudpickle, so the model loads in another process (the
scoring server, a colleague's kernel) that has never seen that code. Classes from installed
libraries are referenced by name, and their distributions become pinned requirements.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import site
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any

# top-level packages never pickled by value and never added as requirements of their own
_OURS = frozenset({"jupyter_mltrack", "torch", "builtins", "__main__"})


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _library_paths() -> tuple[str, ...]:
    paths = {*site.getsitepackages(), site.getusersitepackages()}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(path)
    return tuple(os.path.join(os.path.realpath(p), "") for p in paths)


def is_user_module(name: str) -> bool:
    """True for code that is neither in the standard library nor in an installed library's
    folder (site-packages): a notebook, ``__main__``, a ``.py`` file beside the notebook, a
    package installed in editable mode."""
    if name == "__main__":
        return True
    top = name.partition(".")[0]
    if top in _OURS or top in sys.stdlib_module_names:
        return False
    file = getattr(sys.modules.get(name), "__file__", None)
    if not file:
        return False  # not importable here: cloudpickle pickles its classes by value anyway
    return not os.path.realpath(file).startswith(_library_paths())


def model_classes(model: Any) -> list[type]:
    """The classes of every submodule of ``model`` and their bases (``object`` excluded)."""
    seen: dict[type, None] = {}
    modules = model.modules() if hasattr(model, "modules") else [model]
    for module in modules:
        for cls in type(module).__mro__:
            if cls is not object:
                seen.setdefault(cls, None)
    return list(seen)


def user_modules(classes: Iterable[type]) -> list[ModuleType]:
    """The (imported, non-``__main__``) user modules the classes are defined in."""
    found: dict[str, ModuleType] = {}
    for cls in classes:
        name = cls.__module__
        module = sys.modules.get(name)
        if name != "__main__" and module is not None and is_user_module(name):
            found[name] = module
    return list(found.values())


def library_distributions(classes: Iterable[type]) -> list[str]:
    """Installed distributions (other than torch) that the classes come from, e.g.
    ``pytorch-lightning`` for a LightningModule; user code is not one of them."""
    dists: dict[str, None] = {}
    for cls in classes:
        name = cls.__module__
        top = name.partition(".")[0]
        if top in _OURS or top in sys.stdlib_module_names or is_user_module(name):
            continue
        for dist in _distributions().get(top, []):
            dists.setdefault(dist, None)
    return list(dists)


@contextmanager
def by_value(modules: Iterable[ModuleType]) -> Iterator[None]:
    """Make cloudpickle pickle the objects of ``modules`` by value while the block runs."""
    import cloudpickle

    registered = set(cloudpickle.list_registry_pickle_by_value())
    added = []
    for module in modules:
        if module.__name__ not in registered:
            cloudpickle.register_pickle_by_value(module)
            added.append(module)
    try:
        yield
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)
