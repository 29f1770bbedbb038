"""Keras 3 autologging (MLflow's ``mlflow.keras.autolog``).

``keras.Model.fit`` is wrapped when keras is imported (enabling autologging imports nothing).
Each fit logs into the active run (a ``with start_run()`` block, a ``%%track`` cell's run) or
into a run started for it and ended after it:

- before training: the fit's arguments as params (``epochs``, ``batch_size``, ...), with an
  ``EarlyStopping`` callback its settings (``monitor``, ``patience``, ...); the training data
  (context ``train``) and ``validation_data`` (context ``eval``) as dataset inputs;
- during training, through ``MlflowCallback``: ``optimizer_*`` params and ``loss``, metrics per
  epoch or every n steps, ``model_summary.txt``; after early stopping ``stopped_epoch`` and
  ``restored_epoch``;
- after training: the model (``runs:/<run_id>/model``) with a signature inferred from the
  first rows of the training data and the model's predictions.

A problem while logging never breaks the fit: it is reported in one warning and ``fit``
returns its ``History``. An exception raised by the fit reaches the caller unchanged, and a run
autologging started for it ends FAILED.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from jupyter_mltrack.autolog import import_hooks, patching
from jupyter_mltrack.autolog.patching import FitRun, PatchSet
from jupyter_mltrack.entities import RunStatus
from jupyter_mltrack.exceptions import InvalidParameterValue

FLAVOR = "keras"
LIBRARY = "keras"
SUPPORTED_VERSIONS = ((3, 0), (3, 15))  # tested range, for disable_for_unsupported_versions
EXAMPLE_ROWS = 5  # rows of the training data used for the signature and the input example
TRAIN_CONTEXT, EVAL_CONTEXT = "train", "eval"
# fit arguments that are data or plumbing, not hyper-parameters
_UNLOGGED = frozenset(
    {"self", "x", "y", "callbacks", "validation_data", "verbose", "sample_weight"}
)
_EARLY_STOPPING_PARAMS = ("monitor", "min_delta", "patience", "baseline", "restore_best_weights")


@dataclass(frozen=True)
class AutologConfig:
    """The options of the last ``autolog()`` call (read by every patched fit)."""

    log_every_epoch: bool = True
    log_every_n_steps: int | None = None
    log_models: bool = True
    log_model_signatures: bool = True
    save_exported_model: bool = False
    log_datasets: bool = True
    log_input_examples: bool = False
    exclusive: bool = False
    silent: bool = False
    registered_model_name: str | None = None
    save_model_kwargs: dict[str, Any] | None = None
    extra_tags: dict[str, Any] = field(default_factory=dict)


_config: AutologConfig | None = None
_patches = PatchSet()
_enable_lock = threading.Lock()


def autolog(
    log_every_epoch: bool = True,
    log_every_n_steps: int | None = None,
    log_models: bool = True,
    log_model_signatures: bool = True,
    save_exported_model: bool = False,
    log_datasets: bool = True,
    log_input_examples: bool = False,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    registered_model_name: str | None = None,
    save_model_kwargs: dict[str, Any] | None = None,
    extra_tags: dict[str, Any] | None = None,
) -> None:
    """Enable (or with ``disable=True`` disable) autologging of ``keras.Model.fit``.

    Parameters
    ----------
    log_every_epoch
        Log the metrics at the end of each epoch (step = epoch).
    log_every_n_steps
        Log the batch metrics every n training steps instead (needs ``log_every_epoch=False``).
    log_models
        Log the trained model as the run's ``model`` artifact.
    log_model_signatures
        Store a signature inferred from the training data and the model's predictions.
    save_exported_model
        Log the model as a TensorFlow SavedModel (needs TensorFlow) instead of ``.keras``.
    log_datasets
        Log the training data (context ``train``) and ``validation_data`` (``eval``) as dataset
        inputs of the run (numpy arrays, dicts of arrays and pandas DataFrames).
    log_input_examples
        Store the first rows of the training data with the model.
    disable
        Put ``keras.Model.fit`` back exactly as it was.
    exclusive
        Log nothing into runs the user started (``start_run``, a ``%%track`` cell).
    disable_for_unsupported_versions
        Do nothing when the installed Keras is outside the tested range (3.0 to 3.15).
    silent
        No warnings from autologging (training's own output is untouched).
    registered_model_name
        Register each logged model under this name (a new version per fit).
    save_model_kwargs
        Arguments for ``keras.Model.save``, as in ``jupyter_mltrack.keras.save_model``.
    extra_tags
        Tags set on the runs autologging starts.
    """
    global _config
    with _enable_lock:
        if disable:
            _config = None
            import_hooks.cancel(LIBRARY, _on_import)
            _patches.restore()
            return
        from jupyter_mltrack.keras import (
            _check_save_kwargs,
            _require_tensorflow,
            check_logging_options,
        )

        check_logging_options(log_every_epoch, log_every_n_steps)
        _check_save_kwargs(save_model_kwargs)
        if save_exported_model:
            _require_tensorflow()
        if extra_tags is not None and not isinstance(extra_tags, dict):
            raise InvalidParameterValue(
                f"extra_tags must be a dict, got {type(extra_tags).__name__}."
            )
        if disable_for_unsupported_versions and not _version_supported():
            _config = None
            import_hooks.cancel(LIBRARY, _on_import)
            _patches.restore()
            if not silent:
                low, high = (".".join(map(str, v)) for v in SUPPORTED_VERSIONS)
                warnings.warn(
                    f"Keras {_installed_version()} is outside the versions autologging is tested "
                    f"with ({low} to {high}.x); autologging stays off for it "
                    "(disable_for_unsupported_versions=True).",
                    UserWarning,
                    stacklevel=3,
                )
            return
        patching.forget_warnings()
        _config = AutologConfig(
            log_every_epoch=log_every_epoch,
            log_every_n_steps=log_every_n_steps,
            log_models=log_models,
            log_model_signatures=log_model_signatures,
            save_exported_model=save_exported_model,
            log_datasets=log_datasets,
            log_input_examples=log_input_examples,
            exclusive=exclusive,
            silent=silent,
            registered_model_name=registered_model_name,
            save_model_kwargs=dict(save_model_kwargs) if save_model_kwargs else None,
            extra_tags=dict(extra_tags or {}),
        )
        if not _patches.active:
            import_hooks.cancel(LIBRARY, _on_import)  # enabling twice waits once
            import_hooks.when_imported(LIBRARY, _on_import)  # now if keras is imported already


def is_enabled() -> bool:
    """True when enabled: ``fit`` is patched, or will be when keras is imported."""
    return _config is not None and (_patches.active or import_hooks.pending(LIBRARY))


def _on_import(module: Any) -> None:
    if _config is not None:
        _patches.apply([(module.Model, "fit")], _wrap)


def _installed_version() -> str:
    try:
        return importlib.metadata.version(LIBRARY)  # keras itself is not imported for this
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _version_supported() -> bool:
    try:
        version = tuple(int(part) for part in _installed_version().split(".")[:2])
    except ValueError:  # a development or missing version is outside the tested range
        return False
    return SUPPORTED_VERSIONS[0] <= version <= SUPPORTED_VERSIONS[1]


# -- the patched fit ------------------------------------------------------------------------------
def _wrap(original: Any) -> Any:
    @patching.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or patching.in_fit():
            return original(self, *args, **kwargs)
        return _logged_fit(config, original, self, args, kwargs)

    return fit


def _logged_fit(config: AutologConfig, original: Any, model: Any, args: tuple, kwargs: dict) -> Any:
    try:
        bound = inspect.signature(original).bind(model, *args, **kwargs)
    except TypeError:
        return original(model, *args, **kwargs)  # let keras report the bad call itself
    from jupyter_mltrack.keras.callback import MlflowCallback, describe

    callbacks = bound.arguments.get("callbacks")
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        return original(model, *args, **kwargs)  # a CallbackList: keras' own plumbing
    if any(isinstance(c, MlflowCallback) for c in callbacks or ()):
        patching.warn_once(
            "jupyter_mltrack autolog: this fit has its own MlflowCallback, so autologging "
            "leaves it to that callback (call jupyter_mltrack.keras.autolog(disable=True) to "
            "silence this).",
            config.silent,
            stacklevel=3,
        )
        return original(model, *args, **kwargs)
    problems: list[str] = []
    with patching.outermost_fit():
        fit_run = None
        try:
            fit_run = FitRun.open(FLAVOR, config.extra_tags, config.exclusive)
        except Exception as exc:
            problems.append(f"no run to log into ({describe(exc)})")
        if fit_run is None:
            result = original(model, *args, **kwargs)
            _report(problems, config, None)
            return result
        callback = MlflowCallback(
            run=fit_run.run,
            log_every_epoch=config.log_every_epoch,
            log_every_n_steps=config.log_every_n_steps,
        )
        callback._reports_itself = False
        with _muted(config.silent):
            _prepare(config, fit_run, callback, bound, problems)
        bound.arguments["callbacks"] = [*(callbacks or ()), callback]
        try:
            result = original(*bound.args, **bound.kwargs)
        except BaseException as exc:
            callback.finish_after_error()
            failed = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
            _close(fit_run, failed, problems)
            _report(problems + callback.problems, config, fit_run)
            raise
        try:
            if config.log_models:
                with _muted(config.silent):
                    _log_model_safely(config, model, bound.arguments.get("x"), problems)
        except BaseException:  # interrupted while logging: the run must not stay open
            _close(fit_run, RunStatus.KILLED, problems)
            raise
        _close(fit_run, RunStatus.FINISHED, problems)
    _report(callback.problems + problems, config, fit_run)
    return result


def _prepare(
    config: AutologConfig, fit_run: FitRun, callback: Any, bound: Any, problems: list[str]
) -> None:
    """Hand the fit's params to the callback (logged with the optimizer's in one batch) and
    log the datasets."""
    from jupyter_mltrack.keras.callback import describe

    try:
        callback._fit_params = fit_params(bound)
        early = next(
            (c for c in bound.arguments.get("callbacks") or () if _is_early_stopping(c)), None
        )
        if early is not None:
            callback._early_stopping = early
            callback._fit_params.update(
                {k: getattr(early, k, None) for k in _EARLY_STOPPING_PARAMS}
            )
    except Exception as exc:
        problems.append(f"params not logged ({describe(exc)})")
    if config.log_datasets:
        try:
            _log_datasets(fit_run, bound.arguments)
        except Exception as exc:
            problems.append(f"datasets not logged ({describe(exc)})")


def _is_early_stopping(callback: Any) -> bool:
    import keras

    return isinstance(callback, keras.callbacks.EarlyStopping)


def fit_params(bound: Any) -> dict[str, Any]:
    """The fit's hyper-parameters: its arguments with defaults, without data and plumbing;
    ``batch_size`` as Keras will use it (32 for arrays when not given)."""
    arguments = dict(bound.arguments)
    for parameter in bound.signature.parameters.values():
        if parameter.name not in arguments and parameter.default is not inspect.Parameter.empty:
            arguments[parameter.name] = parameter.default
    params = {k: v for k, v in arguments.items() if k not in _UNLOGGED}
    if params.get("batch_size") is None:
        params["batch_size"] = _batch_size(arguments.get("x"), params.get("steps_per_epoch"))
    return params


def _batch_size(x: Any, steps_per_epoch: Any) -> Any:
    found = getattr(x, "batch_size", None) or getattr(x, "_batch_size", None)
    if isinstance(found, int):
        return found
    rows = _rows(x)
    if rows is None:
        return None
    if steps_per_epoch:  # Keras spreads the samples over the given steps
        return -(-rows // int(steps_per_epoch))
    return 32


def _rows(x: Any) -> int | None:
    if isinstance(x, dict) and x:
        x = next(iter(x.values()))
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        x = x[0]
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) > 0 and hasattr(x, "__len__"):
        return int(shape[0])
    return None


# -- datasets -------------------------------------------------------------------------------------
def _log_datasets(fit_run: FitRun, arguments: dict[str, Any]) -> None:
    from jupyter_mltrack.entities import DatasetInput, InputTag
    from jupyter_mltrack.tracking.fluent import DATASET_CONTEXT_TAG

    inputs = []
    train = _dataset(arguments.get("x"), arguments.get("y"))
    if train is not None:
        inputs.append((train, TRAIN_CONTEXT))
    validation = arguments.get("validation_data")
    if isinstance(validation, (list, tuple)) and len(validation) in (2, 3):
        evaluation = _dataset(validation[0], validation[1])
        if evaluation is not None:
            inputs.append((evaluation, EVAL_CONTEXT))
    if inputs:
        fit_run.client.log_inputs(
            fit_run.run_id,
            [
                DatasetInput(d._to_mlflow_entity(), [InputTag(DATASET_CONTEXT_TAG, c)])
                for d, c in inputs
            ],
        )


def _dataset(x: Any, y: Any) -> Any:
    """A dataset for numpy arrays, dicts of arrays and DataFrames; None for anything else
    (generators, ``PyDataset``, ``tf.data``, torch ``DataLoader``)."""
    import numpy as np
    import pandas as pd

    from jupyter_mltrack import data

    if isinstance(x, pd.DataFrame):
        target = _one_column(y)
        if target is None:
            return data.from_pandas(x)
        name = str(getattr(y, "name", None) or "target")
        while name in x.columns:
            name = f"{name}_"
        return data.from_pandas(x.assign(**{name: target}), targets=name)
    if isinstance(x, np.ndarray) or (
        isinstance(x, dict) and x and all(isinstance(v, np.ndarray) for v in x.values())
    ):
        targets = y if isinstance(y, (np.ndarray, dict)) else None
        if isinstance(y, (pd.Series, pd.DataFrame)):
            targets = y.to_numpy()
        return data.from_numpy(x, targets=targets)
    return None


def _one_column(y: Any) -> Any:
    import numpy as np

    if y is None:
        return None
    values = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    return values if values.ndim == 1 else None


# -- the model ------------------------------------------------------------------------------------
def _log_model_safely(config: AutologConfig, model: Any, x: Any, problems: list[str]) -> None:
    from jupyter_mltrack.keras.callback import describe

    try:
        _log_model(config, model, x)
    except Exception as exc:
        problems.append(f"the model not logged ({describe(exc)})")


def _log_model(config: AutologConfig, model: Any, x: Any) -> None:
    from jupyter_mltrack.keras import log_model

    sample = _head(x, EXAMPLE_ROWS)
    signature: Any = False  # False: none, and none inferred from the example either
    if config.log_model_signatures:
        signature = _signature(model, sample) or False
    with warnings.catch_warnings():
        # a later fit in the same run replaces its model: the last fit wins, as in MLflow
        warnings.simplefilter("ignore")
        log_model(
            model,
            name="model",
            save_exported_model=config.save_exported_model,
            signature=signature,
            input_example=sample if config.log_input_examples else None,
            registered_model_name=config.registered_model_name,
            save_model_kwargs=config.save_model_kwargs,
        )


def _head(x: Any, rows: int) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(x, pd.DataFrame):
        return x.head(rows)
    if isinstance(x, np.ndarray):
        return x[:rows]
    if isinstance(x, dict) and x and all(isinstance(v, np.ndarray) for v in x.values()):
        return {k: v[:rows] for k, v in x.items()}
    return None


def _signature(model: Any, sample: Any) -> Any:
    """From the training data's first rows and the model's predictions on them; without
    array data, from the model's declared input and output shapes (as MLflow does)."""
    from jupyter_mltrack.models.signature import infer_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sample is not None:
            from jupyter_mltrack.keras import _predict

            signature = infer_signature(sample, _predict(model, sample))
            return signature if signature.inputs is not None else None
    return _declared_signature(model)


