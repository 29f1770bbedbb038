"""XGBoost autologging (MLflow's ``mlflow.xgboost.autolog``).

Patched when XGBoost is imported (enabling never imports it): ``xgboost.train`` (also as
``xgboost.training.train`` and the ``train`` the scikit-learn wrappers call), the ``fit`` of
every scikit-learn wrapper in ``xgboost.sklearn``, and ``DMatrix.__init__``, which keeps a weak
reference to the data a DMatrix is built from so the training data can be logged as a dataset
and its first rows as the input example (nothing is copied; data already gone is read back from
the DMatrix). What is logged, and when: see ``jupyter_mltrack.autolog.boosting``.
"""

from __future__ import annotations

import functools
import weakref
from types import ModuleType
from typing import Any

from jupyter_mltrack.autolog import boosting, patching
from jupyter_mltrack.autolog.boosting import Config, DataPart, Integration, Library, Recorder
from jupyter_mltrack.exceptions import InvalidParameterValue

FLAVOR = "xgboost"
IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")


class _XGBoost(Library):
    flavor = FLAVOR
    module_name = "xgboost"
    supported_versions = ((2, 0), (3, 2))
    unlogged_args = frozenset(
        {
            "dtrain",
            "evals",
            "obj",
            "feval",
            "evals_result",
            "xgb_model",
            "callbacks",
            "learning_rates",
            "custom_metric",
        }
    )

    def patch(self, module: ModuleType, integration: Integration) -> None:
        import xgboost
        import xgboost.sklearn
        import xgboost.training

        integration.patch_functions(
            [(xgboost, "train"), (xgboost.training, "train"), (xgboost.sklearn, "train")],
            boosting.wrap_train(self),
        )
        wrappers = [
            cls
            for cls in vars(xgboost.sklearn).values()
            if isinstance(cls, type) and issubclass(cls, xgboost.XGBModel)
        ]
        integration.patch_classes([(cls, "fit") for cls in wrappers], boosting.wrap_fit(self))
        integration.patch_classes([(xgboost.DMatrix, "__init__")], _wrap_dmatrix_init)

    def booster_params(self, params: Any) -> dict[str, Any]:
        if isinstance(params, (list, tuple)):  # [("eval_metric", "auc"), ("eval_metric", ...)]
            merged: dict[str, Any] = {}
            for key, value in params:
                if key in merged:
                    previous = merged[key]
                    merged[key] = (
                        [*previous, value] if isinstance(previous, list) else [previous, value]
                    )
                else:
                    merged[key] = value
            params = merged
        return super().booster_params(params)

    def add_callback(self, arguments: dict[str, Any], recorder: Recorder) -> None:
        # first, so a user's callback that stops training cannot hide the last iteration
        arguments["callbacks"] = [_callback_class()(recorder), *(arguments.get("callbacks") or [])]

    def train_data(self, arguments: dict[str, Any]) -> list[DataPart]:
        dtrain = arguments.get("dtrain")
        parts = []
        features, targets = _source(dtrain)
        if features is not None:
            parts.append(DataPart(features, targets, None, "train"))
        for matrix, name in arguments.get("evals") or []:
            if matrix is dtrain:
                continue
            features, targets = _source(matrix)
            if features is not None:
                parts.append(DataPart(features, targets, str(name), "eval"))
        return parts

    def fit_data(self, arguments: dict[str, Any]) -> list[DataPart]:
        X = arguments.get("X")
        parts = [DataPart(X, arguments.get("y"), None, "train")]
        for i, (eval_X, eval_y) in enumerate(arguments.get("eval_set") or []):
            if eval_X is not X:
                parts.append(DataPart(eval_X, eval_y, f"validation_{i}", "eval"))
        return parts

    def early_stopping(
        self, booster: Any, arguments: dict[str, Any], results: list[dict[str, float]]
    ) -> tuple[dict[str, float], dict[str, float], int] | None:
        import xgboost

        callbacks = arguments.get("callbacks") or []
        used = bool(arguments.get("early_stopping_rounds")) or any(
            isinstance(c, xgboost.callback.EarlyStopping) for c in callbacks
        )
        best = booster.attr("best_iteration") if used and results else None
        if best is None:
            return None
        best = int(best)
        summary = {"stopped_iteration": len(results) - 1, "best_iteration": best}
        return summary, results[best] if 0 <= best < len(results) else {}, len(results)

    def importances(self, booster: Any, config: Config) -> list[tuple[str, list[str], Any]]:
        import numpy as np

        found = []
        for kind in config.importance_types:
            score = booster.get_score(importance_type=kind)
            values: Any = list(score.values())
            if values and isinstance(values[0], list):  # gblinear, multiclass: one per class
                values = np.asarray(values, dtype=float).T
            found.append((kind, list(score), values))
        return found

    def predict(self, model: Any, data: Any) -> Any:
        from jupyter_mltrack.xgboost import _XGBModelWrapper

        return _XGBModelWrapper(model).predict(data)

    def log_model(self, model: Any, config: Config, signature: Any, example: Any) -> None:
        import jupyter_mltrack.xgboost as flavor

        flavor.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=config.registered_model_name,
            model_format=config.model_format or "ubj",
        )


