"""Defer ``scipy.stats`` in a scoring-server process until something uses it.

Importing scikit-learn imports ``scipy.stats`` (``sklearn.utils.fixes`` and a few
``from scipy.stats import rankdata``-style lines), ~0.2-0.4 s of a server's startup, yet
predicting with a fitted estimator rarely calls into it. In the server process only (never in a
notebook kernel), ``scipy.stats`` is created as a placeholder module that:

- hands out, for the few names libraries bind when they are imported (``DEFERRED_FUNCTIONS``,
  ``DEFERRED_DISTRIBUTIONS``), a stand-in that imports the real module when first used;
- runs the real ``scipy/stats/__init__.py`` in place (the very same module object, so every
  reference stays valid) on the first access to anything else, and before any of its
  submodules is imported (``scipy.stats._continuous_distns`` from a pickled distribution,
  ``from scipy.stats import mstats``), so a submodule never starts under a half-made package.

``MLTRACK_SERVE_DEFER_IMPORTS=0`` turns it off.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
from typing import Any

ENV_SWITCH = "MLTRACK_SERVE_DEFER_IMPORTS"
DEFERRED_MODULE = "scipy.stats"
# Names that libraries bind with ``from scipy.stats import ...`` when they are imported
# (scikit-learn 1.x: rankdata, gmean, spearmanr, chi2): functions get a forwarding function,
# distributions a forwarding object (calls and attributes). Any other name imports the module.
DEFERRED_FUNCTIONS = frozenset(
    {"rankdata", "gmean", "hmean", "pmean", "spearmanr", "pearsonr", "kendalltau", "mode", "iqr"}
)
DEFERRED_DISTRIBUTIONS = frozenset({"chi2"})


class _DeferredModule(types.ModuleType):
    """``scipy.stats`` before its ``__init__`` ran; see the module docstring."""

    def __getattr__(self, name: str) -> Any:
        state: _State = self.__dict__["_mltrack_deferred"]
        if state.loading_thread == threading.get_ident():
            # the real __init__ is running in this thread: behave like a module mid-import
            raise AttributeError(f"partially initialized module {self.__name__!r} has no {name!r}")
        if name in DEFERRED_FUNCTIONS or name in DEFERRED_DISTRIBUTIONS:
            return state.forwarder(self, name)
        if name.startswith("__") and name.endswith("__") and name != "__all__":
            # what the import system and introspection probe (``__file__``, ``__path__``...)
            raise AttributeError(name)
        state.load(self)
        return getattr(self, name)

    def __dir__(self) -> list[str]:
        self.__dict__["_mltrack_deferred"].load(self)
        return list(self.__dict__)


class _ForwardedObject:
    """Stands for an object of the deferred module (a distribution such as ``chi2``): calling it
    or reading an attribute imports the module and uses the real object."""

    __slots__ = ("_module", "_name", "_state")

    def __init__(self, state: _State, module: types.ModuleType, name: str) -> None:
        self._state = state
        self._module = module
        self._name = name

    def _target(self) -> Any:
        return self._state.real(self._module, self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._target(), attr)

    def __repr__(self) -> str:
        return repr(self._target())


class _State:
    def __init__(self, real_spec: importlib.machinery.ModuleSpec) -> None:
        self.real_spec = real_spec
        self.lock = threading.RLock()
        self.loading_thread: int | None = None
        self.loaded = False
        self.forwarders: dict[str, Any] = {}

    def forwarder(self, module: types.ModuleType, name: str) -> Any:
        with self.lock:
            function = self.forwarders.get(name)
            if function is None:
                if name in DEFERRED_DISTRIBUTIONS:
                    function = _ForwardedObject(self, module, name)
                else:

                    def function(*args: Any, **kwargs: Any) -> Any:
                        return self.real(module, name)(*args, **kwargs)

                    function.__name__ = function.__qualname__ = name
                    function.__module__ = module.__name__
                    function.__doc__ = f"scipy.stats.{name}, imported on first call."
                self.forwarders[name] = function
            return function

    def real(self, module: types.ModuleType, name: str) -> Any:
        """The module's own ``name``, loading the module first if need be."""
        if not self.loaded:
            self.load(module)
        return getattr(module, name)

    def load(self, module: types.ModuleType) -> None:
        """Run the real ``scipy/stats/__init__.py`` in ``module`` (once)."""
        with self.lock:
            if self.loaded or self.loading_thread is not None:
                return
            self.loading_thread = threading.get_ident()
            spec = self.real_spec
            try:
                module.__spec__ = spec
                module.__loader__ = spec.loader
                spec._initializing = True  # type: ignore[attr-defined]
                try:
                    spec.loader.exec_module(module)  # type: ignore[union-attr]
                finally:
                    spec._initializing = False  # type: ignore[attr-defined]
                module.__class__ = types.ModuleType
                module.__dict__.pop("_mltrack_deferred", None)
                self.loaded = True
            except BaseException:
                sys.modules.pop(module.__name__, None)
                raise
            finally:
                self.loading_thread = None