def _declared_signature(model: Any) -> Any:
    import numpy as np

    from jupyter_mltrack.models.signature import ModelSignature, Schema, TensorSpec

    def schema(tensors: Any) -> Schema | None:
        if not tensors:
            return None
        return Schema(
            [
                TensorSpec(np.dtype(t.dtype), [-1 if d is None else int(d) for d in t.shape])
                for t in tensors
            ]
        )

    try:
        inputs, outputs = schema(model.inputs), schema(model.outputs)
    except (AttributeError, ValueError, TypeError):  # a subclassed model declares none
        return None
    return ModelSignature(inputs, outputs) if inputs is not None else None


# -- ending and reporting -------------------------------------------------------------------------
def _close(fit_run: FitRun, status: str, problems: list[str]) -> None:
    from jupyter_mltrack.keras.callback import describe

    try:
        fit_run.close(status)
    except Exception as exc:
        problems.append(f"the run could not be ended ({describe(exc)})")


def _report(problems: list[str], config: AutologConfig, fit_run: FitRun | None) -> None:
    if not problems:
        return
    details = "; ".join(dict.fromkeys(problems))
    where = f" to run {fit_run.run_id}" if fit_run is not None else ""
    message = (
        f"jupyter_mltrack autolog: logging keras Model.fit{where} was incomplete: {details}. "
        "Training itself is not affected."
    )
    patching.warn_once(message, config.silent, stacklevel=4, key=f"keras fit: {details}")


class _muted:
    """Silence the warnings raised while logging, with ``silent=True``."""

    def __init__(self, silent: bool) -> None:
        self._catch = warnings.catch_warnings() if silent else None

    def __enter__(self) -> None:
        if self._catch is not None:
            self._catch.__enter__()
            warnings.simplefilter("ignore")

    def __exit__(self, *exc: Any) -> None:
        if self._catch is not None:
            self._catch.__exit__(*exc)
