"""What XGBoost and LightGBM autologging share (MLflow's ``mlflow.xgboost.autolog`` and
``mlflow.lightgbm.autolog``).

Both libraries have a native ``train(params, data, num_boost_round, ...)`` and scikit-learn
wrappers whose ``fit`` calls that same ``train``. Autologging patches both:

- a native ``train`` outside any run gets a run of its own (ended after it); inside a
  ``with start_run()`` block or a ``%%track`` cell it logs into that run;
- a wrapper's ``fit`` opens the run and logs the training data and the fitted wrapper; the
  ``train`` it calls logs into the same run (one run per fit, never two);
- a fit inside another autologged fit (an ``XGBClassifier`` in a scikit-learn ``Pipeline``)
  logs nothing of its own: the outer fit's run is the one that records it.

What ``train`` logs: the booster params and the other ``train`` arguments as params, each
eval metric per iteration (``{eval_name}-{metric}``, step = iteration, written in batches),
with early stopping ``stopped_iteration``, ``best_iteration`` and the metrics of the best
iteration at one step past the last, ``feature_importance_{type}.json`` and ``.png``, the
training (``"train"``) and eval (``"eval"``) data as dataset inputs, and the model.

A problem while logging never breaks training: it is reported in one warning and the model is
returned. An exception raised by training reaches the caller unchanged, and a run autologging
started for it ends FAILED. Each library module supplies a ``Library`` with what differs.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from jupyter_mltrack.autolog import patching
from jupyter_mltrack.autolog.import_hooks import cancel, when_imported
from jupyter_mltrack.autolog.patching import FitRun, PatchSet
from jupyter_mltrack.entities import Metric, Param, RunStatus, RunTag
from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.validation import MAX_PARAM_VALUE_LENGTH

EXAMPLE_ROWS = 5  # rows of the training data kept for the input example and the signature
FLUSH_SECONDS = 1.0  # metrics are written at most this often while training (and at the end)
FLUSH_VALUES = 5000  # ... or when this many values are waiting
DENSE_LIMIT = 10_000_000  # largest sparse matrix made dense to be logged as a dataset
ESTIMATOR_NAME_TAG = "estimator_name"
ESTIMATOR_CLASS_TAG = "estimator_class"


@dataclass(frozen=True)
class Config:
    """The options of the last ``autolog()`` call of one library (read by every patched call)."""

    log_input_examples: bool = False
    log_model_signatures: bool = True
    log_models: bool = True
    log_datasets: bool = True
    exclusive: bool = False
    silent: bool = False
    registered_model_name: str | None = None
    extra_tags: dict[str, Any] = field(default_factory=dict)
    log_every_n_steps: int = 1
    importance_types: tuple[str, ...] = ()
    model_format: str | None = None  # XGBoost's file format for logged models


@dataclass
class DataPart:
    """One dataset input: features (and targets), its name and context (``train``/``eval``)."""

    features: Any
    targets: Any
    name: str | None
    context: str


class Library:
    """What one boosting library does its own way; ``xgboost`` and ``lightgbm`` subclass it."""

    flavor = ""
    module_name = ""
    supported_versions: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    unlogged_args: frozenset[str] = frozenset()
    params_arg = "params"

    def __init__(self) -> None:
        self.integration = Integration(self)

    def patch(self, module: ModuleType, integration: Integration) -> None:
        """Patch ``train`` and the wrappers' ``fit`` (called once the library is imported)."""
        raise NotImplementedError

    def booster_params(self, params: Any) -> dict[str, Any]:
        return {k: v for k, v in dict(params or {}).items() if v is not None}

    def add_callback(self, arguments: dict[str, Any], recorder: Recorder) -> None:
        raise NotImplementedError

    def train_data(self, arguments: dict[str, Any]) -> list[DataPart]:
        raise NotImplementedError

    def fit_data(self, arguments: dict[str, Any]) -> list[DataPart]:
        raise NotImplementedError

    def early_stopping(
        self, booster: Any, arguments: dict[str, Any], results: list[dict[str, float]]
    ) -> tuple[dict[str, float], dict[str, float], int] | None:
        """(stopped/best iteration metrics, the best iteration's metrics, their step)."""
        raise NotImplementedError

    def importances(self, booster: Any, config: Config) -> list[tuple[str, list[str], Any]]:
        """(importance type, feature names, values) for each importance type."""
        raise NotImplementedError

    def predict(self, model: Any, data: Any) -> Any:
        raise NotImplementedError

    def log_model(self, model: Any, config: Config, signature: Any, example: Any) -> None:
        raise NotImplementedError


