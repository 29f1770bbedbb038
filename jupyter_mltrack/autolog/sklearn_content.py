"""What scikit-learn autologging reads from a fit: its inputs (X, y, sample_weight), training
metrics (MLflow's names), the feature importance / coefficients chart and the model signature.
Imported only when autologging is enabled, after scikit-learn."""

from __future__ import annotations

import importlib.util
import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any


def training_metrics(
    estimator: Any, X: Any, y: Any, sample_weight: Any, pos_label: Any
) -> dict[str, float]:
    """``training_*`` metrics of ``estimator`` on its training data; metrics that do not apply
    (no ``predict_proba``, a single class, multi-output targets...) are left out."""
    from sklearn.base import is_classifier, is_regressor

    if X is None:
        return {}
    metrics: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning and the like: not the user's fit
        if y is not None and is_classifier(estimator):
            metrics.update(_classifier_metrics(estimator, X, y, sample_weight, pos_label))
        elif y is not None and is_regressor(estimator):
            metrics.update(_regressor_metrics(estimator, X, y, sample_weight))
        score = _training_score(estimator, X, y, sample_weight, metrics)
    if score is not None:
        metrics["training_score"] = score
    return metrics


def _classifier_metrics(
    estimator: Any, X: Any, y: Any, sample_weight: Any, pos_label: Any
) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as skm
    from sklearn.utils.multiclass import type_of_target

    y_pred = _call(estimator.predict, X)
    if y_pred is None:
        return {}
    kind = type_of_target(y)
    found: dict[str, float] = {}
    _put(
        found, "training_accuracy_score", skm.accuracy_score, y, y_pred, sample_weight=sample_weight
    )
    label = None
    if kind == "binary":
        label = pos_label if pos_label is not None else _default_pos_label(y)
        averaging: dict[str, Any] = {"average": "binary", "pos_label": label}
    elif kind in ("multiclass", "multilabel-indicator"):
        averaging = {"average": "weighted"}
    else:
        return found
    # one pass for all three (f1_score, precision_score and recall_score would each redo it)
    weights = {} if sample_weight is None else {"sample_weight": sample_weight}
    scores = _call(skm.precision_recall_fscore_support, y, y_pred, **weights, **averaging)
    if scores is not None:
        precision, recall, f1, _support = scores
        for name, value in (
            ("training_f1_score", f1),
            ("training_precision_score", precision),
            ("training_recall_score", recall),
        ):
            number = _finite(value)
            if number is not None:
                found[name] = number
    if kind == "multilabel-indicator" or not hasattr(estimator, "predict_proba"):
        return found
    proba = _call(estimator.predict_proba, X)
    classes = getattr(estimator, "classes_", None)
    if proba is None or classes is None or getattr(proba, "ndim", 0) != 2:
        return found
    classes = list(classes)
    if kind == "binary":
        if label in classes:
            column = proba[:, classes.index(label)]
            positive = np.asarray(y) == label
            _put(
                found,
                "training_roc_auc",
                skm.roc_auc_score,
                positive,
                column,
                sample_weight=sample_weight,
            )
    else:
        _put(
            found,
            "training_roc_auc",
            skm.roc_auc_score,
            y,
            proba,
            sample_weight=sample_weight,
            multi_class="ovr",
            labels=classes,
        )
    _put(
        found,
        "training_log_loss",
        skm.log_loss,
        y,
        proba,
        sample_weight=sample_weight,
        labels=classes,
    )
    return found


def _default_pos_label(y: Any) -> Any:
    """scikit-learn's default positive label (1) when it is one of the labels, else the greater
    label (the one ``predict_proba``'s second column is for)."""
    import numpy as np

    labels = np.unique(np.asarray(y))
    for label in labels:
        if label == 1 and not isinstance(label, str):
            return label
    return labels[-1]


