"""Autologging (MLflow's ``mlflow.autolog``): fit a model, get a run with its params, training
metrics, the fitted model and plots, with no tracking code.

Each framework is an *integration* registered here by name with the library it instruments and
the module that implements it (``register``). ``autolog()`` enables every registered integration
whose library is installed; ``jupyter_mltrack.<flavor>.autolog()`` enables one. Nothing here
imports a framework: ``import jupyter_mltrack`` stays cheap, and the library is imported only
when its integration is enabled.

``jupyter_mltrack.autolog`` is both this package and the function: the package module is
callable, so ``mlflow.autolog()`` works whichever of the two the attribute holds (importing
``jupyter_mltrack.autolog.sklearn`` rebinds the package attribute to the module).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import types
import warnings
from dataclasses import dataclass
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue

__all__ = ["Integration", "autolog", "enabled_integrations", "integrations", "register"]


@dataclass(frozen=True)
class Integration:
    """One autologging integration.

    Attributes
    ----------
    flavor
        The name users know it by (``"sklearn"``), as in ``exclude_flavors``.
    library
        The import name of the library it instruments (``"sklearn"``); the integration is
        enabled by ``autolog()`` only when that library is installed.
    module
        The module implementing it, with ``autolog(**kwargs)`` and ``is_enabled()``.
    """

    flavor: str
    library: str
    module: str

    def load(self) -> Any:
        return importlib.import_module(self.module)

    def installed(self) -> bool:
        if self.library in sys.modules:
            return True
        try:
            return importlib.util.find_spec(self.library) is not None
        except (ImportError, ValueError):
            return False


_INTEGRATIONS: dict[str, Integration] = {}


def register(flavor: str, library: str, module: str) -> None:
    """Register (or replace) the integration for ``flavor``; later flavors (xgboost, lightgbm,
    pytorch lightning, keras) plug in with one call each."""
    _INTEGRATIONS[flavor] = Integration(flavor, library, module)


def integrations() -> list[Integration]:
    """The registered integrations, in registration order."""
    return list(_INTEGRATIONS.values())


def enabled_integrations() -> list[str]:
    """Flavors whose autologging is on (only integrations already loaded can be on)."""
    return [
        i.flavor
        for i in _INTEGRATIONS.values()
        if i.module in sys.modules and sys.modules[i.module].is_enabled()
    ]


register("sklearn", "sklearn", "jupyter_mltrack.autolog.sklearn")
register("xgboost", "xgboost", "jupyter_mltrack.autolog.xgboost")
register("lightgbm", "lightgbm", "jupyter_mltrack.autolog.lightgbm")
register("pytorch", "torch", "jupyter_mltrack.autolog.pytorch")  # Lightning's Trainer.fit
register("keras", "keras", "jupyter_mltrack.autolog.keras")


def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    log_traces: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    extra_tags: dict[str, Any] | None = None,
    exclude_flavors: list[str] | None = None,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging for every supported framework that
    is installed: scikit-learn, XGBoost, LightGBM, PyTorch Lightning and Keras. A framework not
    imported yet is not imported here: its integration hooks in when the user imports it.

    Parameters
    ----------
    log_input_examples
        Store the first rows of the training data with each logged model.
    log_model_signatures
        Store a signature inferred from the training data and the model's predictions.
    log_models
        Log the fitted model as the run's ``model`` artifact.
    log_datasets, log_traces
        Accepted for MLflow compatibility; datasets and traces are not logged.
    disable
        Restore every patched method exactly as it was.
    exclusive
        Log nothing into runs the user started (including a ``%%track`` cell's run); fits
        outside any run still get a run of their own.
    disable_for_unsupported_versions
        Skip integrations whose library version has not been tested.
    silent
        No warnings from autologging itself.
    extra_tags
        Tags set on every run autologging starts.
    exclude_flavors
        Flavors to leave alone, e.g. ``["sklearn"]``.

    Flavor-specific options (``max_tuning_runs``, ``registered_model_name``...) are set with
    the flavor's own ``autolog``, e.g. ``jupyter_mltrack.sklearn.autolog(max_tuning_runs=10)``.
    """
    options = {
        "log_input_examples": log_input_examples,
        "log_model_signatures": log_model_signatures,
        "log_models": log_models,
        "log_datasets": log_datasets,
        "disable": disable,
        "exclusive": exclusive,
        "disable_for_unsupported_versions": disable_for_unsupported_versions,
        "silent": silent,
        "extra_tags": extra_tags,
    }
    excluded = set(exclude_flavors or [])
    unknown = excluded - set(_INTEGRATIONS)
    if unknown:
        raise InvalidParameterValue(
            f"exclude_flavors: unknown flavor(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(_INTEGRATIONS)}."
        )
    for integration in integrations():
        if integration.flavor in excluded:
            continue
        if disable:
            # never import a library just to disable it: only loaded integrations can be on
            if integration.module in sys.modules:
                sys.modules[integration.module].autolog(disable=True)
            continue
        if not integration.installed():
            continue
        try:
            module = integration.load()
            module.autolog(**_accepted(module.autolog, options))
        except Exception as exc:  # one broken integration must not stop the others
            if not silent:
                warnings.warn(
                    f"Autologging for {integration.flavor} could not be enabled: "
                    f"{type(exc).__name__}: {exc}",
                    UserWarning,
                    stacklevel=2,
                )


def _accepted(function: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The common options ``function`` takes (an integration may lack some, e.g. log_traces)."""
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    return {k: v for k, v in options.items() if k in parameters}


class _CallableModule(types.ModuleType):
    """Lets ``jupyter_mltrack.autolog(...)`` work when the attribute holds this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return autolog(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(autolog)  # what inspect/help show for the callable package