# -- enabling and disabling ---------------------------------------------------------------------
class Integration:
    """The enabled state of one library's autologging and the patches that implement it."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.config: Config | None = None
        self._classes: list[PatchSet] = []
        self._functions = FunctionPatches()
        self._lock = threading.RLock()

    def enable(self, config: Config) -> None:
        with self._lock:
            self.config = config
            patching.forget_warnings()
            if not self.patched:
                cancel(self.library.module_name, self._on_import)
                # now if the library is imported already, else when the user imports it
                when_imported(self.library.module_name, self._on_import)

    def disable(self) -> None:
        with self._lock:
            self.config = None
            cancel(self.library.module_name, self._on_import)
            self._functions.restore()
            while self._classes:
                self._classes.pop().restore()

    @property
    def patched(self) -> bool:
        return self._functions.active or any(p.active for p in self._classes)

    def patch_classes(self, targets: Iterable[tuple[type, str]], wrap: Any) -> None:
        patches = PatchSet()
        patches.apply(targets, wrap)
        self._classes.append(patches)

    def patch_functions(self, targets: Iterable[tuple[ModuleType, str]], wrap: Any) -> None:
        self._functions.apply(targets, wrap)

    def _on_import(self, module: ModuleType) -> None:
        with self._lock:
            if self.config is not None and not self.patched:
                self.library.patch(module, self)


class FunctionPatches:
    """Module-level functions replaced and restorable exactly; the aliases of one function
    (``xgboost.train`` and ``xgboost.sklearn.train``) share one wrapper."""

    def __init__(self) -> None:
        self._patches: list[tuple[ModuleType, str, Any, Any]] = []

    @property
    def active(self) -> bool:
        return bool(self._patches)

    def apply(self, targets: Iterable[tuple[ModuleType, str]], wrap: Any) -> None:
        wrappers: dict[int, Any] = {}
        for module, name in targets:
            previous = module.__dict__.get(name)
            if not callable(previous):
                continue
            replacement = wrappers.get(id(previous))
            if replacement is None:
                replacement = wrappers[id(previous)] = wrap(previous)
            setattr(module, name, replacement)
            self._patches.append((module, name, previous, replacement))

    def restore(self) -> None:
        while self._patches:
            module, name, previous, replacement = self._patches.pop()
            if module.__dict__.get(name) is replacement:  # else someone patched over us
                setattr(module, name, previous)


def configure(
    library: Library,
    *,
    disable: bool,
    disable_for_unsupported_versions: bool,
    silent: bool,
    config: Config,
) -> None:
    """The body of each library's ``autolog()``: check the options, then enable or disable."""
    integration = library.integration
    if disable:
        integration.disable()
        return
    every = config.log_every_n_steps
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InvalidParameterValue(
            f"log_every_n_steps must be a positive integer (1 logs every iteration), got {every!r}."
        )
    if not isinstance(config.extra_tags, dict):
        raise InvalidParameterValue(
            f"extra_tags must be a dict, got {type(config.extra_tags).__name__}."
        )
    if config.registered_model_name is not None and not isinstance(
        config.registered_model_name, str
    ):
        raise InvalidParameterValue(
            "registered_model_name must be a string (the registered model's name) or None."
        )
    if disable_for_unsupported_versions and not _version_supported(library):
        integration.disable()
        if not silent:
            low, high = (".".join(map(str, v)) for v in library.supported_versions)
            warnings.warn(
                f"{library.module_name} {_installed_version(library)} is outside the versions "
                f"autologging is tested with ({low} to {high}.x); autologging stays off for it "
                "(disable_for_unsupported_versions=True).",
                UserWarning,
                stacklevel=4,
            )
        return
    integration.enable(config)