def _regressor_metrics(estimator: Any, X: Any, y: Any, sample_weight: Any) -> dict[str, float]:
    from sklearn import metrics as skm

    y_pred = _call(estimator.predict, X)
    if y_pred is None:
        return {}
    found: dict[str, float] = {}
    _put(found, "training_r2_score", skm.r2_score, y, y_pred, sample_weight=sample_weight)
    _put(
        found,
        "training_mean_absolute_error",
        skm.mean_absolute_error,
        y,
        y_pred,
        sample_weight=sample_weight,
    )
    _put(
        found,
        "training_mean_squared_error",
        skm.mean_squared_error,
        y,
        y_pred,
        sample_weight=sample_weight,
    )
    rmse = getattr(skm, "root_mean_squared_error", None)  # scikit-learn >= 1.4
    if rmse is not None:
        _put(
            found, "training_root_mean_squared_error", rmse, y, y_pred, sample_weight=sample_weight
        )
    elif "training_mean_squared_error" in found:
        found["training_root_mean_squared_error"] = math.sqrt(found["training_mean_squared_error"])
    return found


def _training_score(
    estimator: Any, X: Any, y: Any, sample_weight: Any, metrics: dict[str, float]
) -> float | None:
    """``estimator.score`` on the training data; the default classifier/regressor score is the
    accuracy/r2 computed already, so it is not predicted a second time."""
    from sklearn.base import ClassifierMixin, RegressorMixin

    score = getattr(type(estimator), "score", None)
    if score is None:
        return None
    if score is ClassifierMixin.score and "training_accuracy_score" in metrics:
        return metrics["training_accuracy_score"]
    if score is RegressorMixin.score and "training_r2_score" in metrics:
        return metrics["training_r2_score"]
    args = (X,) if y is None else (X, y)
    value = None
    if sample_weight is not None:
        value = _call(estimator.score, *args, sample_weight=sample_weight)
    if value is None:
        value = _call(estimator.score, *args)
    return _finite(value)


def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except Exception:
        return None