class _DeferredLoader(importlib.abc.Loader):
    def __init__(self, real_spec: importlib.machinery.ModuleSpec, finder: _DeferringFinder) -> None:
        self.real_spec = real_spec
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _DeferredModule(spec.name)
        module.__dict__["_mltrack_deferred"] = _State(self.real_spec)
        self.finder.placeholder = module
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing runs now: the real ``__init__`` runs on first use."""


class _ExistingModuleLoader(importlib.abc.Loader):
    """Hands the import system a submodule that loading the real package already imported
    (instead of running it a second time into a new module object)."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.real_spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.real_spec  # the import system put ours there meanwhile


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Makes ``scipy.stats`` the placeholder on its first import, and loads the real package
    before any of its submodules is imported."""

    def __init__(self) -> None:
        self.placeholder: types.ModuleType | None = None

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == DEFERRED_MODULE:
            return self._placeholder_spec(fullname, path)
        module = self.placeholder
        if module is None or not fullname.startswith(DEFERRED_MODULE + "."):
            return None
        state: _State = module.__dict__.get("_mltrack_deferred")  # type: ignore[assignment]
        if state is None or state.loaded or state.loading_thread is not None:
            return None  # loaded, or the real __init__ importing its own submodules
        state.load(module)
        existing = sys.modules.get(fullname)
        if existing is None or getattr(existing, "__spec__", None) is None:
            return None  # not imported by the package: import it as usual
        # the import system returns sys.modules[fullname].__spec__ when the module appeared
        # meanwhile, so that is where our spec has to be (the loader puts the real one back)
        spec = importlib.machinery.ModuleSpec(
            fullname,
            _ExistingModuleLoader(existing),
            origin=existing.__spec__.origin,
            is_package=existing.__spec__.submodule_search_locations is not None,
        )
        existing.__spec__ = spec
        return spec

    def _placeholder_spec(self, fullname: str, path: Any) -> Any:
        if self.placeholder is not None:
            return None
        real_spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if real_spec is None or real_spec.loader is None or not real_spec.has_location:
            return None
        spec = importlib.machinery.ModuleSpec(
            fullname, _DeferredLoader(real_spec, self), origin=real_spec.origin, is_package=True
        )
        spec.submodule_search_locations = list(real_spec.submodule_search_locations or [])
        spec.has_location = True
        return spec


_FINDER = _DeferringFinder()  # stays on sys.meta_path, inert once the package is loaded


def defer_heavy_imports() -> bool:
    """Install the deferral (for this process) unless ``scipy.stats`` is already imported,
    scipy is not installed, or ``MLTRACK_SERVE_DEFER_IMPORTS=0``; returns whether it did."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if DEFERRED_MODULE in sys.modules or _FINDER in sys.meta_path:
        return False
    if importlib.util.find_spec("scipy") is None:
        return False
    sys.meta_path.insert(0, _FINDER)
    return True


def is_deferred(module: types.ModuleType) -> bool:
    """Whether ``module`` is the placeholder whose real ``__init__`` has not run yet."""
    return isinstance(module, _DeferredModule)