def _installed_version(library: Library) -> str:
    try:  # read from the metadata: enabling must not import the library
        return importlib.metadata.version(library.module_name)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _version_supported(library: Library) -> bool:
    try:
        version = tuple(int(p) for p in _installed_version(library).split(".")[:2])
    except ValueError:  # a development or missing version is outside the tested range
        return False
    low, high = library.supported_versions
    return low <= version <= high


# -- the patched functions ------------------------------------------------------------------------
class _Sessions(threading.local):
    def __init__(self) -> None:
        self.stack: list[_Session] = []


@dataclass
class _Session:
    """A wrapper's ``fit`` in progress: the ``train`` it calls logs into its run."""

    flavor: str
    fit_run: FitRun
    problems: list[str]
    trained: bool = False


_sessions = _Sessions()


def _waiting_session(flavor: str) -> _Session | None:
    stack = _sessions.stack
    if stack and stack[-1].flavor == flavor and not stack[-1].trained:
        return stack[-1]
    return None


def wrap_train(library: Library) -> Callable[[Any], Any]:
    """The wrapper of the library's ``train`` function."""

    def wrap(original: Any) -> Any:
        @patching.wraps(original)
        def train_with_autolog(*args: Any, **kwargs: Any) -> Any:
            config = library.integration.config
            if config is None:
                return original(*args, **kwargs)
            session = _waiting_session(library.flavor)
            if session is not None:  # called by a wrapper's fit: log into the fit's run
                session.trained = True
                return _train(library, config, original, args, kwargs, session.fit_run, session)
            if patching.in_fit():
                return original(*args, **kwargs)
            return _train_in_a_run(library, config, original, args, kwargs)

        return train_with_autolog

    return wrap


def wrap_fit(library: Library) -> Callable[[Any], Any]:
    """The wrapper of the scikit-learn wrappers' ``fit`` methods."""

    def wrap(original: Any) -> Any:
        @patching.wraps(original)
        def fit_with_autolog(self: Any, *args: Any, **kwargs: Any) -> Any:
            config = library.integration.config
            if config is None or patching.in_fit():
                return original(self, *args, **kwargs)
            return _fit_in_a_run(library, config, original, self, args, kwargs)

        return fit_with_autolog

    return wrap


def _train_in_a_run(
    library: Library, config: Config, original: Any, args: tuple, kwargs: dict
) -> Any:
    problems: list[str] = []
    what = f"{library.module_name}.train"
    with patching.outermost_fit():
        fit_run = _open(library, config, problems)
        if fit_run is None:
            result = original(*args, **kwargs)
        else:
            try:
                result = _train(library, config, original, args, kwargs, fit_run, problems)
            except BaseException as exc:
                _close(fit_run, _failed(exc), problems)
                _report(problems, what, config, fit_run)
                raise
            _close(fit_run, RunStatus.FINISHED, problems)
    _report(problems, what, config, fit_run)
    return result


