"""scikit-learn autologging (MLflow's ``mlflow.sklearn.autolog``).

``fit`` (and ``fit_transform`` / ``fit_predict``) of every estimator in
``sklearn.utils.all_estimators()``, ``Pipeline`` and the hyper-parameter searches is wrapped.
Only the outermost fit of a call chain logs (a pipeline's steps and a search's candidates do
not get runs of their own). It logs into the active run (a ``with start_run()`` block, a
``%%track`` cell's run) or into a run started for the fit and ended after it:

- before the fit: params ``get_params(deep=False)``, tags ``estimator_name``/``estimator_class``;
- after it: ``training_*`` metrics on the training data, ``training_score``; for a search the
  ``best_<param>`` params, the ``best_cv_score`` metric, ``cv_results.csv`` and child runs for
  the best ``max_tuning_runs`` candidates; a ``feature_importance.png`` or ``coefficients.png``
  chart; the fitted model (``runs:/<run_id>/model``) with a signature inferred from the
  training data.

A problem while logging never breaks the fit: it is reported in one warning and the fitted
estimator is returned. An exception raised by the fit reaches the caller unchanged, and a run
autologging started for it ends FAILED.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jupyter_mltrack.autolog import import_hooks, patching
from jupyter_mltrack.autolog import sklearn_content as content
from jupyter_mltrack.autolog.patching import FitRun, PatchSet
from jupyter_mltrack.entities import Metric, Param, RunStatus, RunTag
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.validation import MAX_PARAM_VALUE_LENGTH

FLAVOR = "sklearn"
ESTIMATOR_NAME_TAG = "estimator_name"
ESTIMATOR_CLASS_TAG = "estimator_class"
FIT_METHODS = ("fit", "fit_transform", "fit_predict")
SUPPORTED_VERSIONS = ((1, 3), (1, 9))  # tested range, for disable_for_unsupported_versions
EXAMPLE_ROWS = 5  # rows of the training data used for the input example and the signature
FEATURE_IMPORTANCE_ARTIFACT = "feature_importance.png"
COEFFICIENTS_ARTIFACT = "coefficients.png"
CV_RESULTS_ARTIFACT = "cv_results.csv"


@dataclass(frozen=True)
class AutologConfig:
    """The options of the last ``autolog()`` call (read by every patched fit)."""

    log_input_examples: bool = False
    log_model_signatures: bool = True
    log_models: bool = True
    exclusive: bool = False
    silent: bool = False
    max_tuning_runs: int | None = 5
    serialization_format: str = "cloudpickle"
    registered_model_name: str | None = None
    pos_label: Any = None
    extra_tags: dict[str, Any] = field(default_factory=dict)
    disable_for_unsupported_versions: bool = False


_config: AutologConfig | None = None
_patches = PatchSet()
_enable_lock = threading.Lock()


def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    max_tuning_runs: int | None = 5,
    log_post_training_metrics: bool = True,
    serialization_format: str = "cloudpickle",
    registered_model_name: str | None = None,
    pos_label: Any = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging of scikit-learn fits.

    Parameters
    ----------
    log_input_examples
        Store the first rows of the training data with the model.
    log_model_signatures
        Store a signature inferred from the training data and the model's predictions.
    log_models
        Log the fitted estimator as ``model`` (a search's best estimator also as
        ``best_estimator``).
    log_datasets, log_post_training_metrics
        Accepted for MLflow compatibility; not logged.
    disable
        Put every original method back (the very same function objects).
    exclusive
        Log nothing into runs the user started (``start_run``, a ``%%track`` cell).
    disable_for_unsupported_versions
        Do nothing when the installed scikit-learn is outside the tested range.
    silent
        No warnings from autologging (a fit's own warnings are untouched).
    max_tuning_runs
        Child runs for the best this-many search candidates (``None``: all of them).
    serialization_format
        ``"cloudpickle"``, ``"pickle"`` or ``"skops"``, as in ``sklearn.log_model``.
    registered_model_name
        Register each logged model under this name (a new version per fit).
    pos_label
        The positive class for binary precision/recall/f1/roc_auc (default: ``1`` when it is
        a label, else the greater label).
    extra_tags
        Tags set on the runs autologging starts.
    """
    global _config
    with _enable_lock:
        if disable:
            _config = None
            import_hooks.cancel("sklearn", _on_sklearn_import)
            _patches.restore()
            return
        if max_tuning_runs is not None and (
            isinstance(max_tuning_runs, bool)
            or not isinstance(max_tuning_runs, int)
            or max_tuning_runs < 0
        ):
            raise InvalidParameterValue(
                f"max_tuning_runs must be a non-negative integer or None, got {max_tuning_runs!r}."
            )
        from jupyter_mltrack.sklearn import SUPPORTED_SERIALIZATION_FORMATS

        if serialization_format not in SUPPORTED_SERIALIZATION_FORMATS:
            raise InvalidParameterValue(
                f"Unknown serialization_format {serialization_format!r}; use one of "
                f"{', '.join(SUPPORTED_SERIALIZATION_FORMATS)}."
            )
        if extra_tags is not None and not isinstance(extra_tags, dict):
            raise InvalidParameterValue(
                f"extra_tags must be a dict, got {type(extra_tags).__name__}."
            )
        patching.forget_warnings()
        _config = AutologConfig(
            log_input_examples=log_input_examples,
            log_model_signatures=log_model_signatures,
            log_models=log_models,
            exclusive=exclusive,
            silent=silent,
            max_tuning_runs=max_tuning_runs,
            serialization_format=serialization_format,
            registered_model_name=registered_model_name,
            pos_label=pos_label,
            extra_tags=dict(extra_tags or {}),
            disable_for_unsupported_versions=disable_for_unsupported_versions,
        )
        import_hooks.cancel("sklearn", _on_sklearn_import)
    # patching imports every estimator module (~2 s): done when the user imports scikit-learn
    # (at once if it is imported already), outside the lock the callback takes
    import_hooks.when_imported("sklearn", _on_sklearn_import)