def _put(
    found: dict[str, float], name: str, function: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    if kwargs.get("sample_weight") is None:
        kwargs.pop("sample_weight", None)
    value = _finite(_call(function, *args, **kwargs))
    if value is not None:
        found[name] = value


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- feature importance / coefficients chart ----------------------------------------------------
def importance_chart(estimator: Any, X: Any) -> tuple[str, bytes] | None:
    """``("importance" | "coefficients", png)`` for the model's final estimator, or None when it
    has neither ``feature_importances_`` nor ``coef_`` (or matplotlib is not installed)."""
    import numpy as np

    final, transforms = _final_estimator(estimator)
    values = _fitted_attribute(final, "feature_importances_")
    kind = "importance"
    if values is None:
        values, kind = _fitted_attribute(final, "coef_"), "coefficients"
    if values is None:
        return None
    if hasattr(values, "toarray"):  # coef_ after sparsify()
        values = values.toarray()
    values = np.asarray(values, dtype=float)
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    if values.ndim not in (1, 2) or values.shape[-1] == 0:
        return None
    if importlib.util.find_spec("matplotlib") is None:
        return None
    from jupyter_mltrack.autolog.plots import bar_chart_png

    names = _feature_names(final, transforms, X, values.shape[-1])
    label = "Feature importance" if kind == "importance" else "Coefficients"
    title = f"{label} ({type(final).__name__})"
    xlabel = "importance" if kind == "importance" else "coefficient"
    series, series_title, plural = None, "output", "outputs"
    if values.ndim == 2:
        classes = getattr(final, "classes_", None)
        if classes is not None and len(classes) == values.shape[0]:
            series, series_title, plural = [str(c) for c in classes], "class", "classes"
        else:
            series = [f"output {i}" for i in range(values.shape[0])]
    return kind, bar_chart_png(names, values, title, xlabel, series, series_title, plural)


def _final_estimator(estimator: Any) -> tuple[Any, Any]:
    """The estimator that holds the importances (a search's best, a pipeline's last step) and
    the pipeline steps before it (to name the features it sees)."""
    from sklearn.pipeline import Pipeline

    transforms = None
    for _ in range(10):  # searches of pipelines of searches...: bounded, never a loop
        best = getattr(estimator, "best_estimator_", None)
        if best is not None:
            estimator = best
        elif isinstance(estimator, Pipeline) and len(estimator.steps) > 0:
            transforms = estimator[:-1] if len(estimator.steps) > 1 else None
            estimator = estimator.steps[-1][1]
        else:
            break
    return estimator, transforms


def _fitted_attribute(estimator: Any, name: str) -> Any:
    try:
        return getattr(estimator, name, None)
    except Exception:  # properties that raise for unfitted or unsupported configurations
        return None


def _feature_names(final: Any, transforms: Any, X: Any, count: int) -> list[str]:
    candidates = [lambda: _fitted_attribute(final, "feature_names_in_")]
    if transforms is not None:
        candidates.append(lambda: transforms.get_feature_names_out())
    else:
        candidates.append(lambda: getattr(X, "columns", None))
    for candidate in candidates:
        try:
            names = candidate()
        except Exception:
            continue
        if names is not None and len(names) == count:
            return [str(n) for n in names]
    return [f"x{i}" for i in range(count)]


# -- the fit's inputs and the model signature ----------------------------------------------------
_signatures: dict[Any, inspect.Signature | None] = {}


def fit_inputs(original: Any, estimator: Any, args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    """``(X, y, sample_weight)`` of a fit call, whatever the parameters are called."""
    if original not in _signatures:
        try:
            _signatures[original] = inspect.signature(original)
        except (TypeError, ValueError):
            _signatures[original] = None
    signature = _signatures[original]
    if signature is None:
        return (args[0] if args else None), (args[1] if len(args) > 1 else None), None
    try:
        arguments = signature.bind(estimator, *args, **kwargs).arguments
    except TypeError:
        return None, None, None
    parameters = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    X = (
        arguments.get(parameters[1].name)
        if len(parameters) > 1 and parameters[1].kind in positional
        else None
    )
    y = arguments.get("y", arguments.get("Y"))
    sample_weight = arguments.get("sample_weight")
    for parameter in parameters:
        if sample_weight is None and parameter.kind is inspect.Parameter.VAR_KEYWORD:
            sample_weight = arguments.get(parameter.name, {}).get("sample_weight")
    return X, y, sample_weight


def is_search(estimator: Any) -> bool:
    try:
        from sklearn.model_selection._search import BaseSearchCV
    except ImportError:  # pragma: no cover - moved in some future version
        return hasattr(estimator, "cv_results_")
    return isinstance(estimator, BaseSearchCV) and hasattr(estimator, "cv_results_")


def is_sparse(data: Any) -> bool:
    return data is not None and hasattr(data, "tocsr") and hasattr(data, "nnz")


def head(X: Any, rows: int) -> Any:
    """The first rows of the training data (None for data that cannot be sliced)."""
    if X is None:
        return None
    try:
        if hasattr(X, "iloc"):
            return X.iloc[:rows]
        if isinstance(X, (list, tuple)):
            return list(X[:rows])
        if hasattr(X, "shape") and len(X.shape) >= 1:
            return X[:rows]
    except Exception:
        return None
    return None


def infer_model_signature(estimator: Any, sample: Any) -> Any:
    """The signature from ``sample`` and the model's output on it (``predict``, else
    ``transform``), or None when it cannot be inferred."""
    from jupyter_mltrack.models.signature import infer_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if hasattr(estimator, "predict"):
                output = estimator.predict(sample)
            elif hasattr(estimator, "transform"):
                output = estimator.transform(sample)
            else:
                output = None
            signature = infer_signature(sample, output)
        except Exception:
            return None
    return signature if signature.inputs is not None else None
