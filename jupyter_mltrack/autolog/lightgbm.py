"""LightGBM autologging (MLflow's ``mlflow.lightgbm.autolog``).

Patched when LightGBM is imported (enabling never imports it): ``lightgbm.train`` (also as
``lightgbm.engine.train`` and the ``train`` the scikit-learn wrappers call) and the ``fit`` of
``LGBMModel`` and its subclasses. The training data is read from the ``Dataset`` before
training (LightGBM frees it afterwards). Feature importance is logged for ``split`` and
``gain``, as MLflow does. What is logged, and when: see ``jupyter_mltrack.autolog.boosting``.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from jupyter_mltrack.autolog import boosting
from jupyter_mltrack.autolog.boosting import Config, DataPart, Integration, Library, Recorder

FLAVOR = "lightgbm"
IMPORTANCE_TYPES = ("split", "gain")
CALLBACK_ORDER = 20  # after the user's callbacks, before LightGBM's early stopping (30)


class _LightGBM(Library):
    flavor = FLAVOR
    module_name = "lightgbm"
    supported_versions = ((4, 0), (4, 7))
    unlogged_args = frozenset(
        {
            "train_set",
            "valid_sets",
            "valid_names",
            "fobj",
            "feval",
            "init_model",
            "learning_rates",
            "callbacks",
        }
    )

    def patch(self, module: ModuleType, integration: Integration) -> None:
        import lightgbm
        import lightgbm.engine
        import lightgbm.sklearn

        integration.patch_functions(
            [(lightgbm, "train"), (lightgbm.engine, "train"), (lightgbm.sklearn, "train")],
            boosting.wrap_train(self),
        )
        wrappers = [
            cls
            for cls in vars(lightgbm.sklearn).values()
            if isinstance(cls, type) and issubclass(cls, lightgbm.LGBMModel)
        ]
        integration.patch_classes([(cls, "fit") for cls in wrappers], boosting.wrap_fit(self))

    def add_callback(self, arguments: dict[str, Any], recorder: Recorder) -> None:
        arguments["callbacks"] = [*(arguments.get("callbacks") or []), _MetricsCallback(recorder)]

    def train_data(self, arguments: dict[str, Any]) -> list[DataPart]:
        import lightgbm

        train_set = arguments.get("train_set")
        parts = []
        if _readable(train_set):
            parts.append(DataPart(train_set.data, train_set.label, None, "train"))
        valid_sets = arguments.get("valid_sets") or []
        if isinstance(valid_sets, lightgbm.Dataset):
            valid_sets = [valid_sets]
        names = arguments.get("valid_names") or []
        if isinstance(names, str):
            names = [names]
        for i, valid in enumerate(valid_sets):
            if valid is train_set or not _readable(valid):
                continue
            name = str(names[i]) if i < len(names) else f"valid_{i}"
            parts.append(DataPart(valid.data, valid.label, name, "eval"))
        return parts

    def fit_data(self, arguments: dict[str, Any]) -> list[DataPart]:
        X = arguments.get("X")
        parts = [DataPart(X, arguments.get("y"), None, "train")]
        names = arguments.get("eval_names") or []
        for i, (eval_X, eval_y) in enumerate(_eval_pairs(arguments)):
            if eval_X is not X:
                name = str(names[i]) if i < len(names) else f"valid_{i}"
                parts.append(DataPart(eval_X, eval_y, name, "eval"))
        return parts

    def early_stopping(
        self, booster: Any, arguments: dict[str, Any], results: list[dict[str, float]]
    ) -> tuple[dict[str, float], dict[str, float], int] | None:
        # LightGBM sets best_iteration (1-based) only when early stopping was on, whichever
        # of its aliases or callbacks turned it on
        best = int(getattr(booster, "best_iteration", 0) or 0)
        if best <= 0 or not results:
            return None
        summary = {"stopped_iteration": len(results), "best_iteration": best}
        return summary, results[best - 1] if best <= len(results) else {}, len(results)

    def importances(self, booster: Any, config: Config) -> list[tuple[str, list[str], Any]]:
        names = list(booster.feature_name())
        return [
            (kind, names, booster.feature_importance(importance_type=kind))
            for kind in IMPORTANCE_TYPES
        ]

    def predict(self, model: Any, data: Any) -> Any:
        from jupyter_mltrack.lightgbm import _LGBModelWrapper

        return _LGBModelWrapper(model).predict(data)

    def log_model(self, model: Any, config: Config, signature: Any, example: Any) -> None:
        import jupyter_mltrack.lightgbm as flavor

        flavor.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=config.registered_model_name,
        )


_LIBRARY = _LightGBM()


def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    extra_tags: dict[str, Any] | None = None,
    log_every_n_steps: int = 1,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging of LightGBM training.

    Parameters
    ----------
    log_input_examples
        Store the first rows of the training data with the model.
    log_model_signatures
        Store a signature inferred from the training data and the model's predictions.
    log_models
        Log the trained booster (or the fitted scikit-learn wrapper) as ``model``.
    log_datasets
        Log the training data (context ``train``) and eval data (``eval``) as dataset inputs.
    disable
        Put every original function and method back (the very same objects).
    exclusive
        Log nothing into runs the user started (``start_run``, a ``%%track`` cell).
    disable_for_unsupported_versions
        Do nothing when the installed LightGBM is outside the tested versions.
    silent
        No warnings from autologging (LightGBM's own output is untouched).
    registered_model_name
        Register each logged model under this name (a new version per training).
    extra_tags
        Tags set on the runs autologging starts.
    log_every_n_steps
        Write the eval metrics of every n-th iteration only (ours; MLflow logs every one).
    """
    config = Config()
    if not disable:
        config = Config(
            log_input_examples=log_input_examples,
            log_model_signatures=log_model_signatures,
            log_models=log_models,
            log_datasets=log_datasets,
            exclusive=exclusive,
            silent=silent,
            registered_model_name=registered_model_name,
            extra_tags=extra_tags if extra_tags is not None else {},
            log_every_n_steps=log_every_n_steps,
            importance_types=IMPORTANCE_TYPES,
        )
    boosting.configure(
        _LIBRARY,
        disable=disable,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        config=config,
    )


def is_enabled() -> bool:
    """True while LightGBM autologging is on (patched, or waiting for LightGBM's import)."""
    return _LIBRARY.integration.config is not None


class _MetricsCallback:
    """A LightGBM callback feeding a Recorder with each iteration's eval results."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.order = CALLBACK_ORDER
        self.before_iteration = False

    def __call__(self, env: Any) -> None:
        results = env.evaluation_result_list or []
        self.recorder.record(env.iteration, ((r[0], r[1], r[2]) for r in results))


def _readable(dataset: Any) -> bool:
    """The Dataset still holds in-memory data (not a file name, not freed)."""
    data = getattr(dataset, "data", None)
    return data is not None and not isinstance(data, (str, os.PathLike))


def _eval_pairs(arguments: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(X, y) of each eval set: ``eval_set=[(X, y), ...]`` or LightGBM 4.7's
    ``eval_X=`` / ``eval_y=`` (one of each, or tuples of them)."""
    if arguments.get("eval_set"):
        return [tuple(pair) for pair in arguments["eval_set"]]  # type: ignore[misc]
    eval_X, eval_y = arguments.get("eval_X"), arguments.get("eval_y")
    if eval_X is None:
        return []
    xs = eval_X if isinstance(eval_X, tuple) else (eval_X,)
    ys = eval_y if isinstance(eval_y, tuple) else (eval_y,) * len(xs)
    return list(zip(xs, ys))