def _on_sklearn_import(_module: Any) -> None:
    global _config
    with _enable_lock:
        config = _config
        if config is None:  # disabled before scikit-learn was imported
            return
        if config.disable_for_unsupported_versions and not _version_supported():
            import sklearn

            _config = None
            _patches.restore()
            if not config.silent:
                low, high = (".".join(map(str, v)) for v in SUPPORTED_VERSIONS)
                warnings.warn(
                    f"scikit-learn {sklearn.__version__} is outside the versions autologging is "
                    f"tested with ({low} to {high}.x); autologging stays off for it "
                    "(disable_for_unsupported_versions=True).",
                    UserWarning,
                    stacklevel=4,
                )
            return
        if not _patches.active:  # once: enabling again only changes the options
            _register_dispatcher()
            _patches.apply(_targets(), _wrap)


def is_enabled() -> bool:
    """On: patched, or waiting for scikit-learn to be imported to patch it."""
    return _config is not None and (_patches.active or import_hooks.pending("sklearn"))


def _version_supported() -> bool:
    import sklearn

    try:
        version = tuple(int(part) for part in sklearn.__version__.split(".")[:2])
    except ValueError:  # a development version such as 1.10.dev0 is outside the tested range
        return False
    return SUPPORTED_VERSIONS[0] <= version <= SUPPORTED_VERSIONS[1]


def _targets() -> list[tuple[type, str]]:
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing every estimator module may warn
        classes = [cls for _, cls in all_estimators()]
    classes += [Pipeline, GridSearchCV, RandomizedSearchCV]
    unique = list(dict.fromkeys(classes))
    return [(cls, method) for cls in unique for method in FIT_METHODS]


def _register_dispatcher() -> None:
    """scikit-learn runs a meta-estimator's inner fits through ``sklearn.utils.parallel``;
    under a threading backend they run in joblib's threads and must not log runs."""
    try:
        from sklearn.utils.parallel import _FuncWrapper
    except ImportError:  # pragma: no cover - older or newer layouts: nothing to register
        return
    patching.register_dispatcher(_FuncWrapper.__call__.__code__)