def _fit_in_a_run(
    library: Library, config: Config, original: Any, estimator: Any, args: tuple, kwargs: dict
) -> Any:
    problems: list[str] = []
    what = f"{type(estimator).__name__}.fit"
    with patching.outermost_fit():
        fit_run = _open(library, config, problems)
        if fit_run is None:
            result = original(estimator, *args, **kwargs)
            _report(problems, what, config, None)
            return result
        example = None
        with _step(problems, "tags", config.silent):
            cls = type(estimator)
            tags = {ESTIMATOR_NAME_TAG: cls.__name__, ESTIMATOR_CLASS_TAG: _qualname(cls)}
            fit_run.client.log_batch(fit_run.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        arguments = _bind(original, (estimator, *args), kwargs)
        if arguments is not None:  # else fit() refuses its arguments and says so itself
            with _step(problems, "the training data", config.silent):
                parts = library.fit_data(arguments)
                example = _example(config, parts)
                if config.log_datasets:
                    _log_datasets(fit_run, parts)
        session = _Session(library.flavor, fit_run, problems)
        _sessions.stack.append(session)
        try:
            result = original(estimator, *args, **kwargs)
        except BaseException as exc:
            _close(fit_run, _failed(exc), problems)
            _report(problems, what, config, fit_run)
            raise
        finally:
            _sessions.stack.remove(session)
        try:
            if config.log_models:
                with _step(problems, "the model", config.silent):
                    _log_model(library, config, estimator, example, problems)
        except BaseException:  # interrupted while logging: the run must not stay open
            _close(fit_run, RunStatus.KILLED, problems)
            raise
        _close(fit_run, RunStatus.FINISHED, problems)
    _report(problems, what, config, fit_run)
    return result


def _train(
    library: Library,
    config: Config,
    original: Any,
    args: tuple,
    kwargs: dict,
    fit_run: FitRun,
    session: _Session | list[str],
) -> Any:
    """Log around one ``train`` call into ``fit_run``; with a session (a wrapper's fit) the
    data and the model are the fit's to log."""
    in_fit = isinstance(session, _Session)
    problems = session.problems if isinstance(session, _Session) else session
    arguments = _bind(original, args, kwargs)
    if arguments is None:  # arguments train() refuses: let it say so itself
        return original(*args, **kwargs)
    example = None
    with _step(problems, "params", config.silent):
        _log_params(fit_run, _train_params(library, original, arguments), problems)
    if not in_fit:
        with _step(problems, "the training data", config.silent):
            parts = library.train_data(arguments)  # before training: LightGBM frees it
            example = _example(config, parts)
            if config.log_datasets:
                _log_datasets(fit_run, parts)
    recorder = Recorder(fit_run, config.log_every_n_steps, problems)
    call_args, call_kwargs = args, kwargs
    try:
        library.add_callback(arguments, recorder)
        call_args, call_kwargs = _unbind(original, arguments)
    except Exception as exc:
        problems.append(f"metrics not logged ({describe(exc)})")
    try:
        booster = original(*call_args, **call_kwargs)
    finally:
        recorder.flush()
    with _step(problems, "the early-stopping results", config.silent):
        _log_early_stopping(library, fit_run, booster, arguments, recorder.results)
    with _step(problems, "the feature importance", config.silent):
        _log_importances(library, config, fit_run, booster)
    if config.log_models and not in_fit:
        with _step(problems, "the model", config.silent):
            _log_model(library, config, booster, example, problems)
    return booster


def _bind(function: Any, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except TypeError:
        return None
    return dict(bound.arguments)


def _unbind(function: Any, arguments: dict[str, Any]) -> tuple[tuple, dict]:
    bound = inspect.signature(function).bind_partial()
    bound.arguments.update(arguments)
    return bound.args, bound.kwargs


# -- the run and its problems ---------------------------------------------------------------------
def _open(library: Library, config: Config, problems: list[str]) -> FitRun | None:
    try:
        return FitRun.open(library.flavor, config.extra_tags, config.exclusive)
    except Exception as exc:
        problems.append(f"no run to log into ({describe(exc)})")
        return None


def _close(fit_run: FitRun, status: str, problems: list[str]) -> None:
    try:
        fit_run.close(status)
    except Exception as exc:
        problems.append(f"the run could not be ended ({describe(exc)})")


def _failed(exc: BaseException) -> str:
    return RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED


@contextmanager
def _step(problems: list[str], what: str, silent: bool) -> Iterator[None]:
    """Run one logging step: a failure becomes a problem to report, never an exception."""
    try:
        with warnings.catch_warnings():
            if silent:
                warnings.simplefilter("ignore")
            yield
    except Exception as exc:
        problems.append(f"{what} not logged ({describe(exc)})")


def _report(problems: list[str], what: str, config: Config, fit_run: FitRun | None) -> None:
    if not problems:
        return
    details = "; ".join(dict.fromkeys(problems))
    where = f" to run {fit_run.run_id}" if fit_run is not None else ""
    message = (
        f"jupyter_mltrack autolog: logging {what}{where} was incomplete: {details}. "
        "Training itself is not affected."
    )
    # stack: warn_once <- _report <- _*_in_a_run <- the patched function <- the user's call
    patching.warn_once(message, config.silent, stacklevel=4, key=f"{what}: {details}")


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- metrics --------------------------------------------------------------------------------------
class Recorder:
    """Collects the eval metrics of each iteration and writes them in batches (one
    ``log_batch`` per second of training, and one at the end), never one write per value."""

    def __init__(self, fit_run: FitRun, every_n_steps: int, problems: list[str]) -> None:
        self.results: list[dict[str, float]] = []  # every iteration (early stopping reads them)
        self._fit_run = fit_run
        self._every = every_n_steps
        self._problems = problems
        self._pending: list[Metric] = []
        self._keys: dict[tuple[str, str], str] = {}
        self._flushed = time.monotonic()
        self._failed = False

    def record(self, step: int, values: Iterable[tuple[str, str, Any]]) -> None:
        """``values``: (data name, metric name, value) of iteration ``step``; never raises."""
        try:
            row: dict[str, float] = {}
            keys = self._keys
            for data_name, metric_name, value in values:
                key = keys.get((data_name, metric_name))
                if key is None:
                    key = keys[(data_name, metric_name)] = metric_key(data_name, metric_name)
                row[key] = float(value)
            self.results.append(row)
            if self._failed or step % self._every:
                return
            now = time.time()
            self._pending.extend(Metric(k, v, int(now * 1000), step) for k, v in row.items())
            if (
                len(self._pending) >= FLUSH_VALUES
                or time.monotonic() - self._flushed >= FLUSH_SECONDS
            ):
                self.flush()
        except Exception as exc:  # a callback must never stop the training
            self._fail(exc)

    def flush(self) -> None:
        self._flushed = time.monotonic()
        if not self._pending or self._failed:
            return
        batch, self._pending = self._pending, []
        try:
            self._fit_run.client.log_batch(self._fit_run.run_id, metrics=batch)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self._failed = True
        self._pending = []
        self._problems.append(f"metrics not logged ({describe(exc)})")


def metric_key(data_name: str, metric_name: str) -> str:
    """MLflow's ``{data}-{metric}`` with ``@`` spelled ``_at_`` (``ndcg@5`` -> ``ndcg_at_5``)
    and any other character a metric name cannot hold replaced by ``_``."""
    key = f"{data_name}-{metric_name}".replace("@", "_at_")
    return "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in key)


def _log_early_stopping(
    library: Library, fit_run: FitRun, booster: Any, arguments: dict, results: list
) -> None:
    found = library.early_stopping(booster, arguments, results)
    if found is None:
        return
    summary, best, step = found
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in summary.items()]
    metrics += [Metric(k, float(v), now, step) for k, v in best.items()]
    fit_run.client.log_batch(fit_run.run_id, metrics=metrics)


# -- params ---------------------------------------------------------------------------------------
def _train_params(library: Library, original: Any, arguments: dict[str, Any]) -> dict[str, str]:
    """The train arguments (defaults included, data and callables left out) and the booster
    params, as MLflow logs them."""
    params: dict[str, Any] = {}
    for name, parameter in inspect.signature(original).parameters.items():
        if name in library.unlogged_args or name == library.params_arg:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        params[name] = arguments.get(name, parameter.default)
    params.update(library.booster_params(arguments.get(library.params_arg)))
    return {k: param_text(v) for k, v in params.items()}


def _log_params(fit_run: FitRun, params: dict[str, str], problems: list[str]) -> None:
    """Log params; in a run that has some of them with other values already (two trainings in
    one run), keep the first values and say which were not changed."""
    param_list = [Param(k, v) for k, v in params.items()]
    try:
        fit_run.client.log_batch(fit_run.run_id, params=param_list)
        return
    except InvalidParameterValue:
        existing = fit_run.client.get_run(fit_run.run_id).data.params
    kept = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
    fit_run.client.log_batch(
        fit_run.run_id, params=[p for p in param_list if p.key not in existing]
    )
    if kept:
        problems.append(
            "params already in the run with other values were left as they were: "
            f"{', '.join(kept)} (start a run per training to log each one)"
        )


def param_text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    limit = MAX_PARAM_VALUE_LENGTH
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


# -- datasets, importance, model ------------------------------------------------------------------
def _log_datasets(fit_run: FitRun, parts: list[DataPart]) -> None:
    from jupyter_mltrack.entities import DatasetInput, InputTag
    from jupyter_mltrack.tracking.fluent import DATASET_CONTEXT_TAG

    inputs = []
    for part in parts:
        dataset = _dataset(part)
        if dataset is not None:
            tags = [InputTag(DATASET_CONTEXT_TAG, part.context)]
            inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags))
    if inputs:
        fit_run.client.log_inputs(fit_run.run_id, inputs)


