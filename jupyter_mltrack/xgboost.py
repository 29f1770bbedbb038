"""The XGBoost flavor (MLflow's ``mlflow.xgboost``): save, log and load boosters and the
scikit-learn wrappers (``XGBClassifier``, ``XGBRegressor``, ...).

The model is stored in XGBoost's own format (``model.xgb``, ``model.json`` or ``model.ubj``),
never pickled: loading it runs no code from the file. ``load_model`` returns the class that was
saved (a ``Booster`` gives a ``Booster``, an ``XGBClassifier`` an ``XGBClassifier``). The
``MLmodel`` keys are MLflow's, so models saved by MLflow load here and the other way round.
As in MLflow 3, the default ``model_format`` is ``"ubj"`` (UBJSON); ``"xgb"`` (MLflow 2's
default, written as UBJSON under the name ``model.xgb``) and ``"json"`` are accepted.

``xgboost`` is imported only when a function here is called.
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Any

from jupyter_mltrack.exceptions import InvalidParameterValue
from jupyter_mltrack.models.info import ModelInfo, artifact_path_of, local_model_path
from jupyter_mltrack.models.info import log_model as _log_model
from jupyter_mltrack.models.model import (
    InvalidModelError,
    Model,
    add_code_paths,
    check_extra_files,
    check_kwargs,
    copy_code_paths,
    copy_extra_files,
    finish_metadata,
    read_model,
    require_flavor,
    save_with,
    write_flavor_dir,
)
from jupyter_mltrack.models.requirements import (
    pinned,
    resolve_environment,
)

FLAVOR_NAME = "xgboost"
SUPPORTED_MODEL_FORMATS = ("ubj", "json", "xgb")
_NATIVE_FORMATS = ("json", "ubj")  # extensions XGBoost recognises; "xgb" is written as UBJSON


def get_default_pip_requirements() -> list[str]:
    """Pinned requirements of an XGBoost model (``xgboost==<installed version>``)."""
    return pinned(["xgboost"])


def get_default_conda_env() -> dict[str, Any]:
    _reqs, conda, _python = resolve_environment(get_default_pip_requirements())
    return conda


def save_model(
    xgb_model: Any,
    path: str | os.PathLike[str],
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    model_format: str = "ubj",
    metadata: dict[str, Any] | None = None,
    extra_files: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """Save an XGBoost model as a model directory at ``path`` (which must not exist or be empty).

    Parameters
    ----------
    xgb_model
        A trained ``xgboost.Booster``, or a fitted scikit-learn wrapper (``XGBClassifier``,
        ``XGBRegressor``, ``XGBRanker``, ``XGBRF*``).
    path
        The directory to create.
    model_format
        ``"ubj"`` (the default), ``"json"``, or ``"xgb"`` (MLflow 2's default; UBJSON).
    signature, input_example
        The model's signature and an example input; when only the example is given, the
        signature is inferred from it and the model's prediction.
    pip_requirements, extra_pip_requirements, conda_env
        Replace, extend, or state the whole environment (at most one of them).
    extra_files
        Local files copied into the model's ``extra_files/`` folder.
    """
    check_kwargs(kwargs, "save_model")
    _check_format(model_format)
    kind = _check_model(xgb_model, "save_model")
    extras = check_extra_files(extra_files)

    def write(target: str) -> None:
        import xgboost

        file = f"model.{model_format}"
        _save_file(xgb_model, os.path.join(target, file), model_format)
        code = copy_code_paths(code_paths, target)
        model = finish_metadata(
            target,
            mlflow_model,
            signature=signature,
            input_example=input_example,
            metadata=metadata,
            infer_output=_XGBModelWrapper(xgb_model).predict,
        )
        dists = ["xgboost"]
        if kind == "sklearn":
            dists.append("scikit-learn")
        if _takes_frames(xgb_model, model):
            dists.append("pandas")
        write_flavor_dir(
            target,
            model,
            flavor=FLAVOR_NAME,
            flavor_conf={
                "xgb_version": xgboost.__version__,
                "data": file,
                "model_class": f"{type(xgb_model).__module__}.{type(xgb_model).__qualname__}",
                "model_format": model_format,
                **copy_extra_files(extras, target),
            },
            loader_module="jupyter_mltrack.xgboost",
            pyfunc_conf={"data": file},
            code=code,
            dists=dists,
            environment=(pip_requirements, extra_pip_requirements, conda_env),
        )

    save_with(path, write)


def log_model(
    xgb_model: Any,
    artifact_path: str | None = None,
    conda_env: Any = None,
    code_paths: list[str] | None = None,
    registered_model_name: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    await_registration_for: int | None = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    model_format: str = "ubj",
    metadata: dict[str, Any] | None = None,
    extra_files: list[str] | None = None,
    *,
    name: str | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Log an XGBoost model into the active run (started if none is), under ``name`` (MLflow 3)
    or ``artifact_path`` (MLflow 2), default ``"model"``; load it back with
    ``runs:/<run_id>/<name>``. ``registered_model_name`` also registers it.
    Other parameters: see ``save_model``."""
    check_kwargs(kwargs, "log_model")
    _check_format(model_format)
    _check_model(xgb_model, "log_model")
    return _log_model(
        save_model,
        artifact_path_of(artifact_path, name),
        registered_model_name,
        xgb_model=xgb_model,
        conda_env=conda_env,
        code_paths=code_paths,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        model_format=model_format,
        metadata=metadata,
        extra_files=extra_files,
    )


def load_model(model_uri: str, dst_path: str | None = None) -> Any:
    """The XGBoost model at ``model_uri`` (``runs:/``, ``models:/``, a path...), as the class
    it was saved as: an ``xgboost.Booster`` or the scikit-learn wrapper."""
    path = local_model_path(model_uri, dst_path)
    model = read_model(path)
    conf = require_flavor(model, FLAVOR_NAME, path)
    add_code_paths(path, conf.get("code"))
    return _load_from_conf(path, conf)


# -- pyfunc ---------------------------------------------------------------------------------------
class _XGBModelWrapper:
    """``pyfunc`` face of an XGBoost model: ``predict`` takes a DataFrame or an array."""

    def __init__(self, xgb_model: Any) -> None:
        self.xgb_model = xgb_model

    def get_raw_model(self) -> Any:
        return self.xgb_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import xgboost

        model = self.xgb_model
        extra = dict(params or {})
        if isinstance(model, xgboost.Booster):
            return model.predict(_dmatrix(data, model), **extra)
        return model.predict(_with_feature_names(data, model), **extra)


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> _XGBModelWrapper:
    """The pyfunc loader (``loader_module: jupyter_mltrack.xgboost``); ``path`` is the model
    directory or, as MLflow passes it, the model file in it."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    model = read_model(directory)
    conf = require_flavor(model, FLAVOR_NAME, directory)
    add_code_paths(directory, conf.get("code"))
    return _XGBModelWrapper(_load_from_conf(directory, conf))


def _dmatrix(data: Any, booster: Any) -> Any:
    """A DMatrix of ``data`` matching a booster trained with (or without) feature names."""
    import numpy as np
    import pandas as pd
    import xgboost

    if isinstance(data, xgboost.DMatrix):
        return data
    names = booster.feature_names
    if isinstance(data, pd.DataFrame):
        if names is None:  # trained on an array: columns are matched by position
            return xgboost.DMatrix(data.to_numpy())
        return xgboost.DMatrix(data, enable_categorical=True)
    array = np.asarray(data)
    if array.ndim == 1:  # one value per sample for a one-feature model, else one sample
        array = array.reshape(-1, 1) if booster.num_features() == 1 else array.reshape(1, -1)
    if names is not None and array.ndim == 2 and array.shape[1] == len(names):
        return xgboost.DMatrix(array, feature_names=names)
    return xgboost.DMatrix(array)


def _with_feature_names(data: Any, model: Any) -> Any:
    """An array given to a wrapper fitted on a DataFrame gets the fitted column names."""
    import numpy as np
    import pandas as pd

    columns = getattr(model, "feature_names_in_", None)
    if columns is None or isinstance(data, pd.DataFrame):
        return data
    array = np.asarray(data)
    if array.ndim == 2 and array.shape[1] == len(columns):
        return pd.DataFrame(array, columns=list(columns))
    return data


# -- files ----------------------------------------------------------------------------------------
def _check_format(model_format: Any) -> None:
    if model_format not in SUPPORTED_MODEL_FORMATS:
        raise InvalidParameterValue(
            f"Unknown model_format {model_format!r}; use one of "
            f"{', '.join(repr(f) for f in SUPPORTED_MODEL_FORMATS)} ('ubj' is the default)."
        )


def _check_model(xgb_model: Any, function: str) -> str:
    """``"booster"`` or ``"sklearn"``; anything else is a clear error."""
    try:
        import xgboost
    except ImportError:
        raise InvalidParameterValue(
            f"xgboost.{function} needs XGBoost: pip install 'jupyter-mltrack[xgboost]'."
        ) from None
    if isinstance(xgb_model, xgboost.Booster):
        return "booster"
    if isinstance(xgb_model, xgboost.XGBModel):
        if not xgb_model.__sklearn_is_fitted__():
            raise InvalidParameterValue(
                f"The {type(xgb_model).__name__} is not fitted; call fit() before {function}."
            )
        return "sklearn"
    cls = type(xgb_model)
    hint = _other_flavor(cls.__module__)
    raise InvalidParameterValue(
        f"jupyter_mltrack.xgboost.{function} takes an xgboost.Booster or a fitted XGBoost "
        f"scikit-learn model (XGBClassifier, XGBRegressor, ...); got {cls.__module__}."
        f"{cls.__qualname__}.{hint}"
    )


def _other_flavor(module: str) -> str:
    root = module.split(".")[0]
    if root in ("lightgbm", "sklearn"):
        return f" Log it with jupyter_mltrack.{root}.log_model instead."
    return " Log other models with jupyter_mltrack.pyfunc.log_model(python_model=...)."


def _save_file(xgb_model: Any, file: str, model_format: str) -> None:
    if model_format in _NATIVE_FORMATS:
        xgb_model.save_model(file)
        return
    # XGBoost knows no ".xgb" extension: write UBJSON under MLflow's file name, no warning
    temp = f"{file}.ubj"
    xgb_model.save_model(temp)
    os.replace(temp, file)


def _load_from_conf(directory: str, conf: dict[str, Any]) -> Any:
    file = os.path.join(directory, str(conf.get("data", "model.xgb")))
    if not os.path.isfile(file):
        raise InvalidModelError(f"The model file {file} is missing from the model directory.")
    model = _model_class(conf.get("model_class") or "xgboost.core.Booster", directory)()
    if file.rsplit(".", 1)[-1] in _NATIVE_FORMATS:
        model.load_model(file)
    else:
        with open(file, "rb") as fh:  # from bytes, XGBoost detects the format itself
            data = bytearray(fh.read())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_model(data)
    return model


def _model_class(name: str, directory: str) -> type:
    """The saved model's class; only XGBoost's Booster and scikit-learn model classes (and
    subclasses of them) are instantiated."""
    import xgboost

    module_name, _, class_name = str(name).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise InvalidModelError(
            f"The model at {directory} was saved as {name}, which cannot be imported here. "
            "Add the code that defines it to sys.path (or log it with code_paths=[...])."
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, (xgboost.Booster, xgboost.XGBModel))):
        raise InvalidModelError(
            f"The model at {directory} names model_class {name}, which is not an XGBoost model "
            "class; refusing to load it."
        )
    return cls


def _takes_frames(xgb_model: Any, model: Model) -> bool:
    info = model.saved_input_example_info or {}
    inputs = model.get_input_schema()
    return (
        hasattr(xgb_model, "feature_names_in_")
        or info.get("type") == "dataframe"
        or (inputs is not None and inputs.has_input_names())
    )


# -- autologging ----------------------------------------------------------------------------------
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
    """Enable (or with ``disable=True`` disable) autologging of ``xgboost.train`` and the
    scikit-learn wrappers' ``fit``: params, per-iteration eval metrics, early-stopping results,
    feature importance, the training data and the model.
    See ``jupyter_mltrack.autolog.xgboost.autolog`` for the parameters."""
    from jupyter_mltrack.autolog import xgboost as _autolog_xgboost

    _autolog_xgboost.autolog(
        importance_types=importance_types,
        log_input_examples=log_input_examples,
        log_model_signatures=log_model_signatures,
        log_models=log_models,
        log_datasets=log_datasets,
        disable=disable,
        exclusive=exclusive,
        disable_for_unsupported_versions=disable_for_unsupported_versions,
        silent=silent,
        registered_model_name=registered_model_name,
        model_format=model_format,
        extra_tags=extra_tags,
        log_every_n_steps=log_every_n_steps,
    )