# -- the patched methods ----------------------------------------------------------------------
def _wrap(original: Any) -> Any:
    @patching.wraps(original)
    def fit_with_autolog(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or patching.in_fit():
            return original(self, *args, **kwargs)
        return _logged_fit(config, original, self, args, kwargs)

    return fit_with_autolog


def _logged_fit(
    config: AutologConfig, original: Any, estimator: Any, args: tuple, kwargs: dict
) -> Any:
    problems: list[str] = []
    with patching.outermost_fit():
        fit_run = None
        try:
            fit_run = FitRun.open(FLAVOR, config.extra_tags, config.exclusive)
        except Exception as exc:
            problems.append(f"no run to log into ({_describe(exc)})")
        if fit_run is not None:
            try:
                with _muted(config.silent):
                    _log_before_fit(fit_run, estimator, problems)
            except Exception as exc:
                problems.append(f"params and tags not logged ({_describe(exc)})")
        try:
            result = original(estimator, *args, **kwargs)
        except BaseException as exc:
            if fit_run is not None:
                failed = (
                    RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
                )
                _close(fit_run, failed, problems)
            _report(problems, estimator, original, config, fit_run)
            raise
        if fit_run is not None:
            try:
                with _muted(config.silent):
                    _log_after_fit(fit_run, config, original, estimator, args, kwargs, problems)
            except BaseException:  # interrupted while logging: the run must not stay open
                _close(fit_run, RunStatus.KILLED, problems)
                raise
            _close(fit_run, RunStatus.FINISHED, problems)
    _report(problems, estimator, original, config, fit_run)
    return result


def _close(fit_run: FitRun, status: str, problems: list[str]) -> None:
    try:
        fit_run.close(status)
    except Exception as exc:
        problems.append(f"the run could not be ended ({_describe(exc)})")


def _report(
    problems: list[str],
    estimator: Any,
    original: Any,
    config: AutologConfig,
    fit_run: FitRun | None,
) -> None:
    if not problems:
        return
    what = f"{type(estimator).__name__}.{original.__name__}"
    details = "; ".join(problems)
    where = f" to run {fit_run.run_id}" if fit_run is not None else ""
    message = (
        f"jupyter_mltrack autolog: logging {what}{where} was incomplete: {details}. "
        "The fit itself is not affected."
    )
    patching.warn_once(message, config.silent, stacklevel=4, key=f"{what}: {details}")


@contextmanager
def _muted(silent: bool) -> Iterator[None]:
    """Silence the warnings raised while logging, with ``silent=True``."""
    if not silent:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- what is logged -----------------------------------------------------------------------------
def _log_before_fit(fit_run: FitRun, estimator: Any, problems: list[str]) -> None:
    tags = [RunTag(k, v) for k, v in _estimator_tags(estimator).items()]
    try:
        params = {k: _param_text(v) for k, v in estimator.get_params(deep=False).items()}
    except Exception as exc:  # a hand-written estimator with an unusual __init__
        problems.append(f"params not logged ({_describe(exc)})")
        params = {}
    _log_params(fit_run, params, tags, problems)


def _log_after_fit(
    fit_run: FitRun,
    config: AutologConfig,
    original: Any,
    estimator: Any,
    args: tuple,
    kwargs: dict,
    problems: list[str],
) -> None:
    X, y, sample_weight = content.fit_inputs(original, estimator, args, kwargs)
    search = content.is_search(estimator)
    steps: list[tuple[str, Any]] = [
        (
            "metrics",
            lambda: _log_metrics(fit_run, config, estimator, X, y, sample_weight, search, problems),
        ),
    ]
    if search:
        steps.append(("the search results", lambda: _log_search(fit_run, config, estimator)))
    steps.append(("the feature importance chart", lambda: _log_importance(fit_run, estimator, X)))
    if config.log_models:
        steps.append(("the model", lambda: _log_models(config, estimator, X, search)))
    for what, step in steps:
        try:
            step()
        except Exception as exc:
            problems.append(f"{what} not logged ({_describe(exc)})")


def _log_params(
    fit_run: FitRun, params: dict[str, str], tags: list[RunTag], problems: list[str]
) -> None:
    """Log params (and tags); in a run that already has some of them with other values (two
    fits in one run), keep the first values and say which were not changed."""
    param_list = [Param(k, v) for k, v in params.items()]
    try:
        fit_run.client.log_batch(fit_run.run_id, params=param_list, tags=tags)
        return
    except InvalidParameterValue:
        existing = fit_run.client.get_run(fit_run.run_id).data.params
    kept = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
    fresh = [p for p in param_list if p.key not in existing]
    fit_run.client.log_batch(fit_run.run_id, params=fresh, tags=tags)
    if kept:
        problems.append(
            f"params already in the run with other values were left as they were: "
            f"{', '.join(kept)} (start a run per fit to log each one)"
        )


def _log_metrics(
    fit_run: FitRun,
    config: AutologConfig,
    estimator: Any,
    X: Any,
    y: Any,
    sample_weight: Any,
    search: bool,
    problems: list[str],
) -> None:
    metrics = content.training_metrics(estimator, X, y, sample_weight, config.pos_label)
    params: dict[str, str] = {}
    if search:
        best_params = getattr(estimator, "best_params_", None) or {}
        params = {f"best_{k}": _param_text(v) for k, v in best_params.items()}
        best_score = _finite(getattr(estimator, "best_score_", None))
        if best_score is not None:
            metrics["best_cv_score"] = best_score
    from jupyter_mltrack.tracking.client import _now_ms

    now = _now_ms()
    fit_run.client.log_batch(
        fit_run.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()]
    )
    if params:
        _log_params(fit_run, params, [], problems)