def _dataset(part: DataPart) -> Any:
    """A dataset of the features (targets too for arrays), or None for data we cannot read
    (a file path, an unknown container)."""
    import numpy as np

    from jupyter_mltrack.data import from_numpy, from_pandas

    features = part.features
    module = type(features).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        if isinstance(features, pd.Series):
            features = features.to_frame()
        if isinstance(features, pd.DataFrame):
            return from_pandas(features, name=part.name)
        return None
    if module == "scipy" and hasattr(features, "toarray"):
        if features.shape[0] * features.shape[1] > DENSE_LIMIT:
            return None
        features = features.toarray()
    if not isinstance(features, np.ndarray) or features.dtype == object:
        return None
    targets = None
    if part.targets is not None:
        targets = np.asarray(part.targets)
        if targets.ndim == 0 or targets.shape[0] != features.shape[0] or targets.size == 0:
            targets = None
    return from_numpy(features, targets=targets, name=part.name)


def _example(config: Config, parts: list[DataPart]) -> Any:
    """The first rows of the training data (a copy), when a model will be logged with them."""
    if not config.log_models or not (config.log_input_examples or config.log_model_signatures):
        return None
    train = next((p for p in parts if p.context == "train"), None)
    if train is None:
        return None
    features = train.features
    if type(features).__module__.split(".")[0] == "pandas" and hasattr(features, "head"):
        return features.head(EXAMPLE_ROWS).copy()
    import numpy as np

    if isinstance(features, np.ndarray) and features.ndim == 2 and features.dtype != object:
        return features[:EXAMPLE_ROWS].copy()
    return None  # sparse or unknown: no example, no signature