_LIBRARY = _XGBoost()


def autolog(
    importance_types: list[str] | None = None,
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    model_format: str = "ubj",
    extra_tags: dict[str, Any] | None = None,
    log_every_n_steps: int = 1,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging of XGBoost training.

    Parameters
    ----------
    importance_types
        Feature importance types logged as ``feature_importance_{type}.json`` and ``.png``
        (default ``["weight"]``; also ``gain``, ``cover``, ``total_gain``, ``total_cover``).
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
        Do nothing when the installed XGBoost is outside the tested versions.
    silent
        No warnings from autologging (XGBoost's own output is untouched).
    registered_model_name
        Register each logged model under this name (a new version per training).
    model_format
        ``"ubj"`` (MLflow 3's default), ``"json"`` or ``"xgb"``, as in
        ``jupyter_mltrack.xgboost.log_model``.
    extra_tags
        Tags set on the runs autologging starts.
    log_every_n_steps
        Write the eval metrics of every n-th iteration only (ours; MLflow logs every one).
    """
    config = Config()
    if not disable:
        from jupyter_mltrack.xgboost import _check_format

        _check_format(model_format)
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
            importance_types=_importance_types(importance_types),
            model_format=model_format,
        )
    boosting.configure(
        _LIBRARY,
        disable=disable,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        config=config,
    )


def is_enabled() -> bool:
    """True while XGBoost autologging is on (patched, or waiting for XGBoost's import)."""
    return _LIBRARY.integration.config is not None


def _importance_types(value: Any) -> tuple[str, ...]:
    if value is None:
        return ("weight",)
    types = [value] if isinstance(value, str) else value
    if not isinstance(types, (list, tuple)) or not all(isinstance(t, str) for t in types):
        raise InvalidParameterValue(
            f"importance_types must be a list of strings such as ['weight', 'gain'], got {value!r}."
        )
    unknown = [t for t in types if t not in IMPORTANCE_TYPES]
    if unknown:
        raise InvalidParameterValue(
            f"Unknown importance type(s) {', '.join(repr(t) for t in unknown)}; XGBoost has "
            f"{', '.join(IMPORTANCE_TYPES)}."
        )
    return tuple(dict.fromkeys(types))


# -- callback and data ----------------------------------------------------------------------------
@functools.cache
def _callback_class() -> type:
    """The TrainingCallback feeding a Recorder (built once XGBoost is imported)."""
    import xgboost

    class MetricsCallback(xgboost.callback.TrainingCallback):
        def __init__(self, recorder: Recorder) -> None:
            super().__init__()
            self.recorder = recorder

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            self.recorder.record(
                epoch,
                (
                    (data_name, metric_name, _last(values))
                    for data_name, metrics in evals_log.items()
                    for metric_name, values in metrics.items()
                ),
            )
            return False

    return MetricsCallback


def _last(values: Any) -> Any:
    value = values[-1]
    return value[0] if isinstance(value, tuple) else value  # (mean, std) from xgboost.cv


def _wrap_dmatrix_init(original: Any) -> Any:
    @patching.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if _LIBRARY.integration.config is not None:
            data = args[0] if args else kwargs.get("data")
            label = args[1] if len(args) > 1 else kwargs.get("label")
            self._mltrack_source = (_weak(data), _weak(label))

    return __init__


def _weak(value: Any) -> Any:
    if value is None:
        return None
    try:
        return weakref.ref(value)
    except TypeError:  # lists, file names: nothing to keep
        return None


def _source(matrix: Any) -> tuple[Any, Any]:
    """(features, targets) a DMatrix was built from: the original data when it is still alive,
    else the DMatrix's own values (missing ones as NaN) when it is small enough."""
    if matrix is None:
        return None, None
    refs = getattr(matrix, "_mltrack_source", None)
    if refs is not None:
        data = refs[0]() if refs[0] is not None else None
        label = refs[1]() if refs[1] is not None else None
        if data is not None:
            return data, label if label is not None else _label(matrix)
    import xgboost

    if type(matrix) is not xgboost.DMatrix:  # a QuantileDMatrix holds bins, not the values
        return None, None
    rows, cols = matrix.num_row(), matrix.num_col()
    if rows * cols > boosting.DENSE_LIMIT:
        return None, None
    import numpy as np

    coo = matrix.get_data().tocoo()
    dense = np.full((rows, cols), np.nan, dtype=np.float32)
    dense[coo.row, coo.col] = coo.data
    names = matrix.feature_names
    if names:
        import pandas as pd

        return pd.DataFrame(dense, columns=list(names)), _label(matrix)
    return dense, _label(matrix)


def _label(matrix: Any) -> Any:
    label = matrix.get_label()
    return label if label.size else None