def _log_search(fit_run: FitRun, config: AutologConfig, search: Any) -> None:
    """``cv_results.csv`` on the run, and one child run per candidate, best ranked first, as
    MLflow makes them: the seed estimator's params updated with the candidate's, and the
    candidate's aggregate scores and times (``mean_*``, ``std_*``, ``rank_*``) as metrics."""
    import pandas as pd

    from jupyter_mltrack.tracking.client import _now_ms
    from jupyter_mltrack.tracking.context import PARENT_RUN_TAG, run_context_tags

    results = search.cv_results_
    client, parent = fit_run.client, fit_run.run
    client.log_text(
        parent.info.run_id, pd.DataFrame(results).to_csv(index=False), CV_RESULTS_ARTIFACT
    )
    count = len(results["params"])
    ranks = results.get(_rank_key(search, results))
    order = sorted(range(count), key=lambda i: (ranks[i] if ranks is not None else 0, i))
    if config.max_tuning_runs is not None:
        order = order[: config.max_tuning_runs]
    if not order:
        return
    seed = search.estimator
    base_params = seed.get_params(deep=not content.is_search(seed))
    metric_keys = [k for k in results if not k.startswith(("param", "split"))]
    tags = {
        **run_context_tags(),
        **{k: str(v) for k, v in config.extra_tags.items()},
        **_estimator_tags(seed),
        PARENT_RUN_TAG: parent.info.run_id,
        patching.AUTOLOGGING_TAG: FLAVOR,
    }
    for i in order:
        child = client.create_run(
            parent.info.experiment_id, start_time=parent.info.start_time, tags=tags
        )
        now = _now_ms()
        metrics = []
        for key in metric_keys:
            value = _finite(results[key][i], allow_nan=True)
            if value is not None:
                metrics.append(Metric(key, value, now, 0))
        params = {**base_params, **results["params"][i]}
        client.log_batch(
            child.info.run_id,
            metrics=metrics,
            params=[Param(k, _param_text(v)) for k, v in params.items()],
        )
        client.set_terminated(child.info.run_id, RunStatus.FINISHED, now)


def _rank_key(search: Any, results: dict[str, Any]) -> str:
    refit = getattr(search, "refit", True)
    if isinstance(refit, str) and f"rank_test_{refit}" in results:
        return f"rank_test_{refit}"
    if "rank_test_score" in results:
        return "rank_test_score"
    return next((k for k in results if k.startswith("rank_test_")), "rank_test_score")


def _log_importance(fit_run: FitRun, estimator: Any, X: Any) -> None:
    chart = content.importance_chart(estimator, X)
    if chart is not None:
        kind, png = chart
        name = FEATURE_IMPORTANCE_ARTIFACT if kind == "importance" else COEFFICIENTS_ARTIFACT
        fit_run.client.log_bytes(fit_run.run_id, png, name)


def _log_models(config: AutologConfig, estimator: Any, X: Any, search: bool) -> None:
    from jupyter_mltrack.sklearn import log_model

    sample = content.head(X, EXAMPLE_ROWS)
    signature: Any = False  # False: none, and none inferred from the example either
    if config.log_model_signatures and sample is not None:
        signature = content.infer_model_signature(estimator, sample) or False
    example = sample if config.log_input_examples and not content.is_sparse(sample) else None
    common = {
        "signature": signature,
        "input_example": example,
        "serialization_format": config.serialization_format,
    }
    with warnings.catch_warnings():
        # a later fit in the same run replaces its model: the last fit wins, as in MLflow
        warnings.simplefilter("ignore")
        log_model(
            estimator, name="model", registered_model_name=config.registered_model_name, **common
        )
        best = getattr(estimator, "best_estimator_", None) if search else None
        if best is not None:
            log_model(best, name="best_estimator", **common)


# -- helpers ------------------------------------------------------------------------------------
def _estimator_tags(estimator: Any) -> dict[str, str]:
    cls = type(estimator)
    return {
        ESTIMATOR_NAME_TAG: cls.__name__,
        ESTIMATOR_CLASS_TAG: f"{cls.__module__}.{cls.__name__}",
    }


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return (
        text if len(text) <= MAX_PARAM_VALUE_LENGTH else text[: MAX_PARAM_VALUE_LENGTH - 3] + "..."
    )


def _finite(value: Any, allow_nan: bool = False) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isinf(number) or (math.isnan(number) and not allow_nan):
        return None
    return number