def _log_importances(library: Library, config: Config, fit_run: FitRun, booster: Any) -> None:
    from jupyter_mltrack.autolog.plots import feature_importance_png

    for kind, names, values in library.importances(booster, config):
        data = _importance_json(names, values)
        fit_run.client.log_text(fit_run.run_id, json.dumps(data), f"feature_importance_{kind}.json")
        png = feature_importance_png(names, values, kind)
        if png is not None:
            fit_run.client.log_bytes(fit_run.run_id, png, f"feature_importance_{kind}.png")


def _importance_json(names: list[str], values: Any) -> dict[str, Any]:
    import numpy as np

    array = np.asarray(values, dtype=float)
    if array.ndim == 2:  # one row per class: each feature gets its per-class list, as XGBoost's
        return {name: array[:, i].tolist() for i, name in enumerate(names)}
    return {name: float(v) for name, v in zip(names, array.tolist())}


def _log_model(
    library: Library, config: Config, model: Any, example: Any, problems: list[str]
) -> None:
    signature: Any = False  # False: none, and none inferred from the example either
    if config.log_model_signatures and example is not None:
        try:
            from jupyter_mltrack.models.signature import infer_signature

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                signature = infer_signature(example, library.predict(model, example))
        except Exception as exc:
            problems.append(f"the model signature not inferred ({describe(exc)})")
    with warnings.catch_warnings():
        # a later training in the same run replaces its model: the last one wins, as in MLflow
        warnings.simplefilter("ignore")
        library.log_model(model, config, signature, example if config.log_input_examples else None)
